"""Text helpers shared by the widgets: bars, sparklines, sizes, ages. Pure functions of their input.

Colours come in as a `Palette` built from the app's theme, so the helpers stay testable and the
widgets follow theme changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from rich.style import Style
from rich.text import Text

from raytui.durations import ago as ago  # re-exported: durations read the same in the CLI
from raytui.durations import span as span
from raytui.text import one_line

SPARK = "▁▂▃▄▅▆▇█"
BAR_FULL = "█"
BAR_EMPTY = "░"
NA = "-"


class Palette(NamedTuple):
    low: Style
    mid: Style
    high: Style
    dim: Style
    label: Style
    ok: Style
    bad: Style

    def level(self, pct: float | None) -> Style:
        if pct is None:
            return self.dim
        if pct < 60:
            return self.low
        if pct < 85:
            return self.mid
        return self.high


PLAIN = Palette(
    low=Style(color="green"),
    mid=Style(color="yellow"),
    high=Style(color="red"),
    dim=Style(dim=True),
    label=Style(bold=True),
    ok=Style(color="green"),
    bad=Style(color="red", bold=True),
)


def cell(value: str | Text) -> Text:
    """A table cell from any text: one line, terminal controls escaped (`raytui.text.one_line`),
    never parsed as markup. The one place cells are made safe: `VirtualTable` draws every cell
    through it and the DataTable screens build their cells with it. A Text keeps its styles."""
    if isinstance(value, str):
        return Text(one_line(value), end="", no_wrap=True)
    plain = value.plain
    if one_line(plain) == plain:
        return value
    bad = [i for i, ch in enumerate(plain) if one_line(ch) != ch]
    cuts = sorted({*bad, *(i + 1 for i in bad)})
    out = Text(style=value.style, end="", no_wrap=True)
    for piece in value.divide(cuts):
        text = piece.plain
        if len(text) == 1 and one_line(text) != text:
            out.append(one_line(text), style=piece.spans[0].style if piece.spans else "")
        else:
            out.append_text(piece)
    return out


def bar(pct: float | None, width: int, palette: Palette = PLAIN) -> Text:
    """A horizontal bar `width` cells wide; empty and dim when the value is unknown."""
    width = max(0, width)
    if pct is None:
        return Text(BAR_EMPTY * width, style=palette.dim)
    filled = round(max(0.0, min(100.0, pct)) * width / 100.0)
    text = Text(BAR_FULL * filled, style=palette.level(pct))
    text.append(BAR_EMPTY * (width - filled), style=palette.dim)
    return text


def sparkline(values: Sequence[float | None], width: int, palette: Palette = PLAIN) -> Text:
    """The newest `width` values (0-100) as block characters, right-aligned; gaps as spaces."""
    if width <= 0:
        return Text()
    tail = list(values[-width:])
    text = Text(" " * (width - len(tail)))
    for v in tail:
        if v is None or math.isnan(v):
            text.append(" ")
            continue
        i = min(len(SPARK) - 1, max(0, int(v / 100.0 * len(SPARK))))
        text.append(SPARK[i], style=palette.level(v))
    return text


def pct(value: float | None) -> str:
    return NA if value is None else f"{value:.0f}%"


def gib_from_mib(mib: float | None) -> str:
    return NA if mib is None else f"{mib / 1024:.1f}"


def mem_mib(used: float | None, total: float | None) -> str:
    """'12.0/79.6 GiB' (or MiB when small)."""
    if used is None and total is None:
        return NA
    if (total or used or 0) < 1024:
        return f"{_n(used)}/{_n(total)} MiB"
    return f"{gib_from_mib(used)}/{gib_from_mib(total)} GiB"


def mem_bytes(used: int | None, total: int | None) -> str:
    if used is None and total is None:
        return NA
    gib = 1024**3
    return f"{_f1(used, gib)}/{_f1(total, gib)} GiB"


def _n(v: float | None) -> str:
    return NA if v is None else f"{v:.0f}"


def _f1(v: float | None, div: float) -> str:
    return NA if v is None else f"{v / div:.1f}"


def num(v: float) -> str:
    """Logical resources: '3' for whole numbers, '0.5' otherwise."""
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}"


def died(node_death_time: float | None, now: float) -> str:
    return "died" if node_death_time is None else f"died {ago(node_death_time, now)}"


def dead_for(node_death_time: float | None, now: float) -> str:
    """The state cell of a dead node: 'DEAD 3m ago'."""
    return "DEAD" if node_death_time is None else f"DEAD {ago(node_death_time, now)}"


def ellipsize(text: str, width: int) -> str:
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + "…"


def palette_from_theme(
    success: str | None, warning: str | None, error: str | None, muted: str | None = None
) -> Palette:
    """The palette for a Textual theme's colours (any of them may be missing)."""
    return Palette(
        low=Style(color=success or "green"),
        mid=Style(color=warning or "yellow"),
        high=Style(color=error or "red"),
        dim=Style(color=muted) if muted else Style(dim=True),
        label=Style(bold=True),
        ok=Style(color=success or "green"),
        bad=Style(color=error or "red", bold=True),
    )
