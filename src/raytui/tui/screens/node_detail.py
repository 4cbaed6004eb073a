"""One node in full: its GPUs with every process, plus what raytui's NVML sampler adds.

For the node this machine runs, the local sampler is read every refresh (in a thread worker,
re-armed after each reading). Other nodes are probed on demand (`p`): a small actor pinned to the
node reads NVML there. A dead node says so and offers nothing to probe.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.timer import Timer
from textual.widgets import Footer, Static

from raytui import debuglog
from raytui.errors import describe
from raytui.model.cluster import Node
from raytui.model.nvml import GpuDetail, NvmlReport
from raytui.sources.machine import is_this_node
from raytui.tui import format as fmt
from raytui.tui import keys
from raytui.tui.messages import NvmlReady, ProbeReady
from raytui.tui.screens.live import LiveScreen
from raytui.tui.state import UiState
from raytui.tui.widgets.common import palette
from raytui.tui.widgets.gpus import GpuPanel
from raytui.tui.widgets.header import ClusterHeader

Sampler = Callable[[], NvmlReport]
Prober = Callable[[str], NvmlReport]


class NodeDetailScreen(LiveScreen):
    BINDINGS: ClassVar[list[BindingType]] = keys.bindings("back", "probe")

    def __init__(
        self,
        state: UiState,
        node_id: str,
        *,
        sample_local: Sampler | None,
        probe: Prober | None,
    ) -> None:
        super().__init__(state, id="node-detail")
        self.node_id = node_id
        self._sample_local = sample_local
        self._probe = probe
        self.report: NvmlReport | None = None
        self.report_source = ""  # "local" or "probe"
        self.probe_error: str | None = None
        self.probing = False
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield ClusterHeader(self.state, id="header")
        yield Static("", id="node-summary", classes="box")
        yield GpuPanel(self.state.history, full=True, id="detail-gpus")
        yield Static("", id="nvml-status", markup=False)
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        p = palette(self.app)
        self.query_one(ClusterHeader).set_right(Text(" esc back ", style=p.dim))
        super().on_mount()
        node = self.node
        if node is not None and node.alive and self.is_local(node):
            self._sample()

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

        def work() -> None:
            try:
                report = sampler()
            except Exception as exc:  # the sampler promises not to raise; never crash if it does
                debuglog.report("node_detail.work", exc)
                report = NvmlReport(hint=f"NVML sampler failed: {exc}")
            self.post_message(NvmlReady(report))

        self.run_worker(work, thread=True, group="nvml-local", exit_on_error=False)

    def on_nvml_ready(self, message: NvmlReady) -> None:
        if self.report_source != "probe":
            self.report, self.report_source = message.report, "local"
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

        def work() -> None:
            try:
                self.post_message(ProbeReady(node_id, report=probe(node_id)))
            except Exception as exc:
                debuglog.report("node_detail.work", exc)
                self.post_message(ProbeReady(node_id, error=describe(exc)))

        self.run_worker(work, thread=True, group="nvml-probe", exit_on_error=False)

    def on_probe_ready(self, message: ProbeReady) -> None:
        if message.node_id != self.node_id:
            return
        self.probing = False
        if message.report is not None:
            self.report, self.report_source = message.report, "probe"
        self.probe_error = message.error
        self.show_snapshot()

    def action_back(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self.dismiss()
