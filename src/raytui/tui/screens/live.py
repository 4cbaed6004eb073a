"""Base for screens that show live cluster data.

The app calls `show_snapshot` / `show_link` on the screen at the top only; a screen coming back to
the top catches up from `UiState`, so hidden screens cost nothing per snapshot.
"""

from __future__ import annotations

from textual.screen import Screen

from raytui.tui.state import UiState


class LiveScreen(Screen[None]):
    def __init__(self, state: UiState, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.state = state
        self._shown_generation = -1
        self.ready = False  # set once mounted: the app only calls screens that are ready

    def show_snapshot(self) -> None:
        """A new snapshot is in `self.state`; update widgets in place."""
        self._shown_generation = self.state.generation

    def show_link(self) -> None:
        """The connection state in `self.state.link` changed."""

    def catch_up(self) -> None:
        self.show_link()
        if self._shown_generation != self.state.generation:
            self.show_snapshot()

    def on_mount(self) -> None:
        self.ready = True
        self.catch_up()

    def on_screen_resume(self) -> None:
        if self.ready:
            self.catch_up()
