"""What the cluster *does*: jobs, a job to submit, tasks, actors, workers and log sources.

Snapshots read through the dashboard's HTTP address only (sources/jobs.py, workload.py, logs.py),
so a console attached by dashboard URL (`--via`) sees the same as one on the head. Immutable, so a
worker thread can hand one to the UI without locks. No I/O here, except that
`JobSubmission.validate` asks an injectable `is_dir` whether the working directory exists.
"""

from __future__ import annotations

import math
import os
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from packaging.requirements import InvalidRequirement, Requirement

if TYPE_CHECKING:
    from raytui.model.cluster import ClusterSnapshot

T = TypeVar("T")

JOB_TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
"""Job statuses after which nothing changes (Ray's `JobStatus.is_terminal`)."""

TASK_STATES = (
    "NIL",
    "PENDING_ARGS_AVAIL",
    "PENDING_NODE_ASSIGNMENT",
    "PENDING_OBJ_STORE_MEM_AVAIL",
    "PENDING_ARGS_FETCH",
    "SUBMITTED_TO_WORKER",
    "PENDING_ACTOR_TASK_ARGS_FETCH",
    "PENDING_ACTOR_TASK_ORDERING_OR_CONCURRENCY",
    "RUNNING",
    "RUNNING_IN_RAY_GET",
    "RUNNING_IN_RAY_WAIT",
    "FINISHED",
    "FAILED",
)
"""Ray's task states (`ray.util.state.common.TypeTaskStatus`), in lifecycle order."""

TASK_PENDING_STATES = frozenset(TASK_STATES[: TASK_STATES.index("RUNNING")])
"""The states before a task runs (waiting for arguments, a node, memory or a worker)."""

ACTOR_STATES = ("DEPENDENCIES_UNREADY", "PENDING_CREATION", "ALIVE", "RESTARTING", "DEAD")


# -- jobs -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobInfo:
    """One job as `JobSubmissionClient.get_job_info` / `list_jobs` report it."""

    job_id: str | None  # the Ray job ID ("02000000"), None until the driver started
    submission_id: str | None  # "raysubmit_…" or the ID the user chose; None for a plain driver
    status: str  # PENDING RUNNING STOPPED SUCCEEDED FAILED
    message: str
    entrypoint: str
    start_time: float | None = None  # unix seconds
    end_time: float | None = None
    runtime_env: tuple[tuple[str, str], ...] = ()  # key -> value shown as compact JSON
    driver_node_id: str | None = None
    driver_ip: str | None = None
    driver_pid: int | None = None
    driver_exit_code: int | None = None
    error_type: str | None = None
    entrypoint_num_cpus: float | None = None
    entrypoint_num_gpus: float | None = None
    entrypoint_resources: tuple[tuple[str, float], ...] = ()
    kind: str = "SUBMISSION"  # SUBMISSION or DRIVER

    @property
    def key(self) -> str:
        """The ID the job API takes: the submission ID, else the job ID."""
        return self.submission_id or self.job_id or ""

    @property
    def terminal(self) -> bool:
        return self.status in JOB_TERMINAL

    def duration(self, now: float) -> float | None:
        if self.start_time is None:
            return None
        return (self.end_time or now) - self.start_time


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SUBMISSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_RESOURCE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:/-]*$")


@dataclass(frozen=True, slots=True)
class JobSubmission:
    """A job to submit, as typed in the dialog: every field is the text the user typed.

    `validate()` says what is wrong per field while typing; the `*_value` methods turn valid text
    into what `JobSubmissionClient.submit_job` takes. Fields:
    - `pip`: package specs separated by spaces or commas (`requests==2.32 numpy`)
    - `env_vars`: `NAME=value` separated by spaces, shell-quoted when a value has one
    - `num_gpus`, `num_cpus`: a non-negative number or empty (Ray's default)
    - `resources`: custom entrypoint resources, `NAME=amount` separated by spaces
    """

    entrypoint: str
    working_dir: str = ""
    pip: str = ""
    env_vars: str = ""
    num_gpus: str = ""
    num_cpus: str = ""
    resources: str = ""
    submission_id: str = ""

    def validate(self, is_dir: Callable[[str], bool] = os.path.isdir) -> dict[str, str]:
        """Field name -> one-line message, for each field that is wrong; empty when valid."""
        problems: dict[str, str] = {}
        if not self.entrypoint.strip():
            problems["entrypoint"] = "the entrypoint is empty: a command, e.g. python run.py"
        wd = self.working_dir.strip()
        if wd and not is_dir(os.path.expanduser(wd)):
            problems["working_dir"] = f"not a directory here: {wd}"
        try:
            _env_pairs(self.env_vars)
        except ValueError as exc:
            problems["env_vars"] = str(exc)
        for name, what in (("num_gpus", "GPUs"), ("num_cpus", "CPUs")):
            try:
                _amount(getattr(self, name), what)
            except ValueError as exc:
                problems[name] = str(exc)
        try:
            _resource_pairs(self.resources)
        except ValueError as exc:
            problems["resources"] = str(exc)
        sid = self.submission_id.strip()
        if sid and not _SUBMISSION_ID.match(sid):
            problems["submission_id"] = (
                "a submission ID is 1-128 letters, digits, '_', '.' or '-', "
                "starting with a letter or digit"
            )
        if any(c in self.pip for c in "\n\r"):
            problems["pip"] = "one line of package specs, separated by spaces or commas"
        else:
            bad = next((p for p in self.pip_list() if not _pip_spec_ok(p)), None)
            if bad is not None:
                problems["pip"] = f"{bad!r} is not a package spec (e.g. requests==2.32, numpy>=2)"
        return problems

    def pip_list(self) -> tuple[str, ...]:
        return tuple(p for p in re.split(r"[\s,]+", self.pip.strip()) if p)

    def env_vars_dict(self) -> dict[str, str]:
        """Raises ValueError on a malformed pair (see `validate`)."""
        return dict(_env_pairs(self.env_vars))

    def num_gpus_value(self) -> float | None:
        return _amount(self.num_gpus, "GPUs")

    def num_cpus_value(self) -> float | None:
        return _amount(self.num_cpus, "CPUs")

    def resources_dict(self) -> dict[str, float]:
        return dict(_resource_pairs(self.resources))

    def working_dir_path(self) -> str | None:
        wd = self.working_dir.strip()
        return os.path.expanduser(wd) if wd else None

    def runtime_env(self) -> dict[str, Any]:
        """The runtime env `ray job submit --working-dir D --runtime-env-json …` would send."""
        env: dict[str, Any] = {}
        wd = self.working_dir_path()
        if wd:
            env["working_dir"] = wd
        pip = self.pip_list()
        if pip:
            env["pip"] = list(pip)
        env_vars = self.env_vars_dict()
        if env_vars:
            env["env_vars"] = env_vars
        return env


def _pip_spec_ok(spec: str) -> bool:
    """A requirement pip takes (PEP 508), or a path, URL or pip option passed through as is."""
    if spec.startswith(("-", ".", "/", "~")) or "://" in spec or spec.startswith("git+"):
        return True
    try:
        Requirement(spec)
    except InvalidRequirement:
        return False
    return True


def _env_pairs(text: str) -> list[tuple[str, str]]:
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"environment variables: {exc} (quote values with spaces)") from None
    pairs = []
    for word in words:
        name, eq, value = word.partition("=")
        if not eq:
            raise ValueError(f"{word!r} is not NAME=value")
        if not _ENV_NAME.match(name):
            raise ValueError(
                f"{name!r} is not a variable name (letters, digits, '_'; not starting with a digit)"
            )
        pairs.append((name, value))
    return pairs


def _amount(text: str, what: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what}: {text!r} must be 0 or more")
    return value


def _resource_pairs(text: str) -> list[tuple[str, float]]:
    pairs = []
    for word in text.split():
        name, eq, amount = word.partition("=")
        if not eq or not _RESOURCE_NAME.match(name):
            raise ValueError(f"{word!r} is not NAME=amount (a custom resource)")
        value = _amount(amount, name)
        if value is None:
            raise ValueError(f"{word!r}: the amount is missing")
        pairs.append((name, value))
    return pairs


# -- tasks ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskGroup:
    """One line of `ray summary tasks`: a function (or actor method) and its tasks per state."""

    name: str  # func_or_class_name
    kind: str  # NORMAL_TASK, ACTOR_TASK, ACTOR_CREATION_TASK, DRIVER_TASK
    counts: tuple[tuple[str, int], ...] = ()

    def count(self, state: str) -> int:
        return dict(self.counts).get(state, 0)

    @property
    def total(self) -> int:
        return sum(n for _, n in self.counts)


@dataclass(frozen=True, slots=True)
class TaskSummary:
    groups: tuple[TaskGroup, ...]
    total_tasks: int = 0
    total_actor_tasks: int = 0
    total_actor_scheduled: int = 0
    taken_at: float = 0.0
    source_total: int = 0  # tasks the cluster holds (Ray's `total`, before filters)
    matched: int = 0  # tasks that matched the filters (Ray's `num_filtered`)
    warnings: tuple[str, ...] = ()  # Ray's own, e.g. "missing data in this aggregation"

    @property
    def counted(self) -> int:
        """Tasks the groups count: fewer than `matched` when Ray's summary limit cut the list."""
        return self.total_tasks + self.total_actor_tasks + self.total_actor_scheduled

    def group(self, name: str) -> TaskGroup | None:
        return next((g for g in self.groups if g.name == name), None)

    def count(self, state: str) -> int:
        return sum(g.count(state) for g in self.groups)


@dataclass(frozen=True, slots=True)
class TaskRow:
    task_id: str
    attempt: int
    name: str
    func_or_class_name: str
    state: str
    kind: str  # NORMAL_TASK, ACTOR_TASK, …
    job_id: str | None = None
    node_id: str | None = None
    worker_id: str | None = None
    worker_pid: int | None = None
    actor_id: str | None = None
    error_type: str | None = None
    start_time: float | None = None  # unix seconds
    end_time: float | None = None

    def duration(self, now: float) -> float | None:
        if self.start_time is None:
            return None
        return (self.end_time or now) - self.start_time


@dataclass(frozen=True, slots=True)
class TaskDetail:
    row: TaskRow
    error_message: str | None = None  # Ray's full text: the traceback of a failed task
    required_resources: tuple[tuple[str, float], ...] = ()
    gpu_ids: tuple[int, ...] = ()  # GPU slots its worker holds now (empty once it finished)
    parent_task_id: str | None = None
    placement_group_id: str | None = None
    call_site: str | None = None

    @property
    def traceback(self) -> str | None:
        return self.error_message

    @property
    def message(self) -> str | None:
        """The last line of the error (`ValueError: boom`): what went wrong, in one line."""
        if not self.error_message:
            return None
        lines = [ln for ln in self.error_message.splitlines() if ln.strip()]
        return lines[-1].strip() if lines else None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """The first rows of a filtered list, and how many more matched (`N more`)."""

    rows: tuple[T, ...]
    matched: int  # how many matched the filters (Ray's `num_filtered`)
    truncated_at_source: bool = False  # the data source cut the list before filtering

    @property
    def more(self) -> int:
        return max(0, self.matched - len(self.rows))


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """Applied by the dashboard (server side), never by fetching every task."""

    state: str | None = None
    job_id: str | None = None
    node_id: str | None = None
    name: str | None = None  # the task's name (the function name unless renamed)
    func_or_class_name: str | None = None
    actor_id: str | None = None


# -- actors and workers -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActorRow:
    actor_id: str
    class_name: str
    name: str | None
    state: str
    job_id: str | None = None
    node_id: str | None = None
    pid: int | None = None
    restarts: int = 0
    gpu_ids: tuple[int, ...] = ()  # GPU slots its worker holds (from the node's worker stats)
    repr_name: str | None = None

    @property
    def dead(self) -> bool:
        return self.state == "DEAD"


@dataclass(frozen=True, slots=True)
class ActorDetail:
    row: ActorRow
    death_cause: str | None = None  # one line from Ray's death cause
    required_resources: tuple[tuple[str, float], ...] = ()
    namespace: str | None = None
    detached: bool = False
    placement_group_id: str | None = None
    call_site: str | None = None


@dataclass(frozen=True, slots=True)
class ActorFilter:
    state: str | None = None
    job_id: str | None = None
    node_id: str | None = None
    class_name: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class WorkerRow:
    worker_id: str
    pid: int
    node_id: str
    ip: str
    kind: str  # WORKER, DRIVER, SPILL_WORKER, RESTORE_WORKER
    alive: bool
    gpu_ids: tuple[int, ...] = ()
    actor_id: str | None = None


@dataclass(frozen=True, slots=True)
class NodeWorkload:
    """What runs on one node now: its alive actors, running tasks and alive workers."""

    node_id: str
    actors: Page[ActorRow]
    running_tasks: Page[TaskRow]
    workers: tuple[WorkerRow, ...] = ()
    taken_at: float = 0.0


# -- logs -------------------------------------------------------------------------------------


class LogKind(StrEnum):
    JOB = "job"
    TASK = "task"
    ACTOR = "actor"
    NODE_FILE = "file"
    WORKER = "worker"  # a worker process by node and PID


@dataclass(frozen=True, slots=True)
class LogSource:
    """Which log to open; build one with the class methods."""

    kind: LogKind
    job_id: str | None = None  # submission ID (or job ID) of a submitted job
    task_id: str | None = None
    attempt: int = 0
    actor_id: str | None = None
    node_id: str | None = None
    filename: str | None = None
    pid: int | None = None
    stream: str = "out"  # "out" (stdout) or "err" (stderr) for tasks, actors and workers
    fallback: LogSource | None = None  # read instead when Ray has no file for this one

    @classmethod
    def job(cls, submission_id: str) -> LogSource:
        return cls(LogKind.JOB, job_id=submission_id)

    @classmethod
    def task(
        cls,
        task_id: str,
        attempt: int = 0,
        stream: str = "out",
        *,
        node_id: str | None = None,
        pid: int | None = None,
    ) -> LogSource:
        """A task attempt's part of its worker's log. Given the worker (`node_id`, `pid`), the
        whole worker log stands in when Ray cannot find the attempt's file (it sometimes loses
        track of an exited worker's task offsets)."""
        fallback = cls.worker(node_id, pid, stream) if node_id and pid else None
        return cls(LogKind.TASK, task_id=task_id, attempt=attempt, stream=stream, fallback=fallback)

    @classmethod
    def actor(cls, actor_id: str, stream: str = "out") -> LogSource:
        return cls(LogKind.ACTOR, actor_id=actor_id, stream=stream)

    @classmethod
    def node_file(cls, node_id: str, filename: str) -> LogSource:
        return cls(LogKind.NODE_FILE, node_id=node_id, filename=filename)

    @classmethod
    def worker(cls, node_id: str, pid: int, stream: str = "out") -> LogSource:
        return cls(LogKind.WORKER, node_id=node_id, pid=pid, stream=stream)

    @property
    def title(self) -> str:
        """A short label for the viewer's header."""
        if self.kind is LogKind.JOB:
            return f"job {self.job_id}"
        if self.kind is LogKind.TASK:
            retry = f" (attempt {self.attempt})" if self.attempt else ""
            return f"task {(self.task_id or '')[:16]}{retry} std{self.stream}"
        if self.kind is LogKind.ACTOR:
            return f"actor {(self.actor_id or '')[:16]} std{self.stream}"
        node = (self.node_id or "")[:8]
        if self.kind is LogKind.WORKER:
            return f"worker pid {self.pid} on {node} std{self.stream}"
        return f"{self.filename} on {node}"


@dataclass(frozen=True, slots=True)
class NodeLogs:
    """A node's log files by Ray's groups (raylet, gcs_server, worker_out, agent, …)."""

    node_id: str
    groups: tuple[tuple[str, tuple[str, ...]], ...] = field(default_factory=tuple)

    def files(self, group: str) -> tuple[str, ...]:
        return dict(self.groups).get(group, ())

    @property
    def all_files(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for _, names in self.groups:
            for n in names:
                seen.setdefault(n)
        return tuple(seen)


def pairs(mapping: Mapping[str, Any] | None) -> tuple[tuple[str, float], ...]:
    """Numeric entries of a resource mapping, sorted by name."""
    if not isinstance(mapping, Mapping):
        return ()
    out = []
    for k, v in mapping.items():
        if isinstance(v, bool) or not isinstance(v, int | float):
            continue
        out.append((str(k), float(v)))
    return tuple(sorted(out))


def gpus_by_pid(
    snapshot: ClusterSnapshot | None, node_id: str | None
) -> Mapping[int, tuple[int, ...]]:
    """PID -> indices of the GPUs where that process holds memory, on one node.

    Ray's state API names no GPU for an actor or a task's worker; the node's GPU processes (from
    the dashboard's node summary, in the cluster snapshot) do. Match a worker's PID against this
    map to fill the GPU column of tasks, actors and workers. Empty when the node is unknown.
    """
    if snapshot is None or not node_id:
        return {}
    node = next((n for n in snapshot.nodes if n.node_id == node_id), None)
    if node is None:
        return {}
    found: dict[int, list[int]] = {}
    for gpu in node.gpus:
        for proc in gpu.processes:
            indices = found.setdefault(proc.pid, [])
            if gpu.index not in indices:
                indices.append(gpu.index)
    return {pid: tuple(sorted(ix)) for pid, ix in found.items()}


def gpu_ids_for(
    snapshot: ClusterSnapshot | None,
    node_id: str | None,
    pid: int | None,
    known: tuple[int, ...] = (),
) -> tuple[int, ...]:
    """The GPUs of one worker: what the state API knew (`known`), else what the snapshot shows."""
    if known or pid is None:
        return known
    return gpus_by_pid(snapshot, node_id).get(pid, ())
