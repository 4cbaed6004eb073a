"""GPU panes (one node's GPUs, with bars and sparklines) and the all-GPUs table.

A `GpuPanel` keeps one `GpuPane` per GPU and updates them in place; panes are only mounted or
removed when the number of GPUs changes. The all-GPUs view is a `VirtualTable`, so 8,192 GPUs
cost nothing until they scroll into view.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Hashable, Iterable, Sequence
from contextlib import suppress
from itertools import accumulate
from typing import overload

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.geometry import Size
from textual.widget import Widget
from textual.widgets import Static

from raytui.model.cluster import Gpu, Node
from raytui.model.gpu_history import GpuHistory, gpu_key
from raytui.model.nvml import GpuDetail
from raytui.tui import format as fmt
from raytui.tui.format import Palette
from raytui.tui.widgets.common import palette
from raytui.tui.widgets.table import Column, VirtualTable

LABEL = 5  # "util " / "mem  "
VALUE = 14  # "12.0/79.6 GiB"
COMPACT_PROCESSES = 3


def gpu_lines(
    gpu: Gpu,
    width: int,
    p: Palette,
    util_hist: Sequence[float | None] = (),
    mem_hist: Sequence[float | None] = (),
    *,
    max_processes: int | None = COMPACT_PROCESSES,
    detail: GpuDetail | None = None,
) -> list[Text]:
    """The text of one GPU pane, `width` cells wide."""
    width = max(24, width)
    title = Text.assemble((f"GPU {gpu.index} ", p.label), (gpu.name, p.label))
    right = Text()
    if gpu.temperature_c is not None:
        right.append(f"{gpu.temperature_c:.0f}°C", style=p.level(_temp_level(gpu.temperature_c)))
    if gpu.power_w is not None:
        limit = detail.power_limit_w if detail else None
        right.append("  " if right else "")
        right.append(f"{gpu.power_w:.0f}" + (f"/{limit:.0f}" if limit else "") + " W")
    title.truncate(max(1, width - right.cell_len - 1), overflow="ellipsis")
    title.append(" " * max(1, width - title.cell_len - right.cell_len))
    title.append_text(right)

    room = width - LABEL - VALUE - 2
    bar_w = max(4, room // 2)
    spark_w = max(0, room - bar_w)
    util = _metric_line(
        "util", gpu.utilization_pct, fmt.pct(gpu.utilization_pct), bar_w, spark_w, util_hist, p
    )
    mem = _metric_line(
        "mem",
        gpu.memory_pct,
        fmt.mem_mib(gpu.memory_used_mib, gpu.memory_total_mib),
        bar_w,
        spark_w,
        mem_hist,
        p,
    )
    lines = [title, util, mem]
    if detail is not None:
        lines.extend(_detail_lines(detail, width, p))
    procs = gpu.processes
    shown = procs if max_processes is None else procs[:max_processes]
    if not procs:
        lines.append(Text("  no processes", style=p.dim))
    for proc in shown:
        line = Text("  pid ", style=p.dim)
        line.append(f"{proc.pid:<7}", style=p.label)
        mem_txt = fmt.NA if proc.memory_mib is None else _mib(proc.memory_mib)
        line.append(f" {mem_txt:>10}  ")
        line.append(proc.label or "", style=p.dim if not proc.label else "")
        line.truncate(width, overflow="ellipsis")
        lines.append(line)
    if len(shown) < len(procs):
        lines.append(Text(f"  +{len(procs) - len(shown)} more processes", style=p.dim))
    return lines


def _temp_level(celsius: float) -> float:
    # Map 40 °C -> 0 %, 90 °C -> 100 % so the level colours mean "cool / warm / hot".
    return max(0.0, min(100.0, (celsius - 40.0) * 2.0))


def _metric_line(
    label: str,
    value: float | None,
    value_text: str,
    bar_w: int,
    spark_w: int,
    hist: Sequence[float | None],
    p: Palette,
) -> Text:
    line = Text(f"{label:<{LABEL}}", style=p.dim)
    line.append_text(fmt.bar(value, bar_w, p))
    line.append(f" {value_text:>{VALUE}} ")
    if spark_w:
        line.append_text(fmt.sparkline(hist, spark_w, p))
    return line


def _detail_lines(d: GpuDetail, width: int, p: Palette) -> list[Text]:
    """NVML extras: clocks, fan, ECC, PCIe."""
    parts: list[tuple[str, str]] = []
    if d.sm_clock_mhz is not None:
        mx = f"/{d.sm_clock_max_mhz:.0f}" if d.sm_clock_max_mhz else ""
        parts.append(("SM", f"{d.sm_clock_mhz:.0f}{mx} MHz"))
    if d.mem_clock_mhz is not None:
        mx = f"/{d.mem_clock_max_mhz:.0f}" if d.mem_clock_max_mhz else ""
        parts.append(("mem clk", f"{d.mem_clock_mhz:.0f}{mx} MHz"))
    if d.fan_pct is not None:
        parts.append(("fan", f"{d.fan_pct:.0f}%"))
    if d.power_limit_w is not None:
        parts.append(("power limit", f"{d.power_limit_w:.0f} W"))
    if d.ecc_corrected is not None or d.ecc_uncorrected is not None:
        parts.append(("ECC", f"{_int(d.ecc_corrected)} corr {_int(d.ecc_uncorrected)} uncorr"))
    if d.pcie_gen is not None or d.pcie_width is not None:
        link = f"gen{_int(d.pcie_gen)} x{_int(d.pcie_width)}"
        if d.pcie_gen_max is not None and d.pcie_width_max is not None:
            link += f" (max gen{d.pcie_gen_max} x{d.pcie_width_max})"
        parts.append(("PCIe", link))
    if d.pcie_tx_kbps is not None or d.pcie_rx_kbps is not None:
        parts.append(("PCIe tx/rx", f"{_mbps(d.pcie_tx_kbps)}/{_mbps(d.pcie_rx_kbps)} MB/s"))
    if d.mig_enabled:
        parts.append(("MIG", "on"))
    if not parts:
        return [Text("  NVML: no extra fields readable on this GPU", style=p.dim)]
    lines: list[Text] = []
    line = Text("  ")
    for label, value in parts:
        piece = Text.assemble((label + " ", p.dim), value)
        if line.cell_len > 2 and line.cell_len + piece.cell_len + 3 > width:
            lines.append(line)
            line = Text("  ")
        if line.cell_len > 2:
            line.append(" · ", style=p.dim)
        line.append_text(piece)
    lines.append(line)
    return lines


def _mib(mib: float) -> str:
    return f"{mib:.0f} MiB" if mib < 1024 else f"{mib / 1024:.1f} GiB"


def _int(v: int | None) -> str:
    return fmt.NA if v is None else str(v)


def _mbps(kbps: float | None) -> str:
    return fmt.NA if kbps is None else f"{kbps / 1024:.1f}"


class GpuPane(Widget):
    """One GPU: title, utilisation and memory bars with sparklines, processes."""

    DEFAULT_CSS = """
    GpuPane {
        height: auto;
        padding: 0 1;
        margin-bottom: 1;
    }
    """

    def __init__(
        self,
        gpu: Gpu,
        node_id: str,
        history: GpuHistory,
        *,
        full: bool = False,
    ) -> None:
        super().__init__()
        self.gpu = gpu
        self.node_id = node_id
        self.history = history
        self.full = full
        self.detail: GpuDetail | None = None

    def show(self, gpu: Gpu, node_id: str, detail: GpuDetail | None = None) -> None:
        layout = len(gpu.processes) != len(self.gpu.processes) or (detail is None) != (
            self.detail is None
        )
        self.gpu, self.node_id, self.detail = gpu, node_id, detail
        self.refresh(layout=layout)

    def _lines(self, width: int) -> list[Text]:
        key = gpu_key(self.node_id, self.gpu.uuid, self.gpu.index)
        util = self.history.utilization(key)
        mem = self.history.memory(key)
        spark = max(0, width)
        return gpu_lines(
            self.gpu,
            width,
            palette(self.app),
            util.values(spark) if util else (),
            mem.values(spark) if mem else (),
            max_processes=None if self.full else COMPACT_PROCESSES,
            detail=self.detail,
        )

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._lines(width))

    def render(self) -> Text:
        return Text("\n").join(self._lines(self.content_region.width))


def no_gpus_message(node: Node) -> str:
    """Why a live node shows no GPU panes: it has none, or Ray counts GPUs (e.g. `--num-gpus`,
    `raytui join --gpus`) that nothing on the node reports metrics for."""
    if node.gpus_total <= 0:
        return "no GPUs on this node"
    count = fmt.num(node.gpus_total)
    noun = "GPU" if node.gpus_total == 1 else "GPUs"
    return (
        f"{count} {noun} in Ray's resources, but no GPU metrics from this node "
        "(logical GPUs, or no NVIDIA driver that Ray's agent can read)"
    )


class GpuPanel(VerticalScroll):
    """All GPUs of one node, or a plain sentence saying why there are none."""

    DEFAULT_CSS = """
    GpuPanel {
        height: 1fr;
        & > #gpu-message { color: $text-muted; padding: 1 1; }
    }
    """

    def __init__(self, history: GpuHistory, *, full: bool = False, id: str | None = None) -> None:
        super().__init__(id=id)
        self.history = history
        self.full = full
        self._panes: list[GpuPane] = []
        self._message = Static("", id="gpu-message", markup=False)

    def compose(self) -> ComposeResult:
        yield self._message

    def show_node(
        self,
        node: Node | None,
        now: float,
        details: dict[str, GpuDetail] | None = None,
    ) -> None:
        """Update in place. `details` maps GPU uuid (or index as text) to NVML extras."""
        if node is None:
            self._say("no node selected")
            return
        if not node.alive:
            self._say(f"node {node.short_id} {fmt.died(node.death_time, now)}: no live GPU data")
            return
        if not node.gpus:
            self._say(no_gpus_message(node))
            return
        self._message.display = False
        gpus = node.gpus
        for pane, gpu in zip(self._panes, gpus, strict=False):
            pane.show(gpu, node.node_id, _detail_for(details, gpu))
        if len(gpus) > len(self._panes):
            new = [
                GpuPane(gpu, node.node_id, self.history, full=self.full)
                for gpu in gpus[len(self._panes) :]
            ]
            for pane, gpu in zip(new, gpus[len(self._panes) :], strict=True):
                pane.detail = _detail_for(details, gpu)
            self._panes.extend(new)
            self.mount_all(new)
        elif len(gpus) < len(self._panes):
            extra = self._panes[len(gpus) :]
            del self._panes[len(gpus) :]
            for pane in extra:
                pane.remove()

    def _say(self, text: str) -> None:
        self._message.update(text)
        self._message.display = True
        if self._panes:
            for pane in self._panes:
                pane.remove()
            self._panes = []

    @property
    def message(self) -> str:
        return str(self._message.render()) if self._message.display else ""


def _detail_for(details: dict[str, GpuDetail] | None, gpu: Gpu) -> GpuDetail | None:
    if not details:
        return None
    return details.get(gpu.uuid) or details.get(str(gpu.index))


# -- the all-GPUs table -------------------------------------------------------------------------

GPU_COLUMNS = (
    Column("node", "NODE", 0, min_width=9, max_width=24),
    Column("gpu", "GPU", 3, "right"),
    Column("name", "NAME", 0, min_width=8, flex=2, max_width=40),
    Column("util", "UTIL", 0, min_width=12, max_width=40),
    Column("mem", "MEMORY", 0, min_width=20, max_width=50),
    Column("temp", "TEMP", 5, "right"),
    Column("power", "POWER", 5, "right"),
    Column("procs", "PROC", 4, "right"),
)

GpuRow = tuple[Node, Gpu]


class GpuTable(VirtualTable[GpuRow]):
    """Every GPU of every node: one row each, formatted only when on screen.

    Nodes are named by hostname; where two nodes in the table share one (machines cloned from
    one image, a node that rejoined with a new ID), each of them also shows its short node ID.
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(GPU_COLUMNS, self._format_row, empty_text="no GPUs in this cluster", id=id)
        self._repeated: frozenset[str] = frozenset()

    def set_rows(self, keys: Sequence[str], items: Sequence[GpuRow]) -> None:
        nodes = items.nodes if isinstance(items, GpuRows) else (node for node, _ in items)
        self._repeated = repeated_hostnames(nodes)
        super().set_rows(keys, items)

    def row_version(self, item: GpuRow) -> Hashable:
        node, gpu = item  # of the node, the row shows its name and whether it is alive
        return (node.hostname, node.short_id, node.hostname in self._repeated, node.alive, gpu)

    def node_label(self, node: Node, width: int) -> str:
        """The hostname, with the short node ID after it when another node has that hostname
        (the hostname is cut to make room, never the ID)."""
        if not node.hostname:
            return node.short_id
        if node.hostname not in self._repeated:
            return node.hostname
        host, room = node.hostname, width - len(node.short_id) - 1
        if len(host) > room:
            host = host[: max(room - 1, 1)] + "…"
        return f"{host} {node.short_id}"

    def _format_row(self, row: GpuRow, widths: Sequence[int]) -> list[Text | str]:
        node, gpu = row
        p = palette(self.app)
        dead = not node.alive
        util_w = widths[3] - 5
        mem_w = max(3, widths[4] - 14)
        cells: list[Text | str] = [
            Text(self.node_label(node, widths[0])),
            str(gpu.index),
            gpu.name,
            fmt.bar(None if dead else gpu.utilization_pct, util_w, p)
            + Text(f" {fmt.pct(gpu.utilization_pct):>4}"),
            fmt.bar(None if dead else gpu.memory_pct, mem_w, p)
            + Text(f" {fmt.mem_mib(gpu.memory_used_mib, gpu.memory_total_mib):>13}"),
            fmt.NA if gpu.temperature_c is None else f"{gpu.temperature_c:.0f}°C",
            fmt.NA if gpu.power_w is None else f"{gpu.power_w:.0f}W",
            str(len(gpu.processes)),
        ]
        if dead:
            return [Text(c.plain if isinstance(c, Text) else c, style=p.dim) for c in cells]
        return cells


def repeated_hostnames(nodes: Iterable[Node]) -> frozenset[str]:
    """The hostnames that more than one of `nodes` (counted once each by node ID) carries."""
    seen: dict[str, set[str]] = {}
    for node in nodes:
        if node.hostname:
            seen.setdefault(node.hostname, set()).add(node.node_id)
    return frozenset(host for host, ids in seen.items() if len(ids) > 1)


class GpuRows(Sequence[GpuRow]):
    """The (node, GPU) rows of `nodes`, in order, made when read: handing 32,768 GPUs to the
    table costs O(nodes) (a running count of GPUs per node), not 32,768 tuples and keys on the
    UI thread; the table reads only the rows on screen.

    It holds no reference to its keys (`GpuRowKeys` holds the rows): a reference cycle would
    leave each replaced set of rows, and with it a whole snapshot's nodes, GPUs and processes,
    to the cycle collector, whose full collections then freed several snapshots at once (tens of
    ms at 4,096 x 8) instead of refcounting freeing each when the next one is shown."""

    __slots__ = ("_ends", "_positions", "nodes")

    def __init__(self, nodes: Sequence[Node]) -> None:
        # Tuples of gc-free nodes and of ints: untracked by the next young collection, so the
        # full ones never walk them (lists would be walked entry by entry, every time).
        self.nodes = tuple(nodes)
        self._ends = tuple(accumulate(len(n.gpus) for n in nodes))
        self._positions: dict[str, int] | None = None

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def _locate(self, i: int) -> tuple[Node, Gpu]:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError("GPU row out of range")
        j = bisect_right(self._ends, i)
        node = self.nodes[j]
        return node, node.gpus[i - (self._ends[j - 1] if j else 0)]

    @overload
    def __getitem__(self, i: int) -> GpuRow: ...
    @overload
    def __getitem__(self, i: slice) -> list[GpuRow]: ...
    def __getitem__(self, i: int | slice) -> GpuRow | list[GpuRow]:
        if isinstance(i, slice):
            return [self._locate(k) for k in range(len(self))[i]]
        return self._locate(i)

    def key_position(self, key: str) -> int:
        """The row of `key` ("NODE_ID/GPU_INDEX"); ValueError when none (O(GPUs of the node))."""
        if self._positions is None:
            self._positions = {n.node_id: j for j, n in enumerate(self.nodes)}
        node_id, _, index = key.rpartition("/")
        j = self._positions.get(node_id)
        if j is not None:
            start = self._ends[j - 1] if j else 0
            for k, gpu in enumerate(self.nodes[j].gpus):
                if str(gpu.index) == index:
                    return start + k
        raise ValueError(f"no GPU row {key!r}")


class GpuRowKeys(Sequence[str]):
    """The keys of `GpuRows` ("NODE_ID/GPU_INDEX"), made when read."""

    __slots__ = ("_rows",)

    def __init__(self, rows: GpuRows) -> None:
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[k] for k in range(len(self))[i]]
        node, gpu = self._rows[i]
        return f"{node.node_id}/{gpu.index}"

    def index(self, value: object, start: int = 0, stop: int | None = None) -> int:
        if isinstance(value, str):
            with suppress(ValueError):
                i = self._rows.key_position(value)
                if start <= i and (stop is None or i < stop):
                    return i
        raise ValueError(f"{value!r} is not a GPU row key")

    def __contains__(self, value: object) -> bool:
        try:
            self.index(value)
        except ValueError:
            return False
        return True


def gpu_rows(nodes: Sequence[Node]) -> tuple[GpuRowKeys, GpuRows]:
    """Keys and rows of every GPU of `nodes`, in order (both made when read)."""
    rows = GpuRows(nodes)
    return GpuRowKeys(rows), rows
