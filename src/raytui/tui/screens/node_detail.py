"""One node in full, in three tabs: its GPUs, their history as charts, and what runs there.

- GPUs: every GPU with every process, plus what raytui's NVML sampler adds. For the node this
  machine runs, the local sampler is read every refresh (in a thread worker, re-armed after each
  reading). Other nodes are probed on demand (`p`): a small actor pinned to the node reads NVML
  there. A dead node says so and offers nothing to probe.
- History: per GPU, utilisation and memory over the last 15 minutes (`GpuHistory`), as a chart.
- What runs: actors, running tasks, workers and GPU processes with their GPUs. The node's
  workload (Ray's state API, `WorkloadClient.node_workload`) is fetched in a thread worker every
  few seconds while this screen is on top, re-armed after each answer; GPU indices come from the
  snapshot's GPU processes by PID. Enter (or `l`) opens the row's worker log; `L` lists the node's
  logs (raylet, dashboard agent, each worker) and opens one, following, in the log viewer.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import VerticalScroll
from textual.timer import Timer
from textual.widgets import DataTable, Static, TabbedContent, TabPane

from raytui.errors import describe
from raytui.model.cluster import Node
from raytui.model.gpu_history import gpu_key
from raytui.model.nvml import GpuDetail, NvmlReport
from raytui.model.workbench import LogSource, NodeLogs, NodeWorkload, gpus_by_pid
from raytui.sources.machine import is_this_node
from raytui.text import one_line
from raytui.tui import format as fmt
from raytui.tui import keys
from raytui.tui.screens.live import LiveScreen
from raytui.tui.screens.node_logs import NodeLogsPicker
from raytui.tui.screens.workload import WorkbenchHandle, open_log
from raytui.tui.state import UiState
from raytui.tui.thread_work import ThreadWork
from raytui.tui.widgets.common import palette
from raytui.tui.widgets.footer import KeysFooter
from raytui.tui.widgets.gpus import GpuPanel
from raytui.tui.widgets.header import ClusterHeader
from raytui.tui.widgets.node_runs import RunsTable, run_rows

if TYPE_CHECKING:
    from raytui.sources.workbench import Workbench
    from raytui.tui.widgets.gpu_chart import GpuChart

Sampler = Callable[[], NvmlReport]
Prober = Callable[[str], NvmlReport]
WorkbenchFn = Callable[[], "Workbench"]

WORKLOAD_EVERY = 3.0  # seconds between workload fetches (at least the refresh interval)
TABS = ("tab-gpus", "tab-history", "tab-runs")


class NodeDetailScreen(ThreadWork, LiveScreen):
    BINDINGS: ClassVar[list[BindingType]] = keys.bindings(
        "back", "probe", "node_logs", "node_row_log", "node_tab"
    )

    def __init__(
        self,
        state: UiState,
        node_id: str,
        *,
        sample_local: Sampler | None,
        probe: Prober | None,
        workbench: WorkbenchFn | None = None,
    ) -> None:
        super().__init__(state, id="node-detail")
        self.node_id = node_id
        self._sample_local = sample_local
        self._probe = probe
        self.workbench = WorkbenchHandle(workbench)
        self.workload: NodeWorkload | None = None
        self.workload_error: str | None = None
        self._workload_timer: Timer | None = None
        self._workload_busy = False
        self._charts: dict[str, GpuChart] = {}
        self.report: NvmlReport | None = None
        self.report_source = ""  # "local" or "probe"
        self.probe_error: str | None = None
        self.probing = False
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield ClusterHeader(self.state, id="header")
        yield Static("", id="node-summary", classes="box")
        with TabbedContent(initial="tab-gpus", id="node-tabs"):
            with TabPane("GPUs", id="tab-gpus"):
                yield GpuPanel(self.state.history, full=True, id="detail-gpus")
                yield Static("", id="nvml-status", markup=False)
            with TabPane("History", id="tab-history"):
                yield Static("", id="history-status", markup=False)
                yield VerticalScroll(id="gpu-charts")
            with TabPane("What runs", id="tab-runs"):
                yield Static("", id="runs-status", markup=False)
                yield RunsTable(id="runs-table")
        yield KeysFooter()

    def on_mount(self) -> None:
        p = palette(self.app)
        self.query_one(ClusterHeader).set_right(Text(" esc back ", style=p.dim))
        super().on_mount()
        node = self.node
        if node is not None and node.alive and self.is_local(node):
            self._sample()
        self._fetch_workload()

    def on_unmount(self) -> None:
        if self._workload_timer is not None:
            self._workload_timer.stop()

    @property
    def node(self) -> Node | None:
        snap = self.state.snapshot
        return None if snap is None else snap.node(self.node_id)

    def is_local(self, node: Node) -> bool:
        state = self.state
        return is_this_node(node.hostname, node.ip, state.local_hostname, state.local_addresses)

    # -- live data ----------------------------------------------------------------------------

    def show_snapshot(self) -> None:
        super().show_snapshot()
        self.query_one(ClusterHeader).refresh()
        node = self.node
        now = self.state.now()
        self.query_one("#node-summary", Static).update(self._summary(node, now))
        self.query_one(GpuPanel).show_node(node, now, self._details())
        self._show_nvml_status()
        self._show_charts(node)
        self._show_runs()

    def show_link(self) -> None:
        self.query_one(ClusterHeader).refresh()

    def _summary(self, node: Node | None, now: float) -> Text:
        p = palette(self.app)
        if node is None:
            return Text(f"node {self.node_id[:8]} is not in the cluster any more", style=p.bad)
        t = Text.assemble(("node ", p.dim), (node.node_id, p.label))
        if node.is_head:
            t.append("  head", style=p.label)
        t.append("\n")
        t.append(f"{node.hostname}  {node.ip}  ")
        if node.alive:
            t.append("ALIVE", style=p.ok)
        else:
            t.append(f"DEAD · {fmt.died(node.death_time, now)}", style=p.bad)
            if node.state_message:
                t.append(f"\n{node.state_message}", style=p.dim)
            return t
        t.append("\n")
        t.append("CPU ", style=p.dim)
        t.append(f"{fmt.pct(node.cpu_percent)} · {fmt.num(node.cpus_used)}/")
        t.append(f"{fmt.num(node.cpus_total)} logical   ")
        t.append("mem ", style=p.dim)
        t.append(f"{fmt.mem_bytes(node.memory_used_bytes, node.memory_total_bytes)}   ")
        t.append("GPU ", style=p.dim)
        t.append(f"{fmt.num(node.gpus_used)}/{fmt.num(node.gpus_total)} logical")
        return t

    def _details(self) -> dict[str, GpuDetail] | None:
        if self.report is None:
            return None
        out: dict[str, GpuDetail] = {}
        for d in self.report.devices:
            out[d.uuid] = d
            out.setdefault(str(d.index), d)
        return out

    def _show_nvml_status(self) -> None:
        p = palette(self.app)
        node = self.node
        t = Text()
        probe_key = keys.display_keys(self.state.keys.get("probe", "p"))
        if node is None or not node.alive:
            t.append("no NVML details: the node is not alive", style=p.dim)
        elif self.probing:
            t.append("probing NVML on this node…", style=p.mid)
        elif self.probe_error:
            t.append(f"NVML probe failed: {self.probe_error}", style=p.bad)
        elif self.report is not None:
            r = self.report
            where = "this machine" if self.report_source == "local" else "probe"
            t.append(f"NVML ({where})", style=p.label)
            if r.driver_version:
                t.append(f" · driver {r.driver_version}")
            if r.cuda_driver_version:
                t.append(f" · CUDA {r.cuda_driver_version}")
            t.append(f" · {fmt.ago(r.sampled_at, self.state.now())}", style=p.dim)
            if r.hint:
                t.append(f"\n{r.hint}", style=p.mid)
        elif self.is_local(node) and self._sample_local is not None:
            t.append("reading NVML on this machine…", style=p.dim)
        else:
            t.append(f"{probe_key}", style=p.label)
            t.append(
                ": read clocks, fan, power limit, ECC and PCIe on this node "
                "(starts a small probe actor there)",
                style=p.dim,
            )
        self.query_one("#nvml-status", Static).update(t)

    # -- NVML ---------------------------------------------------------------------------------

    def _sample(self) -> None:
        sampler = self._sample_local
        if sampler is None:
            return
        self.in_thread(sampler, self._sampled, name="nvml-local", group="nvml-local")

    def _sampled(self, report: NvmlReport | None, error: BaseException | None) -> None:
        if report is None:  # the sampler promises not to raise; never crash if it does
            report = NvmlReport(hint=f"NVML sampler failed: {error}")
        if self.report_source != "probe":
            self.report, self.report_source = report, "local"
        self.show_snapshot()
        self._timer = self.set_timer(self.state.refresh, self._sample)

    def action_probe(self) -> None:
        node = self.node
        if node is None or not node.alive or self.probing or self._probe is None:
            if self._probe is None:
                self.notify("not connected: cannot probe", severity="warning")
            return
        probe, node_id = self._probe, node.node_id
        self.probing, self.probe_error = True, None
        self._show_nvml_status()

        def probed(report: NvmlReport | None, error: BaseException | None) -> None:
            if node_id != self.node_id:
                return
            self.probing = False
            if report is not None:
                self.report, self.report_source = report, "probe"
            self.probe_error = None if error is None else describe(error)
            self.show_snapshot()

        self.in_thread(partial(probe, node_id), probed, name="nvml-probe", group="nvml-probe")

    def action_back(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        if self._workload_timer is not None:
            self._workload_timer.stop()
        self.dismiss()

    def action_next_tab(self) -> None:
        tabs = self.query_one(TabbedContent)
        i = TABS.index(tabs.active) if tabs.active in TABS else 0
        tabs.active = TABS[(i + 1) % len(TABS)]

    # -- history charts -----------------------------------------------------------------------

    def _show_charts(self, node: Node | None) -> None:
        history = self.state.history
        status = self.query_one("#history-status", Static)
        gpus = node.gpus if node is not None and node.alive else ()
        minutes = history.window / 60.0
        if not gpus:
            status.update("no live GPUs on this node: no history to chart")
        else:
            status.update(
                f"utilisation and memory % per GPU, last {minutes:g} minutes "
                f"({history.samples} of {history.capacity} samples held)"
            )
        box = self.query_one("#gpu-charts", VerticalScroll)
        keys_now = []
        newest = self.state.snapshot.taken_at if self.state.snapshot is not None else 0.0
        for gpu in gpus:
            key = gpu_key(self.node_id, gpu.uuid, gpu.index)
            name = f"{key[0]}:{key[1]}"
            keys_now.append(name)
            chart = self._charts.get(name)
            if chart is None:
                from raytui.tui.widgets.gpu_chart import GpuChart  # plotext: loaded when used

                chart = GpuChart(f"GPU {gpu.index}", window=history.window)
                self._charts[name] = chart
                box.mount(chart)
            times, util, mem = history.timeline(key, since=newest - history.window)
            title = (
                f"GPU {gpu.index} {gpu.name} · util {fmt.pct(gpu.utilization_pct)} · "
                f"mem {fmt.pct(gpu.memory_pct)}"
            )
            chart.show(title, times, util, mem)
        for name in [n for n in self._charts if n not in keys_now]:
            self._charts.pop(name).remove()

    # -- what runs ----------------------------------------------------------------------------

    def _fetch_workload(self) -> None:
        self._workload_timer = None
        node = self.node
        if self._workload_busy or node is None or not node.alive or not self.workbench.available:
            self._show_runs()
            return
        self._workload_busy = True
        node_id = node.node_id

        def work() -> NodeWorkload:
            return self.workbench.get().workload.node_workload(node_id)

        self.in_thread(work, self._workload_read, name="workload", group="node-workload")

    def _workload_read(self, workload: NodeWorkload | None, error: BaseException | None) -> None:
        self._workload_busy = False
        if workload is not None:
            self.workload, self.workload_error = workload, None
        else:  # one line on the pane; the next fetch tries again
            self.workload_error = one_line(describe(error)) if error is not None else None
        self._show_runs()
        if self.is_current:
            self._arm_workload()

    def _arm_workload(self) -> None:
        if self._workload_timer is None and not self._workload_busy:
            every = max(WORKLOAD_EVERY, self.state.refresh)
            self._workload_timer = self.set_timer(every, self._fetch_workload)

    def on_screen_suspend(self) -> None:
        if self._workload_timer is not None:
            self._workload_timer.stop()
            self._workload_timer = None

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        if self.ready and self._workload_timer is None and not self._workload_busy:
            self._fetch_workload()

    def _show_runs(self) -> None:
        node = self.node
        p = palette(self.app)
        wl = self.workload
        gpus = gpus_by_pid(self.state.snapshot, self.node_id)
        rows = run_rows(wl, node, gpus)
        self.query_one(RunsTable).show(rows)
        t = Text()
        if node is None or not node.alive:
            t.append("the node is not alive: nothing runs there", style=p.dim)
        elif not self.workbench.available:
            t.append("not connected: only GPU processes are known", style=p.dim)
        elif wl is None and self.workload_error is None:
            t.append("reading what runs on this node…", style=p.dim)
        if wl is not None:
            parts = [
                _count(len(wl.actors.rows), wl.actors.more, "actor"),
                _count(len(wl.running_tasks.rows), wl.running_tasks.more, "running task"),
                _count(len(wl.workers), 0, "worker"),
            ]
            t.append(" · ".join(parts))
            t.append(f" · {fmt.ago(wl.taken_at, self.state.now())}", style=p.dim)
        if self.workload_error:
            t.append("\n" if t else "")
            t.append(f"cannot read the workload: {self.workload_error}", style=p.bad)
        if rows:
            t.append("\n⏎/l: the row's worker log · L: the node's logs", style=p.dim)
        self.query_one("#runs-status", Static).update(t)

    # -- logs ---------------------------------------------------------------------------------

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if isinstance(event.data_table, RunsTable):
            event.stop()
            self.action_row_log()

    def action_row_log(self) -> None:
        """The worker log of the selected row (an actor's, a task's worker, a GPU process)."""
        tabs = self.query_one(TabbedContent)
        if tabs.active != "tab-runs":
            tabs.active = "tab-runs"
            return
        row = self.query_one(RunsTable).current
        if row is None or row.pid is None:
            self.notify("no row with a process selected", severity="warning")
            return
        self.open_log(LogSource.worker(self.node_id, row.pid))

    def action_node_logs(self) -> None:
        node = self.node
        if not self.workbench.available:
            self.notify("not connected: cannot list the node's logs", severity="warning")
            return
        label = node.hostname if node is not None else self.node_id[:8]
        node_id = self.node_id

        def load() -> NodeLogs:
            return self.workbench.get().logs.node_logs(node_id)

        def chosen(filename: str | None) -> None:
            if filename:
                self.open_log(LogSource.node_file(node_id, filename))

        self.app.push_screen(NodeLogsPicker(f"{label} ({node_id[:8]})", load), chosen)

    def open_log(self, source: LogSource) -> None:
        """The log viewer on `source`, following; the stream stops when the viewer closes."""
        open_log(self, self.workbench, source)


def _count(n: int, more: int, noun: str) -> str:
    extra = f" (+{more} more)" if more else ""
    return f"{n} {noun}{'' if n == 1 else 's'}{extra}"
