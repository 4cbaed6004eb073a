"""Jobs (status, entrypoint, duration) and task counts by state, actors alive; one job's facts.

This console's own Ray driver is listed as "this console", greyed: it is not someone's job.
Enter on a row opens the job's detail (screens/job_detail.py), `n` the submit dialog."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical
from textual.widgets import Static

from raytui.model.cluster import ClusterSnapshot, Job, TaskCounts
from raytui.model.workbench import JobInfo
from raytui.text import one_line
from raytui.tui import format as fmt
from raytui.tui import keys
from raytui.tui.format import Palette
from raytui.tui.widgets.common import palette
from raytui.tui.widgets.table import Column, VirtualTable

JOB_COLUMNS = (
    Column("status", "STATUS", 10),
    Column("id", "JOB", 16),
    Column("entrypoint", "ENTRYPOINT", 0, min_width=10),
    Column("duration", "DURATION", 8, "right"),
)

CONSOLE_LABEL = "this console"

# Task states in the order a task goes through them; others follow alphabetically.
TASK_ORDER = (
    "PENDING_ARGS_AVAIL",
    "PENDING_NODE_ASSIGNMENT",
    "PENDING_OBJ_STORE_MEM_AVAIL",
    "SUBMITTED_TO_WORKER",
    "RUNNING",
    "FINISHED",
    "FAILED",
)


def status_style(status: str, p: Palette) -> Style:
    if status in ("RUNNING", "SUCCEEDED"):
        return p.ok
    if status in ("FAILED", "STOPPED"):
        return p.bad
    return p.mid


def task_line(tasks: TaskCounts, p: Palette) -> Text:
    order = {s: i for i, s in enumerate(TASK_ORDER)}
    counts = sorted(tasks.by_state, key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
    line = Text.assemble(("tasks ", p.label))
    if not counts:
        line.append("none", style=p.dim)
    for i, (state, n) in enumerate(counts):
        if i:
            line.append(" · ", style=p.dim)
        style = p.bad if state == "FAILED" and n else p.ok if state == "RUNNING" and n else ""
        line.append(f"{state.lower()} ", style=p.dim)
        line.append(str(n), style=style)
    line.append("   ")
    line.append("actors alive ", style=p.label)
    line.append(fmt.NA if tasks.actors_alive is None else str(tasks.actors_alive))
    return line


class JobTable(VirtualTable[Job]):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(JOB_COLUMNS, self._format_row, empty_text="no jobs · n submits one", id=id)
        self.now = 0.0

    def show(self, jobs: Sequence[Job], now: float) -> None:
        self.now = now
        # Newest first, as people look for the job they just submitted.
        ordered = sorted(jobs, key=lambda j: j.start_time or 0.0, reverse=True)
        self.set_rows([j.submission_id or j.job_id for j in ordered], ordered)

    def _format_row(self, job: Job, widths: Sequence[int]) -> list[Text | str]:
        p = palette(self.app)
        style = status_style(job.status, p)
        entrypoint: Text | str = job.entrypoint
        if job.console:  # not someone's work: the driver this console runs prompts through
            entrypoint = Text.assemble((CONSOLE_LABEL, p.label), (f"  {job.entrypoint}", p.dim))
        return [
            Text(job.status, style=p.dim if job.console else style),
            job.submission_id or job.job_id,
            entrypoint,
            fmt.span(job.duration(self.now)),
        ]


class JobsView(Vertical):
    BINDINGS: ClassVar[list[BindingType]] = keys.bindings("job_submit")
    DEFAULT_CSS = """
    JobsView { height: 1fr; }
    JobsView > #task-counts { height: auto; padding: 0 1; margin-bottom: 1; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="task-counts")
        yield JobTable(id="job-table")

    def show(self, snapshot: ClusterSnapshot, now: float) -> None:
        self.query_one("#task-counts", Static).update(task_line(snapshot.tasks, palette(self.app)))
        self.query_one(JobTable).show(snapshot.jobs, now)


def clock_time(t: float | None) -> str:
    """A job's start or end as local date and time."""
    return fmt.NA if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def job_text(
    key: str,
    info: JobInfo | None,
    error: str | None,
    now: float,
    p: Palette,
    console: bool,
    hint: str = "",
) -> Text:
    """The facts of one job, a few lines, every value from Ray shown literally."""
    out = Text(no_wrap=False)
    out.append(one_line(key), style="bold")
    if console:
        out.append(f"  {CONSOLE_LABEL}", style=p.label)
    if info is None:
        if hint:
            out.append(f"  {hint}", style=p.dim)
        out.append("\n")
        out.append(
            one_line(error) if error else "reading the job…", style=p.bad if error else p.dim
        )
        return out
    out.append("  ")
    out.append(info.status, style=status_style(info.status, p))
    if info.job_id and info.job_id != key:
        out.append(f"  job {info.job_id}", style=p.dim)
    if error:  # the last refresh failed: the facts below are from the one before
        out.append(f"  stale: {error}", style=p.bad)
    if hint:
        out.append(f"  {hint}", style=p.dim)
    if info.message:
        out.append("\n")
        out.append(fmt.ellipsize(one_line(info.message.strip()), 400))
    if info.error_type:
        out.append(f"  ({info.error_type})", style=p.bad)
    out.append("\nentrypoint ", style=p.label)
    out.append(fmt.ellipsize(one_line(info.entrypoint.strip()), 400))
    out.append("\nstarted ", style=p.label)
    out.append(clock_time(info.start_time))
    if info.end_time is not None:
        out.append("  ended ", style=p.label)
        out.append(clock_time(info.end_time))
    out.append("  ran ", style=p.label)
    out.append(fmt.span(info.duration(now)))
    out.append("\ndriver ", style=p.label)
    node = (info.driver_node_id or "")[:8] or fmt.NA
    out.append(f"node {node} {info.driver_ip or ''}".rstrip())
    if info.driver_pid is not None:
        out.append(f" pid {info.driver_pid}")
    if info.driver_exit_code is not None:
        out.append(f" exit code {info.driver_exit_code}")
    out.append("  resources ", style=p.label)
    wants = []
    if info.entrypoint_num_gpus is not None:
        wants.append(f"GPUs {fmt.num(info.entrypoint_num_gpus)}")
    if info.entrypoint_num_cpus is not None:
        wants.append(f"CPUs {fmt.num(info.entrypoint_num_cpus)}")
    wants += [f"{name} {fmt.num(amount)}" for name, amount in info.entrypoint_resources]
    out.append(" · ".join(wants) or "default")
    out.append("\nruntime env ", style=p.label)
    if not info.runtime_env:
        out.append("none", style=p.dim)
    for i, (name, value) in enumerate(info.runtime_env):
        if i:
            out.append(" · ", style=p.dim)
        out.append(f"{name} ", style=p.dim)
        out.append(fmt.ellipsize(one_line(value), 200))
    return out


class JobInfoPanel(Static):
    """The facts of one job above its log; the screen hands it each reading."""

    DEFAULT_CSS = """
    JobInfoPanel { height: auto; max-height: 8; padding: 0 1; background: $panel; }
    """

    def __init__(
        self, key: str, *, console: bool = False, hint: str = "", id: str | None = None
    ) -> None:
        super().__init__("", id=id, markup=False)
        self.key = key
        self.console = console
        self.hint = hint
        self.info: JobInfo | None = None
        self.error: str | None = None

    def show(self, info: JobInfo | None, error: str | None, now: float) -> None:
        if info is not None:
            self.info = info
        self.error = error
        self.update(
            job_text(self.key, self.info, error, now, palette(self.app), self.console, self.hint)
        )
