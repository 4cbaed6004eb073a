"""The Ray node that `raytui join` asked for, started and kept alive by the daemon.

The node is `ray start --block` on this machine's overlay address, with every component on the
fixed ports the overlay carries (model.overlay.ray_start_port_args). `--block` keeps one process
that owns the node: when any of Ray's processes dies it exits, and SIGTERM drains and stops them
all. The supervisor starts it again after it exits (after a long outage the head declares the
node dead and its raylet exits; only a new node can rejoin), with a capped backoff, until
`raytui leave`.

The node's output goes to `ray-node.log` in the state dir. Its node ID is read from the session
directory Ray writes (`<temp dir>/session_latest/*_port_<node id>`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trio

from raytui import locations
from raytui.model.overlay import JoinState, JoinStatus, ray_start_port_args

log = logging.getLogger(__name__)

LOG_NAME = "ray-node.log"
STARTED_MARK = b"Ray runtime started"
MIN_BACKOFF = 1.0
MAX_BACKOFF = 8.0
STOP_TIMEOUT = 40.0  # Ray drains for up to 30 s on SIGTERM
START_TIMEOUT = 40.0  # `ray start` that has not reported started by then is stopped and retried
HEAD_POLL = 0.5
# A head started by join: Ray's health check marks a node dead after period x threshold
# (3 s x 5 by default). A home link that drops for half a minute should not cost the node.
HEAD_SYSTEM_CONFIG = {"health_check_failure_threshold": 10}
_NODE_ID_FILE = re.compile(r"_port_([0-9a-f]{56})$")


def log_path() -> Path:
    return locations.state_dir() / LOG_NAME


def temp_dir() -> Path:
    """Ray's temp dir for this daemon's node: its own, so nodes of several daemons (or a test's
    namespaces) sharing a filesystem never mix sessions. Kept short: Ray puts sockets in it."""
    override = os.environ.get("RAYTUI_RAY_TEMP_DIR")
    if override:
        return Path(override)
    return Path("/tmp") / f"raytui-{os.getuid()}-ray"


@dataclass(frozen=True)
class NodePlan:
    role: str  # "worker" or "head"
    node_ip: str
    head_address: str  # host:port of the GCS (for a head: its own)
    peer_id: str | None
    token: str | None
    gpus: int | None
    cpus: int | None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block"]
        cmd += ["--node-ip-address", self.node_ip, "--disable-usage-stats"]
        cmd += ["--temp-dir", str(temp_dir())]
        cmd += ray_start_port_args(head=self.role == "head")
        if self.role == "head":
            cmd += ["--head", "--dashboard-host", self.node_ip]
            cmd += ["--system-config", json.dumps(HEAD_SYSTEM_CONFIG)]
        else:
            cmd += ["--address", self.head_address]
        if self.gpus is not None:
            cmd += ["--num-gpus", str(self.gpus)]
        if self.cpus is not None:
            cmd += ["--num-cpus", str(self.cpus)]
        return cmd

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        # Ray would otherwise turn auth on or off by whatever token file the machine holds.
        if self.token:
            env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token)
        else:
            env["RAY_AUTH_MODE"] = "disabled"
            env.pop("RAY_AUTH_TOKEN", None)
        # Neither applies to a node of this cluster (the second refuses multi-node on Linux too).
        env.pop("RAY_ADDRESS", None)
        env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
        return env


def read_node_id(root: Path) -> str | None:
    """The newest node's ID in Ray's current session dir. A node started again after an outage
    joins the same session (the cluster's), so older nodes' files are there too."""
    newest: tuple[float, str] | None = None
    try:
        entries = list((root / "session_latest").iterdir())
    except OSError:
        return None
    for path in entries:
        match = _NODE_ID_FILE.search(path.name)
        if not match:
            continue
        try:
            mtime = path.stat().st_mtime
        except OSError:
            continue
        if newest is None or mtime > newest[0]:
            newest = (mtime, match.group(1))
    return None if newest is None else newest[1]


class RayNodeSupervisor:
    """Runs `plan`'s node until `stop()`; `status()` is a snapshot for the control socket."""

    def __init__(self, plan: NodePlan, head_reachable: Callable[[], bool] | None = None) -> None:
        self.plan = plan
        # A worker starts only while the overlay reaches its head: a `ray start` begun during an
        # outage keeps retrying the GCS on its own schedule and can lag long after the link is
        # back (measured: still starting 30 s after it returned).
        self._head_reachable = head_reachable or (lambda: True)
        self._state = JoinState.STARTING
        self._process: trio.Process | None = None
        self._node_id: str | None = None
        self._since = time.time()
        self._restarts = 0
        self._last_error: str | None = None
        self._stopping = False
        self._stopped = trio.Event()
        self.started = trio.Event()  # set when a node first reports started, or gave up

    def status(self) -> JoinStatus:
        return JoinStatus(
            role=self.plan.role,
            peer_id=self.plan.peer_id,
            head_address=self.plan.head_address,
            node_ip=self.plan.node_ip,
            state=self._state,
            node_id=self._node_id,
            pid=None if self._process is None else self._process.pid,
            since=self._since,
            restarts=self._restarts,
            last_error=self._last_error,
        )

    async def run(self) -> None:
        backoff = MIN_BACKOFF
        try:
            while not self._stopping:
                await self._wait_for_head()
                started_at = time.monotonic()
                code, tail = await self._run_once()
                if self._stopping:
                    break
                self._last_error = f"ray start exited with code {code}: {tail}"
                log.warning("Ray node exited (%s); starting it again", self._last_error)
                self._state = JoinState.RESTARTING
                self._node_id = None
                self.started.set()
                if time.monotonic() - started_at > 60:
                    backoff = MIN_BACKOFF
                await trio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                self._restarts += 1
        finally:
            self._stopped.set()

    async def _wait_for_head(self) -> None:
        if self._head_reachable():
            return
        log.info("waiting for the overlay to reach the head %s", self.plan.head_address)
        self._state = JoinState.RESTARTING
        while not self._head_reachable() and not self._stopping:  # noqa: ASYNC110 - polls the overlay
            await trio.sleep(HEAD_POLL)

    async def _run_once(self) -> tuple[int, str]:
        self._state = JoinState.STARTING
        self._since = time.time()
        lines: list[str] = []
        fd = locations.open_private(log_path(), os.O_WRONLY | os.O_APPEND)
        async with trio.wrap_file(os.fdopen(fd, "ab")) as out:
            await out.write(f"--- {time.ctime()}: {' '.join(self.plan.command())}\n".encode())
            process = await trio.lowlevel.open_process(
                self.plan.command(),
                env=self.plan.env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self._process = process
            assert process.stdout is not None
            buf = b""
            # A `ray start` that has not started within START_TIMEOUT is stopped (and retried).
            startup = trio.CancelScope(deadline=trio.current_time() + START_TIMEOUT)
            try:
                with startup:
                    async for chunk in process.stdout:
                        await out.write(chunk)
                        await out.flush()
                        buf += chunk
                        *complete, buf = buf.split(b"\n")
                        for raw in complete:
                            text = _plain(raw)
                            if text:
                                lines = [*lines[-4:], text]
                            if STARTED_MARK in raw and self._state == JoinState.STARTING:
                                self._state = JoinState.RUNNING
                                self._node_id = read_node_id(temp_dir())
                                self._last_error = None
                                self.started.set()
                                startup.deadline = math.inf  # started: no limit now
                                log.info("Ray node started (%s)", self._node_id)
                if startup.cancelled_caught:
                    self._last_error = f"ray start did not start within {START_TIMEOUT:g} s"
                    log.warning("%s; stopping it", self._last_error)
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
            finally:
                with trio.CancelScope(shield=True):
                    code = await process.wait()
                    self._process = None
        tail = " | ".join(lines[-3:]) if lines else "no output"
        return code, tail[-500:]

    async def stop(self) -> None:
        """SIGTERM (Ray drains and stops every process of the node), SIGKILL to the whole
        session after STOP_TIMEOUT."""
        self._stopping = True
        process = self._process
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            with trio.move_on_after(STOP_TIMEOUT):
                await process.wait()
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
        with trio.move_on_after(STOP_TIMEOUT):
            await self._stopped.wait()


_ANSI = re.compile(rb"\x1b\[[0-9;]*m")


def _plain(raw: bytes) -> str:
    return _ANSI.sub(b"", raw).decode("utf-8", "replace").strip()
