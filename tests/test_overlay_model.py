"""Overlay addresses, collisions and the Ray port policy (pure functions, no network)."""

from __future__ import annotations

import ipaddress
import itertools

import pytest

from raytui.errors import UsageError
from raytui.model.overlay import (
    DEFAULT_PREFIX,
    RAY_NODE_PORTS,
    WORKER_PORTS,
    JoinState,
    JoinStatus,
    OverlayRoute,
    OverlayStatus,
    RouteState,
    claim_index,
    derive_address,
    parse_prefix,
    ray_port_allowed,
    ray_start_port_args,
    resolve_collision,
)

PEERS = [f"12D3KooWpeer{i:04d}" for i in range(200)]


def test_address_is_stable_and_a_host_of_the_prefix() -> None:
    prefix = parse_prefix(DEFAULT_PREFIX)
    for peer in PEERS:
        address = ipaddress.IPv4Address(derive_address(peer, prefix))
        assert address in prefix
        assert address not in (prefix.network_address, prefix.broadcast_address)
        assert derive_address(peer, prefix) == str(address)
    assert len({derive_address(p, prefix) for p in PEERS}) == len(PEERS)


def test_a_claim_is_accepted_only_for_the_claimants_own_addresses() -> None:
    prefix = parse_prefix(DEFAULT_PREFIX)
    a, b = PEERS[:2]
    assert claim_index(a, derive_address(a, prefix), prefix) == 0
    assert claim_index(a, derive_address(a, prefix, 3), prefix) == 3
    assert claim_index(a, derive_address(b, prefix), prefix) is None
    assert claim_index(a, "100.64.0.1", prefix) in (None, *range(16))


def test_two_colliding_peers_end_on_different_addresses() -> None:
    """In a /29 (6 hosts) collisions are certain among 200 peers: the rule moves exactly one
    of each colliding pair, both sides agree which, and the mover's next address is another."""
    prefix = parse_prefix("10.99.0.0/29")
    pairs = [
        (x, y)
        for x, y in itertools.combinations(PEERS, 2)
        if derive_address(x, prefix) == derive_address(y, prefix)
    ]
    assert len(pairs) > 10
    for x, y in pairs:
        ix, iy = resolve_collision(x, y, 0), resolve_collision(y, x, 0)
        assert sorted((ix, iy)) == [0, 1]
        mover = x if ix else y
        assert claim_index(mover, derive_address(mover, prefix, 1), prefix) is not None
    changed = sum(derive_address(x, prefix, 1) != derive_address(x, prefix, 0) for x, _ in pairs)
    assert changed > len(pairs) // 2


def test_prefix_validation() -> None:
    assert str(parse_prefix("100.64.0.0/10")) == "100.64.0.0/10"
    for bad in ("100.64.0.1/10", "fd00::/8", "10.0.0.0/30", "nonsense"):
        with pytest.raises(UsageError):
            parse_prefix(bad)


def test_only_rays_ports_are_carried() -> None:
    for port in (*RAY_NODE_PORTS.values(), WORKER_PORTS[0], 10500, WORKER_PORTS[1]):
        assert ray_port_allowed(port)
    for port in (22, 80, 443, 5432, 11434, 8000, WORKER_PORTS[1] + 1, 65535):
        assert not ray_port_allowed(port)


@pytest.mark.parametrize("head", [True, False])
def test_ray_start_pins_every_port_outside_the_worker_range(head: bool) -> None:
    args = ray_start_port_args(head)
    ports = [int(v) for k, v in itertools.pairwise(args) if k.endswith("-port")]
    fixed = [
        int(v) for k, v in itertools.pairwise(args) if k.endswith("-port") and "worker" not in k
    ]
    assert len(fixed) == len(set(fixed))
    assert all(not WORKER_PORTS[0] <= p <= WORKER_PORTS[1] for p in fixed)
    assert all(ray_port_allowed(p) for p in ports)
    assert ("--port" in args) == head
    assert ("--dashboard-port" in args) == head


def test_status_round_trips_through_json_dicts() -> None:
    status = OverlayStatus(
        True,
        "100.64.1.2",
        DEFAULT_PREFIX,
        None,
        (
            OverlayRoute("p1", "100.64.3.4", None, RouteState.UP),
            OverlayRoute("p2", "100.64.5.6", "p1", RouteState.DOWN),
        ),
        7,
        2,
        {"port not allowed": 3},
    )
    assert OverlayStatus.from_dict(status.to_dict()) == status
    assert status.route_to("100.64.5.6") == status.routes[1]
    join = JoinStatus(
        "worker",
        "p1",
        "100.64.3.4:6379",
        "100.64.1.2",
        JoinState.RUNNING,
        "ab" * 28,
        42,
        1.5,
        2,
        "exit 1",
    )
    assert JoinStatus.from_dict(join.to_dict()) == join
