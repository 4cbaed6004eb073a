"""Running the daemon: in the foreground (`raytui proxy run`), detached (`start`, a new session
so it outlives the SSH login that started it), and stopping it (`stop`).

Files: the control socket and the pid file in the runtime dir, the log in the state dir; the pid
file and the log are 0600. The detached daemon writes its log itself (`proxy.log`, rotated at
LOG_MAX_BYTES, LOG_BACKUPS old files kept); its stderr goes to `proxy.stderr`. The pid file
records the pid and the process's start time, so `stop` never signals a process that merely
reuses the pid of a daemon that crashed.
"""

from __future__ import annotations

import contextlib
import io
import logging
import logging.handlers
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import multiaddr
import psutil
import trio

from raytui import locations
from raytui.control_socket import ControlSocket as ProxyControl
from raytui.control_socket import is_running
from raytui.errors import RaytuiError, UsageError
from raytui.model.overlay import parse_prefix
from raytui.proxy import identity, store
from raytui.proxy.control import ControlServer, remove_socket, socket_path
from raytui.proxy.core import DEFAULT_LISTEN, ProxyNode

log = logging.getLogger(__name__)

PID_NAME = "proxy.pid"
LOG_NAME = "proxy.log"
STDERR_NAME = "proxy.stderr"
LOG_MAX_BYTES = 5 * 1024 * 1024  # then proxy.log.1 ... .3: at most 20 MB of log in all
LOG_BACKUPS = 3
START_TIMEOUT = 30.0
STOP_TIMEOUT = 50.0  # a Ray node that join started drains for up to 30 s


def pid_path() -> Path:
    return locations.runtime_dir() / PID_NAME


def log_path() -> Path:
    return locations.state_dir() / LOG_NAME


def stderr_path() -> Path:
    return locations.state_dir() / STDERR_NAME


def _check_listen(listen: list[str], what: str = "--listen multiaddr") -> list[str]:
    """Each a `/ip4|ip6/ADDR/tcp/PORT` multiaddr; UsageError naming `what` otherwise."""
    for i, text in enumerate(listen):
        where = what if what.startswith("--") else f"{what}[{i}]"
        try:
            addr = multiaddr.Multiaddr(text)
            names = [p.name for p in addr.protocols()]
        except Exception as exc:
            raise UsageError(f"bad {where} {text!r}: {str(exc)[:200]}") from None
        if len(names) != 2 or names[0] not in ("ip4", "ip6") or names[1] != "tcp":
            raise UsageError(
                f"bad {where} {text!r}: expected /ip4/ADDR/tcp/PORT or /ip6/ADDR/tcp/PORT"
            )
    return listen


def _load_state(listen: list[str] | None) -> store.StoredState:
    """The stored settings, checked as far as the daemon's start depends on them."""
    state = store.load()
    if listen:
        _check_listen(list(listen))
    else:
        _check_listen(state.listen, f"{store.path()}: listen")
    return state


def _write_pid_file() -> None:
    me = psutil.Process()
    fd = locations.open_private(pid_path(), os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"{me.pid} {me.create_time()!r}\n")


def _daemon_from_pid_file() -> tuple[int | None, str | None]:
    """(pid, None) when the pid file names a live process that started when the daemon that
    wrote it did; else (None, why the file is stale), or (None, None) when there is no file."""
    try:
        text = pid_path().read_text(errors="replace")
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"unreadable: {exc.strerror or exc}"
    fields = text.split()
    try:
        pid, started = int(fields[0]), float(fields[1])
    except (IndexError, ValueError):
        return None, f"{text.strip()[:40]!r} does not record a pid and its start time"
    try:
        actual = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return None, f"no process {pid} is running"
    except (psutil.Error, OSError) as exc:
        return None, f"cannot tell what process {pid} is ({exc})"
    if abs(actual - started) > 0.01:
        return None, f"process {pid} is another program that reuses the daemon's old pid"
    return pid, None


@dataclass(frozen=True)
class Stopped:
    pid: int | None  # the daemon that was stopped; None when none was running
    stale: str | None = None  # why a pid file was removed without signalling anything


def _remember_overlay(state: store.StoredState, overlay: bool | None, prefix: str | None) -> None:
    if prefix is not None:
        state.overlay.prefix = str(parse_prefix(prefix))
    if overlay is not None:
        state.overlay.enabled = overlay


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log whose files are 0600 whatever the umask (rotation renames them)."""

    def _open(self) -> io.TextIOWrapper:
        fd = locations.open_private(Path(self.baseFilename), os.O_WRONLY | os.O_APPEND)
        return open(fd, "a", encoding=self.encoding or "utf-8", errors="backslashreplace")


def _log_handler(log_file: Path | None) -> logging.Handler:
    """The detached daemon writes its own log, rotated; in the foreground it logs to stderr."""
    handler: logging.Handler
    if log_file is None:
        handler = logging.StreamHandler(sys.stderr)
    else:
        handler = PrivateRotatingFileHandler(
            log_file, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
        )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


def _log_level() -> int:
    level = logging.getLevelName(os.environ.get("RAYTUI_PROXY_LOG", "INFO").strip().upper())
    return level if isinstance(level, int) else logging.INFO


def run(
    listen: list[str] | None,
    overlay: bool | None = None,
    prefix: str | None = None,
    log_file: Path | None = None,
) -> int:
    """The daemon in the foreground, until SIGINT/SIGTERM/SIGHUP or a `shutdown` request.
    `log_file`: write the log there, rotated (what `start` asks for), instead of stderr."""
    handler = _log_handler(log_file)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(_log_level())
    # libp2p logs expected churn (refused peers, lost links) as warnings with tracebacks.
    logging.getLogger("libp2p").setLevel(logging.ERROR)
    try:
        return _run(listen, overlay, prefix)
    finally:
        root.removeHandler(handler)
        handler.close()


def _run(listen: list[str] | None, overlay: bool | None, prefix: str | None) -> int:
    if is_running():
        raise RaytuiError(f"a proxy daemon is already running (control socket {socket_path()})")
    key_pair = identity.load_or_create()
    state = _load_state(listen)
    if listen:
        state.listen = list(listen)
    _remember_overlay(state, overlay, prefix)
    if listen or overlay is not None or prefix is not None:
        store.save(state)
    addrs = state.listen or list(DEFAULT_LISTEN)
    trio.run(_main, ProxyNode(key_pair, state, addrs))
    return 0


async def _main(node: ProxyNode) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        await nursery.start(ControlServer(node).serve, socket_path())
        _write_pid_file()
        status = node.status()
        log.info("proxy daemon up: peer ID %s", status.peer_id)
        for addr in status.addrs:
            log.info("listening: %s", addr)
        nursery.start_soon(_on_signals, node)
        await node.shutdown.wait()
        # Unlink the control socket before in-flight requests are cut: a client that loses its
        # connection from here on finds no socket and reports "not running", not "unreachable".
        remove_socket(socket_path())
        nursery.cancel_scope.cancel()
    with contextlib.suppress(FileNotFoundError):
        pid_path().unlink()
    log.info("proxy daemon stopped")


async def _on_signals(node: ProxyNode) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async for _ in signals:
            node.shutdown.set()
            return


def start(
    listen: list[str] | None, overlay: bool | None = None, prefix: str | None = None
) -> tuple[int, bool]:
    """Start detached; returns (pid, started_now). Waits until the control socket answers."""
    if is_running():
        return int(ProxyControl().ping()["pid"]), False
    _load_state(listen)  # a bad setting is one line here, not a daemon that dies at start
    if prefix is not None:
        parse_prefix(prefix)
    logfile = log_path()
    cmd = [sys.executable, "-m", "raytui", "proxy", "run", "--daemon-log", str(logfile)]
    for addr in listen or []:
        cmd += ["--listen", addr]
    if overlay is not None:
        cmd.append("--overlay" if overlay else "--no-overlay")
    if prefix is not None:
        cmd += ["--overlay-prefix", prefix]
    # The daemon writes (and rotates) its log itself. Its stderr, for what comes before the log
    # or outside it (an interpreter crash, a library writing to fd 2), is a file of its own,
    # started over at each start: never the log, which rotation would leave behind.
    errfile = stderr_path()
    err_fd = locations.open_private(errfile, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(err_fd, "ab") as err:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            last = _last_line(errfile) or _last_line(logfile) or "(nothing logged)"
            raise RaytuiError(
                f"the proxy daemon exited at start (code {proc.returncode}): {last} "
                f"(log: {logfile})"
            )
        if is_running():
            return proc.pid, True
        time.sleep(0.1)
    raise RaytuiError(f"the proxy daemon did not come up within {START_TIMEOUT:g} s; see {logfile}")


def stop() -> Stopped:
    """Stop the daemon. Only a process proven to be it is signalled: the one whose pid the
    control socket answers with, else the one the pid file names if its start time matches. A
    pid file that proves nothing is removed (`Stopped.stale` says why)."""
    try:
        pid: int | None = int(ProxyControl(timeout=5.0).ping()["pid"])
    except RaytuiError:
        pid = None
    if pid is not None:
        try:
            ProxyControl(timeout=5.0).shutdown()
        except RaytuiError:
            _signal(pid, signal.SIGTERM)
    else:
        pid, stale = _daemon_from_pid_file()
        if pid is None:
            if stale is not None:
                with contextlib.suppress(FileNotFoundError):
                    pid_path().unlink()
            return Stopped(None, stale)
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        if not _alive(pid) and not is_running():
            return Stopped(pid)
        time.sleep(0.05)
    _signal(pid, signal.SIGKILL)
    return Stopped(pid)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _alive(pid: int) -> bool:
    """Whether `pid` still runs. A zombie counts as gone: ours is reaped here, another
    process's (a daemon started by a parent that has not waited for it yet) has exited."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        try:
            return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
        except psutil.NoSuchProcess:
            return False
    return done == 0


def _last_line(path: Path) -> str:
    """The daemon's last words: the file's last non-empty line ("" when there is none)."""
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1].strip()[:300] if lines else ""
