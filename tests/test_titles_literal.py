"""Text that the user typed or the cluster sent reaches border titles as it is: Textual parses a
plain str title as markup, so a filter `[/]` or a prompt with brackets stopped the app with a
MarkupError. Driven by Pilot, snapshots from a FAKE connection."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Select

from raytui.model.prompts import PromptRequest
from raytui.tui.widgets.answer_pane import AnswerPane
from tests.support.composer_standin import StandInService, app_with_service
from tests.support.tui_fakes import FakeConnection, healthy, screen_text
from tests.support.waiting import until
from tests.test_tui_app import make_app, started

HOSTILE = ("[/]", "[bold]x", "[red", "[@click=app.quit]q[/]")


async def test_a_node_filter_full_of_markup_is_shown_literally_in_the_title() -> None:
    app = make_app(FakeConnection([healthy()]))
    async with app.run_test(size=(120, 30)) as pilot:
        await started(pilot, app)
        for needle in HOSTILE:
            await pilot.press("/")
            await pilot.press("ctrl+u", *needle, "enter")
            await until(
                pilot,
                lambda n=needle: f"/{n}" in screen_text(app),
                what=f"the filter {needle!r} in the title",
                detail=lambda: screen_text(app),
            )
        assert app.is_running


class PaneHost(App[None]):
    def __init__(self, pane: AnswerPane) -> None:
        super().__init__()
        self.pane = pane

    def compose(self) -> ComposeResult:
        yield self.pane


async def test_a_prompt_with_brackets_titles_its_answer_pane_literally() -> None:
    request = PromptRequest(prompt="what is [/] and [bold]?", backend="ollama", model="m[1]")
    app = PaneHost(AnswerPane(1, request))
    async with app.run_test(size=(100, 12)) as pilot:
        await until(pilot, lambda: "what is [/] and [bold]?" in screen_text(app))
        assert "1 · m[1] · " in screen_text(app)


async def test_a_resent_prompt_for_a_node_named_with_brackets_fills_the_node_list_literally() -> (
    None
):
    app = app_with_service(StandInService({}))  # a STAND-IN prompt service: no run is sent
    async with app.run_test(size=(120, 30)) as pilot:
        await started(pilot, app)
        request = PromptRequest(prompt="hi", backend="ollama", model="m", node="[/]x")
        composer = app.open_composer(request)
        await until(
            pilot,
            lambda: any(s.value == "[/]x" for s in composer.query("#node").results(Select)),
            what="the node from the re-sent prompt",
            detail=lambda: screen_text(app),
        )
        assert "[/]x" in screen_text(app) and app.is_running
