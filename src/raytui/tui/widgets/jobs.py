"""Jobs (status, entrypoint, duration) and task counts by state, actors alive.

This console's own Ray driver is listed as "this console", greyed: it is not someone's job."""

from __future__ import annotations

from collections.abc import Sequence

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from raytui.model.cluster import ClusterSnapshot, Job, TaskCounts
from raytui.tui import format as fmt
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
        super().__init__(
            JOB_COLUMNS, self._format_row, empty_text="no jobs", selectable=False, id=id
        )
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
