"""The main screen: header, one of the views (Nodes, GPUs, Jobs), the `/` filter, key hints.

Views are listed once in `VIEWS`; only the view on screen is updated when a snapshot arrives,
the others catch up when switched to.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Container, Vertical
from textual.widget import Widget
from textual.widgets import Input, LoadingIndicator, Static

from raytui.model.cluster import ClusterSnapshot, Node
from raytui.model.node_path import OverlayPaths
from raytui.tui import keys
from raytui.tui.messages import ConnState, OpenJob, OpenNode
from raytui.tui.screens.live import LiveScreen
from raytui.tui.screens.workload import ActorsView, TasksView, WorkbenchHandle, WorkloadView
from raytui.tui.state import UiState
from raytui.tui.widgets.common import literal, palette
from raytui.tui.widgets.footer import KeysFooter
from raytui.tui.widgets.gpus import GpuPanel, GpuTable, gpu_rows
from raytui.tui.widgets.header import ClusterHeader
from raytui.tui.widgets.jobs import JobsView, JobTable
from raytui.tui.widgets.nodes import NodeTable, matches
from raytui.tui.widgets.table import VirtualTable

if TYPE_CHECKING:
    from raytui.sources.workbench import Workbench


@dataclass(frozen=True)
class ViewSpec:
    id: str
    title: str
    binding_id: str


VIEWS: tuple[ViewSpec, ...] = (
    ViewSpec("nodes", "Nodes", "view_nodes"),
    ViewSpec("gpus", "GPUs", "view_gpus"),
    ViewSpec("jobs", "Jobs", "view_jobs"),
    ViewSpec("tasks", "Tasks", "view_tasks"),
    ViewSpec("actors", "Actors", "view_actors"),
)
WORKLOAD_VIEWS = ("tasks", "actors")
"""Views that fetch their own data (from the dashboard, in workers) while shown."""


class ConnectingPanel(Vertical):
    """What the body shows before the first snapshot: progress, or why it failed."""

    DEFAULT_CSS = """
    ConnectingPanel { align: center middle; }
    ConnectingPanel > LoadingIndicator { height: 1; width: 100%; }
    ConnectingPanel > #connect-text { width: 100%; text-align: center; padding: 1 2; }
    """

    def __init__(self, state: UiState, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state = state

    def compose(self) -> ComposeResult:
        yield LoadingIndicator()
        yield Static("", id="connect-text", markup=False)

    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick)
        self.show()

    def _tick(self) -> None:
        if self.display and self.state.link.state is ConnState.DISCONNECTED:
            self.show()

    def show(self) -> None:
        link = self.state.link
        p = palette(self.app)
        spinning = link.state in (ConnState.CONNECTING, ConnState.STOPPING)
        self.query_one(LoadingIndicator).display = spinning
        text = Text(justify="center")
        if link.state is ConnState.DISCONNECTED:
            text.append("Cannot reach the Ray cluster\n\n", style=p.bad)
            text.append(f"{link.error or 'unknown error'}\n\n")
            retry = link.retry_in(self.state.now())
            if retry is not None:
                text.append(f"retrying in {retry:.0f}s · ", style=p.dim)
            text.append(f"{keys.display_keys(self.state.keys.get('refresh', 'r'))}", style=p.label)
            text.append(" to retry now", style=p.dim)
        elif link.state is ConnState.STOPPING:
            text.append(link.progress or "stopping…")
        else:
            target = link.target or "the Ray cluster"
            text.append(f"connecting to {target}…\n\n", style=p.label)
            text.append(link.progress or "", style=p.dim)
        self.query_one("#connect-text", Static).update(text)


class BoxTitles:
    """Border titles set only when their text changes: Textual redraws the whole box (each of
    its lines and the compositor's cuts of them: thousands of objects for the cycle collector)
    on every assignment, even of the same text, and the views set theirs once a snapshot."""

    def __init__(self) -> None:
        self._set: dict[int, str] = {}

    def set(self, box: Widget, title: str) -> None:
        if self._set.get(id(box)) != title:
            self._set[id(box)] = title
            box.border_title = literal(title)


class NodesView(Container):
    """Node table, and the GPU panes of the highlighted node beside or below it."""

    def __init__(self, state: UiState, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state = state
        self._node_by_id: dict[str, Node] = {}
        self._gpu_node: str | None = None
        self._titles = BoxTitles()

    def compose(self) -> ComposeResult:
        with Vertical(id="node-box", classes="box"):
            yield NodeTable(id="node-table")
        with Vertical(id="gpu-box", classes="box"):
            yield GpuPanel(self.state.history, id="gpu-panel")

    @property
    def table(self) -> NodeTable:
        return self.query_one(NodeTable)

    def show(self, snapshot: ClusterSnapshot, needle: str) -> None:
        now = self.state.now()
        paths = self.state.paths
        nodes = tuple(
            n
            for n in snapshot.nodes
            if matches(n, needle, None if paths is None else paths.path_of(n.ip))
        )
        self._node_by_id = {n.node_id: n for n in nodes}
        table = self.table
        table.show(nodes, now, paths)
        total = len(snapshot.nodes)
        shown = f"{len(nodes)}/{total}" if needle else str(total)
        box = self.query_one("#node-box")
        self._titles.set(box, f"Nodes [{shown}]" + (f" /{needle}" if needle else ""))
        table.set_empty_text(f"no node matches /{needle}" if needle else "no nodes")
        self.show_gpus(table.cursor_key)

    def show_gpus(self, node_id: str | None) -> None:
        node = self._node_by_id.get(node_id) if node_id else None
        box = self.query_one("#gpu-box")
        if node is None:
            self._titles.set(box, "GPUs")
        else:
            self._titles.set(box, f"GPUs · {node.hostname or node.ip} ({node.short_id})")
        self.query_one(GpuPanel).show_node(node, self.state.now())

    def on_virtual_table_highlighted(self, event: VirtualTable.Highlighted) -> None:
        if isinstance(event.table, NodeTable):
            self.show_gpus(event.key)


class GpusView(Container):
    def __init__(self, state: UiState, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state = state
        self._titles = BoxTitles()

    def compose(self) -> ComposeResult:
        with Vertical(id="gpus-box", classes="box"):
            yield GpuTable(id="gpu-table")

    @property
    def table(self) -> GpuTable:
        return self.query_one(GpuTable)

    def show(self, snapshot: ClusterSnapshot, needle: str) -> None:
        nodes = tuple(n for n in snapshot.nodes if matches(n, needle))
        keys_, rows = gpu_rows(nodes)
        self.table.set_rows(keys_, rows)
        total = sum(len(n.gpus) for n in snapshot.nodes)
        shown = f"{len(rows)}/{total}" if needle else str(total)
        title = f"GPUs [{shown}]" + (f" /{needle}" if needle else "")
        self._titles.set(self.query_one("#gpus-box"), title)


class ClusterScreen(LiveScreen):
    BINDINGS: ClassVar[list[BindingType]] = keys.bindings("filter", "back")

    def __init__(self, state: UiState, *, workbench: Callable[[], Workbench] | None = None) -> None:
        super().__init__(state, id="cluster")
        self.workbench = WorkbenchHandle(workbench)
        self.view = VIEWS[0].id
        self.needle = ""
        self.body = "connecting"  # the child of #body on screen
        # view id -> (generation, filter, overlay paths) on screen
        self._shown: dict[str, tuple[int, str, OverlayPaths | None]] = {}
        self._drawn = {VIEWS[0].id}  # views drawn with data once (the first: the app froze it)
        self._titles = BoxTitles()

    def compose(self) -> ComposeResult:
        yield ClusterHeader(self.state, id="header")
        with Container(id="body"):
            yield ConnectingPanel(self.state, id="connecting")
            yield NodesView(self.state, id="nodes")
            yield GpusView(self.state, id="gpus")
            with Vertical(id="jobs", classes="box"):
                yield JobsView(id="jobs-view")
            yield TasksView(self.state, self.workbench, id="tasks")
            yield ActorsView(self.state, self.workbench, id="actors")
        yield Input(placeholder="filter nodes by id, host, IP, state or path", id="filter")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self._titles.set(self.query_one("#jobs"), "Jobs")
        self._update_tabs()
        self._set_body("connecting")
        super().on_mount()

    def _set_body(self, current: str) -> None:
        """Show one of the body's views. Only those: the peers sidebar docks in #body too, and
        whether it shows is the `p` key's business (the first snapshot or a view switch once
        hid it, dialog and all)."""
        self.body = current
        views = {"connecting", *(v.id for v in VIEWS)}
        for child in self.query_one("#body").children:
            if child.id in views:
                child.display = child.id == current

    # -- data ---------------------------------------------------------------------------------

    def show_snapshot(self) -> None:
        super().show_snapshot()
        self.query_one(ClusterHeader).refresh()
        snap = self.state.snapshot
        if snap is None:
            return
        first = self.body == "connecting"
        if first:
            self._set_body(self.view)
        self._show_view(self.view)
        if first:
            self._focus_view()

    def show_paths(self) -> None:
        """The overlay's paths changed (`state.paths`): redraw the node list if it shows."""
        if self.state.snapshot is not None and self.body == self.view:
            self._show_view(self.view)

    def show_link(self) -> None:
        self.query_one(ClusterHeader).refresh()
        self.query_one(ConnectingPanel).show()
        stale = self.state.link.state is ConnState.DISCONNECTED and self.state.snapshot is not None
        self.set_class(stale, "-stale")
        for box in self.query(".box"):
            box.border_subtitle = "stale: cluster unreachable" if stale else ""

    def _show_view(self, view: str) -> None:
        snap = self.state.snapshot
        if snap is None:
            return
        if view in WORKLOAD_VIEWS:
            self._workload_view(view).activate()  # idempotent: they poll on their own timer
            return
        mark = (self.state.generation, self.needle, self.state.paths)
        if self._shown.get(view) == mark:
            return
        self._shown[view] = mark
        if view == "nodes":
            self.query_one(NodesView).show(snap, self.needle)
        elif view == "gpus":
            self.query_one(GpusView).show(snap, self.needle)
        elif view == "jobs":
            self.query_one(JobsView).show(snap, self.state.now())
            self._titles.set(self.query_one("#jobs"), f"Jobs [{len(snap.jobs)}]")

    # -- views --------------------------------------------------------------------------------

    def switch_view(self, view: str) -> None:
        if view not in {v.id for v in VIEWS}:
            return
        if self.view in WORKLOAD_VIEWS and view != self.view:
            self._workload_view(self.view).deactivate()
        self.view = view
        self._update_tabs()
        if self.state.snapshot is None:
            return
        self._set_body(view)
        self._show_view(view)
        self._focus_view()
        if view not in self._drawn:
            # The view's widgets and their drawn lines (thousands of Textual objects, most of
            # them the screen's containers' lines) live as long as the app: out of the cycle
            # collector's way once they are drawn, as the app does after its first frame.
            # Once per view, so what it freezes is bounded.
            self._drawn.add(view)
            self.call_after_refresh(gc.freeze)

    def _workload_view(self, view: str) -> WorkloadView:
        return self.query_one(f"#{view}", WorkloadView)

    def _focus_view(self) -> None:
        table = self.query_one(f"#{self.view}").query(VirtualTable).first()
        table.focus()

    def _update_tabs(self) -> None:
        p = palette(self.app)
        tabs = Text()
        narrow = self.app.size.width < 110  # only the current view's title: the address fits
        for spec in VIEWS:
            key = keys.display_keys(self.state.keys.get(spec.binding_id, "")).split(" ")[0]
            label = f" {key} " if narrow and spec.id != self.view else f" {key}:{spec.title} "
            if spec.id == self.view:
                tabs.append(label, style="reverse bold")
            else:
                tabs.append(label, style=p.dim)
        self.query_one(ClusterHeader).set_right(tabs)

    def on_resize(self) -> None:
        self._update_tabs()

    # -- filter -------------------------------------------------------------------------------

    def action_filter(self) -> None:
        if self.view in WORKLOAD_VIEWS and self.state.snapshot is not None:
            self._workload_view(self.view).edit_filter()  # their own, applied by the dashboard
            return
        if self.view == "jobs":
            self.switch_view("nodes")
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_back(self) -> None:
        if self.view in WORKLOAD_VIEWS and isinstance(self.focused, Input):
            self._focus_view()
            return
        box = self.query_one("#filter", Input)
        if box.display or self.needle:
            box.value = ""
            box.display = False
            self._set_needle("")
            self._focus_view()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self._set_needle(event.value.strip())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            if not event.value.strip():
                event.input.display = False
            self._focus_view()

    def _set_needle(self, needle: str) -> None:
        if needle != self.needle:
            self.needle = needle
            self._show_view(self.view)

    # -- selection ----------------------------------------------------------------------------

    def on_virtual_table_selected(self, event: VirtualTable.Selected) -> None:
        if isinstance(event.table, NodeTable):
            self.post_message(OpenNode(event.key))
        elif isinstance(event.table, GpuTable):
            self.post_message(OpenNode(event.key.split("/", 1)[0]))
        elif isinstance(event.table, JobTable):
            self.post_message(OpenJob(event.key))
