"""A node with fake GPUs is killed mid-test: `status --json` turns it DEAD with a death time."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.ray_cluster import RayTestCluster, fake_gpu
from tests.support.raytui_cli import node, poll_status

pytestmark = [pytest.mark.ray, pytest.mark.multinode]


def test_killed_node_with_fake_gpus_turns_dead_in_status_json(
    ray_cluster: RayTestCluster,
) -> None:
    env = ray_cluster.client_env()
    spec = fake_gpu("Fake L4 24GB", "GPU-fake-doomed-0", 55, 1_000, 23_034, 48, 72_000)
    added = ray_cluster.add_node(num_gpus=1, fake_gpus=[spec])

    def alive_with_gpu(doc: dict[str, Any]) -> bool:
        n = node(doc, added.node_id)
        return bool(n and n["state"] == "ALIVE" and n["gpus"])

    doc = poll_status(ray_cluster.dashboard_url, env, alive_with_gpu, timeout=45)
    n = node(doc, added.node_id)
    assert n is not None and n["state"] == "ALIVE" and n["gpus_total"] == 1.0
    (gpu,) = n["gpus"]
    assert (gpu["name"], gpu["uuid"], gpu["utilization_pct"]) == ("Fake L4 24GB", spec["uuid"], 55)
    alive_before = doc["totals"]["nodes_alive"]

    killed_at = time.time()
    ray_cluster.kill_node(added)

    def dead(doc: dict[str, Any]) -> bool:
        n = node(doc, added.node_id)
        return bool(n and n["state"] == "DEAD")

    doc = poll_status(ray_cluster.dashboard_url, env, dead, timeout=60)
    n = node(doc, added.node_id)
    assert n is not None and n["state"] == "DEAD"
    assert n["death_time"] is not None
    assert killed_at - 5 <= n["death_time"] <= time.time() + 1
    assert n["state_message"]
    assert n["gpus"][0]["utilization_pct"] is None  # no stale reading passed off as live
    assert doc["totals"]["nodes_alive"] == alive_before - 1
    assert doc["totals"]["nodes_dead"] >= 1
    # Still listed after the live nodes, the head first.
    assert doc["nodes"][0]["is_head"]
    states = [x["state"] for x in doc["nodes"]]
    assert states == sorted(states, key=lambda s: s == "DEAD")
