"""The console's connection to one cluster: `RayConnection`, the concrete `ClusterConnection`.

Snapshots and checks go over the dashboard's HTTP API; Ray itself (this process as a driver) only
for the NVML probe and prompt runs, connected on first use (`ensure_driver`, bounded, shared by
callers at the same time) and held open while calls are in flight (`driver_calls`). `close()`
waits for those calls, then stops what the connection started (an embedded cluster, its own
ray.init). `Target` says where the cluster is; `attach.py` decides it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from raytui import debuglog
from raytui.errors import AuthenticationFailed, ClusterUnreachable, RaytuiError, describe
from raytui.model.cluster import ClusterSnapshot
from raytui.model.nvml import NvmlReport
from raytui.sources.address import CLIENT_PORT
from raytui.sources.auth_token import export_token, require_token_if_token_mode
from raytui.sources.dashboard_client import DashboardClient
from raytui.sources.embedded import EmbeddedRay
from raytui.sources.machine import is_this_machine
from raytui.sources.ray_driver import (
    JOIN_TIMEOUT,
    TCP_TIMEOUT,
    check_tcp,
    driver_timeout,
    gave_up_on_driver,
    prepare_ray_import,
    quiet_init_off_main_thread,
)

if TYPE_CHECKING:
    from raytui.sources.workbench import Workbench

CLOSE_WAIT_S = 10.0  # close() waits this long for Ray calls still in flight
CLOSED = "the cluster connection is closed (raytui is quitting or reconnecting)"


@dataclass(frozen=True, slots=True)
class Target:
    dashboard_url: str
    description: str
    ray_address: str | None  # what ray.init should use for the NVML probe; None: derive
    token: str | None
    token_source: str | None
    # Called (blocking, once) before the first driver connection; returns the address to use
    # and this machine's node IP in that cluster (or None). `--via` over the overlay: this
    # machine joins the peer's cluster as a node first.
    prepare_driver: Callable[[], tuple[str, str | None]] | None = None


class RayConnection:
    """`ClusterConnection` over the dashboard's HTTP API; Ray itself only for the NVML probe."""

    def __init__(
        self,
        target: Target,
        *,
        timeout: float = 5.0,
        embedded: EmbeddedRay | None = None,
    ) -> None:
        self._target = target
        self._embedded = embedded
        self._client = DashboardClient(target.dashboard_url, target.token, timeout)
        self._ray_lock = threading.Lock()  # guards the fields below
        self._idle = threading.Condition(self._ray_lock)  # notified when a Ray call ends
        self._ray_connected = embedded is not None
        self._ray_owned = False  # this connection called ray.init (close() shuts it down)
        self._closed = False
        self._attempt: Future[None] | None = None  # the driver connect under way, or the last
        self._driver_address: str | None = None  # what that attempt passes to ray.init
        self._calls = 0  # Ray calls in flight (`driver_calls`): close() waits for them
        self._workbench: Workbench | None = None  # made on first use, closed by close()

    @property
    def description(self) -> str:
        return self._target.description

    @property
    def dashboard_url(self) -> str:
        return self._target.dashboard_url

    def workbench(self) -> Workbench:
        from raytui.sources.workbench import Workbench

        with self._ray_lock:
            if self._closed:
                raise ClusterUnreachable(CLOSED)
            if self._workbench is None:
                self._workbench = Workbench.for_dashboard(
                    self._target.dashboard_url, self._target.token
                )
            return self._workbench

    @property
    def embedded(self) -> bool:
        return self._embedded is not None

    @property
    def token_source(self) -> str | None:
        """Where the token came from ("RAY_AUTH_TOKEN", "~/.ray/auth_token (...)"), if any."""
        return self._target.token_source

    def fetch_snapshot(self) -> ClusterSnapshot:
        try:
            return self._client.fetch_snapshot()
        except AuthenticationFailed as exc:
            raise AuthenticationFailed(self._auth_message(exc)) from None

    def check(self) -> str | None:
        """One cheap authenticated request; returns the Ray version. Raises like fetch_snapshot."""
        try:
            return self._client.ray_version()
        except AuthenticationFailed as exc:
            raise AuthenticationFailed(self._auth_message(exc)) from None

    def probe_node(self, node_id: str) -> NvmlReport:
        from raytui.sources import probe

        with self.driver_calls():
            return probe.probe_node(node_id, timeout=10.0)

    @contextlib.contextmanager
    def driver_calls(self) -> Iterator[None]:
        """Blocking: make this process a driver (`ensure_driver`) and hold the connection open
        for the Ray calls made inside: `close()` waits (bounded) until they are done, and after
        `close()` this raises ClusterUnreachable instead of calling into a Ray shut down."""
        with self._ray_lock:
            if self._closed:
                raise ClusterUnreachable(CLOSED)
            self._calls += 1
        try:
            self.ensure_driver()
            yield
        finally:
            with self._ray_lock:
                self._calls -= 1
                self._idle.notify_all()

    def close(self) -> None:
        with self._ray_lock:
            if self._closed:
                return
            self._closed = True
            if not self._idle.wait_for(lambda: self._calls == 0, CLOSE_WAIT_S):
                debuglog.report(
                    f"RayConnection.close: {self._calls} Ray call(s) still running after"
                    f" {CLOSE_WAIT_S:g} s; closing anyway"
                )
        self._client.close()
        if self._workbench is not None:
            self._workbench.close()
        if self._ray_connected:
            with contextlib.suppress(Exception):
                from raytui.sources import probe

                probe.close_probes()
        if self._embedded is not None:
            self._embedded.stop()
        elif self._ray_owned:  # a driver someone else started is theirs to stop
            import ray

            with contextlib.suppress(Exception):
                ray.shutdown()

    def __enter__(self) -> RayConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _auth_message(self, exc: AuthenticationFailed) -> str:
        if self._target.token_source:
            return f"{exc} (the token used came from {self._target.token_source})"
        return str(exc)

    def ensure_driver(self) -> None:
        """Blocking (run it in a thread): make this process a Ray driver of the cluster, once.

        Used by the NVML probe and prompt runs alike. The job-level runtime env ships raytui's
        code to every node, so a node needs only Ray. Raises ClusterUnreachable, at the latest
        after the driver timeout (`driver_timeout()`, plus JOIN_TIMEOUT when this machine joins
        the cluster over the overlay first): ray.init retries an address it cannot use for
        minutes. Callers at the same time share one attempt; one that ended in an error (or is
        still hanging) is what a later call retries or waits on again, never a second ray.init.
        """
        with self._ray_lock:
            if self._closed:
                raise ClusterUnreachable(CLOSED)
            if self._ray_connected:
                return
            attempt = self._attempt
            if attempt is None or attempt.done():
                attempt = self._attempt = Future()
                threading.Thread(
                    target=self._connect_driver,
                    args=(attempt,),
                    name="raytui-ray-driver",
                    daemon=True,
                ).start()
        timeout = driver_timeout() + TCP_TIMEOUT
        if self._target.prepare_driver is not None:
            timeout += JOIN_TIMEOUT
        try:
            attempt.result(timeout)
        except TimeoutError:
            where = self._driver_address or f"the cluster of {self._target.dashboard_url}"
            raise gave_up_on_driver(where, timeout) from None

    def _connect_driver(self, attempt: Future[None]) -> None:
        try:
            self._init_driver()
        except BaseException as exc:
            if not isinstance(exc, RaytuiError):
                debuglog.report("RayConnection.ensure_driver", exc)
                exc = ClusterUnreachable(
                    f"cannot connect to Ray as a driver: {describe(exc, 'line')}"
                )
            attempt.set_exception(exc)
        else:
            attempt.set_result(None)

    def _init_driver(self) -> None:
        """The one attempt `ensure_driver` waits on, on its own daemon thread."""
        prepare_ray_import()
        import ray

        from raytui.runtime_env import runtime_env

        node_ip: str | None = None
        if self._target.prepare_driver is not None:
            address, node_ip = self._target.prepare_driver()
        else:
            address = self._target.ray_address or self._ray_address_from_dashboard()
        self._driver_address = address
        export_token(self._target.token)
        require_token_if_token_mode(f"Ray at {address}")
        owned = False
        if not ray.is_initialized():
            check_tcp(address)
            quiet_init_off_main_thread()
            try:
                extra: dict[str, Any] = {"_node_ip_address": node_ip} if node_ip else {}
                ray.init(
                    address=address,
                    log_to_driver=False,
                    namespace="raytui",
                    logging_level=logging.WARNING,
                    runtime_env=runtime_env(),
                    **extra,
                )
            except Exception as exc:  # connection failures of every kind
                debuglog.report("RayConnection: ray.init", exc)
                raise ClusterUnreachable(
                    f"cannot connect to Ray at {address} as a driver: {describe(exc, 'line')}"
                ) from None
            owned = True
        with self._ray_lock:
            if not self._closed:
                self._ray_owned = self._ray_owned or owned
                self._ray_connected = True
                return
        # Closed while ray.init ran (it may run long after the caller gave up): undo it.
        if owned:
            with contextlib.suppress(Exception):
                ray.shutdown()
        raise ClusterUnreachable(CLOSED)

    def _ray_address_from_dashboard(self) -> str:
        """The GCS when the head is on this machine, else Ray Client on the dashboard's host."""
        host = urlsplit(self._target.dashboard_url).hostname or "127.0.0.1"
        gcs = _gcs_from_summary(self._client)
        if gcs and is_this_machine(gcs.split(":")[0]):
            return gcs
        if is_this_machine(host) and gcs:
            return gcs
        shown = f"[{host}]" if ":" in host else host
        return f"ray://{shown}:{CLIENT_PORT}"


def _gcs_from_summary(client: DashboardClient) -> str | None:
    """The head's GCS address, read from its `gcs_server` command line in the node summary."""
    try:
        doc = client.get_json("/nodes", {"view": "summary"})
    except RaytuiError:
        return None
    data = doc.get("data") if isinstance(doc, dict) else None
    entries = data.get("summary") if isinstance(data, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        gcs = entry.get("gcs") if isinstance(entry, dict) else None
        args = gcs.get("cmdline") if isinstance(gcs, dict) else None
        if not isinstance(args, list):
            continue
        flags = dict(
            str(a).split("=", 1) for a in args if str(a).startswith("--") and "=" in str(a)
        )
        port, ip = flags.get("--gcs_server_port"), flags.get("--node-ip-address")
        if port and ip:
            return f"{ip}:{port}"
    return None
