"""Two lines at the top: link state, address and Ray version; cluster totals (and, while polls
are spaced out because a fetch costs too much, how often it polls); the view tabs.

Fits 80 columns: the address is shortened first, then the totals drop their least useful parts.
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from raytui.tui import format as fmt
from raytui.tui.messages import ConnState
from raytui.tui.state import UiState
from raytui.tui.widgets.common import palette


class ClusterHeader(Widget):
    DEFAULT_CSS = """
    ClusterHeader {
        height: 2;
        background: $panel;
        color: $foreground;
        padding: 0 1;
    }
    """

    def __init__(self, state: UiState, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state = state
        self.right: Text = Text()
        self._ticking = False

    def set_right(self, text: Text) -> None:
        if text != self.right:
            self.right = text
            self.refresh()

    def on_mount(self) -> None:
        # Ages and the retry countdown move with the clock, not only with snapshots.
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        if self.state.link.state in (ConnState.DISCONNECTED, ConnState.CONNECTING):
            self.refresh()

    def render(self) -> Text:
        width = max(20, self.content_region.width or self.size.width)
        return Text("\n").join([self._line1(width), self._line2(width)])

    def _link_text(self) -> Text:
        p = palette(self.app)
        link = self.state.link
        now = self.state.now()
        if link.state is ConnState.CONNECTED:
            return Text.assemble(("● ", p.ok), "connected")
        if link.state is ConnState.CONNECTING:
            return Text.assemble(("● ", p.mid), "connecting")
        if link.state is ConnState.STOPPING:
            return Text.assemble(("● ", p.mid), "stopping")
        retry = link.retry_in(now)
        t = Text.assemble(("● ", p.bad), ("disconnected", p.bad))
        if retry is not None:
            t.append(f" · retry in {retry:.0f}s", style=p.dim)
        return t

    def _line1(self, width: int) -> Text:
        p = palette(self.app)
        left = Text.assemble(("raytui ", p.label), self._link_text())
        snap = self.state.snapshot
        where = _bare(self.state.link.description or self.state.link.target)
        address = _bare(snap.address) if snap is not None else ""
        version = f"Ray {snap.ray_version}" if snap is not None else ""
        if address and address in where:
            where, address = "", where
        room = width - left.cell_len - self.right.cell_len - 3
        # Shown in this order, kept in order of use when room is short: address, version, where.
        slots = {"where": where, "address": address, "version": version}
        kept: set[str] = set()
        used = 0
        for name in ("address", "version", "where"):
            text = slots[name]
            cost = len(text) + (3 if used else 0)
            if text and used + cost <= room:
                kept.add(name)
                used += cost
        middle = " · ".join(slots[n] for n in ("where", "address", "version") if n in kept)
        if not middle:
            middle = fmt.ellipsize(address or where, max(0, room))
        line = left + Text("  ") + Text(middle, style=p.dim)
        pad = width - line.cell_len - self.right.cell_len
        if pad > 0:
            line.append(" " * pad)
        line.append_text(self.right)
        line.truncate(width)
        return line

    def _line2(self, width: int) -> Text:
        p = palette(self.app)
        snap = self.state.snapshot
        link = self.state.link
        if snap is None:
            if link.state is ConnState.DISCONNECTED and link.error:
                return Text(fmt.ellipsize(link.error, width), style=p.bad)
            return Text(fmt.ellipsize(link.progress or "", width), style=p.dim)
        cu, ct = snap.cpus
        gu, gt = snap.gpus
        mu, mt = snap.memory
        running = snap.jobs_running
        nodes = Text.assemble(("nodes ", p.dim), (str(snap.nodes_alive), p.label), " alive")
        if snap.nodes_dead:
            nodes.append(" · ")
            nodes.append(f"{snap.nodes_dead} dead", style=p.bad)
        pieces = [nodes]
        slow = self.state.slow_poll
        if slow is not None:  # says why the figures move less often than asked
            pieces.append(
                Text.assemble(
                    ("poll ", p.dim),
                    (f"every {fmt.num(slow.every)}s", p.mid),
                    (f" (fetch {slow.fetch:.1f}s)", p.dim),
                )
            )
        pieces += [
            Text.assemble(("CPU ", p.dim), f"{fmt.num(cu)}/{fmt.num(ct)}"),
            Text.assemble(("GPU ", p.dim), f"{fmt.num(gu)}/{fmt.num(gt)}"),
            Text.assemble(("mem ", p.dim), fmt.mem_bytes(mu, mt)),
            Text.assemble(("jobs ", p.dim), f"{running} running"),
        ]
        line = Text()
        for piece in pieces:
            extra = piece.cell_len + (3 if line.cell_len else 0)
            if line.cell_len + extra > width:
                break
            if line.cell_len:
                line.append("   ")
            line.append_text(piece)
        return line


def _bare(address: str) -> str:
    """'http://10.0.0.5:8265' -> '10.0.0.5:8265': the scheme costs columns and says little."""
    for scheme in ("http://", "https://"):
        if address.startswith(scheme):
            return address[len(scheme) :].rstrip("/")
    return address
