"""A small picker of one node's log files (raylet, dashboard agent, each worker, …).

`load` (blocking: Ray's state API via the dashboard) runs in a thread worker; the picker shows
"loading" until it answers, or its error on one line. Choosing a file dismisses with its name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from raytui.errors import describe
from raytui.model.workbench import NodeLogs
from raytui.text import one_line
from raytui.tui import keys
from raytui.tui.thread_work import ThreadWork
from raytui.tui.widgets.common import literal

__all__ = ["NodeLogsPicker", "ordered_groups"]

# The logs people look for first, in this order; every other group follows by name.
_FIRST = ("raylet", "agent", "dashboard", "gcs_server", "worker_out", "worker_err", "core_worker")


def ordered_groups(logs: NodeLogs) -> list[tuple[str, tuple[str, ...]]]:
    rank = {g: i for i, g in enumerate(_FIRST)}
    groups = [(g, files) for g, files in logs.groups if files]
    return sorted(groups, key=lambda gf: (rank.get(gf[0], len(_FIRST)), gf[0]))


class NodeLogsPicker(ThreadWork, ModalScreen[str | None]):
    BINDINGS: ClassVar[list[BindingType]] = keys.bindings("back")

    DEFAULT_CSS = """
    NodeLogsPicker { align: center middle; }
    NodeLogsPicker > Vertical {
        width: 90%;
        max-width: 100;
        height: 80%;
        border: round $primary;
        background: $surface;
        padding: 0 1;
    }
    NodeLogsPicker #logs-status { height: auto; color: $text-muted; }
    NodeLogsPicker OptionList { height: 1fr; border: none; }
    """

    def __init__(self, node_label: str, load: Callable[[], NodeLogs]) -> None:
        super().__init__(id="node-logs")
        self.node_label = node_label
        self._load = load
        self.logs: NodeLogs | None = None
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = literal(f"logs of {self.node_label}")
            yield Static("listing the node's logs…", id="logs-status", markup=False)
            yield OptionList(id="logs-list")

    def on_mount(self) -> None:
        self._fetch()

    def _fetch(self) -> None:
        self.in_thread(self._load, self._loaded, name="list", group="node-logs", exclusive=True)

    def _loaded(self, logs: NodeLogs | None, error: BaseException | None) -> None:
        if error is not None:  # one line; the picker stays usable (Esc)
            self.error = one_line(describe(error))
            self.query_one("#logs-status", Static).update(f"cannot list the logs: {self.error}")
            return
        assert logs is not None
        self.logs = logs
        options: list[Option | None] = []
        count = 0
        for group, files in ordered_groups(logs):
            if options:
                options.append(None)
            options.append(Option(Text(f"── {group}"), disabled=True))
            for name in files:
                options.append(Option(Text(name), id=name))  # literal, never markup
                count += 1
        listing = self.query_one(OptionList)
        listing.set_options(options)
        status = f"{count} files · ⏎ open (following) · esc back" if count else "no log files"
        self.query_one("#logs-status", Static).update(status)
        listing.focus()
        if count:
            listing.action_first()
            if (
                listing.highlighted is not None
                and listing.get_option_at_index(listing.highlighted).disabled
            ):
                listing.action_cursor_down()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.dismiss(event.option.id)

    def action_back(self) -> None:
        self.dismiss(None)
