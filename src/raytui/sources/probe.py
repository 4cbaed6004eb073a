"""The NVML probe: raytui's NVML sampler run on a chosen Ray node, on demand.

A tiny actor (`num_cpus=0`, hard node affinity) per node, named `raytui-nvml-probe-<nodeid8>` in
namespace "raytui", non-detached (it goes away with the driver that made it), created on first use
and reused. Its class is pickled by reference, so the node's Ray workers must be able to import
raytui: installed there, or shipped by the driver with `ray.init(runtime_env={"py_modules":
[raytui]})` (Ray 2.60 accepts local py_modules only at the job level, not per actor). NVML
bindings there come from nvidia-ml-py or, if missing, Ray's vendored copy.

The caller has already connected (`ray.init`); these are blocking calls for a worker thread.
Failures (unknown or dead node, actor gone, no answer in time) raise `RaytuiError` with a message
for the user. A node without an NVIDIA driver is not a failure: its report has no devices and a
hint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
import time
from typing import Any

from raytui.errors import ClusterUnreachable, RaytuiError, describe
from raytui.model.nvml import NvmlReport

__all__ = ["PROBE_NAMESPACE", "close_probes", "probe_actor_name", "probe_node"]

PROBE_NAMESPACE = "raytui"
_PREFIX = "raytui-nvml-probe-"

_lock = threading.Lock()
_actors: dict[tuple[str, str], Any] = {}  # (job id of this driver, node id) -> actor handle


class NvmlProbe:
    """Runs inside the Ray actor on the probed node (see `probe_node`)."""

    def __init__(self) -> None:
        from raytui.sources.nvml import NvmlSampler

        self._sampler = NvmlSampler()

    def sample(self) -> NvmlReport:
        import ray

        report = self._sampler.sample()
        return dataclasses.replace(report, node_id=ray.get_runtime_context().get_node_id())


def probe_actor_name(node_id: str) -> str:
    """The named actor that probes this node."""
    return f"{_PREFIX}{node_id[:8]}"


def probe_node(node_id: str, timeout: float = 10.0) -> NvmlReport:
    """Sample NVML on the Ray node `node_id` (full hex ID or a unique prefix).

    Blocks for at most about `timeout` seconds (the first call on a node starts the actor).
    Raises `RaytuiError` when not connected, the node is unknown or dead, or no answer came in time.
    """
    import ray
    from ray.exceptions import GetTimeoutError, RayError

    if not ray.is_initialized():
        raise ClusterUnreachable("not connected to a Ray cluster: cannot probe a node")
    deadline = time.monotonic() + timeout
    node = _resolve_node(node_id)
    short = node[:8]
    actor = _actor_for(node)
    try:
        ref = actor.sample.remote()
        report = ray.get(ref, timeout=max(0.0, deadline - time.monotonic()))
    except GetTimeoutError:
        _forget(node, kill=True)
        raise RaytuiError(
            f"NVML probe on node {short} did not answer within {timeout:g} s"
            " (node unreachable, or too busy to start a worker)"
        ) from None
    except RayError as exc:
        _forget(node, kill=True)
        if "No module named 'raytui'" in str(exc):
            raise RaytuiError(
                f"NVML probe on node {short} failed: raytui is not importable by Ray workers there"
                " (install it in that node's Ray environment)"
            ) from exc
        raise RaytuiError(f"NVML probe on node {short} failed: {describe(exc, 'line')}") from exc
    if not isinstance(report, NvmlReport):
        raise RaytuiError(f"NVML probe on node {short} answered {type(report).__name__}")
    return report


def close_probes() -> None:
    """Kill the probe actors this process started or reused (e.g. before `ray.shutdown`)."""
    import ray

    with _lock:
        handles = list(_actors.values())
        _actors.clear()
    if not ray.is_initialized():
        return
    for handle in handles:
        with contextlib.suppress(Exception):  # the actor may be gone with its node already
            ray.kill(handle)


def _resolve_node(node_id: str) -> str:
    import ray

    wanted = node_id.strip().lower()
    if not wanted:
        raise RaytuiError("no node given to probe")
    try:
        nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    except Exception as exc:  # GCS gone: any error means the same to the user
        raise ClusterUnreachable(f"cannot list Ray nodes: {describe(exc, 'line')}") from exc
    matches = [n for n in nodes if str(n.get("NodeID", "")).lower().startswith(wanted)]
    exact = [n for n in matches if str(n.get("NodeID", "")).lower() == wanted]
    if exact:
        matches = exact
    if not matches:
        raise RaytuiError(f"no Ray node {node_id[:16]} in this cluster")
    if len({n["NodeID"] for n in matches}) > 1:
        raise RaytuiError(f"node ID prefix {node_id} is ambiguous: give more characters")
    node = matches[0]
    if not node.get("Alive", False):
        _forget(str(node["NodeID"]), kill=False)
        raise RaytuiError(f"Ray node {node['NodeID'][:8]} is dead: cannot probe its GPUs")
    return str(node["NodeID"])


def _actor_for(node_id: str) -> Any:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    key = (ray.get_runtime_context().get_job_id(), node_id)
    with _lock:
        handle = _actors.get(key)
        if handle is None:
            handle = (
                _remote_class()
                .options(
                    name=probe_actor_name(node_id),
                    namespace=PROBE_NAMESPACE,
                    get_if_exists=True,
                    lifetime=None,
                    num_cpus=0,
                    max_restarts=0,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
                )
                .remote()
            )
            _actors[key] = handle
        return handle


@functools.cache
def _remote_class() -> Any:
    import ray

    return ray.remote(NvmlProbe)


def _forget(node_id: str, *, kill: bool) -> None:
    import ray

    with _lock:
        gone = [k for k in _actors if k[1] == node_id]
        handles = [_actors.pop(k) for k in gone]
    if kill:
        for handle in handles:
            with contextlib.suppress(Exception):  # best effort: the node may be gone
                ray.kill(handle)
