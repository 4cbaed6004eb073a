"""Every message of the TUI: from the pollers (cluster_poller.py, peers_poller.py) and the
peers controller to the widgets, screens and app. `post_message` is thread-safe. (A screen's own
thread workers answer it directly: tui/thread_work.py.)

The bench and the tests feed `SnapshotReady` to the app exactly as the cluster poller does, and
`PeersStatusReady` to the peers controller as the peers poller does.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from textual.message import Message

from raytui.model.cluster import ClusterSnapshot
from raytui.model.gpu_history import GpuSample
from raytui.model.node_path import OverlayPaths
from raytui.model.overlay import JoinStatus
from raytui.model.peers import DaemonStatus, PeerHealth


class ConnState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    STOPPING = "stopping"


@dataclass(frozen=True)
class SlowPoll:
    """The cluster is polled less often than asked, because a fetch costs too much of the
    interval (tui/poller.py PollPace): shown in the header."""

    every: float  # seconds between polls now
    fetch: float  # seconds a fetch costs (smoothed)


class SnapshotReady(Message):
    """A fresh cluster snapshot. A newer one replaces an unhandled older one (no backlog).

    `sample`: its GPU history sample (`gpu_sample`), computed in the poll worker so the UI
    thread does not spend O(GPUs) on it; None (tests, the bench feeding snapshots): the
    history computes it. `slow`: set while polls are spaced out (None: at the asked interval).
    """

    def __init__(
        self,
        snapshot: ClusterSnapshot,
        sample: GpuSample | None = None,
        slow: SlowPoll | None = None,
    ) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.sample = sample
        self.slow = slow

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SnapshotReady)


class ConnectProgress(Message):
    """A step of connecting ("starting embedded Ray…"), posted from the connect worker."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ConnectProgress)


class ConnectionStateChanged(Message):
    """The link to the cluster changed state.

    `error` says why when disconnected; `next_retry_in` is how many seconds until the next try.
    """

    def __init__(
        self,
        state: ConnState,
        error: str | None = None,
        next_retry_in: float | None = None,
        description: str | None = None,
    ) -> None:
        super().__init__()
        self.state = state
        self.error = error
        self.next_retry_in = next_retry_in
        self.description = description


class ConnectionClosed(Message):
    """`connection.close()` returned (or failed with `error`); the app may exit."""

    def __init__(self, error: str | None = None) -> None:
        super().__init__()
        self.error = error


class OpenNode(Message):
    """Show the detail screen of this node (from Enter on a row or the command palette)."""

    def __init__(self, node_id: str) -> None:
        super().__init__()
        self.node_id = node_id


class OpenJob(Message):
    """Show the detail screen of this job (Enter on a row of the Jobs view, or after a submit)."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key


class OverlayPathsChanged(Message):
    """How this machine reaches the overlay's addresses changed (a route went up or down, a peer
    joined, the daemon went away: `paths` None). Posted by the peers controller from the daemon's
    status; the cluster screen's node list shows it."""

    def __init__(self, paths: OverlayPaths | None) -> None:
        super().__init__()
        self.paths = paths

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, OverlayPathsChanged)


# -- the peers sidebar: from the peers poller -----------------------------------------------


class PeersStatusReady(Message):
    """One reading: `status`, or None and `error` (`running` False: no daemon listens).

    `at` is `time.monotonic()` of the reading (for bytes/s), `now` the wall clock (for ages).
    A newer reading replaces an unhandled older one.
    """

    def __init__(
        self,
        status: DaemonStatus | None,
        error: str | None = None,
        *,
        running: bool = True,
        at: float = 0.0,
        now: float = 0.0,
    ) -> None:
        super().__init__()
        self.status = status
        self.error = error
        self.running = running
        self.at = at
        self.now = now

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, PeersStatusReady)


class PeerAddDone(Message):
    """`peers.add` answered. `peer` is None when the daemon refused (nothing was added);
    with `peer` set, `error` is the first dial's error (allow-listed, not reachable yet)."""

    def __init__(
        self, multiaddr: str, name: str | None, peer: PeerHealth | None, error: str | None
    ) -> None:
        super().__init__()
        self.multiaddr = multiaddr
        self.name = name
        self.peer = peer
        self.error = error


class PeerRemoveDone(Message):
    def __init__(self, label: str, peer_id: str | None, error: str | None) -> None:
        super().__init__()
        self.label = label
        self.peer_id = peer_id
        self.error = error


class PeerJoinDone(Message):
    """`join` answered. `status` is the node the daemon started (running, or not yet: then its
    `last_error` says why and the daemon keeps trying); None with `error` when the daemon
    refused (nothing was started). `label` names the peer (or the invite) for messages."""

    def __init__(self, label: str, status: JoinStatus | None, error: str | None) -> None:
        super().__init__()
        self.label = label
        self.status = status
        self.error = error


class DaemonStartDone(Message):
    """`raytui proxy start` returned: `text` to show, or `error`."""

    def __init__(self, text: str | None, error: str | None) -> None:
        super().__init__()
        self.text = text
        self.error = error
