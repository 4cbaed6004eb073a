"""Issue 8, finding 8: the daemon's log cannot be flooded. Refused handshakes are logged a few
at a time and then counted; the detached daemon writes and rotates its own log (0600); a peer
removed from the allow-list is never dialled again."""

from __future__ import annotations

import logging
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import multiaddr
import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.peerinfo import info_from_p2p_addr

from raytui.proxy.daemon import PrivateRotatingFileHandler
from raytui.proxy.host import build_host
from raytui.proxy.peers import RefusalLog
from tests.proxy_support.daemons import Daemon, free_port
from tests.support.waiting import wait_for

GOOD_ID = "12D3KooWA73AbUA2dz1hWm1PToPN21piJoqKKoKioTHyCHR5m8jD"


def test_refusals_are_logged_a_few_then_counted(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    limiter = RefusalLog(clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="raytui.proxy.peers"):
        for i in range(100):
            limiter.refused(f"peer{i % 7}", "inbound")
            now[0] += 0.1  # 100 attempts in 10 s
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == RefusalLog.BURST + 1, lines
        assert "counted, not logged" in lines[-1]
        now[0] = RefusalLog.WINDOW + 1
        limiter.flush()
        summary = caplog.records[-1].getMessage()
        assert "refused 95 more connection(s) from 7 peer(s)" in summary, summary
        limiter.refused("peer-late", "outbound")  # a new window: logged again
        assert "peer-late" in caplog.records[-1].getMessage()
    assert len(caplog.records) == RefusalLog.BURST + 3


async def _dial_repeatedly(target: str, times: int) -> None:
    stranger = build_host(create_new_key_pair(), [], lambda _peer: True)
    info = info_from_p2p_addr(multiaddr.Multiaddr(target))
    async with stranger.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        for _ in range(times):
            network = stranger.get_network()
            if hasattr(network, "unblock_peer"):
                network.unblock_peer(info.peer_id)
            try:
                with trio.fail_after(5):
                    await stranger.connect(info)
            except Exception:
                pass


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    d = Daemon("lg")
    try:
        yield d.start()
    finally:
        d.cleanup()


@pytest.mark.proxy
def test_a_stranger_dialling_again_and_again_costs_a_few_lines(daemon: Daemon) -> None:
    trio.run(_dial_repeatedly, daemon.addr, 12)
    refused = daemon.status().refused
    assert refused >= 12
    log = (daemon.home / "daemon.log").read_text()
    lines = [line for line in log.splitlines() if "refused" in line]
    assert len(lines) <= RefusalLog.BURST + 1, "\n".join(lines)
    assert len(log) < 4000, len(log)


class _Accepts:
    """A TCP port that counts the connections made to it."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.server.settimeout(0.2)
        self.port = int(self.server.getsockname()[1])
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            self.times.append(time.monotonic())
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.server.close()


@pytest.mark.proxy
def test_a_removed_peer_is_never_dialled_again(daemon: Daemon) -> None:
    """py-libp2p's auto-connector dials every peer with an address in the peerstore (every
    ~10 s while below its connection target): a removed peer was redialled forever."""
    port = _Accepts()
    try:
        addr = f"/ip4/127.0.0.1/tcp/{port.port}/p2p/{GOOD_ID}"
        out = daemon.cli("peers", "add", addr, "--name", "gone")
        assert out.returncode == 0, out.stderr
        wait_for(lambda: len(port.times) >= 2, 20, "the daemon to dial the new peer")
        assert daemon.cli("peers", "remove", "gone").returncode == 0
        removed = time.monotonic()
        time.sleep(12)  # longer than the auto-connector's critical interval (10 s)
        late = [round(t - removed, 1) for t in port.times if t > removed + 0.5]
        assert late == [], f"dialled {len(late)} times after removal, at {late} s"
    finally:
        port.close()


def test_rotating_log_files_are_private_and_bounded(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "proxy.log"
        handler = PrivateRotatingFileHandler(path, maxBytes=2000, backupCount=3, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(message)s"))
        record = logging.LogRecord("x", logging.WARNING, __file__, 1, "y" * 100, None, None)
        for _ in range(200):
            handler.emit(record)
        handler.close()
    finally:
        os.umask(old)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["proxy.log", "proxy.log.1", "proxy.log.2", "proxy.log.3"]
    for p in tmp_path.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
        assert p.stat().st_size <= 2000 + 200


@pytest.mark.proxy
def test_the_detached_daemon_writes_its_own_log(tmp_path: Path) -> None:
    home = Path(os.path.realpath(tmp_path))
    env = {**os.environ, "RAYTUI_HOME": str(home)}

    def raytui(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "raytui", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    out = raytui("proxy", "start", "--listen", f"/ip4/127.0.0.1/tcp/{free_port()}")
    try:
        assert out.returncode == 0, out.stderr
        pid = int((home / "run" / "proxy.pid").read_text().split()[0])
        log = home / "state" / "proxy.log"
        wait_for(lambda: "proxy daemon up" in log.read_text(), 10, "the daemon's first lines")
        # Its stderr is not the log (rotation would leave an inherited fd writing to an old file).
        assert os.readlink(f"/proc/{pid}/fd/2") == str(home / "state" / "proxy.stderr")
        assert os.readlink(f"/proc/{pid}/fd/1") == "/dev/null"
        assert any(
            os.readlink(f"/proc/{pid}/fd/{fd}") == str(log) for fd in os.listdir(f"/proc/{pid}/fd")
        )
        assert stat.S_IMODE(log.stat().st_mode) == 0o600
    finally:
        assert raytui("proxy", "stop").returncode == 0
