"""Tasks, actors and workers over the dashboard's HTTP address (Ray's state API, `/api/v0/…`).

Works on a console attached by dashboard URL only: no Ray driver in this process.

- The task summary is `GET /api/v0/tasks/summarize` (what `ray summary tasks` shows): counts per
  function and state computed by the dashboard. The full task list is never fetched.
- Lists send their filters to the dashboard (`filter_keys`/`filter_predicates`/`filter_values`),
  which applies them before the limit; a page holds the first `limit` rows and `matched`, the
  number that matched (Ray's `num_filtered`), for "N more". Ray's `list_tasks()` SDK drops that
  count, which is why these lists are read over HTTP with the console's own dashboard client.
- GPU IDs: the state API has none; the node's worker stats (`/nodes/<id>`, `coreWorkersStats[]
  .usedResources.GPU.resourceSlots`) say which GPU slots each live worker holds.
- Killing an actor: the dashboard has no kill endpoint, so a two-line job (Ray's job API, run on
  the head) looks the actor up by name and calls `ray.kill`. Unnamed actors can only be killed
  from a Ray driver that holds their handle; that refusal is one clear line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import shlex
import time
from collections.abc import Mapping
from typing import Any

from raytui.errors import RaytuiError, UsageError
from raytui.model.workbench import (
    ActorDetail,
    ActorFilter,
    ActorRow,
    NodeWorkload,
    Page,
    TaskDetail,
    TaskFilter,
    TaskGroup,
    TaskRow,
    TaskSummary,
    WorkerRow,
    pairs,
)
from raytui.sources.dashboard_client import DashboardClient
from raytui.sources.values import ms_to_s as _ms
from raytui.sources.values import text as _str
from raytui.sources.values import whole as _int

__all__ = ["READONLY_REFUSAL", "WorkloadClient", "refuse_if_readonly"]

LIST_LIMIT = 200
"""Rows per list page; the rest is "N more"."""

READONLY_REFUSAL = "refused: raytui runs with --readonly"

_HEX = re.compile(r"^[0-9a-f]+$")
_NIL_ACTOR = "f" * 32
_ALL_TASKS = TaskFilter()
_ALL_ACTORS = ActorFilter()


def refuse_if_readonly(readonly: bool, what: str) -> None:
    """Raise UsageError when the console is read-only (the caller passes its flag)."""
    if readonly:
        raise UsageError(f"{what}: {READONLY_REFUSAL}")


class WorkloadClient:
    """Blocking client; call from a worker thread, never from the UI loop."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float = 10.0,
        *,
        dashboard: DashboardClient | None = None,
    ) -> None:
        self._dash = dashboard or DashboardClient(url, token, timeout)
        self._own = dashboard is None
        self.url = self._dash.url
        self._token = token

    def close(self) -> None:
        if self._own:
            self._dash.close()

    def __enter__(self) -> WorkloadClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- tasks -------------------------------------------------------------------------------

    def task_summary(self, where: TaskFilter = _ALL_TASKS) -> TaskSummary:
        """Counts per function name and state (`ray summary tasks`), computed by the dashboard
        over the tasks that match `where` (filtered there, like the lists)."""
        taken_at = time.time()
        params: list[tuple[str, str]] = [("summary_by", "func_name")]
        params += _filter_params(_task_filters(where))
        data = _result(self._dash.get_json("/api/v0/tasks/summarize", params))  # type: ignore[arg-type]
        summary = task_summary_from(data.get("result"), taken_at)
        return dataclasses.replace(
            summary,
            source_total=_int(data.get("total")) or 0,
            matched=_matched(data),
            warnings=tuple(str(w) for w in data.get("warnings") or () if w),
        )

    def tasks(self, where: TaskFilter = _ALL_TASKS, limit: int = LIST_LIMIT) -> Page[TaskRow]:
        data = self._list("tasks", _task_filters(where), limit, detail=False)
        return Page(
            tuple(task_row_from(r) for r in _rows(data)),
            _matched(data),
            _truncated(data),
        )

    def task(self, task_id: str) -> TaskDetail:
        """The latest attempt of one task, with its traceback when it failed."""
        _check_hex(task_id, "task ID")
        data = self._list("tasks", [("task_id", task_id)], 100, detail=True)
        rows = _rows(data)
        if not rows:
            raise RaytuiError(f"no task {task_id} on the cluster (finished tasks age out)")
        raw = max(rows, key=lambda r: _int(r.get("attempt_number")) or 0)
        row = task_row_from(raw)
        gpu_ids: tuple[int, ...] = ()
        if row.node_id and row.worker_pid is not None and row.state.startswith("RUNNING"):
            gpu_ids = self._gpu_slots(row.node_id).get(row.worker_pid, ())
        return TaskDetail(
            row=row,
            error_message=_str(raw.get("error_message")),
            required_resources=pairs(raw.get("required_resources")),
            gpu_ids=gpu_ids,
            parent_task_id=_str(raw.get("parent_task_id")),
            placement_group_id=_str(raw.get("placement_group_id")),
            call_site=_str(raw.get("call_site")),
        )

    # -- actors ------------------------------------------------------------------------------

    def actors(self, where: ActorFilter = _ALL_ACTORS, limit: int = LIST_LIMIT) -> Page[ActorRow]:
        filters = [
            ("state", where.state),
            ("job_id", where.job_id),
            ("node_id", where.node_id),
            ("class_name", where.class_name),
            ("name", where.name),
        ]
        data = self._list("actors", filters, limit, detail=True)
        raw = _rows(data)
        slots = self._slots_for(raw, "node_id", "pid", alive=lambda r: r.get("state") == "ALIVE")
        return Page(
            tuple(actor_row_from(r, slots) for r in raw),
            _matched(data),
            _truncated(data),
        )

    def actor(self, actor_id: str) -> ActorDetail:
        _check_hex(actor_id, "actor ID")
        data = self._list("actors", [("actor_id", actor_id)], 1, detail=True)
        rows = _rows(data)
        if not rows:
            raise RaytuiError(f"no actor {actor_id} on the cluster")
        raw = rows[0]
        slots = self._slots_for(rows, "node_id", "pid", alive=lambda r: r.get("state") == "ALIVE")
        return ActorDetail(
            row=actor_row_from(raw, slots),
            death_cause=death_cause_text(raw.get("death_cause")),
            required_resources=pairs(raw.get("required_resources")),
            namespace=_str(raw.get("ray_namespace")),
            detached=raw.get("is_detached") is True,
            placement_group_id=_str(raw.get("placement_group_id")),
            call_site=_str(raw.get("call_site")),
        )

    def kill_actor(
        self,
        actor_id: str,
        *,
        readonly: bool = False,
        python: str = "python",
        timeout: float = 90.0,
    ) -> None:
        """Kill an actor (no restart) through a short job on the head; returns once it ran.

        `python`: the interpreter with Ray on the head (the job's entrypoint). Only named actors:
        a process that is not their owner finds an actor only by name."""
        refuse_if_readonly(readonly, f"kill actor {actor_id[:16]}")
        detail = self.actor(actor_id)
        row = detail.row
        if row.dead:
            return
        if not row.name:
            raise RaytuiError(
                f"actor {actor_id[:16]} has no name: Ray kills an unnamed actor only from the "
                "driver that holds its handle (ray.kill)"
            )
        from raytui.model.workbench import JobSubmission
        from raytui.sources.jobs import JobsClient

        code = (
            "import sys, ray; ray.init(log_to_driver=False); "
            "ray.kill(ray.get_actor(sys.argv[1], namespace=sys.argv[2] or None), no_restart=True)"
        )
        entrypoint = shlex.join([python, "-c", code, row.name, detail.namespace or ""])
        jobs = JobsClient(self.url, self._token, self._dash.timeout)
        key = jobs.submit(JobSubmission(entrypoint=entrypoint))
        try:
            info = jobs.wait(key, timeout)
            if info.status != "SUCCEEDED":
                last = [ln for ln in jobs.logs(key).splitlines() if ln.strip()]
                why = last[-1].strip() if last else info.message.splitlines()[0:1]
                raise RaytuiError(f"could not kill actor {actor_id[:16]}: {why}")
        finally:
            with contextlib.suppress(RaytuiError):
                jobs.delete(key)

    # -- workers and nodes -------------------------------------------------------------------

    def workers(self, node_id: str | None = None, limit: int = LIST_LIMIT) -> Page[WorkerRow]:
        """Alive workers (not drivers), with the GPU slots each holds."""
        filters = [("is_alive", "true"), ("node_id", node_id)]
        data = self._list("workers", filters, limit, detail=False)
        raw = _rows(data)
        slots = self._slots_for(raw, "node_id", "pid", alive=lambda r: True)
        rows = tuple(worker_row_from(r, slots) for r in raw)
        return Page(rows, _matched(data), _truncated(data))

    def node_workload(self, node_id: str, limit: int = LIST_LIMIT) -> NodeWorkload:
        """What runs on one node: alive actors, running tasks, alive workers, with GPU slots."""
        taken_at = time.time()
        slots_by_node = {node_id: self._gpu_slots(node_id)}
        actors = self._list("actors", [("state", "ALIVE"), ("node_id", node_id)], limit, True)
        tasks = self._list("tasks", [("state", "RUNNING"), ("node_id", node_id)], limit, False)
        workers = self._list("workers", [("is_alive", "true"), ("node_id", node_id)], limit, False)
        return NodeWorkload(
            node_id=node_id,
            actors=Page(
                tuple(actor_row_from(r, slots_by_node) for r in _rows(actors)),
                _matched(actors),
                _truncated(actors),
            ),
            running_tasks=Page(
                tuple(task_row_from(r) for r in _rows(tasks)), _matched(tasks), _truncated(tasks)
            ),
            workers=tuple(worker_row_from(r, slots_by_node) for r in _rows(workers)),
            taken_at=taken_at,
        )

    # -- internals ---------------------------------------------------------------------------

    def _list(
        self,
        resource: str,
        filters: list[tuple[str, str | None]],
        limit: int,
        detail: bool,
    ) -> Mapping[str, Any]:
        params: list[tuple[str, str]] = [
            ("limit", str(limit)),
            ("detail", "true" if detail else "false"),
            ("timeout", str(max(1, int(self._dash.timeout)))),
        ]
        params += _filter_params(filters)
        return _result(self._dash.get_json(f"/api/v0/{resource}", params))  # type: ignore[arg-type]

    def _gpu_slots(self, node_id: str) -> dict[int, tuple[int, ...]]:
        """PID -> GPU slots held, for the live workers of one node."""
        data = self._dash.get_json(f"/nodes/{node_id}")
        detail = _dict(_dict(data.get("data") if isinstance(data, dict) else None).get("detail"))
        return gpu_slots_from(_dict(detail.get("raylet")).get("coreWorkersStats"))

    def _slots_for(
        self, rows: list[dict[str, Any]], node_key: str, pid_key: str, alive: Any
    ) -> dict[str, dict[int, tuple[int, ...]]]:
        nodes = {
            n
            for r in rows
            if alive(r) and r.get(pid_key) is not None and isinstance(n := r.get(node_key), str)
        }
        found: dict[str, dict[int, tuple[int, ...]]] = {}
        for node in sorted(nodes)[:16]:  # bounded: one small request per node shown
            try:
                found[node] = self._gpu_slots(node)
            except RaytuiError:
                found[node] = {}
        return found


# -- pure conversion -------------------------------------------------------------------------


def _task_filters(where: TaskFilter) -> list[tuple[str, str | None]]:
    return [
        ("state", where.state),
        ("job_id", where.job_id),
        ("node_id", where.node_id),
        ("name", where.name),
        ("func_or_class_name", where.func_or_class_name),
        ("actor_id", where.actor_id),
    ]


def _filter_params(filters: list[tuple[str, str | None]]) -> list[tuple[str, str]]:
    """The state API's filter query: `key = value` for each set value (ANDed by the dashboard)."""
    params: list[tuple[str, str]] = []
    for key, value in filters:
        if value:
            params += [("filter_keys", key), ("filter_predicates", "="), ("filter_values", value)]
    return params


def task_summary_from(data: Any, taken_at: float = 0.0) -> TaskSummary:
    """`/api/v0/tasks/summarize` (its `result`) to a TaskSummary, biggest groups first."""
    cluster = _dict(_dict(_dict(data).get("node_id_to_summary")).get("cluster"))
    groups = []
    for name, raw in _dict(cluster.get("summary")).items():
        g = _dict(raw)
        counts = tuple(
            sorted(
                (str(state), int(n))
                for state, n in _dict(g.get("state_counts")).items()
                if _int(n) is not None
            )
        )
        groups.append(
            TaskGroup(
                name=_str(g.get("func_or_class_name")) or str(name),
                kind=_str(g.get("type")) or "",
                counts=counts,
            )
        )
    groups.sort(key=lambda g: (-g.total, g.name))
    return TaskSummary(
        groups=tuple(groups),
        total_tasks=_int(cluster.get("total_tasks")) or 0,
        total_actor_tasks=_int(cluster.get("total_actor_tasks")) or 0,
        total_actor_scheduled=_int(cluster.get("total_actor_scheduled")) or 0,
        taken_at=taken_at,
    )


def task_row_from(raw: Mapping[str, Any]) -> TaskRow:
    actor_id = _str(raw.get("actor_id"))
    return TaskRow(
        task_id=_str(raw.get("task_id")) or "",
        attempt=_int(raw.get("attempt_number")) or 0,
        name=_str(raw.get("name")) or _str(raw.get("func_or_class_name")) or "",
        func_or_class_name=_str(raw.get("func_or_class_name")) or "",
        state=_str(raw.get("state")) or "UNKNOWN",
        kind=_str(raw.get("type")) or "",
        job_id=_str(raw.get("job_id")),
        node_id=_str(raw.get("node_id")),
        worker_id=_str(raw.get("worker_id")),
        worker_pid=_int(raw.get("worker_pid")),
        actor_id=actor_id if actor_id != _NIL_ACTOR else None,
        error_type=_str(raw.get("error_type")),
        start_time=_ms(raw.get("start_time_ms")),
        end_time=_ms(raw.get("end_time_ms")),
    )


def actor_row_from(
    raw: Mapping[str, Any], slots: Mapping[str, Mapping[int, tuple[int, ...]]] | None = None
) -> ActorRow:
    node_id, pid = _str(raw.get("node_id")), _int(raw.get("pid"))
    state = _str(raw.get("state")) or "UNKNOWN"
    gpu_ids: tuple[int, ...] = ()
    if slots and node_id and pid is not None and state == "ALIVE":
        gpu_ids = tuple(slots.get(node_id, {}).get(pid, ()))
    return ActorRow(
        actor_id=_str(raw.get("actor_id")) or "",
        class_name=_str(raw.get("class_name")) or "",
        name=_str(raw.get("name")),
        state=state,
        job_id=_str(raw.get("job_id")),
        node_id=node_id,
        pid=pid,
        restarts=_int(raw.get("num_restarts")) or 0,  # a string in Ray 2.60's JSON
        gpu_ids=gpu_ids,
        repr_name=_str(raw.get("repr_name")),
    )


def worker_row_from(
    raw: Mapping[str, Any], slots: Mapping[str, Mapping[int, tuple[int, ...]]] | None = None
) -> WorkerRow:
    node_id, pid = _str(raw.get("node_id")) or "", _int(raw.get("pid")) or 0
    return WorkerRow(
        worker_id=_str(raw.get("worker_id")) or "",
        pid=pid,
        node_id=node_id,
        ip=_str(raw.get("ip")) or "",
        kind=_str(raw.get("worker_type")) or "",
        alive=raw.get("is_alive") is True,
        gpu_ids=tuple((slots or {}).get(node_id, {}).get(pid, ())),
    )


def gpu_slots_from(core_workers: Any) -> dict[int, tuple[int, ...]]:
    """`coreWorkersStats` of a node -> PID -> GPU slots its `usedResources` hold."""
    found: dict[int, tuple[int, ...]] = {}
    for w in core_workers if isinstance(core_workers, list) else ():
        pid = _int(_dict(w).get("pid"))
        gpu = _dict(_dict(_dict(w).get("usedResources")).get("GPU"))
        slots = []
        for s in gpu.get("resourceSlots") or ():
            slot = _int(_dict(s).get("slot"))
            if slot is not None:
                slots.append(slot)
        if pid is not None and slots:
            found[pid] = tuple(sorted(set(slots)))
    return found


def death_cause_text(cause: Any) -> str | None:
    """One line from Ray's actor death cause (its first context's `error_message`)."""
    for ctx in _dict(cause).values():
        message = _str(_dict(ctx).get("error_message"))
        if message:
            return message.splitlines()[0]
    return None


def _check_hex(value: str, what: str) -> None:
    if not _HEX.match(value):
        raise UsageError(f"{what} {value!r} is not hexadecimal")


def _result(doc: Any) -> Mapping[str, Any]:
    """The state API's `{"result": true, "data": {"result": …}}` envelope, opened."""
    envelope = _dict(doc)
    if envelope.get("result") is False:
        msg = _str(envelope.get("msg")) or "unknown error"
        raise RaytuiError(f"the Ray state API failed: {msg.splitlines()[0]}")
    return _dict(_dict(envelope.get("data")).get("result"))


def _rows(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = data.get("result")
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def _matched(data: Mapping[str, Any]) -> int:
    n = _int(data.get("num_filtered"))
    return n if n is not None else len(_rows(data))


def _truncated(data: Mapping[str, Any]) -> bool:
    total, kept = _int(data.get("total")), _int(data.get("num_after_truncation"))
    return total is not None and kept is not None and kept < total


def _dict(obj: Any) -> dict[str, Any]:
    return obj if isinstance(obj, dict) else {}
