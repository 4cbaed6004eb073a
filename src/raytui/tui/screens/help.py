"""`?`: every key, what it does, where, and the id to remap it with in the config file."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from raytui.tui import keys


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        *keys.bindings("back", "help"),
        *keys.app_bindings("quit"),
    ]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: auto; max-width: 100%; height: auto; max-height: 100%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    HelpScreen Static { width: auto; }
    """

    def __init__(self, current: dict[str, str], config_path: str | None = None) -> None:
        super().__init__(id="help")
        self.current = current
        self.config_path = config_path

    def compose(self) -> ComposeResult:
        table = Table(box=None, pad_edge=False, show_edge=False, expand=False)
        table.add_column("key", style="bold", no_wrap=True)
        table.add_column("does", no_wrap=True)
        table.add_column("where", style="dim", no_wrap=True)
        table.add_column("id", style="dim italic", no_wrap=True)
        rows = [
            (
                keys.display_keys(self.current.get(spec.id, spec.keys)),
                spec.description,
                spec.where,
                spec.id,
            )
            for spec in keys.KEYS
        ]
        for row in rows:
            table.add_row(*row)
        # Textual's auto width measures the table too narrowly; size it from its cells.
        widths = [max(len(cell) for cell in column) for column in zip(*rows, strict=True)]
        content_width = sum(widths) + 2 * (len(widths) - 1)  # one space each side inside
        where = self.config_path or "config.toml"
        note = Text.assemble(
            ("Remap keys in ", "dim"),
            (where, "bold"),
            (' under [keys], e.g. quit = "q,ctrl+c".\n', "dim"),
            ("In the palette (:) type nodes, gpus, jobs, node <host>, help, quit.\n", "dim"),
        )
        with VerticalScroll() as scroll:
            scroll.styles.width = content_width + 4  # border and padding; max-width caps it
            scroll.border_title = "raytui keys"
            scroll.border_subtitle = "esc close"
            yield Static(note, id="help-note")  # first: the table scrolls at 80x24
            yield Static(table, id="help-keys")

    def action_back(self) -> None:
        self.dismiss()

    def action_help(self) -> None:
        self.dismiss()
