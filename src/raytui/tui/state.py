"""What the screens read: the latest snapshot, the link state, GPU history. Owned by the app.

The app mutates it on the event loop only (never from a worker); screens get it through their
constructor ("attributes down") and re-read it when they come back to the top.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from raytui.model.cluster import ClusterSnapshot
from raytui.model.gpu_history import GpuHistory
from raytui.model.node_path import OverlayPaths
from raytui.sources.machine import local_addresses
from raytui.tui.messages import ConnState, SlowPoll


@dataclass
class LinkInfo:
    state: ConnState = ConnState.CONNECTING
    target: str = ""  # what we connect to, for the connecting screen ("embedded Ray", an address)
    description: str = ""  # from the connection once connected
    error: str | None = None
    retry_at: float | None = None  # clock time of the next try
    progress: str = ""
    ever_connected: bool = False

    def retry_in(self, now: float) -> float | None:
        return None if self.retry_at is None else max(0.0, self.retry_at - now)


@dataclass
class UiState:
    clock: Callable[[], float]
    readonly: bool = False
    snapshot: ClusterSnapshot | None = None
    generation: int = 0  # bumps with every applied snapshot
    link: LinkInfo = field(default_factory=LinkInfo)
    history: GpuHistory = field(default_factory=GpuHistory)
    local_hostname: str = field(default_factory=socket.gethostname)
    local_addresses: frozenset[str] = field(default_factory=local_addresses)
    keys: dict[str, str] = field(default_factory=dict)  # binding id -> keys in effect
    refresh: float = 2.0
    slow_poll: SlowPoll | None = None  # polls spaced out (a fetch costs too much): the header says
    paths: OverlayPaths | None = None  # the peer daemon's overlay, for the node list's PATH

    def now(self) -> float:
        return self.clock()
