"""The shared test cluster itself: the fake-GPU hook reaches Ray's agents on every node."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.ray_cluster import RayTestCluster

pytestmark = pytest.mark.ray


def test_agents_report_fake_gpus_on_every_node(ray_cluster: RayTestCluster) -> None:
    expected = {n.node_id: [g["uuid"] for g in n.fake_gpus] for n in ray_cluster.nodes[:3]}
    headers = {"Authorization": f"Bearer {ray_cluster.token}"}
    deadline = time.monotonic() + 30
    seen: dict[str, list[str]] = {}
    while time.monotonic() < deadline:
        summary = httpx.get(
            f"{ray_cluster.dashboard_url}/nodes", params={"view": "summary"}, headers=headers
        ).json()["data"]["summary"]
        seen = {s["raylet"]["nodeId"]: [g["uuid"] for g in s["gpus"]] for s in summary}
        if all(seen.get(k) == v for k, v in expected.items()):
            break
        time.sleep(0.5)
    assert {k: seen.get(k) for k in expected} == expected
