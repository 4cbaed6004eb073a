"""Shared fixtures: one real multi-node Ray cluster per test session, isolated raytui dirs.

The session cluster (started with `ray start`, token auth on, fake GPUs reported by Ray's agents):
- head: 2 CPUs, 1 fake GPU ("Fake H100 80GB")
- gpu2: 1 CPU, 2 fake GPUs ("Fake A100 40GB"), logical GPUs for prompt tests
- cpu:  1 CPU, no GPU
Tests that remove nodes add their own node with `ray_cluster.add_node(...)` and kill only it.
"""

from __future__ import annotations

import faulthandler
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from raytui import debuglog
from tests.support.ray_cluster import RayTestCluster, fake_gpu, start_cluster

# A HOME of the session's own: Ray writes and reads ~/.ray/auth_token there (an embedded cluster
# makes one), so nothing a test starts reads the machine user's token or leaves one behind.
_REAL_HOME = os.environ.get("HOME")
_SESSION_HOME = tempfile.mkdtemp(prefix="rttesthome", dir="/tmp")
os.environ["HOME"] = _SESSION_HOME


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_SESSION_HOME, ignore_errors=True)
    if _REAL_HOME is not None:
        os.environ["HOME"] = _REAL_HOME


# Ray reads RAY_AUTH_MODE when it is first imported: set it before any test module imports ray,
# so this process can be a driver of the token-auth session cluster.
os.environ["RAY_AUTH_MODE"] = "token"

HEAD_GPUS = [fake_gpu("Fake H100 80GB", "GPU-fake-head-0", 37, 12_288, 81_559, 61, 215_000)]
GPU2_GPUS = [
    fake_gpu("Fake A100 40GB", "GPU-fake-gpu2-0", 91, 30_000, 40_960, 74, 310_000),
    fake_gpu("Fake A100 40GB", "GPU-fake-gpu2-1", 3, 512, 40_960, 35, 52_000),
]


@pytest.fixture(autouse=True)
def raytui_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own config/data/runtime dirs (short path: AF_UNIX limit)."""
    home = Path(tmp_path_factory.mktemp("h", numbered=True))
    monkeypatch.setenv("RAYTUI_HOME", str(home))
    return home


@pytest.fixture
def debug_log(tmp_path: Path) -> Iterator[Path]:
    """raytui's debug log, on for this test, at the path given."""
    path = tmp_path / "debug.log"
    debuglog.setup(path)
    try:
        yield path
    finally:
        debuglog.stop()


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayTestCluster]:
    cluster = start_cluster(HEAD_GPUS)
    try:
        cluster.add_node(num_gpus=2, fake_gpus=GPU2_GPUS)
        cluster.add_node(num_gpus=0)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def ray_driver(ray_cluster: RayTestCluster) -> Iterator[RayTestCluster]:
    """This test process connected to the session cluster as a Ray driver."""
    import ray

    os.environ["RAY_AUTH_TOKEN"] = ray_cluster.token
    faulthandler.enable(file=sys.__stderr__)
    ray.init(address=ray_cluster.gcs_address, log_to_driver=False, namespace="raytui-tests")
    try:
        yield ray_cluster
    finally:
        ray.shutdown()
