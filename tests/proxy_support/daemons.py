"""Real proxy daemons as separate processes, each with its own RAYTUI_HOME, plus TCP helpers."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from raytui.model.peers import DaemonStatus, LinkState
from raytui.sources.proxy_control import ProxyControl
from tests.support.waiting import wait_for


def wait_until_answers(
    proc: subprocess.Popen[bytes],
    control: ProxyControl,
    label: str,
    log_tail: Callable[[], str],
    timeout: float,
) -> None:
    """Until a just-started daemon answers on its control socket; its log if it exits first."""

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"daemon {label} exited:\n{log_tail()}")
        try:
            control.ping()
        except Exception:
            return False
        return True

    wait_for(up, timeout, f"daemon {label} to answer on its control socket")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Daemon:
    """`raytui proxy run` in a child process. Short /tmp paths keep the AF_UNIX path < 108."""

    def __init__(self, label: str, home: Path | None = None, port: int | None = None) -> None:
        self.label = label
        self.home = home or Path(tempfile.mkdtemp(prefix=f"rt{label}", dir="/tmp"))
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = {**os.environ, "RAYTUI_HOME": str(self.home)}

    @property
    def control(self) -> ProxyControl:
        return ProxyControl(self.home / "run" / "proxy.sock", timeout=30)

    @property
    def listen(self) -> str:
        return f"/ip4/127.0.0.1/tcp/{self.port}"

    def start(self) -> Daemon:
        log = open(self.home / "daemon.log", "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "raytui", "proxy", "run", "--listen", self.listen],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()
        wait_until_answers(self.proc, self.control, self.label, self.log_tail, 30)
        return self

    def status(self) -> DaemonStatus:
        return self.control.status()

    @property
    def addr(self) -> str:
        return next(a for a in self.status().addrs if a.startswith(self.listen))

    def peer_state(self, peer_id: str) -> LinkState | None:
        peer = self.status().peer(peer_id)
        return None if peer is None else peer.state

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "raytui", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join((self.home / "daemon.log").read_text().splitlines()[-n:])
        except OSError:
            return ""

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


@contextlib.contextmanager
def running(label: str) -> Iterator[Daemon]:
    """A started daemon, cleaned up after."""
    daemon = Daemon(label)
    try:
        yield daemon.start()
    finally:
        daemon.cleanup()


@contextlib.contextmanager
def running_allowed_by(peer: Daemon, label: str = "tui") -> Iterator[Daemon]:
    """A started daemon that `peer` already allow-lists (as the other machine's user would)."""
    with running(label) as daemon:
        peer.control.add_peer(daemon.addr, name=label)
        yield daemon


def pair_up(a: Daemon, b: Daemon) -> None:
    """Each allow-lists the other; waits until both see the link connected."""
    a_id, b_id = a.status().peer_id, b.status().peer_id
    b.control.add_peer(a.addr, name=a.label)
    _, error = a.control.add_peer(b.addr, name=b.label)
    assert error is None, error
    wait_for(lambda: a.peer_state(b_id) == LinkState.CONNECTED, 20, "a -> b connected")
    wait_for(lambda: b.peer_state(a_id) == LinkState.CONNECTED, 20, "b -> a connected")


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        with contextlib.suppress(OSError):
            while data := sock.recv(262144):
                sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)


class _SourceHandler(socketserver.BaseRequestHandler):
    """Sends pseudo-random bytes until the peer goes away."""

    def handle(self) -> None:
        sock: socket.socket = self.request
        block = os.urandom(65536)
        with contextlib.suppress(OSError):
            while True:
                sock.sendall(block)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


@contextlib.contextmanager
def tcp_server(kind: str) -> Iterator[tuple[str, int]]:
    handler = {"echo": _EchoHandler, "source": _SourceHandler}[kind]
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def echo_roundtrip(addr: tuple[str, int], payload: bytes, timeout: float = 60) -> bytes:
    """Send `payload` (writer thread), half-close, read until EOF; returns what came back."""
    with socket.create_connection(addr, timeout=timeout) as sock:
        errors: list[BaseException] = []

        def writer() -> None:
            try:
                view = memoryview(payload)
                for i in range(0, len(view), 262144):
                    sock.sendall(view[i : i + 262144])
                sock.shutdown(socket.SHUT_WR)
            except BaseException as exc:  # reported by the reader's assertion
                errors.append(exc)

        t = threading.Thread(target=writer)
        t.start()
        chunks = []
        while data := sock.recv(262144):
            chunks.append(data)
        t.join(timeout)
        assert not errors, errors
        return b"".join(chunks)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
