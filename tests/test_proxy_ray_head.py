"""`raytui proxy expose --ray-head` exposes the head where it really listens (issue 8, finding 15).

A real `ray start --head` with non-default ports, its node and dashboard bound to this machine's
non-loopback address (as the seeds start heads), is exposed by one real daemon and reached
through a second one: the dashboard answers HTTP and the GCS answers gRPC's HTTP/2 handshake
through the tunnel. The old code exposed 127.0.0.1:8265/10001/6379 and the console got
"connection reset".
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from raytui.ray_local import find_local_head
from tests.proxy_support.daemons import Daemon, free_port, pair_up
from tests.support.ray_cluster import RAY_BIN
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.proxy, pytest.mark.ray]

# HTTP/2 client preface and an empty SETTINGS frame: a gRPC server (the GCS) answers with a frame
# of its own, starting with its SETTINGS (type 4).
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def lan_address() -> str | None:
    """A non-loopback IPv4 address of this machine (`hostname -I`), or None."""
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    for word in out.stdout.split():
        if word.count(".") == 3 and not word.startswith("127."):
            return word
    return None


@dataclass
class Head:
    ip: str
    gcs_port: int
    dashboard_port: int
    client_port: int
    pgid: int
    started: float  # the gcs_server's create time

    @property
    def gcs(self) -> str:
        return f"{self.ip}:{self.gcs_port}"


def _gcs_pid(temp_dir: Path) -> psutil.Process | None:
    for proc in psutil.process_iter(["name", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if proc.info["name"] == "gcs_server" and any(
                str(temp_dir) in a for a in proc.info["cmdline"] or []
            ):
                return proc
    return None


@pytest.fixture(scope="module")
def head() -> Iterator[Head]:
    ip = lan_address()
    if ip is None:
        warnings.warn(
            "this machine has no non-loopback IPv4 address (hostname -I): the head and its "
            "dashboard are bound to 127.0.0.1, only the non-default ports are tested",
            stacklevel=1,
        )
        ip = "127.0.0.1"
    temp_dir = Path(tempfile.mkdtemp(prefix="rthead-", dir="/tmp"))
    gcs_port, dash_port, client_port = free_port(), free_port(), free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen(
        [
            str(RAY_BIN),
            "start",
            "--head",
            "--disable-usage-stats",
            f"--node-ip-address={ip}",
            f"--dashboard-host={ip}",
            "--include-dashboard=true",
            f"--port={gcs_port}",
            f"--dashboard-port={dash_port}",
            f"--ray-client-server-port={client_port}",
            f"--temp-dir={temp_dir}",
            "--num-cpus=1",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # every Ray process of this head is in this process group
    )
    pgid = proc.pid
    try:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out.decode(errors="replace")[-3000:]
        wait_for(lambda: _get(f"http://{ip}:{dash_port}/api/version"), 60, "the head's dashboard")
        gcs = wait_for(lambda: _gcs_pid(temp_dir), 10, "the head's gcs_server")
        yield Head(ip, gcs_port, dash_port, client_port, pgid, gcs.create_time())
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            wait_for(lambda: not any(_in_group(p, pgid) for p in psutil.process_iter()), 20, "head")
        subprocess.run(["rm", "-rf", str(temp_dir)], check=False)


def _in_group(proc: psutil.Process, pgid: int) -> bool:
    try:
        return os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE
    except (ProcessLookupError, psutil.Error):
        return False


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return bytes(resp.read())
    except OSError:
        return None


def _h2_answer(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(H2_PREFACE)
        return sock.recv(9)


def test_discovery_reads_the_heads_real_addresses(head: Head) -> None:
    found = find_local_head(head.gcs_port)
    assert found is not None
    assert found.gcs == head.gcs
    assert found.dashboard == f"{head.ip}:{head.dashboard_port}"
    assert found.client == f"{head.ip}:{head.client_port}"


def test_expose_ray_head_reaches_a_head_with_its_own_address_and_ports(head: Head) -> None:
    server, console = Daemon("hd"), Daemon("cn")
    try:
        server.start()
        console.start()
        pair_up(server, console)
        # Loopback names this machine: the head is found by its GCS port.
        done = server.cli(
            "proxy", "expose", "--ray-head", "--address", f"127.0.0.1:{head.gcs_port}"
        )
        assert done.returncode == 0, done.stderr
        services = {s.name: s.target for s in server.status().services}
        assert services == {
            "ray-gcs": head.gcs,
            "ray-dashboard": f"{head.ip}:{head.dashboard_port}",
            "ray-client": f"{head.ip}:{head.client_port}",
        }
        dash_port, gcs_port = free_port(), free_port()
        console.control.forward("hd", "ray-dashboard", f"127.0.0.1:{dash_port}")
        console.control.forward("hd", "ray-gcs", f"127.0.0.1:{gcs_port}")
        version = _get(f"http://127.0.0.1:{dash_port}/api/version")
        assert version is not None and "ray_version" in json.loads(version)
        frame = _h2_answer(gcs_port)
        assert len(frame) == 9 and frame[3] == 4, frame  # the GCS's SETTINGS frame

        # Without --address: the newest head here. Another Ray on this shared machine may be
        # newer; then only the explicit form above is checked.
        newest = max(
            (
                p.info["create_time"]
                for p in psutil.process_iter(["name", "create_time"])
                if p.info["name"] == "gcs_server"
            ),
            default=0.0,
        )
        if newest <= head.started:
            done = server.cli("proxy", "expose", "--ray-head")
            assert done.returncode == 0, done.stderr
            assert f"exposed ray-dashboard -> {head.ip}:{head.dashboard_port}" in done.stdout
    finally:
        server.cleanup()
        console.cleanup()


def test_no_head_there_is_one_line_and_exit_1() -> None:
    daemon = Daemon("nh")
    try:
        daemon.start()
        port = free_port()
        done = daemon.cli("proxy", "expose", "--ray-head", "--address", f"127.0.0.1:{port}")
        assert done.returncode == 1, done
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert f"no Ray head runs with its GCS on port {port}" in done.stderr
        assert daemon.status().services == ()
        empty = daemon.cli("proxy", "expose", "--ray-head", "--address", "")
        assert empty.returncode == 2 and "--address is empty" in empty.stderr, empty
        stray = daemon.cli("proxy", "expose", "web", "127.0.0.1:80", "--address", "h:1")
        assert stray.returncode == 2 and "--address goes with --ray-head" in stray.stderr
    finally:
        daemon.cleanup()
