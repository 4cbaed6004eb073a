"""A GPU box behind NAT joins a head with an invite: `raytui invite` on the head, `raytui join
LINE --gpus 1` on the box, and no `raytui peers add` on either side (model/invite.py,
proxy/invite.py).

Real parts only, as tests/test_overlay_join.py: network namespaces with a real NAT, real
`raytui proxy run --overlay` daemons, real `ray start` nodes. Its own world: the head (public)
and one box behind its own NAT, which nobody can dial.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from raytui.model.peers import LinkState
from tests.support.netns import Topology, require_netns
from tests.support.overlay_world import NsDaemon, make_head, running
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.netns, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[NsDaemon, NsDaemon]]:
    require_netns()
    with Topology() as topo:
        head = NsDaemon(topo.public("head"))
        box = NsDaemon(topo.behind_nat("box"))
        with running(head, box):
            make_head(head)
            yield head, box


def test_a_box_behind_nat_joins_with_an_invite(world: tuple[NsDaemon, NsDaemon]) -> None:
    head, box = world
    assert head.status().peers == () and box.status().peers == ()
    assert head.host.dial(box.host.address, 4701) != "connected"  # the NAT is real

    done = head.cli("invite", "--expires", "10m")
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert line.startswith("raytui1:") and "\n" not in line
    assert "note:" not in done.stderr, done.stderr  # overlay up, head offered: nothing missing
    invite = json.loads(head.cli("proxy", "status", "--json").stdout)["invites"]
    assert invite["active"] == 1 and invite["door_open"]

    done = box.cli("join", line, "--gpus", "1", "--cpus", "1")
    assert done.returncode == 0, f"{done.stdout}{done.stderr}\n{box.node_log_tail()}"

    # Both daemons allow-listed each other, and nothing else was added.
    head_id, box_id = head.peer_id, box.peer_id
    assert [p.peer_id for p in head.status().peers] == [box_id]
    assert [p.peer_id for p in box.status().peers] == [head_id]
    assert box.status().peer(head_id).state == LinkState.CONNECTED  # type: ignore[union-attr]
    status = box.join_status()
    assert status is not None and status.peer_id == head_id and status.node_id
    token = head.token()
    wait_for(
        lambda: head.node_state(token, status.node_id) == "ALIVE",
        90,
        "the box's node ALIVE on the head",
    )
    node = next(n for n in head.cluster_nodes(token) if n["node_id"] == status.node_id)
    assert node["ip"] == box.overlay_address
    assert node["gpus_total"] == 1

    # Spent: the same line again is refused, with the reason, on one line.
    again = box.cli("peers", "add", line)
    assert again.returncode == 1 and "already used" in again.stderr, again.stderr
    invites = head.status().invites
    assert invites.active == 0 and invites.accepted == 1
    assert invites.refused == {"already used": 1}
