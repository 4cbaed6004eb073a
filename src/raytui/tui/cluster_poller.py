"""The cluster poller: connect, fetch snapshots, back off when the cluster is gone, close on quit.

A `Poller` (poller.py): every call on the connector and the connection runs in its thread
worker; the next fetch is armed only after the last one finished. It posts `ConnectProgress`,
`SnapshotReady`, `ConnectionStateChanged` and, once closed, `ConnectionClosed` (messages.py);
they bubble to the app.

Failures: the link goes DISCONNECTED, retries wait 1, 2, 4, 8, 16, then 30 s, and the user gets
one notification when it starts failing and one when it is back, never one per poll.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from raytui.errors import ClusterUnreachable, describe
from raytui.model.cluster import ClusterSnapshot
from raytui.model.nvml import NvmlReport
from raytui.sources.connection import ClusterConnection, Connector
from raytui.tui.messages import (
    ConnectionClosed,
    ConnectionStateChanged,
    ConnectProgress,
    ConnState,
    SnapshotReady,
)
from raytui.tui.poller import Poller, backoff_delay

__all__ = ["ClusterPoller", "backoff_delay", "connected_to", "gc_paused"]

if TYPE_CHECKING:
    from raytui.sources.workbench import Workbench


def connected_to(description: str) -> str:
    """For the back-online notice: `to ADDRESS (URL)`, but `via lab (overlay)` as it is (not
    `to via lab`)."""
    return description if description.startswith("via ") else f"to {description}"


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic GC while a snapshot is fetched, decoded and converted in the worker.

    Decoding a 1,024-node summary allocates about a million containers, which triggers full
    collections of 50-120 ms; no other thread runs meanwhile, so the UI would freeze. The garbage
    made there is acyclic and freed by refcounting; the snapshot is frozen right after.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class ClusterPoller(Poller):
    """Owns the connection: connects while it has none, else fetches a snapshot."""

    full_collection_every = 300
    """Fetches between full garbage collections (see `_fetch`): ~5 minutes at 1 s."""

    def __init__(self, connector: Connector, refresh: float) -> None:
        super().__init__(name="raytui-poll", id="cluster-poller")
        self.connector = connector
        self.interval = refresh
        self.connection: ClusterConnection | None = None
        self.closed = False
        self._lock = threading.Lock()  # fetch and close never run at once on the connection
        self._fetches = 0

    @property
    def stopping(self) -> bool:
        return self.stopped

    # -- the calls (in the thread worker) -----------------------------------------------------

    def poll_call(self) -> Callable[[], Any]:
        conn = self.connection
        return self._connect if conn is None else partial(self._fetch, conn)

    def _connect(self) -> _Handle:
        def progress(text: str) -> None:
            self.post_message(ConnectProgress(text))

        conn = self.connector(progress)
        return _Handle(conn, conn.description, conn.dashboard_url)

    def _fetch(self, conn: ClusterConnection) -> _Delivery:
        # Cyclic garbage made since the last snapshot. Earlier snapshots are frozen (below), so
        # this walks only what was made since, not ~100k snapshot objects (4,096 nodes).
        gc.collect()
        with self._lock, gc_paused():
            snapshot = conn.fetch_snapshot()
        # A snapshot is ~26 objects per node that live until the next one replaces it. Every
        # collection would walk them, holding the GIL ~30 ms per 1,000 nodes (on the UI thread
        # when an allocation there triggers it, or here, which stalls the UI as much). Frozen,
        # no collection sees them; refcounting still frees them when they are replaced.
        gc.freeze()
        # What was alive at the freeze and later dies in a reference cycle (Textual's render
        # caches of replaced rows, this thread worker: ~400 objects a poll) is only freed by a
        # collection of everything, which costs what the freezing saves: once in a while.
        self._fetches += 1
        if self._fetches % self.full_collection_every == 0:
            gc.unfreeze()
            gc.collect()
            gc.freeze()
        return _Delivery(snapshot)

    # -- what came back (on the event loop) ---------------------------------------------------

    def polled(self, result: Any) -> float | None:
        if isinstance(result, _Handle):
            self.connection = result.connection
            if self.stopped:
                self._close()
                return None
            # The header says "connecting" until the first snapshot arrives (the app then
            # switches to CONNECTED); the notice comes now.
            recovered = self.failures > 0
            self.failures = 0
            self.post_message(
                ConnectionStateChanged(ConnState.CONNECTING, description=result.description)
            )
            if recovered:
                self.notify(f"Connected {connected_to(result.description)}")
            return 0.0  # fetch at once
        assert isinstance(result, _Delivery)
        self.post_message(SnapshotReady(result.take()))
        if self.stopped:
            self._close()
            return None
        self._answers("The Ray cluster answers again")
        return self.interval

    def _answers(self, notice: str) -> None:
        """A snapshot came: CONNECTED again after failures (the first one: the app switches)."""
        if self.failures > 0:
            self.failures = 0
            self.post_message(ConnectionStateChanged(ConnState.CONNECTED))
            self.notify(notice)

    def poll_failed(self, error: BaseException) -> float | None:
        if self.stopped:
            self._close()
            return None
        text = describe(error)
        delay = backoff_delay(self.failures)
        if self.failures == 1:
            lost = self.connection is not None
            headline = "Lost the Ray cluster" if lost else "Cannot reach the Ray cluster"
            self.notify(f"{text}\nRetrying with backoff.", title=headline, severity="error")
        self.post_message(
            ConnectionStateChanged(ConnState.DISCONNECTED, error=text, next_retry_in=delay)
        )
        return delay

    # -- probe (for the node detail screen; runs in its worker) -------------------------------

    def probe_node(self, node_id: str) -> NvmlReport:
        conn = self.connection
        if conn is None:
            raise ClusterUnreachable("not connected to the cluster")
        return conn.probe_node(node_id)

    def workbench(self) -> Workbench:
        """The jobs/tasks/actors/logs clients of the cluster (blocking calls: use in workers)."""
        conn = self.connection
        if conn is None:
            raise ClusterUnreachable("not connected to the cluster")
        return conn.workbench()

    # -- close --------------------------------------------------------------------------------

    def stop(self) -> None:
        """Begin closing; `ConnectionClosed` is posted when the connection is closed."""
        if self.stopped:
            return
        super().stop()
        if not self.busy:
            self._close()
        # else: polled()/poll_failed() close when the call returns.

    def _close(self) -> None:
        conn, self.connection = self.connection, None
        if conn is None:
            self.closed = True
            self.post_message(ConnectionClosed())
            return
        self.in_thread(partial(self._close_connection, conn), self._close_done, name="close")

    def _close_connection(self, conn: ClusterConnection) -> None:
        with self._lock:
            conn.close()

    def _close_done(self, _result: object, error: BaseException | None) -> None:
        self.closed = True
        self.post_message(ConnectionClosed(None if error is None else describe(error)))

    def close_blocking(self) -> None:
        """After the app has exited (e.g. killed by a signal): close what is still open."""
        conn, self.connection = self.connection, None
        if conn is not None and not self.closed:
            try:
                conn.close()
            finally:
                self.closed = True


class _Delivery:
    """The worker's result: emptied on delivery, so the finished thread worker (frozen with
    everything else by `gc.freeze`, and in a reference cycle with its task) does not keep the
    snapshot alive after the next one replaced it."""

    __slots__ = ("snapshot",)

    def __init__(self, snapshot: ClusterSnapshot) -> None:
        self.snapshot: ClusterSnapshot | None = snapshot

    def take(self) -> ClusterSnapshot:
        snapshot, self.snapshot = self.snapshot, None
        assert snapshot is not None
        return snapshot


class _Handle:
    """A connection plus what the connect worker read from it (so the UI never calls it)."""

    __slots__ = ("connection", "dashboard_url", "description")

    def __init__(self, connection: ClusterConnection, description: str, url: str) -> None:
        self.connection = connection
        self.description = description
        self.dashboard_url = url
