"""Test-only hook: make Ray's dashboard agent report synthetic ("fake") GPUs.

Put this directory on PYTHONPATH of a Ray node and set RAYTUI_TEST_FAKE_GPUS to a JSON list of
GPUs (name, uuid, utilization, memory_used, memory_total in MiB, temperature, power_mw). Only the
agent process is affected: the patch is applied when it imports Ray's `gpu_providers` module.

Processes "on" a fake GPU are the live PIDs named by files
`$RAYTUI_TEST_FAKE_GPU_PROCS/<node_id>/<gpu_index>/<pid>` (content: memory MiB), which a test
workload writes for itself, the way a real process shows up in NVML once it opens the device.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import sys
from typing import Any

_TARGET = "ray.dashboard.modules.reporter.gpu_providers"


def _node_id() -> str:
    argv = sys.argv
    for i, arg in enumerate(argv):
        if arg.startswith("--node-id="):
            return arg.split("=", 1)[1]
        if arg == "--node-id" and i + 1 < len(argv):
            return argv[i + 1]
    return ""


def _processes(index: int) -> dict[int, dict[str, Any]]:
    root = os.environ.get("RAYTUI_TEST_FAKE_GPU_PROCS")
    if not root:
        return {}
    folder = os.path.join(root, _node_id(), str(index))
    found: dict[int, dict[str, Any]] = {}
    try:
        names = os.listdir(folder)
    except OSError:
        return found
    for name in names:
        if not name.isdigit() or not os.path.exists(f"/proc/{name}"):
            continue
        try:
            with open(os.path.join(folder, name)) as fh:
                memory = int(fh.read().strip() or 0)
        except (OSError, ValueError):
            memory = 0
        found[int(name)] = {
            "pid": int(name),
            "gpu_memory_usage": memory,
            "gpu_utilization": None,
        }
    return found


def _fake_usage(self: Any) -> list[dict[str, Any]]:
    specs = json.loads(os.environ.get("RAYTUI_TEST_FAKE_GPUS", "[]"))
    gpus = []
    for index, spec in enumerate(specs):
        gpus.append(
            {
                "index": index,
                "name": spec.get("name", "Fake GPU"),
                "uuid": spec.get("uuid", f"GPU-fake-{index}"),
                "utilization_gpu": spec.get("utilization"),
                "memory_used": spec.get("memory_used", 0),
                "memory_total": spec.get("memory_total", 0),
                "processes_pids": _processes(index),
                "power_mw": spec.get("power_mw"),
                "temperature_c": spec.get("temperature"),
            }
        )
    return gpus


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader) -> None:
        self._inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return self._inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._inner.exec_module(module)
        module.GpuMetricProvider.get_gpu_usage = _fake_usage


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != _TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _PatchingLoader(spec.loader)
        return spec


if "RAYTUI_TEST_FAKE_GPUS" in os.environ:
    sys.meta_path.insert(0, _Finder())
