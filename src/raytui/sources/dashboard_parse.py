"""Decoded dashboard answers turned into a `ClusterSnapshot` (pure: no I/O).

`build_snapshot` takes what `json.loads` gives for each endpoint, or the cut-down summary that
`dashboard_decode.decode_summary` gives (the same shape with only the fields read here). Every
field it reads may be missing or of another type in an older or newer Ray: it becomes None (or
the field's neutral value), never an exception.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from raytui.model.cluster import (
    ClusterSnapshot,
    Gpu,
    GpuProcess,
    Job,
    Node,
    NodeState,
    TaskCounts,
)
from raytui.sources.machine import is_loopback
from raytui.sources.values import ms_to_s as _ms_to_s
from raytui.sources.values import num as _num

__all__ = ["DashboardResponses", "build_snapshot", "ray_version", "result_count"]

_NIL_ACTOR = "f" * 32


@dataclass(frozen=True, slots=True)
class DashboardResponses:
    """Decoded JSON bodies of one poll; None where a request was not made or failed."""

    summary: Any = None  # GET /nodes?view=summary
    nodes: Any = None  # GET /api/v0/nodes?detail=true
    jobs: Any = None  # GET /api/jobs/
    version: Any = None  # GET /api/version
    running_tasks: Any = None  # GET /api/v0/tasks?...state=RUNNING
    actors: Any = None  # GET /api/v0/actors?...state=ALIVE
    task_counts: Mapping[str, int] | None = None  # state -> filtered count


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def _dict(obj: Any) -> dict[str, Any]:
    return obj if isinstance(obj, dict) else {}


def _list(obj: Any) -> list[Any]:
    return obj if isinstance(obj, list) else []


def _int(value: Any) -> int | None:
    if type(value) is int:
        return value
    n = _num(value)
    return int(n) if n is not None else None


def _str(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _state_result(doc: Any) -> dict[str, Any]:
    """The `data.result` object of a state API answer (`/api/v0/...`)."""
    return _dict(_get(_get(doc, "data"), "result"))


def result_count(doc: Any) -> int | None:
    """Matching entries of a filtered state API query.

    `total` is the count after the server-side filter, before truncation to `limit`;
    `num_filtered` is capped at the truncation limit (10,000), so prefer `total`.
    """
    result = _state_result(doc)
    for key in ("total", "num_filtered"):
        n = _int(result.get(key))
        if n is not None:
            return n
    rows = result.get("result")
    return len(rows) if isinstance(rows, list) else None


def _state_rows(doc: Any) -> list[Any]:
    return _list(_state_result(doc).get("result"))


def _parse_logical(text: Any) -> dict[str, tuple[float, float]]:
    """'0.0/2.0 CPU\\n1.0/2.0 GPU\\n0B/16GiB memory' -> {'CPU': (0.0, 2.0), 'GPU': (1.0, 2.0)}."""
    found: dict[str, tuple[float, float]] = {}
    if not isinstance(text, str):
        return found
    for line in text.splitlines():
        amount, _, name = line.strip().partition(" ")
        if name not in ("CPU", "GPU"):
            continue
        used, _, total = amount.partition("/")
        u, t = _num(used), _num(total)
        if u is not None and t is not None:
            found[name] = (u, t)
    return found


def _process_label(
    worker: dict[str, Any] | None,
    task_by_pid: Mapping[int, str],
    actor_class: Mapping[str, str],
    pid: int,
) -> str | None:
    if worker is None:
        return None
    if worker.get("workerType") == "DRIVER":
        return "driver"
    task = task_by_pid.get(pid)
    actor_id = worker.get("actorId")
    if isinstance(actor_id, str) and actor_id and actor_id != _NIL_ACTOR:
        cls = actor_class.get(actor_id) or f"{actor_id[:8]}"
        if task:
            method = task.rsplit(".", 1)[-1]
            return f"actor {cls}.{method}"
        return f"actor {cls}"
    if task:
        return f"task {task}"
    return "ray worker"


def _gpu(
    raw: Any,
    position: int,
    workers: Mapping[int, dict[str, Any]],
    task_by_pid: Mapping[int, str],
    actor_class: Mapping[str, str],
    alive: bool,
) -> Gpu:
    get = raw.get if type(raw) is dict else _dict(raw).get
    index = _int(get("index"))
    if index is None:
        index = position
    name = get("name")
    name = name if type(name) is str and name else _str(name) or "GPU"
    uuid = get("uuid")
    uuid = uuid if type(uuid) is str else _str(uuid) or ""
    total = _num(get("memoryTotal"))
    if not alive:  # the summary keeps a dead node's last reading: do not show it as current
        return Gpu(index, name, uuid, None, None, total)
    processes: list[GpuProcess] = []
    procs = get("processesPids")
    if procs and type(procs) is list:
        for p in procs:
            if type(p) is not dict:
                continue
            pid = _int(p.get("pid"))
            if pid is None:
                continue
            processes.append(
                GpuProcess(
                    pid,
                    _num(p.get("gpuMemoryUsage")),
                    _process_label(workers.get(pid), task_by_pid, actor_class, pid),
                )
            )
    power_mw = _num(get("powerMw"))
    return Gpu(
        index,
        name,
        uuid,
        _num(get("utilizationGpu")),
        _num(get("memoryUsed")),
        total,
        _num(get("temperatureC")),
        power_mw / 1000.0 if power_mw is not None else None,
        tuple(processes),
    )


def _memory(summary: dict[str, Any]) -> tuple[int | None, int | None]:
    """Host memory (used, total) bytes. `mem` is psutil's (total, available, percent, used)."""
    mem = _list(summary.get("mem"))
    total = _int(mem[0]) if len(mem) > 0 else None
    available = _int(mem[1]) if len(mem) > 1 else None
    used = _int(mem[3]) if len(mem) > 3 else None
    if used is None and total is not None and available is not None:
        used = total - available
    return used, total


def build_snapshot(
    address: str,
    responses: DashboardResponses,
    taken_at: float | None = None,
    *,
    own_driver: tuple[int, frozenset[str]] | None = None,
) -> ClusterSnapshot:
    """Turn one poll's decoded answers into a snapshot (pure; O(nodes + GPUs + workers)).

    `own_driver`: this process's pid and this machine's addresses; the driver job that matches
    both is this console's own (`Job.console`)."""
    taken_at = time.time() if taken_at is None else taken_at
    summary_data = _dict(_get(responses.summary, "data"))
    logical_raw = _dict(summary_data.get("nodeLogicalResources"))
    summaries: dict[str, dict[str, Any]] = {}
    for entry in _list(summary_data.get("summary")):
        node_id = _str(_get(_get(entry, "raylet"), "nodeId"))
        if node_id:
            summaries[node_id] = entry

    actor_class: dict[str, str] = {}
    for row in _state_rows(responses.actors):
        actor_id, cls = _str(_get(row, "actor_id")), _str(_get(row, "class_name"))
        if actor_id and cls:
            actor_class[actor_id] = cls
    tasks_by_node: dict[str, dict[int, str]] = {}
    for row in _state_rows(responses.running_tasks):
        pid, node_id = _int(_get(row, "worker_pid")), _str(_get(row, "node_id"))
        name = _str(_get(row, "name")) or _str(_get(row, "func_or_class_name"))
        if pid is not None and node_id and name:
            tasks_by_node.setdefault(node_id, {})[pid] = name

    gcs_rows = _state_rows(responses.nodes)
    gcs: dict[str, dict[str, Any]] = {}
    for row in gcs_rows:
        node_id = _str(_get(row, "node_id"))
        if node_id:
            gcs[node_id] = row
    # A node in the summary but not (yet) in the GCS answer is still shown, as the summary says.
    order = list(gcs) + [n for n in summaries if n not in gcs]

    nodes: list[Node] = []
    for node_id in order:
        g = gcs.get(node_id, {})
        s = summaries.get(node_id, {})
        raylet = _dict(s.get("raylet"))
        state_text = _str(g.get("state")) if g else _str(raylet.get("state"))
        alive = state_text != "DEAD"
        ip = _str(g.get("node_ip")) or _str(s.get("ip")) or _str(raylet.get("nodeManagerAddress"))
        hostname = (
            _str(s.get("hostname"))
            or _str(raylet.get("nodeManagerHostname"))
            or _str(g.get("node_name"))
            or ip
            or ""
        )
        is_head = g.get("is_head_node") if g else raylet.get("isHeadNode")
        resources = _dict(g.get("resources_total")) or _dict(raylet.get("resourcesTotal"))
        logical = _parse_logical(logical_raw.get(node_id)) if alive else {}
        cpus_used, cpus_total = logical.get("CPU", (0.0, _num(resources.get("CPU")) or 0.0))
        gpus_used, gpus_total = logical.get("GPU", (0.0, _num(resources.get("GPU")) or 0.0))
        workers: dict[int, dict[str, Any]] = {}
        if alive:
            for w in _list(raylet.get("coreWorkersStats")):
                pid = _int(_get(w, "pid"))
                if pid is not None:
                    workers[pid] = w
        task_by_pid = tasks_by_node.get(node_id, {})
        gpus = tuple(
            _gpu(raw, i, workers, task_by_pid, actor_class, alive)
            for i, raw in enumerate(_list(s.get("gpus")))
        )
        used, total = _memory(s)
        death_time = None
        if not alive:
            death_time = _ms_to_s(g.get("end_time_ms")) or _ms_to_s(raylet.get("endTimeMs"))
        nodes.append(
            Node(
                node_id=node_id,
                hostname=hostname,
                ip=ip or "",
                state=NodeState.ALIVE if alive else NodeState.DEAD,
                is_head=bool(is_head),
                cpu_percent=_num(s.get("cpu")) if alive else None,
                cpus_total=cpus_total,
                cpus_used=cpus_used,
                gpus_total=gpus_total,
                gpus_used=gpus_used,
                memory_used_bytes=used if alive else None,
                memory_total_bytes=total,
                gpus=gpus,
                death_time=death_time,
                state_message=_str(g.get("state_message")) or _str(raylet.get("stateMessage")),
            )
        )
    nodes.sort(key=lambda n: (not n.is_head, not n.alive, -(n.death_time or 0.0), n.ip, n.node_id))

    jobs = [_job(row, own_driver) for row in _list(responses.jobs)]
    jobs.sort(key=lambda j: -(j.start_time or 0.0))
    counts = responses.task_counts or {}
    return ClusterSnapshot(
        address=address,
        ray_version=_str(_get(responses.version, "ray_version")) or "",
        nodes=tuple(nodes),
        jobs=tuple(jobs),
        tasks=TaskCounts(
            by_state=tuple((k, int(v)) for k, v in counts.items()),
            actors_alive=result_count(responses.actors) if responses.actors is not None else None,
        ),
        taken_at=taken_at,
    )


def _job(raw: Any, own_driver: tuple[int, frozenset[str]] | None = None) -> Job:
    row = _dict(raw)
    submission_id = _str(row.get("submission_id"))
    return Job(
        job_id=_str(row.get("job_id")) or submission_id or "",
        submission_id=submission_id,
        status=_str(row.get("status")) or "UNKNOWN",
        entrypoint=_str(row.get("entrypoint")) or "",
        start_time=_ms_to_s(row.get("start_time")),
        end_time=_ms_to_s(row.get("end_time")),
        console=own_driver is not None and _is_own_driver(row, *own_driver),
    )


def _is_own_driver(row: dict[str, Any], pid: int, addresses: frozenset[str]) -> bool:
    """A driver job (not a submitted one) whose driver runs as `pid` on this machine."""
    if row.get("type") != "DRIVER" or row.get("submission_id"):
        return False
    driver = _dict(row.get("driver_info"))
    ip = _str(driver.get("node_ip_address")) or ""
    return _int(driver.get("pid")) == pid and (ip in addresses or is_loopback(ip))


def ray_version(doc: Any) -> str | None:
    """The `ray_version` of a `GET /api/version` answer."""
    return _str(_get(doc, "ray_version"))
