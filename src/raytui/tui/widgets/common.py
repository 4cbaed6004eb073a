"""Small helpers the widgets share."""

from __future__ import annotations

from rich.text import Text
from textual.app import App
from textual.color import Color

from raytui.tui.format import Palette, palette_from_theme

_cache: dict[str, Palette] = {}


def palette(app: App[object]) -> Palette:
    """Level colours from the current theme (cached per theme)."""
    name = app.theme
    found = _cache.get(name)
    if found is None:
        v = app.theme_variables
        try:
            bg, fg = Color.parse(v["background"]), Color.parse(v["foreground"])
            muted: str | None = bg.blend(fg, 0.45).hex
        except (KeyError, ValueError):
            muted = None
        found = _cache[name] = palette_from_theme(
            v.get("success"), v.get("warning"), v.get("error"), muted
        )
    return found


def literal(text: str) -> Text:
    """`text` for a border title or subtitle, shown as it is. Textual parses a plain str there as
    markup: a filter `[/]`, a prompt or a hostname with brackets would be restyled or stop the app
    with a MarkupError."""
    return Text(text)
