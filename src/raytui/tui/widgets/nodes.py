"""The node list: one row per node, dead nodes greyed with how long ago they died.

With the peer daemon's overlay in view (an `OverlayPaths` handed down by the screen), a PATH
column says how this machine reaches each node: `local`, `overlay` (its own link) or `via NAME`
(through a hub). A node whose overlay link is down says so in its STATE at once, while Ray still
reports it ALIVE (Ray declares it dead about a minute later). Without an overlay the column is
hidden.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from rich.style import Style
from rich.text import Text

from raytui.model.cluster import Node
from raytui.model.node_path import NodePath, OverlayPaths
from raytui.tui import format as fmt
from raytui.tui.widgets.common import palette
from raytui.tui.widgets.table import Column, VirtualTable

# Narrow tables (the wide layout at 120 columns leaves ~65) squeeze the bars and the GPU column,
# then hide ROLE; the GPU count is never dropped.
NODE_COLUMNS = (
    Column("id", "ID", 8),
    Column("host", "HOST / IP", 0, min_width=10, flex=3),
    Column("path", "PATH", 0, min_width=7, max_width=16),  # "overlay", "via home-4090"
    Column("state", "STATE", 12),  # "DEAD 59s ago"
    Column("role", "ROLE", 4, drop=1),
    Column("cpu", "CPU", 0, min_width=13, max_width=32, squeeze=9),
    Column("mem", "MEMORY", 0, min_width=15, max_width=36, squeeze=13),
    Column("gpu", "GPU", 5, "right", squeeze=3),
)


LINK_DOWN = "✗ link down"


def matches(node: Node, needle: str, path: NodePath | None = None) -> bool:
    """The `/` filter: a case-insensitive substring of id, hostname, IP, state, 'head' or the
    node's path ('via lab', 'link down')."""
    if not needle:
        return True
    n = needle.lower()
    return (
        n in node.node_id.lower()
        or n in node.hostname.lower()
        or n in node.ip
        or n in node.state.value.lower()
        or (node.is_head and n in "head")
        or (path is not None and (n in path.label.lower() or (not path.up and n in LINK_DOWN)))
    )


class NodeTable(VirtualTable[Node]):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(NODE_COLUMNS, self._format_row, empty_text="no nodes", id=id)
        self.now = 0.0
        self.paths: OverlayPaths | None = None

    def show(self, nodes: Sequence[Node], now: float, paths: OverlayPaths | None = None) -> None:
        """`paths`: the overlay as the peer daemon sees it (None or empty: no PATH column)."""
        self.now = now
        self.paths = paths or None
        self.set_hidden_columns(() if self.paths else ("path",))
        self.set_rows([n.node_id for n in nodes], nodes)

    def path_of(self, node: Node) -> NodePath | None:
        return None if self.paths is None else self.paths.path_of(node.ip)

    def row_version(self, item: Node) -> Hashable:
        # A dead node's row shows how long ago it died: it changes with the clock.
        path = self.path_of(item)
        return (item, path) if item.alive else (item, path, int(self.now))

    def _format_row(self, node: Node, widths: Sequence[int]) -> list[Text | str]:
        p = palette(self.app)
        host = node.hostname or node.ip
        if node.hostname and node.ip and node.ip != node.hostname:
            both = f"{node.hostname} {node.ip}"
            host = both if len(both) <= widths[1] else node.hostname
        gpus = str(len(node.gpus)) if node.gpus else fmt.num(node.gpus_total)
        path = self.path_of(node)
        if not node.alive:
            cells: list[Text | str] = [
                node.short_id,
                host,
                "" if path is None else path.label,
                fmt.dead_for(node.death_time, self.now),
                "head" if node.is_head else "",
                "",
                "",
                gpus,
            ]
            return [Text(c if isinstance(c, str) else c.plain, style=p.dim) for c in cells]
        cpu_w = max(3, widths[5] - 5)
        mem_total = node.memory_total_bytes
        mem_pct = (
            100.0 * node.memory_used_bytes / mem_total
            if node.memory_used_bytes is not None and mem_total
            else None
        )
        mem_w = max(3, widths[6] - 10)
        state = Text("ALIVE", style=p.ok)
        shown_path: Text | str = ""
        if path is not None:
            shown_path = Text(path.label, style=Style() if path.up else p.bad)
            if not path.up:
                state = Text(LINK_DOWN, style=p.bad)
        return [
            node.short_id,
            host,
            shown_path,
            state,
            Text("head", style=p.label) if node.is_head else "",
            fmt.bar(node.cpu_percent, cpu_w, p) + Text(f" {fmt.pct(node.cpu_percent):>4}"),
            fmt.bar(mem_pct, mem_w, p) + Text(f" {_gib(node.memory_used_bytes, mem_total):>9}"),
            gpus,
        ]


def _gib(used: int | None, total: int | None) -> str:
    if used is None or not total:
        return fmt.NA
    g = 1024**3
    return f"{used / g:.0f}/{total / g:.0f}G"
