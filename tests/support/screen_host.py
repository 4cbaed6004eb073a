"""An app that shows one screen, for tests of a screen on its own."""

from __future__ import annotations

from typing import Any

from textual.app import App
from textual.screen import Screen


class ScreenHost(App[None]):
    """Pushes `screen` when it starts."""

    def __init__(self, screen: Screen[Any]) -> None:
        super().__init__()
        self.hosted = screen

    def on_mount(self) -> None:
        self.push_screen(self.hosted)
