"""The overlay network as data: addresses derived from peer IDs, the ports Ray may use on it, and
frozen snapshots of the overlay's and the joined Ray node's state. No I/O.

Each daemon with the overlay on holds one IPv4 address inside a prefix (default within
100.64.0.0/10, the shared address space no home or lab network routes). The address is a hash of
the peer ID, so any peer can check a claim: a daemon may only claim `derive_address(its ID, n)` for
a small collision counter `n`, and `n` moves on only when two peers' addresses collide.

Ray nodes that raytui starts listen on the fixed ports in `RAY_NODE_PORTS` plus the worker range;
the overlay carries connections to those ports and refuses (and counts) every other port, so an
overlay peer can reach a box's Ray and nothing else on it.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from raytui.errors import UsageError

OVERLAY_PROTOCOL = "/raytui/overlay/1.0.0"
OVERLAY_INFO_PROTOCOL = "/raytui/overlay-info/1.0.0"
RAY_HEAD_INFO_PROTOCOL = "/raytui/ray-head/1.0.0"

DEFAULT_PREFIX = "100.64.0.0/10"
MAX_COLLISION_INDEX = 16  # a claim derive_address(peer, n) is accepted for n below this

# Ray's components on a node raytui starts (`ray start` flag -> port). Outside the worker range.
RAY_NODE_PORTS: dict[str, int] = {
    "port": 6379,  # GCS (head only)
    "node-manager-port": 6380,
    "object-manager-port": 6381,
    "dashboard-agent-grpc-port": 6382,
    "dashboard-agent-listen-port": 6383,
    "metrics-export-port": 6384,
    "runtime-env-agent-port": 6385,
    "dashboard-port": 8265,  # head only
    "ray-client-server-port": 10001,  # head only
}
HEAD_ONLY_FLAGS = ("port", "dashboard-port", "ray-client-server-port")
WORKER_PORTS = (10002, 10999)  # core workers and drivers; clear of 11434 (Ollama)
GCS_PORT = RAY_NODE_PORTS["port"]


def ray_port_allowed(port: int) -> bool:
    """Whether the overlay carries a connection to `port` (Ray's ports only)."""
    return port in RAY_NODE_PORTS.values() or WORKER_PORTS[0] <= port <= WORKER_PORTS[1]


def ray_start_port_args(head: bool) -> list[str]:
    """`ray start` flags that pin every component to the ports the overlay carries."""
    args: list[str] = []
    for flag, port in RAY_NODE_PORTS.items():
        if flag in HEAD_ONLY_FLAGS and not head:
            continue
        args += [f"--{flag}", str(port)]
    args += ["--min-worker-port", str(WORKER_PORTS[0]), "--max-worker-port", str(WORKER_PORTS[1])]
    return args


def parse_prefix(text: str) -> ipaddress.IPv4Network:
    """An overlay prefix: an IPv4 network with room for at least a few hosts."""
    try:
        net = ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        raise UsageError(f"bad overlay prefix {text!r}: {exc}") from None
    if net.prefixlen > 29:
        raise UsageError(f"overlay prefix {text!r} is too small (at most /29)")
    return net


def derive_address(peer_id: str, prefix: ipaddress.IPv4Network, index: int = 0) -> str:
    """The overlay address of `peer_id` for collision counter `index`: a host address of the
    prefix (never its first or last), the same on every machine."""
    digest = hashlib.sha256(f"{peer_id}/{index}".encode()).digest()
    hosts = prefix.num_addresses - 2
    offset = 1 + int.from_bytes(digest[:8], "big") % hosts
    return str(prefix.network_address + offset)


def claim_index(peer_id: str, address: str, prefix: ipaddress.IPv4Network) -> int | None:
    """The collision counter under which `peer_id` may claim `address`, or None: not its own."""
    for index in range(MAX_COLLISION_INDEX):
        if derive_address(peer_id, prefix, index) == address:
            return index
    return None


def resolve_collision(mine: str, other: str, index: int) -> int:
    """Two peers derived the same address: the one with the greater peer ID moves on to the next
    counter, the other keeps it. Returns `mine`'s counter after the rule."""
    return index + 1 if mine > other else index


class RouteState(StrEnum):
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True)
class OverlayRoute:
    """How this daemon reaches one overlay address: straight to the peer or through a hub."""

    peer_id: str
    address: str
    via: str | None  # peer ID of the hub, None when direct
    state: RouteState

    def to_dict(self) -> dict[str, Any]:
        return {
            "peer_id": self.peer_id,
            "address": self.address,
            "via": self.via,
            "state": self.state.value,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OverlayRoute:
        return cls(
            peer_id=str(d["peer_id"]),
            address=str(d["address"]),
            via=None if d.get("via") is None else str(d["via"]),
            state=RouteState(d.get("state", "down")),
        )


@dataclass(frozen=True)
class OverlayStatus:
    """The overlay as `proxy status --json` and the sidebar show it."""

    enabled: bool  # asked for (remembered across restarts)
    address: str | None  # this daemon's overlay address, None while off or failed
    prefix: str
    error: str | None  # why it is not up (privileges, iptables missing, ...)
    routes: tuple[OverlayRoute, ...]
    carried: int  # connections carried so far (both directions)
    active: int  # connections open now
    refused: dict[str, int]  # reason -> count (port, spoofed source, no route, ...)

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "address": self.address,
            "prefix": self.prefix,
            "error": self.error,
            "routes": [r.to_dict() for r in self.routes],
            "carried": self.carried,
            "active": self.active,
            "refused": dict(self.refused),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OverlayStatus:
        return cls(
            enabled=bool(d.get("enabled", False)),
            address=None if d.get("address") is None else str(d["address"]),
            prefix=str(d.get("prefix", DEFAULT_PREFIX)),
            error=None if d.get("error") is None else str(d["error"]),
            routes=tuple(OverlayRoute.from_dict(r) for r in d.get("routes", ())),
            carried=int(d.get("carried", 0)),
            active=int(d.get("active", 0)),
            refused={str(k): int(v) for k, v in d.get("refused", {}).items()},
        )

    def route_to(self, address: str) -> OverlayRoute | None:
        return next((r for r in self.routes if r.address == address), None)


class JoinState(StrEnum):
    STARTING = "starting"  # `ray start` is running, the node is not up yet
    RUNNING = "running"  # `ray start` reported the node started
    RESTARTING = "restarting"  # the node exited; waiting before the next start
    FAILED = "failed"  # cannot start at all (e.g. the peer offers no head)


@dataclass(frozen=True)
class JoinStatus:
    """The Ray node this daemon started (`raytui join`) and supervises."""

    role: str  # "worker" or "head"
    peer_id: str | None  # the head's daemon, for a worker
    head_address: str  # GCS host:port on the overlay
    node_ip: str
    state: JoinState
    node_id: str | None
    pid: int | None  # the `ray start --block` process
    since: float  # unix time of the current node's start
    restarts: int
    last_error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "peer_id": self.peer_id,
            "head_address": self.head_address,
            "node_ip": self.node_ip,
            "state": self.state.value,
            "node_id": self.node_id,
            "pid": self.pid,
            "since": self.since,
            "restarts": self.restarts,
            "last_error": self.last_error,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JoinStatus:
        return cls(
            role=str(d.get("role", "worker")),
            peer_id=None if d.get("peer_id") is None else str(d["peer_id"]),
            head_address=str(d.get("head_address", "")),
            node_ip=str(d.get("node_ip", "")),
            state=JoinState(d.get("state", "failed")),
            node_id=None if d.get("node_id") is None else str(d["node_id"]),
            pid=None if d.get("pid") is None else int(d["pid"]),
            since=float(d.get("since", 0.0)),
            restarts=int(d.get("restarts", 0)),
            last_error=None if d.get("last_error") is None else str(d["last_error"]),
        )
