"""Dashboard answers (captured from Ray 2.60: tests/fixtures/ray-dashboard/) as snapshots."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from raytui.model.cluster import NodeState
from raytui.model.serialize import snapshot_to_dict
from raytui.sources.dashboard_parse import DashboardResponses, build_snapshot

FIXTURES = Path(__file__).parent / "fixtures" / "ray-dashboard"
HEAD = "9cd19fc41d37eb7bbddc2d53a0828b76e03a2ed72a7f7ba92382815e"
WORKER = "537fb05e5df6173c07e2a69b778eb19e2d0e2061b9fc627207622a2a"
DEAD = "3417a4a3970b6c49f70125f561d71c61a27c7ff95f0581b164760b60"
ACTOR = "eccb51c0ddb6ec7ffaf02c4801000000"
NIL_ACTOR = "f" * 32


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def _state_doc(rows: list[dict[str, Any]], total: int | None = None) -> dict[str, Any]:
    n = len(rows) if total is None else total
    return {
        "result": True,
        "msg": "",
        "data": {
            "result": {
                "total": n,
                "num_after_truncation": len(rows),
                "num_filtered": len(rows),
                "result": rows,
                "partial_failure_warning": "",
                "warnings": None,
            }
        },
    }


def _worker(pid: int, actor_id: str = NIL_ACTOR, worker_type: str = "WORKER") -> dict[str, Any]:
    # Shape of a real coreWorkersStats entry (Ray 2.60), trimmed.
    return {
        "ipAddress": "192.0.2.2",
        "actorId": actor_id,
        "jobId": "01000000",
        "pid": pid,
        "language": "PYTHON",
        "workerType": worker_type,
        "numRunningTasks": "1",
    }


def _gpu(index: int, name: str, util: int, used: int, total: int, procs: list[Any]) -> Any:
    # Shape of a real summary GPU entry (Ray 2.60 agent, captured with the fake-GPU hook).
    return {
        "index": index,
        "name": name,
        "uuid": f"GPU-{index}-{name.replace(' ', '')}",
        "utilizationGpu": util,
        "memoryUsed": used,
        "memoryTotal": total,
        "processesPids": procs,
        "powerMw": 310000,
        "temperatureC": 74,
    }


def cluster_responses() -> DashboardResponses:
    """Three nodes: the captured head (no GPU), a worker with 2 GPUs, a dead node with 1."""
    summary = load("nodes_view_summary.json")
    head = summary["data"]["summary"][0]
    worker = copy.deepcopy(head)
    worker.update(hostname="gpu2", ip="192.0.2.3", cpu=12.5)
    worker["raylet"] = dict(head["raylet"], nodeId=WORKER, isHeadNode=False)
    worker["raylet"]["coreWorkersStats"] = [
        _worker(7506, ACTOR),
        _worker(7600),
        _worker(7601),
        _worker(7700, worker_type="DRIVER"),
    ]
    worker["gpus"] = [
        _gpu(
            0,
            "Fake A100 40GB",
            91,
            30000,
            40960,
            [
                {"pid": 7506, "gpuMemoryUsage": 1234, "gpuUtilization": None},
                {"pid": 7600, "gpuMemoryUsage": 100, "gpuUtilization": None},
                {"pid": 7601, "gpuMemoryUsage": 50, "gpuUtilization": None},
                {"pid": 7700, "gpuMemoryUsage": 10, "gpuUtilization": None},
                {"pid": 999, "gpuMemoryUsage": 5, "gpuUtilization": None},
            ],
        ),
        _gpu(1, "Fake A100 40GB", 3, 512, 40960, []),
    ]
    dead = copy.deepcopy(worker)
    dead.update(hostname="gone", ip="192.0.2.4")
    dead["raylet"] = dict(worker["raylet"], nodeId=DEAD)
    dead["gpus"] = [_gpu(0, "Fake L4", 55, 1000, 23034, [{"pid": 1, "gpuMemoryUsage": 9}])]
    summary["data"]["summary"] = [head, worker, dead]
    summary["data"]["nodeLogicalResources"] = {
        HEAD: "0.0/2.0 CPU\n0B/16.04GiB memory\n0B/6.88GiB object_store_memory",
        WORKER: "1.0/1.0 CPU\n1.0/2.0 GPU\n0B/16.02GiB memory\n0B/6.87GiB object_store_memory",
    }

    nodes = load("api_v0_nodes.json")
    head_row = nodes["data"]["result"]["result"][0]
    worker_row = dict(
        head_row,
        node_id=WORKER,
        node_ip="192.0.2.3",
        is_head_node=False,
        resources_total={"CPU": 1.0, "GPU": 2.0},
    )
    dead_row = dict(
        worker_row,
        node_id=DEAD,
        node_ip="192.0.2.4",
        state="DEAD",
        state_message="Unexpected termination: health check failed",
        start_time_ms=1795314304585,
        end_time_ms=1795314307598,
        resources_total={"CPU": 1.0, "GPU": 1.0},
    )
    # The GCS answer lists the dead node first: order must not depend on it.
    nodes["data"]["result"]["result"] = [dead_row, worker_row, head_row]

    running = _state_doc(
        [
            {
                "task_id": "c2668a65",
                "name": "Engine.busy",
                "state": "RUNNING",
                "actor_id": ACTOR,
                "type": "ACTOR_TASK",
                "func_or_class_name": "Engine.busy",
                "node_id": WORKER,
                "worker_pid": 7506,
            },
            {
                "task_id": "32d950ec",
                "name": "sleeper",
                "state": "RUNNING",
                "actor_id": None,
                "type": "NORMAL_TASK",
                "func_or_class_name": "sleeper",
                "node_id": WORKER,
                "worker_pid": 7600,
            },
        ]
    )
    actors = _state_doc(
        [{"actor_id": ACTOR, "class_name": "Engine", "state": "ALIVE", "pid": 7506}]
    )
    return DashboardResponses(
        summary=summary,
        nodes=nodes,
        jobs=load("api_jobs.json"),
        version=load("api_version.json"),
        running_tasks=running,
        actors=actors,
        task_counts={"RUNNING": 2, "FAILED": 4},
    )


def test_captured_single_node_cluster() -> None:
    snap = build_snapshot(
        "http://x:8265",
        DashboardResponses(
            summary=load("nodes_view_summary.json"),
            nodes=load("api_v0_nodes.json"),
            jobs=load("api_jobs.json"),
            version=load("api_version.json"),
        ),
    )
    assert snap.ray_version == "2.60.0"
    (node,) = snap.nodes
    assert node.node_id == HEAD and node.is_head and node.state is NodeState.ALIVE
    assert (node.hostname, node.ip) == ("vm", "192.0.2.2")
    assert node.cpu_percent == 6.5
    assert (node.cpus_used, node.cpus_total) == (0.0, 2.0)
    assert (node.gpus_used, node.gpus_total) == (0.0, 0.0)
    assert node.memory_total_bytes == 25276502016
    assert node.memory_used_bytes == 943779840
    assert node.gpus == ()
    (job,) = snap.jobs
    assert (job.job_id, job.status, job.end_time) == ("01000000", "RUNNING", None)
    assert job.entrypoint.startswith("python host_cluster.py")
    assert job.start_time == pytest.approx(1795312295.039)
    assert job.duration(1795312305.039) == pytest.approx(10.0)


def test_gpus_processes_and_logical_resources() -> None:
    snap = build_snapshot("http://x:8265", cluster_responses())
    assert [n.node_id for n in snap.nodes] == [HEAD, WORKER, DEAD]  # head, alive, dead
    worker = snap.node(WORKER)
    assert worker is not None
    assert (worker.hostname, worker.ip, worker.cpu_percent) == ("gpu2", "192.0.2.3", 12.5)
    assert (worker.cpus_used, worker.cpus_total, worker.gpus_used, worker.gpus_total) == (
        1.0,
        1.0,
        1.0,
        2.0,
    )
    gpu0, gpu1 = worker.gpus
    assert gpu0.name == "Fake A100 40GB"
    assert gpu0.utilization_pct == 91
    assert (gpu0.memory_used_mib, gpu0.memory_total_mib) == (30000, 40960)
    assert gpu0.temperature_c == 74 and gpu0.power_w == 310.0
    assert gpu1.processes == ()
    assert snap.gpus == (1.0, 2.0)
    assert snap.cpus == (1.0, 3.0)


def test_gpu_processes_are_labelled_with_ray_workers() -> None:
    snap = build_snapshot("http://x:8265", cluster_responses())
    worker = snap.node(WORKER)
    assert worker is not None
    labels = {p.pid: p.label for p in worker.gpus[0].processes}
    assert labels == {
        7506: "actor Engine.busy",  # actor, running a method
        7600: "task sleeper",  # plain task
        7601: "ray worker",  # idle worker
        7700: "driver",
        999: None,  # not one of Ray's processes
    }
    assert worker.gpus[0].processes[0].memory_mib == 1234


def test_actor_label_without_running_task_and_unknown_class() -> None:
    r = cluster_responses()
    no_tasks = DashboardResponses(**{**_fields(r), "running_tasks": None, "actors": None})
    worker = build_snapshot("u", no_tasks).node(WORKER)
    assert worker is not None
    labels = {p.pid: p.label for p in worker.gpus[0].processes}
    assert labels[7506] == f"actor {ACTOR[:8]}"
    assert labels[7600] == "ray worker"
    with_actors = DashboardResponses(**{**_fields(r), "running_tasks": None})
    worker = build_snapshot("u", with_actors).node(WORKER)
    assert worker is not None
    assert worker.gpus[0].processes[0].label == "actor Engine"


def _fields(r: DashboardResponses) -> dict[str, Any]:
    return {k: getattr(r, k) for k in DashboardResponses.__slots__}


def test_dead_node_state_comes_from_the_gcs_with_death_time() -> None:
    snap = build_snapshot("http://x:8265", cluster_responses())
    dead = snap.node(DEAD)
    assert dead is not None
    # The summary still carries the dead node (and its last GPU reading): the GCS wins.
    assert dead.state is NodeState.DEAD and not dead.alive
    assert dead.death_time == pytest.approx(1795314307.598)
    assert dead.state_message == "Unexpected termination: health check failed"
    (gpu,) = dead.gpus
    assert gpu.name == "Fake L4" and gpu.memory_total_mib == 23034
    assert gpu.utilization_pct is None and gpu.memory_used_mib is None and gpu.processes == ()
    assert dead.memory_used_bytes is None and dead.cpu_percent is None
    assert (snap.nodes_alive, snap.nodes_dead) == (2, 1)


def test_task_counts_and_actors() -> None:
    snap = build_snapshot("http://x:8265", cluster_responses())
    assert snap.tasks.get("RUNNING") == 2
    assert snap.tasks.get("FAILED") == 4
    assert snap.tasks.actors_alive == 1


def test_missing_fields_become_none_not_errors() -> None:
    summary = {
        "data": {
            "summary": [
                {"raylet": {"nodeId": WORKER}, "gpus": [{}, {"index": "x", "name": 5}, None]},
                {"raylet": None},
                "junk",
                {"raylet": {"nodeId": HEAD, "coreWorkersStats": [{"pid": None}, 3]}},
            ],
            "nodeLogicalResources": {WORKER: "garbage\n1/x GPU\n"},
        }
    }
    nodes = _state_doc([{"node_id": WORKER}, {"state": "DEAD"}, 7])
    snap = build_snapshot(
        "u",
        DashboardResponses(
            summary=summary,
            nodes=nodes,
            jobs=[{}, None, {"job_id": 3, "start_time": "x"}],
            version={},
            running_tasks={"data": None},
            actors=[],
        ),
    )
    worker = snap.node(WORKER)
    assert worker is not None and worker.alive
    assert worker.hostname == "" and worker.ip == ""
    assert worker.cpu_percent is None and worker.memory_total_bytes is None
    assert [g.index for g in worker.gpus] == [0, 1, 2]
    assert worker.gpus[0].name == "GPU" and worker.gpus[0].utilization_pct is None
    assert snap.node(HEAD) is not None
    assert snap.ray_version == ""
    assert [j.job_id for j in snap.jobs] == ["", "", "3"]
    assert all(j.start_time is None for j in snap.jobs)
    assert snap.tasks.actors_alive is None
    json.dumps(snapshot_to_dict(snap))


@pytest.mark.parametrize("doc", [None, {}, [], "x", {"data": {"summary": None}}])
def test_empty_or_wrong_shaped_answers(doc: Any) -> None:
    snap = build_snapshot("u", DashboardResponses(summary=doc, nodes=doc, jobs=doc))
    assert snap.nodes == () and snap.jobs == ()


def test_snapshot_to_dict_is_json() -> None:
    snap = build_snapshot("http://x:8265", cluster_responses())
    doc = json.loads(json.dumps(snapshot_to_dict(snap)))
    assert doc["totals"]["nodes_alive"] == 2 and doc["totals"]["nodes_dead"] == 1
    assert doc["totals"]["gpu_devices"] == 2
    node = next(n for n in doc["nodes"] if n["node_id"] == WORKER)
    assert node["gpus"][0]["processes"][0] == {
        "pid": 7506,
        "memory_mib": 1234.0,
        "label": "actor Engine.busy",
    }
    assert doc["tasks"]["by_state"] == {"RUNNING": 2, "FAILED": 4}
    assert doc["jobs"][0]["duration_s"] is not None


def test_big_summary_decoded_node_by_node_gives_the_same_snapshot() -> None:
    # A big summary is decoded node by node, keeping only what build_snapshot reads;
    # the snapshot must be the one a plain json.loads of the whole answer gives.
    from raytui.sources.dashboard_decode import decode_summary

    summary = load("nodes_view_summary.json")
    entries = summary["data"]["summary"]
    big = []
    for i in range(max(2, 1_200_000 // len(json.dumps(entries)) + 1)):
        for entry in entries:
            e = copy.deepcopy(entry)
            e["raylet"]["nodeId"] = f"{i:04d}{e['raylet']['nodeId'][4:]}"
            big.append(e)
    summary["data"]["summary"] = big
    body = json.dumps(summary, indent=1).encode()
    assert len(body) > 1_000_000
    nodes = load("api_v0_nodes.json")
    whole = build_snapshot("u", DashboardResponses(summary=json.loads(body), nodes=nodes), 1.0)
    slim = build_snapshot("u", DashboardResponses(summary=decode_summary(body), nodes=nodes), 1.0)
    assert slim == whole
    assert len(slim.nodes) >= len(big)
