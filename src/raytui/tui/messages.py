"""Typed messages from the pollers (thread workers) to the UI. `post_message` is thread-safe.

The bench and the tests feed `SnapshotReady` to the app exactly as the poller does.
"""

from __future__ import annotations

from enum import StrEnum

from textual.message import Message

from raytui.model.cluster import ClusterSnapshot
from raytui.model.node_path import OverlayPaths
from raytui.model.nvml import NvmlReport


class ConnState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    STOPPING = "stopping"


class SnapshotReady(Message):
    """A fresh cluster snapshot. A newer one replaces an unhandled older one (no backlog)."""

    def __init__(self, snapshot: ClusterSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot

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


class Connected(Message):
    """The connector returned; the poller now owns this connection (a `ClusterConnection`)."""

    def __init__(self, connection: object) -> None:
        super().__init__()
        self.connection = connection


class ConnectFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class PollFinished(Message):
    """One fetch ended (after its `SnapshotReady`, if any); the poller re-arms its timer."""

    def __init__(self, error: str | None) -> None:
        super().__init__()
        self.error = error


class ConnectionClosed(Message):
    """`connection.close()` returned (or failed with `error`); the app may exit."""

    def __init__(self, error: str | None = None) -> None:
        super().__init__()
        self.error = error


class NvmlReady(Message):
    """A reading of this machine's GPUs by raytui's own NVML sampler."""

    def __init__(self, report: NvmlReport) -> None:
        super().__init__()
        self.report = report

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, NvmlReady)


class ProbeReady(Message):
    """The NVML probe of `node_id` answered (`report`) or failed (`error`)."""

    def __init__(
        self, node_id: str, report: NvmlReport | None = None, error: str | None = None
    ) -> None:
        super().__init__()
        self.node_id = node_id
        self.report = report
        self.error = error


class OpenNode(Message):
    """Show the detail screen of this node (from Enter on a row or the command palette)."""

    def __init__(self, node_id: str) -> None:
        super().__init__()
        self.node_id = node_id


class OverlayPathsChanged(Message):
    """How this machine reaches the overlay's addresses changed (a route went up or down, a peer
    joined, the daemon went away: `paths` None). Posted by the peers panel from the daemon's
    status; the cluster screen's node list shows it."""

    def __init__(self, paths: OverlayPaths | None) -> None:
        super().__init__()
        self.paths = paths

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, OverlayPathsChanged)
