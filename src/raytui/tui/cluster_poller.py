"""The cluster poller: connect, fetch snapshots, back off when the cluster is gone, close on quit.

A `Poller` (poller.py): every call on the connector and the connection runs in its thread
worker; the next fetch is armed only after the last one finished. It posts `ConnectProgress`,
`SnapshotReady`, `ConnectionStateChanged` and, once closed, `ConnectionClosed` (messages.py);
they bubble to the app.

Pace: a fetch may cost a quarter of the refresh interval; a costlier one (a big cluster, a slow
link) spaces the polls out to whole seconds (`PollPace`) and the header says so (`SlowPoll`).

Failures: the link goes DISCONNECTED, retries wait 1, 2, 4, 8, 16, then 30 s, and the user gets
one notification when it starts failing and one when it is back, never one per poll.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from raytui.errors import ClusterUnreachable, describe
from raytui.model.cluster import ClusterSnapshot
from raytui.model.gpu_history import GpuSample, gpu_sample
from raytui.model.nvml import NvmlReport
from raytui.sources.connection import ClusterConnection, Connector
from raytui.tui.messages import (
    ConnectionClosed,
    ConnectionStateChanged,
    ConnectProgress,
    ConnState,
    SlowPoll,
    SnapshotReady,
)
from raytui.tui.poller import Poller, PollPace, backoff_delay

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
    made there is acyclic and freed by refcounting; what the snapshot keeps is untracked.
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

    def __init__(self, connector: Connector, refresh: float) -> None:
        super().__init__(name="raytui-poll", id="cluster-poller")
        self.connector = connector
        self.pace = PollPace(refresh)
        self.connection: ClusterConnection | None = None
        self.closed = False
        self._lock = threading.Lock()  # fetch and close never run at once on the connection
        self._sample: GpuSample | None = None  # the last one: its layout is reused
        self._retired: list[ClusterSnapshot] = []  # replaced on screen: freed in the worker

    @property
    def stopping(self) -> bool:
        return self.stopped

    # -- the calls (in the thread worker) -----------------------------------------------------

    def poll_call(self) -> Callable[[], Any]:
        conn = self.connection
        return self._connect if conn is None else partial(self._fetch, conn)

    def retire(self, snapshot: ClusterSnapshot | None) -> None:
        """On the event loop: `snapshot` was replaced on screen; the worker frees it before its
        next call (freeing 4,096 x 8 nodes, GPUs and processes in one go holds the GIL ~15 ms;
        in the worker it goes a node at a time, so the UI thread can take the GIL in between)."""
        if snapshot is not None:
            self._retired.append(snapshot)

    def _connect(self) -> _Handle:
        release(self._retired)

        def progress(text: str) -> None:
            self.post_message(ConnectProgress(text))

        conn = self.connector(progress)
        return _Handle(conn, conn.description, conn.dashboard_url)

    def _fetch(self, conn: ClusterConnection) -> _Delivery:
        release(self._retired)
        started = time.monotonic()
        with self._lock, gc_paused():
            snapshot = conn.fetch_snapshot()
        # The snapshot's nodes and GPUs are never tracked by the cycle collector (gc=False
        # Structs, model/cluster.py); its tuples are, until a collection sees that they hold
        # only untracked objects. Do that here, in a young collection (~40k tuples at 4,096 x
        # 8, a few ms), so no later collection walks them and none has to be frozen away.
        gc.collect(0)
        sample = gpu_sample(snapshot, self._sample)  # O(GPUs): here, not on the UI thread
        self._sample = sample
        return _Delivery(snapshot, sample, time.monotonic() - started)

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
        delay = self.pace.record(result.took)
        pace = self.pace
        slow = SlowPoll(pace.period, pace.cost or result.took) if pace.slowed else None
        self.post_message(SnapshotReady(*result.take(), slow=slow))
        if self.stopped:
            self._close()
            return None
        self._answers("The Ray cluster answers again")
        return delay

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


def release(retired: list[ClusterSnapshot]) -> None:
    """Free `retired` snapshots a node at a time (each pop frees one node with its GPUs and
    processes, unless the screen still shows it), between which other threads may run."""
    while retired:
        nodes = list(retired.pop().nodes)
        while nodes:
            nodes.pop()


class _Delivery:
    """The worker's result: emptied on delivery, so a finished thread worker that outlives its
    run (in a reference cycle with its task until a collection) does not keep the snapshot
    alive after the next one replaced it."""

    __slots__ = ("sample", "snapshot", "took")

    def __init__(self, snapshot: ClusterSnapshot, sample: GpuSample, took: float) -> None:
        self.snapshot: ClusterSnapshot | None = snapshot
        self.sample: GpuSample | None = sample
        self.took = took  # seconds the fetch cost, in the worker

    def take(self) -> tuple[ClusterSnapshot, GpuSample | None]:
        snapshot, self.snapshot = self.snapshot, None
        sample, self.sample = self.sample, None
        assert snapshot is not None
        return snapshot, sample


class _Handle:
    """A connection plus what the connect worker read from it (so the UI never calls it)."""

    __slots__ = ("connection", "dashboard_url", "description")

    def __init__(self, connection: ClusterConnection, description: str, url: str) -> None:
        self.connection = connection
        self.description = description
        self.dashboard_url = url
