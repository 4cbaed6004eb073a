"""A real multi-node Ray cluster on this machine, started with `ray start` like a user would.

Every node is its own `ray start` (own raylet, own dashboard agent). Agents report fake GPUs
through tests/fakegpu (see its docstring). Token auth is on, as on a fresh Ray 2.60 head.
Everything started is killed on `stop()`, found by the cluster's private temp dir.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

FAKEGPU_DIR = Path(__file__).resolve().parent.parent / "fakegpu"
RAY_BIN = Path(sys.executable).parent / "ray"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fake_gpu(
    name: str,
    uuid: str,
    utilization: float,
    memory_used: int,
    memory_total: int,
    temperature: int = 50,
    power_mw: int = 100_000,
) -> dict[str, Any]:
    return {
        "name": name,
        "uuid": uuid,
        "utilization": utilization,
        "memory_used": memory_used,
        "memory_total": memory_total,
        "temperature": temperature,
        "power_mw": power_mw,
    }


@dataclass
class TestNode:
    node_id: str
    raylet_pid: int
    num_gpus: int
    fake_gpus: list[dict[str, Any]]
    is_head: bool = False


@dataclass
class RayTestCluster:
    temp_dir: Path
    gcs_address: str
    dashboard_url: str
    token: str
    env: dict[str, str]
    fake_gpu_procs: Path
    client_port: int = 0
    nodes: list[TestNode] = field(default_factory=list)

    @property
    def head(self) -> TestNode:
        return next(n for n in self.nodes if n.is_head)

    def client_env(self, **extra: str) -> dict[str, str]:
        """Environment for a raytui/driver process that should reach this cluster."""
        env = dict(os.environ)
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token)
        env.pop("RAY_ADDRESS", None)
        env.update(extra)
        return env

    def node_ids(self) -> set[str]:
        reply = httpx.get(
            f"{self.dashboard_url}/api/v0/nodes",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )
        reply.raise_for_status()
        return {
            n["node_id"] for n in reply.json()["data"]["result"]["result"] if n["state"] == "ALIVE"
        }

    def wait_node_state(self, node_id: str, state: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = httpx.get(
                f"{self.dashboard_url}/api/v0/nodes",
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=10,
            )
            for n in reply.json()["data"]["result"]["result"]:
                if n["node_id"] == node_id and n["state"] == state:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"node {node_id[:8]} not {state} after {timeout}s")

    def add_node(
        self, num_gpus: int = 0, fake_gpus: list[dict[str, Any]] | None = None, num_cpus: int = 1
    ) -> TestNode:
        before_ids = self.node_ids()
        before_raylets = _raylet_pids(self.temp_dir)
        env = self._node_env(fake_gpus or [])
        _ray_start(
            [
                "--address",
                self.gcs_address,
                f"--num-cpus={num_cpus}",
                f"--num-gpus={num_gpus}",
                f"--dashboard-agent-listen-port={free_port()}",
            ],
            env,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            new = self.node_ids() - before_ids
            raylets = _raylet_pids(self.temp_dir) - before_raylets
            if new and raylets:
                node = TestNode(new.pop(), raylets.pop(), num_gpus, fake_gpus or [])
                self.nodes.append(node)
                return node
            time.sleep(0.2)
        raise TimeoutError("new Ray node did not register")

    def kill_node(self, node: TestNode) -> None:
        """Kill a node's raylet and everything under it, as a power cut would."""
        _kill_tree(node.raylet_pid)

    def stop(self) -> None:
        _kill_trees([p.pid for p in _cluster_processes(self.temp_dir, self.gcs_address)])
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def _node_env(self, fake_gpus: list[dict[str, Any]]) -> dict[str, str]:
        env = dict(self.env)
        env["RAYTUI_TEST_FAKE_GPUS"] = json.dumps(fake_gpus)
        return env


def _head_ip(cluster: RayTestCluster) -> str:
    reply = httpx.get(
        f"{cluster.dashboard_url}/api/v0/nodes",
        headers={"Authorization": f"Bearer {cluster.token}"},
        timeout=10,
    )
    return str(
        next(n["node_ip"] for n in reply.json()["data"]["result"]["result"] if n["is_head_node"])
    )


def _raylet_pids(temp_dir: Path) -> set[int]:
    return {p.pid for p in _cluster_processes(temp_dir) if p.name() == "raylet"}


def _cluster_processes(temp_dir: Path, gcs_address: str = "") -> list[psutil.Process]:
    """Processes of this cluster: they name its temp dir or (Ray Client server) its GCS."""
    marks = [str(temp_dir), *([f"--address={gcs_address}"] if gcs_address else [])]
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(m in part for part in proc.info["cmdline"] or () for m in marks):
                found.append(proc)
        except (psutil.Error, TypeError):
            continue
    return found


def _kill_tree(pid: int) -> None:
    _kill_trees([pid])


def _kill_trees(pids: list[int]) -> None:
    """SIGKILL each process and its descendants, all of them first, then wait (bounded) once."""
    procs: dict[int, psutil.Process] = {}
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for proc in (*root.children(recursive=True), root):
                procs[proc.pid] = proc
        except psutil.Error:
            continue
    for proc in procs.values():
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(list(procs.values()), timeout=10)


def _ray_start(args: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(
        [str(RAY_BIN), "start", "--disable-usage-stats", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"ray start failed:\n{result.stdout}\n{result.stderr}")


def start_cluster(
    head_gpus: list[dict[str, Any]], head_cpus: int = 2, token_auth: bool = True
) -> RayTestCluster:
    temp_dir = Path(tempfile.mkdtemp(prefix="rtui-ray-", dir="/tmp"))
    procs_dir = temp_dir / "fake-gpu-procs"
    procs_dir.mkdir()
    token = secrets.token_hex(32)
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env["PYTHONPATH"] = os.pathsep.join([str(FAKEGPU_DIR), *filter(None, [env.get("PYTHONPATH")])])
    env["RAYTUI_TEST_FAKE_GPU_PROCS"] = str(procs_dir)
    # Declare killed nodes dead within a few seconds instead of ~15.
    env["RAY_health_check_initial_delay_ms"] = "1000"
    env["RAY_health_check_period_ms"] = "1000"
    env["RAY_health_check_timeout_ms"] = "1000"
    env["RAY_health_check_failure_threshold"] = "3"
    if token_auth:
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    else:
        env["RAY_AUTH_MODE"] = "disabled"
    port, dash_port, client_port = free_port(), free_port(), free_port()
    cluster = RayTestCluster(
        temp_dir=temp_dir,
        gcs_address=f"127.0.0.1:{port}",
        dashboard_url=f"http://127.0.0.1:{dash_port}",
        token=token if token_auth else "",
        env=env,
        fake_gpu_procs=procs_dir,
        client_port=client_port,
    )
    try:
        _ray_start(
            [
                "--head",
                f"--port={port}",
                "--include-dashboard=true",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={dash_port}",
                # Ray's default agent port (52365) is shared by every cluster on the machine: a
                # second cluster's head agent fails to bind and its job API answers "No
                # available agent" forever.
                f"--dashboard-agent-listen-port={free_port()}",
                f"--ray-client-server-port={client_port}",
                f"--temp-dir={temp_dir}",
                f"--num-cpus={head_cpus}",
                f"--num-gpus={len(head_gpus)}",
            ],
            cluster._node_env(head_gpus),
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                ids = cluster.node_ids()
            except httpx.HTTPError:
                ids = set()
            raylets = _raylet_pids(temp_dir)
            if ids and raylets:
                cluster.gcs_address = f"{_head_ip(cluster)}:{port}"
                cluster.nodes.append(
                    TestNode(ids.pop(), raylets.pop(), len(head_gpus), head_gpus, is_head=True)
                )
                break
            time.sleep(0.2)
        else:
            raise TimeoutError("Ray head did not come up")
    except BaseException:
        cluster.stop()
        raise
    return cluster
