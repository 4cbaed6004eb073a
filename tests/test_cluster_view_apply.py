"""What the poll worker prepares for the UI thread equals what the UI computed before: the GPU
table's rows (now made when read) and the GPU history's samples; snapshots' nodes and GPUs are
never tracked by the cycle collector. On the captured dashboard answers, the TUI's fixtures and
a synthetic 4,096 x 8 snapshot."""

from __future__ import annotations

import gc
from collections.abc import Sequence

import pytest

from raytui.model.cluster import ClusterSnapshot, Gpu, GpuProcess, Node, NodeState
from raytui.model.gpu_history import GpuHistory, gpu_key, gpu_sample
from raytui.sources.dashboard_parse import build_snapshot
from raytui.tui.widgets.gpus import GpuRow, gpu_rows
from tests.support.tui_fakes import healthy, sparkline_series, with_dead_gpu2
from tests.test_dashboard_parse import cluster_responses


def synthetic(nodes: int = 4096, gpus: int = 8, step: int = 0) -> ClusterSnapshot:
    """`nodes` x `gpus`, every 97th node dead, hostnames repeating every 1,000 nodes."""
    out = []
    for i in range(nodes):
        dead = i % 97 == 5
        out.append(
            Node(
                node_id=f"{i:056x}",
                hostname=f"gpu-node-{i % 1000:04d}",
                ip=f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
                state=NodeState.DEAD if dead else NodeState.ALIVE,
                is_head=i == 0,
                gpus=tuple(
                    Gpu(
                        index=g,
                        name="Fake H100",
                        uuid=f"GPU-{i}-{g}" if g % 3 else "",
                        utilization_pct=None if (i + g) % 11 == 0 else float((i + g + step) % 101),
                        memory_used_mib=float((i * g + step) % 81_559),
                        memory_total_mib=81_559.0 if g != 7 else 0.0,
                        processes=(GpuProcess(1000 + g, 10.0, "ray worker"),) if g % 2 else (),
                    )
                    for g in range(gpus)
                ),
            )
        )
    return ClusterSnapshot("http://bench:8265", "2.60.0", tuple(out), taken_at=1000.0 + step)


SNAPSHOTS = {
    "captured answers": lambda: build_snapshot("http://x:8265", cluster_responses()),
    "healthy": healthy,
    "a dead node": with_dead_gpu2,
    "4,096 x 8": synthetic,
}


def eager_gpu_rows(nodes: Sequence[Node]) -> tuple[list[str], list[GpuRow]]:
    """The GPU table's rows as the widget built them before (one key and tuple per GPU)."""
    keys: list[str] = []
    rows: list[GpuRow] = []
    for node in nodes:
        for gpu in node.gpus:
            keys.append(f"{node.node_id}/{gpu.index}")
            rows.append((node, gpu))
    return keys, rows


@pytest.mark.parametrize("name", SNAPSHOTS)
def test_gpu_rows_made_when_read_equal_the_eager_rows(name: str) -> None:
    nodes = list(SNAPSHOTS[name]().nodes)
    for shown in (nodes, nodes[1::3], []):  # all, as filtered by `/`, none
        keys, rows = gpu_rows(shown)
        want_keys, want_rows = eager_gpu_rows(shown)
        assert list(keys) == want_keys and list(rows) == want_rows
        assert len(keys) == len(rows) == len(want_rows)
        assert keys[2:9] == want_keys[2:9] and rows[-3:] == want_rows[-3:]
        for i in range(0, len(want_keys), max(1, len(want_keys) // 50)):
            assert keys.index(want_keys[i]) == i and want_keys[i] in keys
        if want_rows:
            assert rows[-1] == want_rows[-1] and keys[-1] == want_keys[-1]
        for missing in ("nope/0", f"{nodes[0].node_id}/99", "", "/"):
            assert missing not in keys
            with pytest.raises(ValueError):
                keys.index(missing)
        with pytest.raises(IndexError):
            rows[len(want_rows)]


def _read_all(history: GpuHistory, snapshots: Sequence[ClusterSnapshot]) -> list[object]:
    keys = {gpu_key(n.node_id, g.uuid, g.index) for s in snapshots for n in s.nodes for g in n.gpus}
    out: list[object] = [history.samples, len(history)]
    for key in sorted(keys)[:: max(1, len(keys) // 300)]:
        util, mem = history.utilization(key), history.memory(key)
        out.append((key, history.timeline(key)))
        out.append((util and util.values(), mem and mem.values(), util and util.values(5)))
    return out


@pytest.mark.parametrize("series", ["sparklines", "4,096 x 8", "nodes come and go"])
def test_history_samples_made_in_the_worker_record_what_the_snapshots_would(series: str) -> None:
    if series == "sparklines":
        snapshots = sparkline_series(40)
    elif series == "4,096 x 8":
        snapshots = [synthetic(step=i) for i in range(3)]
    else:
        snapshots = [healthy(), with_dead_gpu2(), synthetic(64, step=1), healthy()]
        snapshots = [
            ClusterSnapshot(s.address, "", s.nodes, taken_at=i) for i, s in enumerate(snapshots)
        ]
    on_ui, from_worker = GpuHistory(refresh=1.0), GpuHistory(refresh=1.0)
    previous = None
    for snap in snapshots:
        on_ui.record(snap)
        previous = gpu_sample(snap, previous)
        from_worker.record(snap, previous)
    assert _read_all(from_worker, snapshots) == _read_all(on_ui, snapshots)


def test_a_sample_reuses_the_previous_layout_when_the_nodes_did_not_change() -> None:
    first = gpu_sample(synthetic(256, step=1))
    same_nodes = gpu_sample(synthetic(256, step=2), first)
    assert same_nodes.layout is first.layout and same_nodes.index is first.index
    assert same_nodes.util != first.util  # the numbers are its own
    fewer = gpu_sample(synthetic(255, step=3), same_nodes)
    assert fewer.layout != first.layout and len(fewer.index) < len(first.index)


def test_snapshot_nodes_and_gpus_are_not_tracked_by_the_cycle_collector() -> None:
    """So no collection walks a snapshot, whatever the cluster's size; its tuples are untracked
    by the first young collection (the poll worker runs one after each fetch)."""
    snap = build_snapshot("http://x:8265", cluster_responses())
    gpus = [g for n in snap.nodes for g in n.gpus]
    processes = [p for g in gpus for p in g.processes]
    assert gpus and processes
    assert not any(gc.is_tracked(o) for o in (*snap.nodes, *gpus, *processes))
    gc.collect(0)
    tuples = [snap.nodes, *(n.gpus for n in snap.nodes), *(g.processes for g in gpus)]
    assert not any(gc.is_tracked(t) for t in tuples)
