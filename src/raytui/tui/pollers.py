"""The poll loop: connect, fetch snapshots, back off when the cluster is gone, close on quit.

Every call on the connector and the connection runs in a thread worker; results come back as
messages (see messages.py) that the app hands to this object on the event loop. The timer for the
next fetch is armed only after a fetch finished (dolphie's loop), so fetches never overlap and a
slow cluster slows the loop instead of piling up threads.

Failures: the link goes DISCONNECTED, retries wait 1, 2, 4, 8, 16, then 30 s, and the user gets
one notification when it starts failing and one when it is back, never one per poll.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator
from typing import Any

from textual.app import App
from textual.timer import Timer

from raytui import debuglog
from raytui.errors import ClusterUnreachable, RaytuiError
from raytui.model.nvml import NvmlReport
from raytui.sources.connection import ClusterConnection, Connector
from raytui.tui.messages import (
    Connected,
    ConnectFailed,
    ConnectionClosed,
    ConnectionStateChanged,
    ConnectProgress,
    ConnState,
    PollFinished,
    SnapshotReady,
)

BACKOFF_MAX = 30.0


def backoff_delay(failures: int) -> float:
    """Seconds before retry number `failures` (1-based): 1, 2, 4, 8, 16, 30, 30, ..."""
    if failures < 1:
        return 0.0
    return min(BACKOFF_MAX, float(2 ** min(failures - 1, 10)))


def describe(exc: BaseException) -> str:
    if isinstance(exc, RaytuiError):
        return str(exc) or type(exc).__name__
    return f"unexpected error: {type(exc).__name__}: {exc}"


def connected_to(description: str) -> str:
    """For the back-online notice: `to ADDRESS (URL)`, but `via lab (overlay)` as it is (not
    `to via lab`)."""
    return description if description.startswith("via ") else f"to {description}"


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic GC while a snapshot is fetched, decoded and converted in the worker.

    Decoding a 1,024-node summary allocates about a million containers, which triggers full
    collections of 50-120 ms; no other thread runs meanwhile, so the UI would freeze. The garbage
    made there is acyclic and freed by refcounting; `gc.collect()` runs right after instead.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class ClusterPoller:
    """Owns the connection. All methods run on the event loop except the `_work_*` ones."""

    def __init__(self, app: App[Any], connector: Connector, refresh: float) -> None:
        self.app = app
        self.connector = connector
        self.refresh = refresh
        self.connection: ClusterConnection | None = None
        self.failures = 0
        self.busy = False  # a connect or fetch worker is running
        self.stopping = False
        self.closed = False
        self._timer: Timer | None = None
        self._lock = threading.Lock()  # fetch and close never run at once on the connection

    # -- connect ------------------------------------------------------------------------------

    def start(self) -> None:
        self._start_connect()

    def _start_connect(self) -> None:
        if self.busy or self.stopping:
            return
        self._cancel_timer()
        self.busy = True
        self.app.run_worker(
            self._work_connect,
            thread=True,
            name="connect",
            group="raytui-poll",
            exit_on_error=False,
        )

    def _work_connect(self) -> None:
        post = self.app.post_message
        try:

            def progress(text: str) -> None:
                post(ConnectProgress(text))

            conn = self.connector(progress)
            description, url = conn.description, conn.dashboard_url
        except Exception as exc:  # every failure becomes a visible state
            debuglog.report("pollers._work_connect", exc)
            post(ConnectFailed(describe(exc)))
            return
        post(Connected(_Handle(conn, description, url)))

    def connected(self, handle: object) -> None:
        assert isinstance(handle, _Handle)
        self.busy = False
        self.connection = handle.connection
        if self.stopping:
            self._close()
            return
        recovered = self.failures > 0
        self.failures = 0
        self.app.post_message(
            ConnectionStateChanged(ConnState.CONNECTED, description=handle.description)
        )
        if recovered:
            self.app.notify(f"Connected {connected_to(handle.description)}")
        self._start_fetch()

    def connect_failed(self, error: str) -> None:
        self.busy = False
        if self.stopping:
            self._close()
            return
        self._failed(error, self._start_connect, "Cannot reach the Ray cluster")

    # -- poll ---------------------------------------------------------------------------------

    def poll_now(self) -> None:
        """`r`: fetch now (or reconnect now), unless a call is already under way."""
        if self.busy or self.stopping:
            return
        if self.connection is None:
            self._start_connect()
        else:
            self._start_fetch()

    def _start_fetch(self) -> None:
        if self.busy or self.stopping or self.connection is None:
            return
        self._cancel_timer()
        self.busy = True
        conn = self.connection
        self.app.run_worker(
            lambda: self._work_fetch(conn),
            thread=True,
            name="fetch",
            group="raytui-poll",
            exit_on_error=False,
        )

    def _work_fetch(self, conn: ClusterConnection) -> None:
        error: str | None = None
        try:
            with self._lock, gc_paused():
                snapshot = conn.fetch_snapshot()
        except Exception as exc:
            debuglog.report("pollers._work_fetch", exc)
            error = describe(exc)
        else:
            # A big snapshot leaves ~100k new long-lived objects behind (the decoded summary
            # and the model): collecting them here, while the UI waits for this snapshot, keeps
            # Python's full collection from landing in the middle of applying and painting it.
            gc.collect()
            self.app.post_message(SnapshotReady(snapshot))
        self.app.post_message(PollFinished(error))

    def poll_finished(self, error: str | None) -> None:
        self.busy = False
        if self.stopping:
            self._close()
            return
        if error is None:
            if self.failures:
                self.failures = 0
                self.app.post_message(ConnectionStateChanged(ConnState.CONNECTED))
                self.app.notify("The Ray cluster answers again")
            self._arm(self.refresh, self._start_fetch)
        else:
            self._failed(error, self._start_fetch, "Lost the Ray cluster")

    def _failed(self, error: str, retry: Any, headline: str) -> None:
        self.failures += 1
        delay = backoff_delay(self.failures)
        if self.failures == 1:
            self.app.notify(f"{error}\nRetrying with backoff.", title=headline, severity="error")
        self.app.post_message(
            ConnectionStateChanged(ConnState.DISCONNECTED, error=error, next_retry_in=delay)
        )
        self._arm(delay, retry)

    # -- probe (for the node detail screen; runs in its worker) -------------------------------

    def probe_node(self, node_id: str) -> NvmlReport:
        conn = self.connection
        if conn is None:
            raise ClusterUnreachable("not connected to the cluster")
        return conn.probe_node(node_id)

    # -- close --------------------------------------------------------------------------------

    def stop(self) -> None:
        """Begin closing; `ConnectionClosed` is posted when the connection is closed."""
        if self.stopping:
            return
        self.stopping = True
        self._cancel_timer()
        if not self.busy:
            self._close()
        # else: connected()/connect_failed()/poll_finished() close when the call returns.

    def _close(self) -> None:
        conn, self.connection = self.connection, None
        if conn is None:
            self.closed = True
            self.app.post_message(ConnectionClosed())
            return
        self.app.run_worker(
            lambda: self._work_close(conn),
            thread=True,
            name="close",
            group="raytui-close",
            exit_on_error=False,
        )

    def _work_close(self, conn: ClusterConnection) -> None:
        error: str | None = None
        try:
            with self._lock:
                conn.close()
        except Exception as exc:
            debuglog.report("pollers._work_close", exc)
            error = describe(exc)
        self.closed = True
        self.app.post_message(ConnectionClosed(error))

    def close_blocking(self) -> None:
        """After the app has exited (e.g. killed by a signal): close what is still open."""
        conn, self.connection = self.connection, None
        if conn is not None and not self.closed:
            try:
                conn.close()
            finally:
                self.closed = True

    # -- timer --------------------------------------------------------------------------------

    def _arm(self, delay: float, callback: Any) -> None:
        self._cancel_timer()
        self._timer = self.app.set_timer(delay, callback, name="raytui-poll")

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None


class _Handle:
    """A connection plus what the connect worker read from it (so the UI never calls it)."""

    __slots__ = ("connection", "dashboard_url", "description")

    def __init__(self, connection: ClusterConnection, description: str, url: str) -> None:
        self.connection = connection
        self.description = description
        self.dashboard_url = url
