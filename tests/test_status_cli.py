"""`raytui status --json` against the shared 3-node cluster (fake GPUs reported by Ray's agents)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GPU2_GPUS, HEAD_GPUS
from tests.support.ray_cluster import RayTestCluster
from tests.support.raytui_cli import node, poll_status, run_raytui, status_json

pytestmark = [pytest.mark.ray, pytest.mark.multinode]


def _gpus_reported(doc: dict[str, Any], cluster: RayTestCluster) -> bool:
    for test_node in cluster.nodes[:3]:
        n = node(doc, test_node.node_id)
        if n is None or [g["uuid"] for g in n["gpus"]] != [g["uuid"] for g in test_node.fake_gpus]:
            return False
    return True


def test_status_json_shows_every_node_and_fake_gpu_values(ray_cluster: RayTestCluster) -> None:
    env = ray_cluster.client_env()
    doc = poll_status(ray_cluster.dashboard_url, env, lambda d: _gpus_reported(d, ray_cluster))
    assert doc["schema"] == 1 and doc["ray_version"] == "2.60.0"
    assert doc["address"] == ray_cluster.dashboard_url and doc["embedded"] is False
    head, gpu2, cpu = (node(doc, n.node_id) for n in ray_cluster.nodes[:3])
    assert head is not None and gpu2 is not None and cpu is not None
    assert head["is_head"] and not gpu2["is_head"] and not cpu["is_head"]
    assert all(n["state"] == "ALIVE" for n in (head, gpu2, cpu))
    assert (head["gpus_total"], gpu2["gpus_total"], cpu["gpus_total"]) == (1.0, 2.0, 0.0)
    assert (len(head["gpus"]), len(gpu2["gpus"]), cpu["gpus"]) == (1, 2, [])
    for got, spec in zip([*head["gpus"], *gpu2["gpus"]], HEAD_GPUS + GPU2_GPUS, strict=True):
        assert got["name"] == spec["name"]
        assert got["utilization_pct"] == spec["utilization"]
        assert got["memory_used_mib"] == spec["memory_used"]
        assert got["memory_total_mib"] == spec["memory_total"]
        assert got["temperature_c"] == spec["temperature"]
        assert got["power_w"] == spec["power_mw"] / 1000
    assert head["memory_total_bytes"] > 0 and head["cpus_total"] == 2.0
    assert doc["totals"]["gpu_devices"] >= 3
    assert "RUNNING" in doc["tasks"]["by_state"]


def test_status_resolves_a_gcs_address(ray_cluster: RayTestCluster) -> None:
    doc = status_json(ray_cluster.gcs_address, ray_cluster.client_env())
    assert doc["address"] == ray_cluster.dashboard_url
    assert {n["node_id"] for n in doc["nodes"]} >= {n.node_id for n in ray_cluster.nodes[:3]}


def test_status_human_table(ray_cluster: RayTestCluster) -> None:
    env = ray_cluster.client_env()
    result = run_raytui(["status", "--address", ray_cluster.dashboard_url], env)
    assert result.returncode == 0, result.stderr
    assert "Ray 2.60.0" in result.stdout
    assert ray_cluster.head.node_id[:8] in result.stdout
    assert "no GPUs" in result.stdout  # the cpu node


@pytest.mark.parametrize("how", ["dashboard", "gcs"])
def test_status_without_token_fails_with_auth_message(
    ray_cluster: RayTestCluster, tmp_path: Path, how: str
) -> None:
    env = ray_cluster.client_env(HOME=str(tmp_path))
    for key in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        env.pop(key, None)
    address = ray_cluster.dashboard_url if how == "dashboard" else ray_cluster.gcs_address
    result = run_raytui(["status", "--json", "--address", address], env, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert "token" in result.stderr and "RAY_AUTH_TOKEN" in result.stderr


def test_status_with_wrong_token_names_its_source(
    ray_cluster: RayTestCluster, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("not-the-token\n")
    env = ray_cluster.client_env(HOME=str(tmp_path), RAY_AUTH_TOKEN_PATH=str(token_file))
    env.pop("RAY_AUTH_TOKEN")
    result = run_raytui(["status", "--address", ray_cluster.dashboard_url], env, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "HTTP 403" in result.stderr and str(token_file) in result.stderr


_ACTOR_DRIVER = """
import json, os, sys
from pathlib import Path
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

root, node_id = sys.argv[1], sys.argv[2]


@ray.remote(num_gpus=1, num_cpus=0)
class LabelProbeEngine:
    def hold_gpu(self, root):
        gpu = int(ray.get_gpu_ids()[0])
        node = ray.get_runtime_context().get_node_id()
        folder = Path(root) / node / str(gpu)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / str(os.getpid())).write_text("2048")
        return os.getpid(), gpu, node


ray.init(address=os.environ["GCS"], log_to_driver=False)
actor = LabelProbeEngine.options(
    scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)
).remote()
print(json.dumps(ray.get(actor.hold_gpu.remote(root), timeout=60)), flush=True)
sys.stdin.read()  # hold the actor until the test closes stdin
"""


def test_status_labels_actor_process_on_fake_gpu_with_class_name(
    ray_cluster: RayTestCluster,
) -> None:
    """A real actor on the gpu2 node shows up as a process on its (fake) GPU, named by class."""
    gpu2 = ray_cluster.nodes[1]
    env = ray_cluster.client_env(GCS=ray_cluster.gcs_address)
    driver = subprocess.Popen(
        [sys.executable, "-c", _ACTOR_DRIVER, str(ray_cluster.fake_gpu_procs), gpu2.node_id],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    pid_file: Path | None = None
    try:
        assert driver.stdout is not None
        line = driver.stdout.readline()
        assert line, "the actor driver exited before reporting"
        pid, gpu_index, node_id = json.loads(line)
        pid_file = ray_cluster.fake_gpu_procs / node_id / str(gpu_index) / str(pid)
        assert node_id == gpu2.node_id

        def labelled(doc: dict[str, Any]) -> bool:
            n = node(doc, node_id)
            procs = n["gpus"][gpu_index]["processes"] if n and len(n["gpus"]) > gpu_index else []
            return any(p["pid"] == pid and p["label"] for p in procs)

        doc = poll_status(ray_cluster.dashboard_url, env, labelled, timeout=45)
        n = node(doc, node_id)
        assert n is not None
        (proc,) = [p for p in n["gpus"][gpu_index]["processes"] if p["pid"] == pid]
        assert proc["label"] == "actor LabelProbeEngine"
        assert proc["memory_mib"] == 2048
        assert doc["tasks"]["actors_alive"] >= 1
    finally:
        if driver.stdin is not None:
            driver.stdin.close()
        try:
            driver.wait(timeout=30)
        except subprocess.TimeoutExpired:
            driver.kill()
            driver.wait()
        if pid_file is not None:
            pid_file.unlink(missing_ok=True)


@pytest.mark.parametrize("address", [None, "auto"], ids=["no-address", "auto"])
def test_status_finds_the_cluster_running_on_this_machine(
    ray_cluster: RayTestCluster, address: str | None
) -> None:
    # No --address and no RAY_ADDRESS (client_env drops it), or `auto`: the cluster running
    # here is attached, not an embedded one started.
    args = ["status", "--json"] + (["--address", address] if address else [])
    result = run_raytui(args, ray_cluster.client_env())
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["embedded"] is False and doc["address"] == ray_cluster.dashboard_url
    assert {n["node_id"] for n in doc["nodes"]} >= {n.node_id for n in ray_cluster.nodes[:3]}
