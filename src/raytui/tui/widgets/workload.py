"""Tables of what the cluster does: task groups (`ray summary tasks`), tasks, actors.

Formatting only: rows come from the screens' workers (screens/workload.py); no calls here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.style import Style
from rich.text import Text

from raytui.model.workbench import TASK_PENDING_STATES, ActorRow, TaskGroup, TaskRow
from raytui.tui import format as fmt
from raytui.tui.format import Palette
from raytui.tui.widgets.common import palette
from raytui.tui.widgets.table import Column, VirtualTable

GROUP_COLUMNS = (
    Column("name", "FUNCTION", 0, min_width=12),
    Column("kind", "TYPE", 11, drop=1),
    Column("pending", "PENDING", 7, "right"),
    Column("running", "RUNNING", 7, "right"),
    Column("finished", "FINISHED", 8, "right"),
    Column("failed", "FAILED", 7, "right"),
    Column("total", "TOTAL", 7, "right"),
)

TASK_COLUMNS = (
    Column("id", "TASK", 12, squeeze=8),
    Column("name", "NAME", 0, min_width=10),
    Column("state", "STATE", 9),
    Column("node", "NODE", 8, drop=2),
    Column("pid", "PID", 7, "right"),
    Column("gpus", "GPUS", 4, drop=1),
    Column("duration", "TIME", 7, "right"),
)

ACTOR_COLUMNS = (
    Column("class", "CLASS", 0, min_width=10),
    Column("name", "NAME", 0, min_width=8),
    Column("state", "STATE", 8),
    Column("node", "NODE", 8),
    Column("pid", "PID", 7, "right"),
    Column("gpus", "GPUS", 5),
    Column("restarts", "RESTARTS", 8, "right", squeeze=3),
)

GpuLookup = Callable[[str | None, int | None, tuple[int, ...]], tuple[int, ...]]
"""(node ID, PID, what the state API knew) -> GPU indices (model.workbench.gpu_ids_for)."""


def state_style(state: str, p: Palette) -> Style:
    if state in ("FAILED", "DEAD"):
        return p.bad
    if state.startswith("RUNNING") or state == "ALIVE":
        return p.ok
    if state == "FINISHED":
        return p.dim
    return p.mid


def group_counts(group: TaskGroup) -> tuple[int, int, int, int]:
    """(pending, running, finished, failed) of one group; pending counts every state before
    running (submitted to a worker included)."""
    pending = running = 0
    for state, n in group.counts:
        if state in TASK_PENDING_STATES:
            pending += n
        elif state.startswith("RUNNING"):
            running += n
    return pending, running, group.count("FINISHED"), group.count("FAILED")


def gpus_text(ids: tuple[int, ...]) -> str:
    return ",".join(str(i) for i in ids) if ids else fmt.NA


def _count(n: int, style: Style | str = "") -> Text:
    return Text(f"{n:,}" if n else "·", style=style if n else "dim")


class TaskGroupTable(VirtualTable[TaskGroup]):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(GROUP_COLUMNS, self._format_row, empty_text="no tasks", id=id)

    def show(self, groups: Sequence[TaskGroup]) -> None:
        self.set_rows([g.name for g in groups], groups)

    def row_version(self, item: TaskGroup) -> TaskGroup:
        return item

    def _format_row(self, g: TaskGroup, widths: Sequence[int]) -> list[Text | str]:
        p = palette(self.app)
        pending, running, finished, failed = group_counts(g)
        return [
            g.name,
            Text(g.kind.removesuffix("_TASK").lower().replace("_", " "), style=p.dim),
            _count(pending, p.mid),
            _count(running, p.ok),
            _count(finished),
            _count(failed, p.bad),
            f"{g.total:,}",
        ]


class TaskTable(VirtualTable[TaskRow]):
    def __init__(self, gpus: GpuLookup, now: Callable[[], float], *, id: str | None = None) -> None:
        super().__init__(TASK_COLUMNS, self._format_row, empty_text="no tasks match", id=id)
        self._gpus = gpus
        self._now = now

    def show(self, rows: Sequence[TaskRow]) -> None:
        self.set_rows([f"{r.task_id}/{r.attempt}" for r in rows], rows)

    def _format_row(self, t: TaskRow, widths: Sequence[int]) -> list[Text | str]:
        p = palette(self.app)
        retry = f" #{t.attempt}" if t.attempt else ""
        return [
            Text(t.task_id[:16], style=p.dim),
            t.name + retry,
            Text(t.state, style=state_style(t.state, p)),
            (t.node_id or fmt.NA)[:8],
            fmt.NA if t.worker_pid is None else str(t.worker_pid),
            gpus_text(self._gpus(t.node_id, t.worker_pid, ())),
            fmt.span(t.duration(self._now())),
        ]


class ActorTable(VirtualTable[ActorRow]):
    def __init__(self, gpus: GpuLookup, *, id: str | None = None) -> None:
        super().__init__(ACTOR_COLUMNS, self._format_row, empty_text="no actors", id=id)
        self._gpus = gpus

    def show(self, rows: Sequence[ActorRow]) -> None:
        self.set_rows([r.actor_id for r in rows], rows)

    def _format_row(self, a: ActorRow, widths: Sequence[int]) -> list[Text | str]:
        p = palette(self.app)
        gpus = self._gpus(a.node_id, a.pid, a.gpu_ids) if not a.dead else a.gpu_ids
        return [
            a.class_name,
            a.name or Text("(unnamed)", style=p.dim),
            Text(a.state, style=state_style(a.state, p)),
            (a.node_id or fmt.NA)[:8],
            fmt.NA if a.pid is None else str(a.pid),
            gpus_text(gpus),
            Text(str(a.restarts), style=p.mid if a.restarts else p.dim),
        ]
