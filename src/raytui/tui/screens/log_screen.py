"""A full screen holding one `LogView`, fed by a thread worker from the data layer.

`feed` is called in the worker with a `threading.Event` that is set when the screen closes, and
returns an iterable of chunks (bytes or str) that blocks until more output arrives, such as a
log stream from Ray's state API. The worker hands each chunk to the view (`LogView.append`, safe
from any thread) and stops at the first chunk after the screen closed; a producer that can block
for long should also watch the event (or time out now and then), since nothing can interrupt
a blocking read from outside. When the iterable ends the held partial line is shown and the
status says "ended"; when it raises, the status shows the error on one line.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import BindingType
from textual.screen import Screen

from raytui.text import one_line
from raytui.tui import keys
from raytui.tui.thread_work import ThreadWork
from raytui.tui.widgets.log_view import LogView

__all__ = ["Feed", "LogScreen"]

Feed = Callable[[threading.Event], Iterable[bytes | str]]


class LogScreen(ThreadWork, Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = keys.bindings("back")

    def __init__(self, source: str, feed: Feed, *, max_lines: int = 50_000) -> None:
        super().__init__(id="log-screen")
        self.source = source
        self.feed = feed
        self.max_lines = max_lines
        self.closed = threading.Event()

    def compose(self) -> ComposeResult:
        yield LogView(self.source, max_lines=self.max_lines, id="log-view")

    @property
    def view(self) -> LogView:
        return self.query_one(LogView)

    def on_mount(self) -> None:
        self._pump(self.view)

    def on_unmount(self) -> None:
        self.closed.set()

    def action_back(self) -> None:
        self.closed.set()
        self.dismiss()

    def _pump(self, view: LogView) -> None:
        def pump() -> None:
            for chunk in self.feed(self.closed):
                if self.closed.is_set():
                    return
                view.append(chunk)

        def ended(_: object, error: BaseException | None) -> None:
            if not self.closed.is_set():  # any failure of the source ends the feed, on one line
                view.finish(None if error is None else one_line(f"{type(error).__name__}: {error}"))

        self.in_thread(pump, ended, name="feed", group="log-feed", exclusive=True)
