"""A yes/no question in a dialog: `y`/Enter answers yes, `n`/Esc no (dismisses with a bool)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from raytui.tui import keys
from raytui.tui.keys import KeySpec
from raytui.tui.widgets.common import literal

CONFIRM_KEYS: tuple[KeySpec, ...] = (keys.BY_ID["confirm_yes"], keys.BY_ID["confirm_no"])

DIALOG_CSS = """
    align: center middle;
    & > Vertical {
        width: 90;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: round $accent;
        border-title-color: $text;
        border-title-style: bold;
        border-subtitle-color: $text-muted;
        background: $surface;
        padding: 0 1;
    }
"""


class ConfirmScreen(ModalScreen[bool]):
    DEFAULT_CSS = f"""
    ConfirmScreen {{ {DIALOG_CSS} }}
    ConfirmScreen > Vertical {{ width: 64; }}
    ConfirmScreen #confirm-keys {{ margin-top: 1; text-align: center; }}
    """
    BINDINGS: ClassVar[list[BindingType]] = [k.binding() for k in CONFIRM_KEYS]

    def __init__(self, title: str, question: Text, yes: str, no: str, *, id: str) -> None:
        super().__init__(id=id)
        self.title_text = title
        self.question = question
        self.yes, self.no = yes, no

    def compose(self) -> ComposeResult:
        keys_line = Text.assemble(
            ("y", "bold"),
            (f" / ⏎ {self.yes}", "dim"),
            ("     ", ""),
            ("n", "bold"),
            (f" / esc {self.no}", "dim"),
        )
        with Vertical() as box:
            box.border_title = literal(self.title_text)
            yield Static(self.question, id="confirm-question", markup=False)
            yield Static(keys_line, id="confirm-keys")

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
