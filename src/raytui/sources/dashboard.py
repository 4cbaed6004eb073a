"""The Ray dashboard's HTTP API turned into a `ClusterSnapshot`.

One snapshot costs a handful of small requests, made concurrently over one keep-alive client:

- `GET /nodes?view=summary` — per node: hostname, IP, CPU %, host memory, every GPU (read by Ray's
  agent with NVML on that node), the node's Ray workers (`raylet.coreWorkersStats`), and the
  logical resources in use (`nodeLogicalResources`). Its node *state* lags (a killed node can stay
  ALIVE there), so state comes from:
- `GET /api/v0/nodes?detail=true` — the GCS's node table: ALIVE/DEAD, `state_message`,
  `end_time_ms`.
- `GET /api/jobs/` — jobs with status, entrypoint, start and end times.
- `GET /api/v0/tasks` filtered server-side by state (one request per state in `TASK_STATES`) and
  `GET /api/v0/actors` filtered to ALIVE. Never the unfiltered task list: the dashboard fetches and
  sorts every task first (seconds at 10,000 tasks). Even a filtered count costs time proportional
  to the matching tasks (FINISHED at 10,000 tasks: ~3 s), so FINISHED is not counted.
- `GET /api/version` — once per client.

`build_snapshot` is the pure part (decoded JSON in, snapshot out), used by tests and benchmarks.
Every field it reads may be missing or of another type in an older or newer Ray: it becomes None
(or the field's neutral value), never an exception.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from raytui.errors import AuthenticationFailed, ClusterUnreachable, RaytuiError, describe
from raytui.model.cluster import (
    ClusterSnapshot,
    Gpu,
    GpuProcess,
    Job,
    Node,
    NodeState,
    TaskCounts,
)
from raytui.sources.machine import is_loopback, local_addresses

__all__ = [
    "TASK_STATES",
    "DashboardClient",
    "DashboardResponses",
    "build_snapshot",
    "token_hint",
]

TASK_STATES: tuple[str, ...] = (
    "RUNNING",
    "PENDING_NODE_ASSIGNMENT",
    "PENDING_ARGS_AVAIL",
    "SUBMITTED_TO_WORKER",
    "FAILED",
)
"""Task states counted per snapshot, each with one server-side filtered query."""

RUNNING_TASKS_LIMIT = 1000
"""Running tasks listed (for labelling GPU processes with the task they run)."""

ACTORS_LIMIT = 10000
"""Alive actors listed (for labelling GPU processes with the actor's class)."""

NODES_LIMIT = 10000
"""The state API's default limit is 100 entries: ask for the server's maximum."""

_NIL_ACTOR = "f" * 32


def token_hint() -> str:
    """Where raytui (like Ray) looks for the auth token, for error messages."""
    return (
        "set RAY_AUTH_TOKEN, or RAY_AUTH_TOKEN_PATH to a file holding it, "
        "or put it in ~/.ray/auth_token (on the head: `ray get-auth-token`)"
    )


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


class DashboardClient:
    """Blocking client for one dashboard; call from a worker thread, never from the UI loop.

    Thread-safe for one caller at a time per method; reusable after a failure (a later
    `fetch_snapshot` retries from scratch), so the TUI can poll it with backoff.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float = 5.0,
        *,
        task_states: tuple[str, ...] = TASK_STATES,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.task_states = task_states
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
            follow_redirects=True,
            trust_env=False,
        )
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._version: Any = None
        self._own_addresses: frozenset[str] | None = None

    # -- public ------------------------------------------------------------------------------

    def fetch_snapshot(self) -> ClusterSnapshot:
        """One snapshot. Raises ClusterUnreachable or AuthenticationFailed."""
        taken_at = time.time()
        pool = self._executor()
        required = {
            "summary": pool.submit(
                self.get_json, "/nodes", {"view": "summary"}, decode=_loads_summary
            ),
            "nodes": pool.submit(
                self.get_json, "/api/v0/nodes", {"detail": "true", "limit": str(NODES_LIMIT)}
            ),
        }
        optional: dict[str, Future[Any]] = {
            "jobs": pool.submit(self.get_json, "/api/jobs/"),
            "running_tasks": pool.submit(
                self.get_json, "/api/v0/tasks", _state_filter("RUNNING", RUNNING_TASKS_LIMIT)
            ),
            "actors": pool.submit(
                self.get_json, "/api/v0/actors", _state_filter("ALIVE", ACTORS_LIMIT)
            ),
        }
        if self._version is None:
            optional["version"] = pool.submit(self.get_json, "/api/version")
        counts: dict[str, Future[Any]] = {
            state: pool.submit(self.get_json, "/api/v0/tasks", _state_filter(state, 1))
            for state in self.task_states
            if state != "RUNNING"
        }
        # Wait for everything before raising, so no request outlives this call.
        results = {k: _outcome(f) for k, f in {**required, **optional}.items()}
        count_results = {k: _outcome(f) for k, f in counts.items()}
        for key in required:
            value, error = results[key]
            if error is not None:
                raise error
        for _value, error in (*results.values(), *count_results.values()):
            if isinstance(error, AuthenticationFailed):
                raise error
        ok = {k: v for k, (v, e) in results.items() if e is None}
        if "version" in ok:
            self._version = ok["version"]
        task_counts: dict[str, int] = {}
        running = ok.get("running_tasks")
        if "RUNNING" in self.task_states and running is not None:
            n = _result_count(running)
            if n is not None:
                task_counts["RUNNING"] = n
        for state, (value, error) in count_results.items():
            n = _result_count(value) if error is None else None
            if n is not None:
                task_counts[state] = n
        try:
            return build_snapshot(
                self.url,
                DashboardResponses(
                    summary=ok["summary"],
                    nodes=ok["nodes"],
                    jobs=ok.get("jobs"),
                    version=self._version,
                    running_tasks=running,
                    actors=ok.get("actors"),
                    task_counts=task_counts,
                ),
                taken_at=taken_at,
                own_driver=(os.getpid(), self._addresses()),
            )
        finally:
            _release_summary(ok["summary"])

    def _addresses(self) -> frozenset[str]:
        """This machine's addresses, read once: where this process's own Ray driver runs."""
        if self._own_addresses is None:
            self._own_addresses = local_addresses()
        return self._own_addresses

    def ray_version(self) -> str | None:
        """The cluster's Ray version (one request the first time). Raises like fetch_snapshot."""
        if self._version is None:
            self._version = self.get_json("/api/version")
        return _str(_get(self._version, "ray_version"))

    def get_json(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        decode: Callable[[bytes], Any] | None = None,
    ) -> Any:
        """GET one endpoint and decode it. Raises ClusterUnreachable or AuthenticationFailed."""
        where = f"{self.url}{path}"
        try:
            reply = self._client.get(path, params=params)
        except httpx.TimeoutException:
            raise ClusterUnreachable(
                f"cannot reach the Ray dashboard at {self.url}: no answer within {self.timeout:g} s"
            ) from None
        except (httpx.HTTPError, OSError) as exc:
            raise ClusterUnreachable(
                f"cannot reach the Ray dashboard at {self.url}: {describe(exc, 'line')}"
            ) from None
        if reply.status_code in (401, 403):
            what = "rejected the auth token" if reply.status_code == 403 else "needs an auth token"
            raise AuthenticationFailed(
                f"the Ray dashboard at {self.url} {what} (HTTP {reply.status_code}): {token_hint()}"
            )
        if reply.status_code >= 400:
            raise ClusterUnreachable(
                f"the Ray dashboard at {self.url} answered HTTP {reply.status_code} for {path}"
            )
        try:
            return (decode or _loads)(reply.content)
        except ValueError:
            raise ClusterUnreachable(
                f"{where} did not answer JSON: is this a Ray dashboard?"
            ) from None

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    def __enter__(self) -> DashboardClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=4 + len(self.task_states), thread_name_prefix="raytui-dash"
                )
            return self._pool


def _state_filter(state: str, limit: int) -> dict[str, str]:
    return {
        "filter_keys": "state",
        "filter_predicates": "=",
        "filter_values": state,
        "limit": str(limit),
        "detail": "false",
    }


def _outcome(future: Future[Any]) -> tuple[Any, RaytuiError | None]:
    try:
        return future.result(), None
    except RaytuiError as exc:
        return None, exc


_SUMMARY_KEY = re.compile(r'"summary"\s*:\s*\[')
_WS = " \t\r\n"


def _loads_summary(content: bytes) -> Any:
    """Decode `/nodes?view=summary` one node at a time.

    A 1,024-node summary is ~20 MB; one `json.loads` call holds the GIL for its
    whole length (100+ ms), freezing the UI's event loop while this runs in a worker thread.
    Decoding node by node lets other threads in between (each node takes well under 1 ms).
    Anything unexpected falls back to decoding the document in one go.
    """
    if len(content) < 1_000_000:
        return _loads(content)
    text = content.decode("utf-8")
    match = _SUMMARY_KEY.search(text)
    if match is None:
        return _loads(content)
    decoder = _DECODER
    pos, end = match.end(), len(text)
    items: list[Any] = []
    try:
        while True:
            while pos < end and text[pos] in _WS:
                pos += 1
            if text[pos] == "]" and not items:
                break
            item, pos = decoder.raw_decode(text, pos)
            items.append(_slim_summary_node(item))
            while pos < end and text[pos] in _WS:
                pos += 1
            if text[pos] == "]":
                break
            if text[pos] != ",":
                return _loads(content)
            pos += 1
        rest = json.loads(text[: match.end()] + text[pos:])
    except (ValueError, IndexError):
        return _loads(content)
    data = rest.get("data") if isinstance(rest, dict) else None
    if not isinstance(data, dict) or data.get("summary") != []:
        return _loads(content)
    data["summary"] = items
    return rest


_DECODER = json.JSONDecoder()

_SUMMARY_NODE_KEYS = ("hostname", "ip", "cpu", "mem", "gpus")
_SUMMARY_RAYLET_KEYS = (
    "nodeId",
    "state",
    "nodeManagerAddress",
    "nodeManagerHostname",
    "isHeadNode",
    "resourcesTotal",
    "endTimeMs",
    "stateMessage",
)
_SUMMARY_WORKER_KEYS = ("pid", "workerType", "actorId")


def _slim_summary_node(node: Any) -> Any:
    """Keep only what `build_snapshot` reads of one summary node (keep the lists in step).

    A decoded 1,024-node summary is ~53 MB of Python objects, nearly all of it command lines,
    disk, network and worker statistics raytui does not show; dropping them as each node is
    decoded keeps the poll's memory peak (and the process's RSS after it) small.
    """
    if type(node) is not dict:
        return node
    slim = {k: node[k] for k in _SUMMARY_NODE_KEYS if k in node}
    raylet = node.get("raylet")
    if type(raylet) is dict:
        slim_raylet = {k: raylet[k] for k in _SUMMARY_RAYLET_KEYS if k in raylet}
        workers = raylet.get("coreWorkersStats")
        if type(workers) is list:
            slim_raylet["coreWorkersStats"] = [
                {k: w[k] for k in _SUMMARY_WORKER_KEYS if k in w} if type(w) is dict else w
                for w in workers
            ]
        slim["raylet"] = slim_raylet
    return slim


def _release_summary(doc: Any) -> None:
    """Free a decoded summary node by node: dropping 20 MB of objects at once holds the GIL."""
    items = _get(_get(doc, "data"), "summary")
    if isinstance(items, list):
        while items:
            items.pop()


def _loads(content: bytes) -> Any:
    return json.loads(content)


# -- pure conversion -------------------------------------------------------------------------


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def _dict(obj: Any) -> dict[str, Any]:
    return obj if isinstance(obj, dict) else {}


def _list(obj: Any) -> list[Any]:
    return obj if isinstance(obj, list) else []


def _num(value: Any) -> float | None:
    kind = type(value)
    if kind is float:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return float(value)
    if value is None or kind is bool:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _int(value: Any) -> int | None:
    if type(value) is int:
        return value
    n = _num(value)
    return int(n) if n is not None else None


def _str(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _ms_to_s(value: Any) -> float | None:
    """Ray's millisecond timestamps; 0 means "not yet"."""
    n = _num(value)
    return n / 1000.0 if n else None


def _state_result(doc: Any) -> dict[str, Any]:
    """The `data.result` object of a state API answer (`/api/v0/...`)."""
    return _dict(_get(_get(doc, "data"), "result"))


def _result_count(doc: Any) -> int | None:
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
            actors_alive=_result_count(responses.actors) if responses.actors is not None else None,
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
