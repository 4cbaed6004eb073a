"""How the console's machine reaches each Ray node over the overlay, as one frozen snapshot.

Built from the peer daemon's status (`OverlayStatus.routes`, this daemon's own overlay address and
its peers' names) and handed to the node list, which matches each node's IP against it. Ray nodes
that `raytui join` starts use their overlay address as their node IP, so the IP is the key. No
I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from raytui.model.overlay import RouteState
from raytui.model.peers import DaemonStatus, short_peer_id


class PathKind(StrEnum):
    LOCAL = "local"  # this daemon's own overlay address: this machine
    DIRECT = "overlay"  # a peer this daemon reaches on its own link
    HUB = "hub"  # a peer reached through another peer


@dataclass(frozen=True)
class NodePath:
    kind: PathKind
    up: bool = True  # False: the link it depends on is down (Ray notices ~a minute later)
    peer: str | None = None  # label of the peer that owns the address
    hub: str | None = None  # label of the hub, for HUB

    @property
    def label(self) -> str:
        """What the node list shows: `local`, `overlay` or `via NAME`."""
        if self.kind is PathKind.HUB:
            return f"via {self.hub}"
        return self.kind.value


@dataclass(frozen=True)
class OverlayPaths:
    """Overlay address -> path, for every address this daemon knows (itself included)."""

    address: str | None  # this daemon's overlay address (None: overlay off)
    paths: tuple[tuple[str, NodePath], ...] = ()
    _by_address: dict[str, NodePath] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        by_address = dict(self.paths)
        if self.address is not None:
            by_address[self.address] = NodePath(PathKind.LOCAL)
        object.__setattr__(self, "_by_address", by_address)

    def __bool__(self) -> bool:
        return bool(self._by_address)

    def path_of(self, ip: str) -> NodePath | None:
        return self._by_address.get(ip)

    @classmethod
    def from_status(cls, status: DaemonStatus) -> OverlayPaths:
        names = {p.peer_id: p.label for p in status.peers}

        def label(peer_id: str) -> str:
            return names.get(peer_id) or short_peer_id(peer_id)

        paths = []
        for route in status.overlay.routes:
            up = route.state is RouteState.UP
            if route.via is None:
                path = NodePath(PathKind.DIRECT, up, label(route.peer_id))
            else:
                path = NodePath(PathKind.HUB, up, label(route.peer_id), label(route.via))
            paths.append((route.address, path))
        return cls(status.overlay.address, tuple(sorted(paths, key=lambda item: item[0])))
