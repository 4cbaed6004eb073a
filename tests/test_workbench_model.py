"""Pure workbench model helpers: GPUs by worker PID (no Ray, no Textual)."""

from __future__ import annotations

from raytui.model.cluster import ClusterSnapshot, Gpu, GpuProcess, Node, NodeState
from raytui.model.workbench import gpu_ids_for, gpus_by_pid


def _gpu(index: int, *pids: int) -> Gpu:
    return Gpu(
        index=index,
        name="Fake GPU",
        uuid=f"GPU-{index}",
        utilization_pct=0.0,
        memory_used_mib=0.0,
        memory_total_mib=1024.0,
        processes=tuple(GpuProcess(pid=p, memory_mib=100.0) for p in pids),
    )


def _snapshot() -> ClusterSnapshot:
    a = Node(
        "aaaa1111", "a", "10.0.0.1", NodeState.ALIVE, True, gpus=(_gpu(0, 10, 11), _gpu(1, 11))
    )
    b = Node("bbbb2222", "b", "10.0.0.2", NodeState.ALIVE, False, gpus=(_gpu(0, 20),))
    return ClusterSnapshot(address="http://x", ray_version="2.60", nodes=(a, b))


def test_gpus_by_pid_maps_each_process_to_its_gpus_on_that_node_only() -> None:
    snap = _snapshot()
    assert gpus_by_pid(snap, "aaaa1111") == {10: (0,), 11: (0, 1)}
    assert gpus_by_pid(snap, "bbbb2222") == {20: (0,)}
    # Exact node IDs only: a prefix or an empty ID must not pick another node's processes.
    assert gpus_by_pid(snap, "aaaa") == {}
    assert gpus_by_pid(snap, "") == {}
    assert gpus_by_pid(snap, None) == {}
    assert gpus_by_pid(None, "aaaa1111") == {}


def test_gpu_ids_for_prefers_what_the_state_api_knew() -> None:
    snap = _snapshot()
    assert gpu_ids_for(snap, "aaaa1111", 11) == (0, 1)
    assert gpu_ids_for(snap, "aaaa1111", 11, known=(3,)) == (3,)
    assert gpu_ids_for(snap, "aaaa1111", None) == ()
    assert gpu_ids_for(snap, "bbbb2222", 11) == ()
