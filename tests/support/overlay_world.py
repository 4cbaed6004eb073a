"""Peer daemons with the overlay on, inside network namespaces (tests/support/netns.py), and the
Ray nodes `raytui join` starts there.

Each daemon has its own HOME, RAYTUI_HOME, Ray temp dir and Ray token file, and a clean environment:
the test session's own Ray variables (auth token, address) must not leak into the namespaces'
clusters.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from raytui.model.overlay import JoinStatus
from raytui.model.peers import DaemonStatus, LinkState
from raytui.sources.proxy_control import ProxyControl
from tests.proxy_support.daemons import wait_until_answers
from tests.support.netns import Host
from tests.support.waiting import wait_for

DAEMON_PORT = 4701
_RAY_VARS = ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")


class NsDaemon:
    """`raytui proxy run --overlay` inside `host`'s namespace. Its control socket is a file, so
    the test process talks to it directly."""

    def __init__(
        self,
        host: Host,
        label: str | None = None,
        *,
        port: int = DAEMON_PORT,
        user: str | None = None,
    ) -> None:
        self.host = host
        self.label = label or host.name
        self.port = port
        self.user = user  # run as this user, without privileges (setpriv)
        self.home = Path(tempfile.mkdtemp(prefix=f"rt{self.label[:6]}", dir="/tmp"))
        if user is not None:
            shutil.chown(self.home, user)
        env = {k: v for k, v in os.environ.items() if k not in _RAY_VARS}
        env.update(
            HOME=str(self.home),  # no stray ~/.ray/auth_token of the machine's user
            RAYTUI_HOME=str(self.home),
            RAYTUI_RAY_TEMP_DIR=str(self.home / "ray"),
            RAY_AUTH_TOKEN_PATH=str(self.home / "ray_token"),
        )
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def control(self) -> ProxyControl:
        return ProxyControl(self.home / "run" / "proxy.sock", timeout=180)

    def start(self, *extra: str) -> NsDaemon:
        log = open(self.home / "daemon.log", "ab")  # noqa: SIM115 - the child owns it
        listen = f"/ip4/0.0.0.0/tcp/{self.port}"
        argv = [sys.executable, "-m", "raytui", "proxy", "run", "--listen", listen, *extra]
        if self.user is not None:
            argv = ["setpriv", f"--reuid={self.user}", "--regid=nogroup", "--clear-groups", *argv]
        self.proc = self.host.popen(argv, env=self.env, stdout=log, stderr=log)
        log.close()
        wait_until_answers(self.proc, self.control, self.label, self.log_tail, 60)
        return self

    def status(self) -> DaemonStatus:
        return self.control.status()

    @property
    def peer_id(self) -> str:
        return self.status().peer_id

    @property
    def addr(self) -> str:
        """Its multiaddr on its namespace's own address."""
        return f"/ip4/{self.host.address}/tcp/{self.port}/p2p/{self.peer_id}"

    @property
    def overlay_address(self) -> str:
        address = self.status().overlay.address
        assert address, f"{self.label}: overlay not up: {self.status().overlay.error}"
        return address

    def join_status(self) -> JoinStatus | None:
        return self.status().join

    def token(self) -> str:
        return (self.home / "ray_token").read_text().strip()

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """`raytui ARGS` inside this daemon's namespace, with its environment."""
        return self.host.run([sys.executable, "-m", "raytui", *args], env=self.env, timeout=timeout)

    def ray_env(self, token: str | None) -> dict[str, str]:
        """Environment for a Ray driver or `raytui` command talking to the overlay cluster."""
        env = dict(self.env)
        if token:
            env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
        return env

    def cluster_nodes(self, token: str | None) -> list[dict[str, Any]]:
        """`raytui status --json` here, against the head on this daemon's overlay address:
        the cluster's nodes as the head sees them."""
        address = f"{self.overlay_address}:6379"
        done = self.host.run(
            [sys.executable, "-m", "raytui", "status", "--json", "--address", address],
            env=self.ray_env(token),
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        nodes: list[dict[str, Any]] = json.loads(done.stdout)["nodes"]
        return nodes

    def node_state(self, token: str | None, node_id: str | None) -> str | None:
        """State of one node in `cluster_nodes`; None when absent or the head is slow to say."""
        try:
            nodes = self.cluster_nodes(token)
        except AssertionError:  # the head's dashboard is slow to answer on a busy machine
            return None
        return next((str(n["state"]) for n in nodes if n["node_id"] == node_id), None)

    def driver(self, code: str, token: str | None, timeout: float = 240) -> Any:
        """Run a Ray driver snippet in this namespace; its last stdout line is JSON."""
        done = self.host.run([sys.executable, "-c", code], env=self.ray_env(token), timeout=timeout)
        assert done.returncode == 0, f"driver failed:\n{done.stdout}\n{done.stderr[-4000:]}"
        return json.loads(done.stdout.strip().splitlines()[-1])

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join((self.home / "daemon.log").read_text().splitlines()[-n:])
        except OSError:
            return ""

    def node_log_tail(self, n: int = 30) -> str:
        try:
            text = (self.home / "state" / "ray-node.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-n:])

    def terminate(self) -> None:
        """Ask it to stop (it stops its Ray node first); `stop` waits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


def allow_each_other(a: NsDaemon, b: NsDaemon) -> None:
    """Mutual allow-list; `b` must be able to dial `a` (a public, b anywhere)."""
    a_id, b_id = a.peer_id, b.peer_id
    a.control.add_peer(b.addr, name=b.label)
    _, error = b.control.add_peer(a.addr, name=a.label)
    assert error is None, error
    wait_for(lambda: _state(a, b_id) == LinkState.CONNECTED, 30, f"{a.label} sees {b.label}")
    wait_for(lambda: _state(b, a_id) == LinkState.CONNECTED, 30, f"{b.label} sees {a.label}")


def _state(d: NsDaemon, peer_id: str) -> LinkState | None:
    peer = d.status().peer(peer_id)
    return None if peer is None else peer.state


def wait_route(d: NsDaemon, address: str, via: str | None = None, timeout: float = 30) -> None:
    def ok() -> bool:
        route = d.status().overlay.route_to(address)
        return route is not None and route.state == "up" and (via is None or route.via == via)

    wait_for(ok, timeout, f"{d.label}: a route to {address}", interval=0.3)


def echo_through(service_side: NsDaemon, forward_side: NsDaemon, size: int = 1 << 20) -> None:
    """A plain tunnel works: `service_side` exposes an echo server of its namespace,
    `forward_side` (another peer, allow-listed both ways) forwards a local port to it, and
    `size` random bytes come back byte for byte through the forward."""
    allow_each_other(service_side, forward_side)
    host = service_side.host
    server = host.listen(15000, bind="127.0.0.1")
    try:
        service_side.control.expose("echo", "127.0.0.1:15000")
        fwd = forward_side.control.forward(service_side.label, "echo", "127.0.0.1:15001")
        assert fwd.error is None, fwd.error
        out = forward_side.host.python(
            textwrap.dedent(
                f"""
                import hashlib, os, socket, threading
                data = os.urandom({size})
                with socket.create_connection(("127.0.0.1", 15001), timeout=30) as s:
                    def send():
                        s.sendall(data)
                        s.shutdown(socket.SHUT_WR)
                    t = threading.Thread(target=send)
                    t.start()
                    got = b""
                    while chunk := s.recv(65536):
                        got += chunk
                    t.join()
                print(hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest())
                """
            )
        )
        assert out.strip() == "True"
    finally:
        server.stop()


@contextlib.contextmanager
def running(*daemons: NsDaemon) -> Iterator[None]:
    """Start each daemon with the overlay on; stop and remove all of them on the way out."""
    try:
        for d in daemons:
            d.start("--overlay")
        yield
    finally:
        for d in daemons:  # all at once: each waits for its own Ray node to stop
            d.terminate()
        for d in daemons:
            d.cleanup()


def make_head(head: NsDaemon) -> None:
    """`raytui join --head` on `head` (1 CPU, no GPUs), offered to joiners with its token."""
    done = head.cli("proxy", "expose", "--ray-head", "--share-token")
    assert done.returncode == 0, done.stderr
    done = head.cli("join", "--head", "--cpus", "1", "--gpus", "0")
    assert done.returncode == 0, f"{done.stdout}{done.stderr}\n{head.node_log_tail()}"
