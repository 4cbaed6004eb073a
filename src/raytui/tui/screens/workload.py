"""The Tasks and Actors views of the cluster screen, the task list, task and actor detail.

- Tasks (`4`): counts per function and state, as `ray summary tasks` shows them; the dashboard
  counts them (the full task list is never fetched). Refreshed every few seconds while shown.
- Actors (`5`): class, name, state, node, PID, GPUs, restarts.
- Both filter server side with one line, `state:FAILED job:02000000 node:abc name:f`
  (model/workload_query.py), edited with `/` and applied with Enter.
- Enter on a function lists its tasks (bounded: "N more"); Enter on a task or an actor opens its
  detail; `l` opens its log in the log viewer; `K` kills an actor after asking (refused with
  `--readonly`, and for an unnamed actor, which only its owner's driver can kill).

Every call to the cluster runs in a thread worker and comes back as a message; GPU IDs come from
the snapshot's GPU processes matched by PID (`model.workbench.gpu_ids_for`).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical, VerticalScroll
from textual.dom import DOMNode
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Input, Static

from raytui.errors import UsageError, describe
from raytui.model.workbench import (
    ActorDetail,
    ActorFilter,
    ActorRow,
    LogSource,
    Page,
    TaskDetail,
    TaskFilter,
    TaskRow,
    TaskSummary,
    gpu_ids_for,
)
from raytui.model.workload_query import ACTOR_HINT, TASK_HINT, actor_filter, task_filter
from raytui.sources.workload import READONLY_REFUSAL
from raytui.text import one_line
from raytui.tui import format as fmt
from raytui.tui import keys
from raytui.tui.screens.confirm import ConfirmScreen
from raytui.tui.screens.log_screen import LogScreen
from raytui.tui.state import UiState
from raytui.tui.thread_work import ThreadWork
from raytui.tui.widgets.common import literal, palette
from raytui.tui.widgets.footer import KeysFooter
from raytui.tui.widgets.workload import (
    ActorTable,
    GpuLookup,
    TaskGroupTable,
    TaskTable,
    gpus_text,
    state_style,
)

if TYPE_CHECKING:
    from raytui.sources.workbench import Workbench

R = TypeVar("R")

REFRESH_S = 3.0
"""Seconds between fetches while a view or list is on screen (never overlapping)."""

LIST_LIMIT = 200
SUMMARY_LIMIT = 10_000
"""Ray's summary counts at most this many tasks (`RAY_MAX_LIMIT_FROM_API_SERVER`)."""


class WorkbenchHandle:
    """How a screen reaches the connected cluster's workbench clients (in worker threads).

    `factory` is the poller's `workbench`: the current connection's one set of clients, which
    that connection closes when it closes (so a screen never builds or closes clients itself,
    and a reconnect is followed on the next call). It raises ClusterUnreachable when not
    connected. `kill_python`: the interpreter with Ray on the head, which runs the kill job."""

    def __init__(self, factory: Callable[[], Workbench] | None) -> None:
        self._factory = factory
        self.kill_python = "python"

    @property
    def available(self) -> bool:
        """False when the screen was opened without a cluster connection at all."""
        return self._factory is not None

    def get(self) -> Workbench:
        if self._factory is None:
            raise UsageError("no cluster connection for tasks, actors or logs")
        return self._factory()


class Fetched(Message, Generic[R]):
    """A worker's result (or its one-line error) for `what`."""

    def __init__(self, what: str, result: R | None, error: str | None) -> None:
        super().__init__()
        self.what = what
        self.result = result
        self.error = error


def fetch(
    node: ThreadWork, handle: WorkbenchHandle, what: str, call: Callable[[Workbench], R]
) -> None:
    """Run `call(workbench)` in a thread worker of `node`; post `Fetched(what, …)` to it."""

    def fetched(result: R | None, error: BaseException | None) -> None:
        text = None if error is None else one_line(describe(error))  # one line on the pane
        node.post_message(Fetched(what, result, text))

    node.in_thread(lambda: call(handle.get()), fetched, name=what, group=f"workbench-{what}")


def open_log(node: DOMNode, handle: WorkbenchHandle, source: LogSource) -> None:
    """The log viewer on `source`, following it (the stream opens in the viewer's worker)."""

    def feed(stop: threading.Event) -> object:
        return handle.get().logs.follow(source, stop)

    max_lines = int(getattr(node.app, "log_max_lines", 50_000))
    node.app.push_screen(LogScreen(source.title, feed, max_lines=max_lines))  # type: ignore[arg-type]


def kill_actor(node: ThreadWork, handle: WorkbenchHandle, row: ActorRow, readonly: bool) -> None:
    """Ask, then kill `row` in a worker; posts `Fetched("kill", actor_id, error)` to `node`."""
    what = f"kill actor {row.class_name} {row.actor_id[:8]}"
    if readonly:
        node.app.notify(f"{what}: {READONLY_REFUSAL}", severity="warning")
        return
    if row.dead:
        node.app.notify(f"{what}: it is dead already", severity="warning")
        return
    if not row.name:
        node.app.notify(
            f"{what}: refused, it has no name; Ray kills an unnamed actor only from the driver "
            "that holds its handle (ray.kill)",
            severity="warning",
        )
        return
    question = Text.assemble(
        "Kill actor ",
        (row.class_name, "bold"),
        f" named {row.name!r} ({row.actor_id[:16]})",
        f" on node {(row.node_id or '?')[:8]}?" if row.node_id else "?",
        "\nIt will not be restarted. raytui runs a short job on the head to do it.",
    )

    def answered(yes: bool | None) -> None:
        if not yes:
            return
        node.app.notify(f"{what}: killing…", timeout=3)

        def call(wb: Workbench) -> str:
            wb.workload.kill_actor(row.actor_id, python=handle.kill_python)
            return row.actor_id

        fetch(node, handle, "kill", call)

    node.app.push_screen(
        ConfirmScreen("Kill actor", question, "kill", "keep it", id="confirm-kill"), answered
    )


def gpus_in(state: UiState) -> GpuLookup:
    """A table's GPU lookup: the latest snapshot's GPU processes, matched by PID."""

    def lookup(node_id: str | None, pid: int | None, known: tuple[int, ...]) -> tuple[int, ...]:
        return gpu_ids_for(state.snapshot, node_id, pid, known)

    return lookup


def resources_text(pairs: tuple[tuple[str, float], ...]) -> str:
    return ", ".join(f"{k}={fmt.num(v)}" for k, v in pairs)


class _Refreshing(ThreadWork, Widget):
    """What the views and the pushed screens share: one fetch at a time, every REFRESH_S while
    shown; a kill's answer refetches; a failure shows on the `.wb-status` line."""

    busy = False
    fetches = 0  # completed fetches (tests wait on it)
    error: str | None = None
    _timer: Timer | None = None

    def _start_refresh(self) -> None:
        """Fetch now and every REFRESH_S while shown."""
        if self._timer is None:
            self._timer = self.set_interval(REFRESH_S, self._tick)
            self._tick()

    def _shown(self) -> bool:
        raise NotImplementedError

    def _tick(self) -> None:
        if self._shown():
            self.refetch()

    def refetch(self) -> None:
        if not self.busy:
            self.busy = True
            self._fetch()

    def _fetch(self) -> None:
        raise NotImplementedError

    def _status(self, text: Text | str) -> None:
        self.query_one(".wb-status", Static).update(text)

    def _fetched(self, message: Fetched[object]) -> bool:
        """Common handling; True when the message carried data to show."""
        message.stop()
        if message.what == "kill":
            if message.error:
                self.app.notify(message.error, severity="error")
            else:
                self.app.notify("actor killed", timeout=3)
                self.refetch()
            return False
        self.busy = False
        self.fetches += 1
        self.error = message.error
        if message.error:
            self._status(Text(message.error, style=palette(self.app).bad))
            return False
        return True


# -- the views inside the cluster screen ---------------------------------------------------------


class WorkloadView(_Refreshing, Vertical):
    """A live list inside the cluster screen: a filter line, a status line, a table."""

    DEFAULT_CSS = """
    WorkloadView { height: 1fr; }
    WorkloadView > Input { height: 1; border: none; padding: 0 1; background: $boost; }
    WorkloadView > .wb-status { height: 1; padding: 0 1; color: $text-muted; }
    """
    HINT = ""
    TITLE = ""
    TABLE: ClassVar[type[Widget]] = Widget

    def __init__(self, state: UiState, handle: WorkbenchHandle, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="box")
        self.state = state
        self.handle = handle
        self.filter_text = ""

    def compose(self) -> ComposeResult:
        yield Input(placeholder=f"/ filter: {self.HINT}", id=f"{self.id}-filter")
        yield Static("", classes="wb-status", markup=False)

    @property
    def filter_box(self) -> Input:
        return self.query_one(Input)

    def on_mount(self) -> None:
        self.border_title = self.TITLE

    def activate(self) -> None:
        """Shown: fetch now and every REFRESH_S while shown."""
        self._start_refresh()

    def deactivate(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def _shown(self) -> bool:
        return self.display and self.screen.is_current

    def _fetched(self, message: Fetched[object]) -> bool:
        fresh = super()._fetched(message)
        if message.what != "kill":
            self.border_subtitle = "stale" if message.error and self.fetches > 1 else ""
        return fresh

    # -- the filter line ----------------------------------------------------------------------

    def edit_filter(self) -> None:
        self.filter_box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            self._apply_filter(event.value)
        except UsageError as exc:
            self._status(Text(str(exc), style=palette(self.app).bad))
            return  # the text stays in the box to be corrected
        self.filter_text = event.value.strip()
        self._set_title()
        self.query_one(self.TABLE).focus()
        self.refetch()

    def _apply_filter(self, line: str) -> None:
        raise NotImplementedError

    def _set_title(self, counts: str = "") -> None:
        title = self.TITLE + (f" [{counts}]" if counts else "")
        if self.filter_text:
            title += f" {self.filter_text}"
        self.border_title = literal(title)


class TasksView(WorkloadView):
    HINT = TASK_HINT
    TITLE = "Tasks"
    TABLE = TaskGroupTable
    BINDINGS: ClassVar[list[BindingType]] = []

    def __init__(self, state: UiState, handle: WorkbenchHandle, *, id: str | None = None) -> None:
        super().__init__(state, handle, id=id)
        self.where = TaskFilter()
        self.summary: TaskSummary | None = None

    def compose(self) -> ComposeResult:
        yield from super().compose()
        yield TaskGroupTable(id="task-groups")

    @property
    def table(self) -> TaskGroupTable:
        return self.query_one(TaskGroupTable)

    def _apply_filter(self, line: str) -> None:
        _query, self.where = task_filter(line, self.state.snapshot)

    def _fetch(self) -> None:
        where = self.where
        fetch(self, self.handle, "summary", lambda wb: wb.workload.task_summary(where))

    def on_fetched(self, message: Fetched[TaskSummary]) -> None:
        if not self._fetched(message) or message.result is None:  # type: ignore[arg-type]
            return
        summary = message.result
        self.summary = summary
        self.table.show(summary.groups)
        p = palette(self.app)
        # Ray counts at most SUMMARY_LIMIT tasks (and its `num_filtered` stops there too);
        # `total` is what the cluster holds before filters.
        held = summary.matched if self.filter_text else max(summary.matched, summary.source_total)
        self._set_title(f"{len(summary.groups)} functions · {held:,} tasks")
        self.table.set_empty_text("no task matches" if self.filter_text else "no tasks")
        line = Text()
        if summary.counted < held or summary.matched >= SUMMARY_LIMIT:
            of = f"of {held:,} " if held > summary.counted else "(or more) of the "
            line.append(f"counted {summary.counted:,} {of}tasks: Ray's summary limit ", style=p.mid)
        failed = summary.count("FAILED")
        if failed:
            line.append(f"{failed:,} failed ", style=p.bad)
        line.append("⏎ its tasks · / filter", style=p.dim)
        if summary.warnings and summary.counted >= summary.matched:
            line = Text(one_line(summary.warnings[0]), style=p.mid)
        self._status(line)

    def on_virtual_table_selected(self, event: TaskGroupTable.Selected) -> None:
        event.stop()
        where = dataclasses.replace(self.where, func_or_class_name=event.key)
        self.app.push_screen(TaskListScreen(self.state, self.handle, where, event.key))


class ActorsView(WorkloadView):
    HINT = ACTOR_HINT
    TITLE = "Actors"
    TABLE = ActorTable
    BINDINGS: ClassVar[list[BindingType]] = keys.bindings("workbench_logs", "actor_kill")

    def __init__(self, state: UiState, handle: WorkbenchHandle, *, id: str | None = None) -> None:
        super().__init__(state, handle, id=id)
        self.where = ActorFilter()
        self.page: Page[ActorRow] | None = None

    def compose(self) -> ComposeResult:
        yield from super().compose()
        yield ActorTable(gpus_in(self.state), id="actor-table")

    @property
    def table(self) -> ActorTable:
        return self.query_one(ActorTable)

    def _apply_filter(self, line: str) -> None:
        _query, self.where = actor_filter(line, self.state.snapshot)

    def _fetch(self) -> None:
        where = self.where
        fetch(self, self.handle, "actors", lambda wb: wb.workload.actors(where, LIST_LIMIT))

    def on_fetched(self, message: Fetched[Page[ActorRow]]) -> None:
        if not self._fetched(message) or message.result is None:  # type: ignore[arg-type]
            return
        page = message.result
        self.page = page
        # Alive first, then by class and name.
        rows = sorted(page.rows, key=lambda a: (a.dead, a.class_name, a.name or "", a.actor_id))
        self.table.show(rows)
        self.table.set_empty_text("no actor matches" if self.filter_text else "no actors")
        alive = sum(1 for a in page.rows if a.state == "ALIVE")
        self._set_title(f"{alive} alive · {page.matched}")
        p = palette(self.app)
        line = Text()
        if page.more:
            line.append(f"{page.more:,} more not shown (filter) ", style=p.mid)
        line.append("⏎ detail · l logs · K kill · / filter", style=p.dim)
        self._status(line)

    def on_virtual_table_selected(self, event: ActorTable.Selected) -> None:
        event.stop()
        row = self.table.cursor_item
        if row is not None:
            self.app.push_screen(ActorDetailScreen(self.state, self.handle, row))

    def action_open_logs(self) -> None:
        row = self.table.cursor_item
        if row is not None:
            open_log(self, self.handle, LogSource.actor(row.actor_id))

    def action_kill_actor(self) -> None:
        row = self.table.cursor_item
        if row is not None:
            kill_actor(self, self.handle, row, self.state.readonly)


# -- pushed screens -------------------------------------------------------------------------------


class _WorkbenchScreen(_Refreshing, Screen[None]):
    DEFAULT_CSS = """
    _WorkbenchScreen > #wb-head { height: auto; padding: 0 1; background: $panel; }
    _WorkbenchScreen > .wb-status { height: 1; padding: 0 1; color: $text-muted; }
    _WorkbenchScreen > VerticalScroll { height: 1fr; padding: 0 1; }
    _WorkbenchScreen #wb-traceback { margin-top: 1; }
    """

    def __init__(self, state: UiState, handle: WorkbenchHandle, *, id: str) -> None:
        super().__init__(id=id)
        self.state = state
        self.handle = handle

    def on_mount(self) -> None:
        self._start_refresh()

    def _shown(self) -> bool:
        return self.is_current

    def action_back(self) -> None:
        self.dismiss()

    def _field(self, t: Text, label: str, value: str | Text, width: int = 10) -> None:
        p = palette(self.app)
        t.append(f"{label:<{width}}", style=p.dim)
        t.append_text(value if isinstance(value, Text) else Text(value))
        t.append("\n")


class TaskListScreen(_WorkbenchScreen):
    """The tasks of one function (with the view's filter), newest first as the dashboard sends
    them, at most LIST_LIMIT: "N more" says how many the filter matched beyond."""

    BINDINGS: ClassVar[list[BindingType]] = keys.bindings("back", "workbench_logs")

    def __init__(
        self, state: UiState, handle: WorkbenchHandle, where: TaskFilter, name: str
    ) -> None:
        super().__init__(state, handle, id="task-list")
        self.where = where
        self.name_ = name
        self.page: Page[TaskRow] | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text(f"tasks of {self.name_}", style="bold"), id="wb-head")
        yield TaskTable(gpus_in(self.state), self.state.now, id="task-table")
        yield Static("loading…", classes="wb-status", markup=False)
        yield KeysFooter()

    def on_mount(self) -> None:
        self.query_one(TaskTable).focus()
        super().on_mount()

    def _fetch(self) -> None:
        where = self.where
        fetch(self, self.handle, "tasks", lambda wb: wb.workload.tasks(where, LIST_LIMIT))

    def on_fetched(self, message: Fetched[Page[TaskRow]]) -> None:
        if not self._fetched(message) or message.result is None:  # type: ignore[arg-type]
            return
        page = message.result
        self.page = page
        rows = sorted(page.rows, key=lambda r: (-(r.start_time or 0.0), r.task_id))
        self.query_one(TaskTable).show(rows)
        p = palette(self.app)
        line = Text(f"{len(rows):,} of {page.matched:,} tasks", style=p.dim)
        if page.more:
            line.append(f" · {page.more:,} more (narrow the filter)", style=p.mid)
        line.append(" · ⏎ detail · l logs · esc back", style=p.dim)
        self._status(line)

    def on_virtual_table_selected(self, event: TaskTable.Selected) -> None:
        event.stop()
        row = self.query_one(TaskTable).cursor_item
        if row is not None:
            self.app.push_screen(TaskDetailScreen(self.state, self.handle, row.task_id))

    def action_open_logs(self) -> None:
        row = self.query_one(TaskTable).cursor_item
        if row is not None:
            source = LogSource.task(
                row.task_id, row.attempt, node_id=row.node_id, pid=row.worker_pid
            )
            open_log(self, self.handle, source)


class TaskDetailScreen(_WorkbenchScreen):
    BINDINGS: ClassVar[list[BindingType]] = keys.bindings("back", "workbench_logs")

    def __init__(self, state: UiState, handle: WorkbenchHandle, task_id: str) -> None:
        super().__init__(state, handle, id="task-detail")
        self.task_id = task_id
        self.detail: TaskDetail | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text(f"task {self.task_id}", style="bold"), id="wb-head")
        with VerticalScroll(id="wb-scroll"):
            yield Static("", id="wb-fields", markup=False)
            yield Static("", id="wb-traceback", markup=False)
        yield Static("loading…", classes="wb-status", markup=False)
        yield KeysFooter()

    def _fetch(self) -> None:
        task_id = self.task_id
        fetch(self, self.handle, "task", lambda wb: wb.workload.task(task_id))

    def on_fetched(self, message: Fetched[TaskDetail]) -> None:
        if not self._fetched(message) or message.result is None:  # type: ignore[arg-type]
            return
        d = message.result
        self.detail = d
        r = d.row
        p = palette(self.app)
        now = self.state.now()
        t = Text()
        self._field(
            t,
            "name",
            r.name + (f"  ({r.func_or_class_name})" if r.name != r.func_or_class_name else ""),
        )
        self._field(t, "state", Text(r.state, style=state_style(r.state, p)))
        self._field(t, "kind", r.kind)
        self._field(t, "attempt", str(r.attempt))
        self._field(t, "job", r.job_id or fmt.NA)
        self._field(t, "node", r.node_id or fmt.NA)
        self._field(t, "worker", f"pid {r.worker_pid}" if r.worker_pid is not None else fmt.NA)
        gpus = gpu_ids_for(self.state.snapshot, r.node_id, r.worker_pid, d.gpu_ids)
        self._field(t, "GPUs", gpus_text(gpus))
        self._field(t, "duration", fmt.span(r.duration(now)))
        if r.start_time:
            self._field(
                t, "started", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.start_time))
            )
        if d.required_resources:
            self._field(t, "resources", resources_text(d.required_resources))
        if r.actor_id:
            self._field(t, "actor", r.actor_id)
        if r.error_type:
            self._field(t, "error", Text(r.error_type, style=p.bad))
        if d.message:
            self._field(t, "message", Text(d.message, style=p.bad))
        self.query_one("#wb-fields", Static).update(t)
        tb = self.query_one("#wb-traceback", Static)
        if d.traceback:
            tb.update(Text.assemble(("traceback\n", p.label), Text(d.traceback)))
        tb.display = bool(d.traceback)
        self._status(
            Text(
                "l logs · esc back" + (" · updated" if r.state.startswith("RUNNING") else ""),
                style=p.dim,
            )
        )

    def action_open_logs(self) -> None:
        if self.detail is None:
            source = LogSource.task(self.task_id)
        else:
            row = self.detail.row
            source = LogSource.task(
                self.task_id, row.attempt, node_id=row.node_id, pid=row.worker_pid
            )
        open_log(self, self.handle, source)


class ActorDetailScreen(_WorkbenchScreen):
    BINDINGS: ClassVar[list[BindingType]] = keys.bindings("back", "workbench_logs", "actor_kill")

    def __init__(self, state: UiState, handle: WorkbenchHandle, row: ActorRow) -> None:
        super().__init__(state, handle, id="actor-detail")
        self.row = row
        self.detail: ActorDetail | None = None

    def compose(self) -> ComposeResult:
        title = f"actor {self.row.class_name} {self.row.name or ''}".rstrip()
        yield Static(Text(title, style="bold"), id="wb-head")
        with VerticalScroll(id="wb-scroll"):
            yield Static("", id="wb-fields", markup=False)
        yield Static("loading…", classes="wb-status", markup=False)
        yield KeysFooter()

    def _fetch(self) -> None:
        actor_id = self.row.actor_id
        fetch(self, self.handle, "actor", lambda wb: wb.workload.actor(actor_id))

    def on_fetched(self, message: Fetched[ActorDetail]) -> None:
        if not self._fetched(message) or message.result is None:  # type: ignore[arg-type]
            return
        d = message.result
        self.detail = d
        self.row = r = d.row
        p = palette(self.app)
        t = Text()
        self._field(t, "actor", r.actor_id)
        self._field(t, "class", r.class_name)
        self._field(t, "name", r.name or Text("(unnamed: only its owner can kill it)", style=p.dim))
        self._field(t, "state", Text(r.state, style=state_style(r.state, p)))
        self._field(t, "namespace", d.namespace or fmt.NA)
        self._field(t, "job", r.job_id or fmt.NA)
        self._field(t, "node", r.node_id or fmt.NA)
        self._field(t, "pid", fmt.NA if r.pid is None else str(r.pid))
        gpus = (
            r.gpu_ids if r.dead else gpu_ids_for(self.state.snapshot, r.node_id, r.pid, r.gpu_ids)
        )
        self._field(t, "GPUs", gpus_text(gpus))
        self._field(t, "restarts", str(r.restarts))
        if d.required_resources:
            self._field(t, "resources", resources_text(d.required_resources))
        if d.detached:
            self._field(t, "lifetime", "detached")
        if d.death_cause:
            self._field(t, "death", Text(d.death_cause, style=p.bad))
        self.query_one("#wb-fields", Static).update(t)
        self._status(Text("l logs · K kill · esc back", style=p.dim))

    def action_open_logs(self) -> None:
        open_log(self, self.handle, LogSource.actor(self.row.actor_id))

    def action_kill_actor(self) -> None:
        kill_actor(self, self.handle, self.row, self.state.readonly)
