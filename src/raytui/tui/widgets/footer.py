"""The key footer: Textual's `Footer`, rebuilt only when the keys it shows change.

Textual's footer rebuilds all of its key widgets whenever the screen's bindings are refreshed,
which happens on every focus change, mount and keymap update: five times before the cluster
view's first populated frame, each time with the same keys. This one compares what it would show
(key, label, enabled, tooltip of each shown binding) with what it shows, and skips the rebuild
when they are the same.
"""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer

Shown = tuple[tuple[str, str, str, bool, str], ...]


class KeysFooter(Footer):
    def __init__(self) -> None:
        super().__init__(show_command_palette=False)
        self._shown: Shown | None = None

    def _keys(self, screen: Screen[object]) -> Shown:
        return tuple(
            (binding.key, binding.action, binding.description, enabled, tooltip)
            for (_node, binding, enabled, tooltip) in screen.active_bindings.values()
            if binding.show
        )

    def bindings_changed(self, screen: Screen[object]) -> None:
        if screen.app.app_focus and screen is self.screen and self.is_attached:
            shown = self._keys(screen)
            if shown == self._shown:
                return  # a rebuild is done or under way with these keys
            self._shown = shown
        super().bindings_changed(screen)
