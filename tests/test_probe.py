"""The NVML probe actor against the real session Ray cluster (`ray start` nodes, no GPU driver).

Without an NVIDIA driver the probe's answer is a real, useful result: no devices and a hint.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from raytui.errors import RaytuiError
from raytui.sources import probe
from raytui.sources.probe import PROBE_NAMESPACE, close_probes, probe_actor_name, probe_node
from tests.support.ray_cluster import RayTestCluster

pytestmark = [pytest.mark.ray, pytest.mark.multinode]

HAS_NVIDIA_DRIVER = bool(shutil.which("nvidia-smi")) or Path("/dev/nvidiactl").exists()
FIRST_PROBE_TIMEOUT = 120.0  # first call on a node starts a worker with raytui's code (2-core CI)


@pytest.fixture
def probes(ray_driver: RayTestCluster) -> Iterator[RayTestCluster]:
    """The connected session cluster; probe actors made by the test are killed afterwards."""
    yield ray_driver
    close_probes()


def actor_id(node_id: str) -> str:
    import ray

    return str(ray.get_actor(probe_actor_name(node_id), namespace=PROBE_NAMESPACE)._actor_id.hex())


@pytest.mark.skipif(HAS_NVIDIA_DRIVER, reason="this machine has an NVIDIA driver")
def test_probe_runs_on_each_requested_node_and_reports_no_driver(probes: RayTestCluster) -> None:
    for node in probes.nodes[:3]:
        report = probe_node(node.node_id, timeout=FIRST_PROBE_TIMEOUT)
        assert report.node_id == node.node_id  # read inside the actor: it ran on that node
        assert report.devices == ()
        assert report.hint is not None and "driver" in report.hint
        assert report.hostname


def test_probe_actor_is_named_cached_and_reused(probes: RayTestCluster) -> None:
    node_id = probes.head.node_id
    first = probe_node(node_id, timeout=FIRST_PROBE_TIMEOUT)
    name = probe_actor_name(node_id)
    assert name == f"raytui-nvml-probe-{node_id[:8]}"
    before = actor_id(node_id)
    second = probe_node(node_id, timeout=30)
    assert actor_id(node_id) == before
    assert second.sampled_at >= first.sampled_at
    assert second.node_id == node_id


def test_probe_accepts_a_unique_node_id_prefix(probes: RayTestCluster) -> None:
    node_id = probes.nodes[1].node_id
    report = probe_node(node_id[:12], timeout=FIRST_PROBE_TIMEOUT)
    assert report.node_id == node_id


def test_probe_unknown_node_fails_fast_with_raytui_error(probes: RayTestCluster) -> None:
    bogus = "f" * 56
    started = time.monotonic()
    with pytest.raises(RaytuiError, match=r"no Ray node ffffffff"):
        probe_node(bogus, timeout=10)
    assert time.monotonic() - started < 10


def test_probe_of_a_node_that_vanished_after_the_check_is_a_raytui_error(
    probes: RayTestCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A node that looked alive when checked but is gone by the time the actor is placed: Ray
    # refuses the hard affinity, and the call ends within its timeout with a clear error.
    gone = "e" * 56
    monkeypatch.setattr(probe, "_resolve_node", lambda node_id: gone)
    started = time.monotonic()
    with pytest.raises(RaytuiError, match=r"NVML probe on node eeeeeeee"):
        probe_node(gone, timeout=3)
    assert time.monotonic() - started < 3 + 5
    assert not any(node == gone for _, node in probe._actors)  # not cached for the next call


def test_probe_dead_node_gives_raytui_error(probes: RayTestCluster) -> None:
    node = probes.add_node(num_gpus=0)
    assert probe_node(node.node_id, timeout=FIRST_PROBE_TIMEOUT).node_id == node.node_id
    probes.kill_node(node)
    probes.wait_node_state(node.node_id, "DEAD", timeout=60)
    started = time.monotonic()
    with pytest.raises(RaytuiError, match=rf"node {node.node_id[:8]} is dead"):
        probe_node(node.node_id, timeout=10)
    assert time.monotonic() - started < 10


def test_probe_without_a_ray_connection_is_a_raytui_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ray

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with pytest.raises(RaytuiError, match="not connected"):
        probe_node("ab" * 28)


@pytest.mark.gpu
@pytest.mark.skipif(
    not HAS_NVIDIA_DRIVER,
    reason="needs an NVIDIA GPU and driver (no nvidia-smi, no /dev/nvidiactl)",
)
def test_probe_reads_the_real_gpus_of_the_head_node(probes: RayTestCluster) -> None:
    report = probe_node(probes.head.node_id, timeout=FIRST_PROBE_TIMEOUT)
    assert report.node_id == probes.head.node_id
    assert report.hint is None, report.hint
    assert len(report.devices) >= 1
    assert all(d.memory_total_mib for d in report.devices)
