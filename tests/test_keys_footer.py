"""The key footer rebuilds only when the keys it shows change (widgets/footer.py), and still
follows every change: the app is driven by Pilot and fed a FAKE connection's snapshots."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from raytui.tui.widgets.footer import KeysFooter
from tests.support.tui_fakes import FakeConnection, healthy, screen_text
from tests.support.waiting import until
from tests.test_tui_app import make_app, started


@pytest.fixture
def rebuilds(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The screen each footer rebuild was for, in order."""
    seen: list[str] = []
    compose = KeysFooter.compose

    def counted(self: KeysFooter):  # type: ignore[no-untyped-def]
        if self._bindings_ready:
            seen.append(type(self.screen).__name__)
        return compose(self)

    monkeypatch.setattr(KeysFooter, "compose", counted)
    yield seen


async def test_footer_is_built_once_before_the_first_frame_and_follows_key_changes(
    rebuilds: list[str],
) -> None:
    app = make_app(FakeConnection([healthy()]))
    async with app.run_test(size=(200, 40)) as pilot:
        await started(pilot, app)
        await pilot.pause()

        def footer() -> str:
            return screen_text(app).splitlines()[-1]

        assert "⏎ Details" in footer() and "n Submit job" not in footer()
        # Textual's own footer was rebuilt five times by then, each time with the same keys.
        assert rebuilds == ["ClusterScreen"]
        await pilot.press("3")  # the Jobs view adds its submit key
        await until(pilot, lambda: "n Submit job" in footer(), what="the Jobs view's keys")
        await pilot.press("/")  # the filter field takes the keys
        await until(pilot, lambda: "p Peers" not in footer(), what="the filter's keys")
        assert len(rebuilds) == 3
