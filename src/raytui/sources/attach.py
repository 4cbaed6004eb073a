"""Find the cluster the user meant and connect to it: the concrete `ClusterConnection`.

Accepted addresses (`--address`, or the `RAY_ADDRESS` environment variable):

- `http://host:8265` (or https) — the dashboard itself.
- `host:6379` — the GCS. The dashboard URL is read from the GCS's internal KV (where the head
  registered it); a dashboard bound to 0.0.0.0 or loopback on another host is taken to be on the
  GCS's host.
- `ray://host:10001` — Ray Client. The dashboard is assumed at `http://host:8265`.
- `auto` — a cluster running on this machine (`<tmp>/ray/ray_current_cluster`, written by
  `ray start`, else a running `gcs_server` process).
- `local` — start an embedded single-node cluster (`ray.init(address="local")`) with as many GPUs
  as NVML reports; `close()` stops it and every process it started.

Without `--address`: `RAY_ADDRESS`, else a cluster running here, else embedded.
`--via PEER` reaches a head through the peer daemon (`raytui.sources.proxy_control`): over the
overlay when both daemons have it (prompts then join this machine to the cluster as a node with
no CPUs or GPUs, so results stream), else through forwards (watching; Ray Client).

The auth token is looked up like Ray does: `RAY_AUTH_TOKEN`, else the file named by
`RAY_AUTH_TOKEN_PATH`, else `~/.ray/auth_token`.

Ray itself is imported only when needed (GCS lookup, embedded start, NVML probe), never at import.
"""

from __future__ import annotations

import contextlib
import faulthandler
import ipaddress
import logging
import os
import queue
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from raytui import debuglog
from raytui.errors import (
    AuthenticationFailed,
    ClusterUnreachable,
    RaytuiError,
    UsageError,
    describe,
)
from raytui.model.cluster import ClusterSnapshot
from raytui.model.nvml import NvmlReport
from raytui.ray_local import find_local_cluster
from raytui.ray_local import port_open as _port_open
from raytui.ray_local import split_hostport as _split_hostport
from raytui.sources.connection import ProgressFn
from raytui.sources.dashboard_client import DashboardClient, token_hint
from raytui.sources.machine import is_loopback, is_this_machine

if TYPE_CHECKING:
    from raytui.sources.workbench import Workbench

__all__ = [
    "ACCEPTED_FORMS",
    "Address",
    "AddressKind",
    "RayConnection",
    "connect",
    "find_local_cluster",
    "find_token",
    "parse_address",
]

_T = TypeVar("_T")

DASHBOARD_PORT = 8265
CLIENT_PORT = 10001
GCS_PORT = 6379

ACCEPTED_FORMS = (
    "a dashboard URL (http://host:8265), a GCS address (host:6379), "
    "a Ray Client address (ray://host:10001), 'auto' (a cluster running here) "
    "or 'local' (start an embedded one)"
)

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")


class AddressKind(StrEnum):
    DASHBOARD = "dashboard"
    GCS = "gcs"
    CLIENT = "client"
    AUTO = "auto"
    LOCAL = "local"


@dataclass(frozen=True, slots=True)
class Address:
    """A validated address. `host`/`port` are set for GCS and client forms, `url` for dashboards."""

    kind: AddressKind
    text: str
    host: str | None = None
    port: int | None = None
    url: str | None = None

    @property
    def hostport(self) -> str:
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{host}:{self.port}"


def _valid_host(host: str) -> bool:
    if not host:
        return False
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    return bool(_HOSTNAME.match(host)) and not host.replace(".", "").isdigit()


def parse_address(text: str, source: str = "--address") -> Address:
    """Validate an address in one of the accepted forms. Raises UsageError (exit 2) otherwise."""
    raw = text.strip()

    def bad(why: str) -> UsageError:
        return UsageError(f"{source} {text!r}: {why}; expected {ACCEPTED_FORMS}")

    if raw in ("local", "auto"):
        return Address(AddressKind(raw), raw)
    if not raw:
        raise bad("empty")
    if not raw.isprintable():
        raise bad("it contains control characters")
    if "://" in raw:
        try:
            parts = urlsplit(raw)
        except ValueError as exc:  # "Invalid IPv6 URL", characters that NFKC turns into '/'
            raise bad(f"not a URL ({exc})") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https", "ray"):
            raise bad(f"unknown scheme {scheme!r}")
        if "@" in parts.netloc:
            raise bad(
                "a user name or password in the address is not supported (the Ray token comes "
                "from RAY_AUTH_TOKEN or ~/.ray/auth_token)"
            )
        try:
            host, port = _split_hostport(parts.netloc)
        except ValueError as exc:
            raise bad(str(exc)) from None
        if not _valid_host(host):
            raise bad(f"bad host {host!r}")
        if scheme in ("http", "https"):
            if parts.query or parts.fragment:
                raise bad("a dashboard URL has no query or fragment")
            url = f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}"
            return Address(AddressKind.DASHBOARD, raw, host, port, url)
        if parts.path.strip("/") or parts.query:  # ray://
            raise bad("a Ray Client address is ray://host:port")
        return Address(AddressKind.CLIENT, raw, host, port or CLIENT_PORT)
    try:
        host, port = _split_hostport(raw)
    except ValueError as exc:
        raise bad(str(exc)) from None
    if port is None:
        raise bad("not a known word and no port given")
    if not _valid_host(host):
        raise bad(f"bad host {host!r}")
    return Address(AddressKind.GCS, raw, host, port)


# -- token -----------------------------------------------------------------------------------


def find_token() -> tuple[str | None, str | None]:
    """(token, where it came from) as Ray looks it up; (None, None) when there is none."""
    value = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if value:
        return value, "RAY_AUTH_TOKEN"
    path_text = os.environ.get("RAY_AUTH_TOKEN_PATH", "").strip()
    candidates = [(Path(path_text).expanduser(), "RAY_AUTH_TOKEN_PATH")] if path_text else []
    candidates.append((Path.home() / ".ray" / "auth_token", "~/.ray/auth_token"))
    for path, where in candidates:
        try:
            token = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if token:
            return token, f"{where} ({path})"
    return None, None


def require_token_if_token_mode(address: str) -> None:
    """With RAY_AUTH_MODE=token and no token anywhere, Ray's own clients do not fail: they end
    the process (a failed RAY_CHECK, exit 1, a C++ stack on fd 2). Say it first, in one line."""
    if os.environ.get("RAY_AUTH_MODE", "").strip().lower() != "token":
        return
    if find_token()[0] is None:
        raise AuthenticationFailed(
            f"RAY_AUTH_MODE=token but no Ray auth token was found for {address}: {token_hint()}"
        )


def _export_token(token: str | None) -> None:
    """Make the token visible to Ray's own clients (GcsClient, ray.init) in this process."""
    if token:
        os.environ.setdefault("RAY_AUTH_TOKEN", token)
        os.environ.setdefault("RAY_AUTH_MODE", "token")


# -- a cluster running here ------------------------------------------------------------------


# -- GCS -> dashboard ------------------------------------------------------------------------


def dashboard_url_from_gcs(gcs: Address, timeout: float = 5.0) -> str:
    """Ask the GCS where the head's dashboard listens. Needs the token on auth clusters."""
    assert gcs.host is not None and gcs.port is not None
    if not _port_open(gcs.host, gcs.port, timeout=min(timeout, 3.0)):
        # Checked first: Ray's client waits ~40 s for an unreachable GCS.
        raise ClusterUnreachable(f"cannot reach the Ray GCS at {gcs.hostport}")
    require_token_if_token_mode(f"the Ray GCS at {gcs.hostport}")
    _prepare_ray_import()
    from ray._raylet import GcsClient  # type: ignore[attr-defined]
    from ray.exceptions import AuthenticationError

    def ask() -> Any:
        client = GcsClient(address=gcs.hostport)
        return client.internal_kv_get(b"dashboard", namespace=b"dashboard", timeout=timeout)

    limit = timeout + 5.0  # Ray's client retries a port that is not a GCS for ~40 s
    try:
        value = call_within(ask, limit)
    except TimeoutError:
        raise ClusterUnreachable(
            f"the Ray GCS at {gcs.hostport} did not answer within {limit:g} s (asked for the "
            "dashboard's address); is that port a Ray GCS?"
        ) from None
    except AuthenticationError:
        raise AuthenticationFailed(
            f"the Ray GCS at {gcs.hostport} rejected the request: auth token missing or wrong; "
            f"{token_hint()}"
        ) from None
    except Exception as exc:  # any GCS failure means the same to the user
        raise ClusterUnreachable(
            f"cannot read the dashboard address from the Ray GCS at {gcs.hostport}: "
            f"{describe(exc, 'line')}"
        ) from None
    if not value:
        raise ClusterUnreachable(
            f"the Ray cluster at {gcs.hostport} has no dashboard (started without "
            "--include-dashboard?)"
        )
    text = value.decode() if isinstance(value, bytes) else str(value)
    text = text.removeprefix("http://").rstrip("/")
    host, port = _split_hostport(text)
    if host in ("0.0.0.0", "::") or (is_loopback(host) and not is_this_machine(gcs.host)):
        host = gcs.host
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port or DASHBOARD_PORT}"


def call_within(fn: Callable[[], _T], timeout: float) -> _T:
    """fn() on a daemon thread; its result or exception, or TimeoutError after `timeout` s
    (the thread is left to finish on its own: Ray's blocking calls cannot be interrupted)."""
    box: list[tuple[bool, Any]] = []

    def work() -> None:
        try:
            box.append((True, fn()))
        except BaseException as exc:
            box.append((False, exc))

    thread = threading.Thread(target=work, name="raytui-bounded-call", daemon=True)
    thread.start()
    thread.join(timeout)
    if not box:
        raise TimeoutError
    ok, value = box[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


DRIVER_TIMEOUT = 30.0  # seconds for ray.init to attach to a running cluster
TCP_TIMEOUT = 3.0  # seconds for the GCS port to accept a TCP connection
JOIN_TIMEOUT = 120.0  # seconds for `--via` over the overlay to make this machine a node
CLOSE_WAIT_S = 10.0  # close() waits this long for Ray calls still in flight
CLOSED = "the cluster connection is closed (raytui is quitting or reconnecting)"


def driver_timeout() -> float:
    """DRIVER_TIMEOUT, or RAYTUI_DRIVER_TIMEOUT seconds (slow links; tests)."""
    try:
        value = float(os.environ.get("RAYTUI_DRIVER_TIMEOUT", ""))
    except ValueError:
        return DRIVER_TIMEOUT
    return value if 0 < value < 3600 else DRIVER_TIMEOUT


def check_tcp(addr: str) -> None:
    """ClusterUnreachable unless `addr` (a GCS or Ray Client address) accepts a TCP connection
    within TCP_TIMEOUT: a closed port fails at once instead of in ray.init's retries."""
    parsed = parse_address(addr, "the address")
    if parsed.host is None or parsed.port is None:
        return
    try:
        with socket.create_connection((parsed.host, parsed.port), timeout=TCP_TIMEOUT):
            pass
    except OSError as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        what = "Ray Client server" if parsed.kind is AddressKind.CLIENT else "Ray GCS"
        raise ClusterUnreachable(
            f"cannot reach the {what} at {parsed.hostport}: {why} "
            f"(waited up to {TCP_TIMEOUT:g} s for a TCP connection)"
        ) from None


def gave_up_on_driver(addr: str, timeout: float) -> ClusterUnreachable:
    """The error for a ray.init that did not attach within `timeout` seconds."""
    return ClusterUnreachable(
        f"gave up after {timeout:g} s waiting for Ray at {addr} to accept this process as a "
        "driver (ray.init): the port answers on TCP but Ray could not attach (is it a Ray "
        "GCS? a head started with --node-ip-address must be reached at that address)"
    )


class _NotFromMainThread(logging.Filter):
    """Ray warns that it sets no SIGTERM handler off the main thread: expected here, noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


def quiet_init_off_main_thread() -> None:
    worker_log = logging.getLogger("ray._private.worker")
    if not any(isinstance(f, _NotFromMainThread) for f in worker_log.filters):
        worker_log.addFilter(_NotFromMainThread())


def init_driver_within(init: Callable[[], object], addr: str, timeout: float) -> None:
    """ray.init on a daemon thread, waited for at most `timeout` seconds; ClusterUnreachable
    saying what was waited for when it does not attach."""
    quiet_init_off_main_thread()
    try:
        call_within(init, timeout)
    except TimeoutError:
        raise gave_up_on_driver(addr, timeout) from None
    except ConnectionError as exc:
        raise ClusterUnreachable(f"cannot attach to Ray at {addr}: {exc}") from exc


def _prepare_ray_import() -> None:
    """Ray calls faulthandler.enable() on init; under Textual sys.stderr has no fileno."""
    with contextlib.suppress(Exception):
        if sys.__stderr__ is not None:
            faulthandler.enable(file=sys.__stderr__)


# -- embedded cluster ------------------------------------------------------------------------


def _local_gpu_count() -> int:
    try:
        from raytui.sources import nvml

        return len(nvml.sample().devices)
    except Exception:  # no NVML means no GPUs, not a failure
        return 0


class _OwnerThread:
    """A long-lived thread that runs the calls it is given, in order.

    Ray starts the embedded cluster's processes with PR_SET_PDEATHSIG, which fires when the
    *thread* that spawned them exits: `ray.init` from a short-lived worker thread gets the GCS
    and raylet killed as soon as that thread ends (then `ray.shutdown` hangs and the driver
    aborts 60 s later). So init and shutdown both run here, on a thread that outlives them.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="raytui-ray-owner", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (job := self._queue.get()) is not None:
            job()

    def call(self, fn: Callable[[], _T], timeout: float | None = None) -> _T:
        """Run fn on the owner thread; its result or exception. TimeoutError after `timeout`."""
        done = threading.Event()
        box: list[Any] = []

        def job() -> None:
            try:
                box.append((True, fn()))
            except BaseException as exc:
                box.append((False, exc))
            finally:
                done.set()

        self._queue.put(job)
        if not done.wait(timeout):
            raise TimeoutError
        ok, value = box[0]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def stop(self) -> None:
        self._queue.put(None)


class _Embedded:
    """A `ray.init(address="local")` cluster owned by this process, and how to stop all of it."""

    def __init__(self, progress: ProgressFn) -> None:
        import psutil

        gpus = _local_gpu_count()
        progress(
            f"starting embedded Ray with {gpus} GPU{'s' if gpus != 1 else ''} "
            "(this takes a few seconds)…"
        )
        _prepare_ray_import()
        import ray

        if ray.is_initialized():
            raise RaytuiError("this process is already connected to a Ray cluster")
        self._me = psutil.Process()
        self._session_dir: str | None = None
        self._owner = _OwnerThread()

        def start() -> Any:
            return ray.init(
                address="local",
                num_gpus=gpus,
                include_dashboard=True,
                dashboard_host="127.0.0.1",
                log_to_driver=False,
                configure_logging=True,
                logging_level=logging.WARNING,
                namespace="raytui",
            )

        try:
            context = self._owner.call(start)
        except Exception as exc:
            self.stop()
            raise ClusterUnreachable(
                f"could not start embedded Ray: {describe(exc, 'line')}"
            ) from None
        info: dict[str, Any] = dict(getattr(context, "address_info", {}) or {})
        self._session_dir = info.get("session_dir")
        self.gcs_address: str | None = info.get("gcs_address")
        url = str(getattr(context, "dashboard_url", "") or "")
        if not url:
            self.stop()
            raise ClusterUnreachable("embedded Ray started without a dashboard")
        self.dashboard_url = url if "://" in url else f"http://{url}"
        self.gpus = gpus

    def _session_processes(self) -> list[Any]:
        """Our descendants that belong to this Ray session, plus everything under them."""
        import psutil

        marks = [self._session_dir] if self._session_dir else []
        roots = []
        try:
            children = self._me.children(recursive=True)
        except psutil.Error:
            children = []
        for proc in children:
            try:
                args = proc.cmdline()
            except psutil.Error:
                continue
            if any(m in a for a in args for m in marks) or proc.name() in ("raylet", "gcs_server"):
                roots.append(proc)
        found = {p.pid: p for p in roots}
        for root in roots:
            try:
                for p in root.children(recursive=True):
                    found.setdefault(p.pid, p)
            except psutil.Error:
                continue
        # Also anything of this session already reparented away from us.
        if marks:
            for proc in psutil.process_iter(["cmdline"]):
                try:
                    if any(m in a for a in proc.info["cmdline"] or () for m in marks):
                        found.setdefault(proc.pid, proc)
                except (psutil.Error, TypeError):
                    continue
        found.pop(self._me.pid, None)
        return list(found.values())

    def stop(self, timeout: float = 15.0) -> None:
        """ray.shutdown(), then make sure no process of the session survives."""
        import psutil
        import ray

        procs = self._session_processes()
        with contextlib.suppress(Exception):
            self._owner.call(ray.shutdown, timeout=timeout)
        self._owner.stop()
        procs += [p for p in self._session_processes() if p.pid not in {q.pid for q in procs}]
        _gone, alive = psutil.wait_procs(procs, timeout=3)
        for sig in ("terminate", "kill"):
            for proc in alive:
                with contextlib.suppress(psutil.Error):
                    getattr(proc, sig)()
            _gone, alive = psutil.wait_procs(alive, timeout=3)
            if not alive:
                break


# -- the connection ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Target:
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
        target: _Target,
        *,
        timeout: float = 5.0,
        embedded: _Embedded | None = None,
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

    @property
    def description(self) -> str:
        return self._target.description

    @property
    def dashboard_url(self) -> str:
        return self._target.dashboard_url

    def workbench(self) -> Workbench:
        from raytui.sources.workbench import Workbench

        return Workbench.for_dashboard(self._target.dashboard_url, self._target.token)

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
        _prepare_ray_import()
        import ray

        from raytui.runtime_env import runtime_env

        node_ip: str | None = None
        if self._target.prepare_driver is not None:
            address, node_ip = self._target.prepare_driver()
        else:
            address = self._target.ray_address or self._ray_address_from_dashboard()
        self._driver_address = address
        _export_token(self._target.token)
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


def _via_target(peer: str, progress: ProgressFn) -> _Target:
    """Endpoints the local peer daemon forwards to `peer`'s Ray head (127.0.0.3:PORT).

    The head's token comes from the peer when it shares it, else from the usual places.
    Raises `DaemonNotRunning` (a RaytuiError) when no proxy daemon runs here.
    """
    from raytui.sources import proxy_control

    progress(f"asking the peer daemon for a route to {peer}'s Ray head…")
    endpoints = proxy_control.connect_console(peer)
    found, where = find_token()
    overlay = endpoints.overlay

    def join_as_node() -> tuple[str, str | None]:
        """Over the overlay, prompts need this machine to be a node of the peer's cluster."""
        joined = proxy_control.connect_console(peer, member=True)
        return joined.driver_address or joined.client_address, joined.node_ip

    return _Target(
        dashboard_url=endpoints.dashboard_url.rstrip("/"),
        description=f"via {peer}" + (" (overlay)" if overlay else ""),
        ray_address=endpoints.client_address or None,
        token=endpoints.token or found,
        token_source=f"peer {peer}" if endpoints.token else where,
        prepare_driver=join_as_node if overlay else None,
    )


def _target_for(address: Address, source: str, progress: ProgressFn) -> _Target:
    token, where = find_token()
    if address.kind is AddressKind.AUTO:
        gcs_text = find_local_cluster()
        if gcs_text is None:
            raise ClusterUnreachable(
                f"no Ray cluster is running on this machine ({source} auto); start one with "
                "`ray start --head`, or use --address local for an embedded one"
            )
        address = parse_address(gcs_text, "the running cluster's address")
    if address.kind is AddressKind.DASHBOARD:
        assert address.url is not None
        return _Target(address.url, address.url, None, token, where)
    if address.kind is AddressKind.CLIENT:
        host = address.host or "127.0.0.1"
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{DASHBOARD_PORT}"
        return _Target(url, f"{address.text} ({url})", address.text, token, where)
    assert address.kind is AddressKind.GCS
    progress(f"looking up the dashboard of the Ray cluster at {address.hostport}…")
    _export_token(token)
    url = dashboard_url_from_gcs(address)
    return _Target(url, f"{address.hostport} ({url})", address.hostport, token, where)


def connect(
    address: str | None = None,
    via: str | None = None,
    progress: ProgressFn | None = None,
    *,
    timeout: float = 5.0,
) -> RayConnection:
    """Resolve the address, start or attach, check the dashboard answers; return a connection.

    Blocking (seconds when it starts an embedded cluster): run it in a worker thread. Raises
    UsageError for a malformed address, ClusterUnreachable / AuthenticationFailed otherwise.
    `functools.partial(connect, address, via)` is a `Connector` once given `progress`.
    """
    say: ProgressFn = progress or (lambda _msg: None)
    if address and via:
        raise UsageError("--address and --via are exclusive")
    embedded: _Embedded | None = None
    if via:
        target = _via_target(via, say)
    else:
        source = "--address"
        text = address
        if not text and os.environ.get("RAY_ADDRESS", "").strip():
            text, source = os.environ["RAY_ADDRESS"].strip(), "RAY_ADDRESS"
        parsed = parse_address(text, source) if text else None
        if parsed is None:
            running = find_local_cluster()
            parsed = parse_address(running, "the running cluster's address") if running else None
            if parsed is None:
                parsed = Address(AddressKind.LOCAL, "local")
        if parsed.kind is AddressKind.LOCAL:
            embedded = _Embedded(say)
            token, where = find_token()
            target = _Target(
                embedded.dashboard_url, "embedded (local)", embedded.gcs_address, token, where
            )
        else:
            target = _target_for(parsed, source, say)
    connection = RayConnection(target, timeout=timeout, embedded=embedded)
    try:
        if embedded is not None:
            say("waiting for the embedded dashboard to report the node…")
            _wait_for_summary(connection, deadline=time.monotonic() + 30)
        say(f"connecting to {target.dashboard_url}…")
        connection.check()
    except BaseException:
        connection.close()
        raise
    return connection


def _wait_for_summary(connection: RayConnection, deadline: float) -> None:
    """Until every alive node has its agent's report (hostname, memory) in the node summary."""
    while True:
        try:
            snap = connection.fetch_snapshot()
            if snap.nodes and all(n.memory_total_bytes for n in snap.alive_nodes):
                return
        except ClusterUnreachable:
            pass
        if time.monotonic() > deadline:
            return
        time.sleep(0.25)
