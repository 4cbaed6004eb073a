"""The prompt composer and the history screen, driven by Pilot.

Most tests hand the app a STAND-IN prompt service (tests/support/composer_standin.py: scripted
events, no Ray) and are named "with a stand-in service". One test runs the REAL service
(`RayPromptService` over a real `RayConnection`) against the session Ray cluster and a real HTTP
server speaking Ollama's wire format. Tests wait on conditions with deadlines
(tests/support/waiting.py), never on the clock; a check that something did NOT happen first
waits for the event that proves the app handled the input (its refusal notice).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from textual.command import CommandList, CommandPalette
from textual.pilot import Pilot
from textual.widgets import Checkbox, DataTable, Input, Select, Static, TextArea

from raytui.backends.history import HistoryStore
from raytui.model.prompts import (
    Chunk,
    Done,
    Failed,
    FailureKind,
    PromptRequest,
    RunState,
    Started,
    Timings,
)
from raytui.tui.app import RaytuiApp
from raytui.tui.screens.cluster import ClusterScreen
from raytui.tui.screens.composer import ComposerScreen
from raytui.tui.screens.history import HistoryScreen, RunDetailScreen
from raytui.tui.widgets.answer_pane import AnswerPane, PullState
from tests.servers.ollama_wire import OllamaWireServer
from tests.servers.ollama_wire import Script as WireScript
from tests.support.composer_standin import (
    NODE_A,
    PullCall,
    PullScript,
    Script,
    StandInService,
    app_with_service,
)
from tests.support.waiting import Notices, until

TOKENS = ["Grüße", " aus ", "東京", " — ", "naïve ", "😀", " <&>", "\n", "second line", "."]
ANSWER = "".join(TOKENS)


def hint(composer: ComposerScreen) -> str:
    return str(composer.query_one("#models-hint", Static).content)


async def open_composer(pilot: Pilot[Any], app: RaytuiApp) -> ComposerScreen:
    await until(pilot, lambda: app.state.generation >= 1, what="first snapshot")
    await pilot.press("c")
    await until(pilot, lambda: isinstance(app.screen, ComposerScreen), what="composer")
    composer = app.screen
    assert isinstance(composer, ComposerScreen)
    await until(pilot, lambda: hint(composer).startswith("models"), what="model list")
    return composer


async def open_composer_on_node(pilot: Pilot[Any], app: RaytuiApp, node_id: str) -> ComposerScreen:
    """Open the composer on a real cluster and target `node_id` once Ray lists it."""
    await until(pilot, lambda: app.state.generation >= 1, what="first snapshot")
    await pilot.press("c")
    await until(pilot, lambda: isinstance(app.screen, ComposerScreen))
    composer = app.screen
    assert isinstance(composer, ComposerScreen)
    await until(
        pilot,
        lambda: node_id in {v for _, v in composer._node_options()},
        within=30,
        what="Ray's node list",
    )
    composer.query_one("#node", Select).value = node_id
    return composer


def panes(composer: ComposerScreen) -> list[AnswerPane]:
    return list(composer.query(AnswerPane))


def palette_choice(app: RaytuiApp) -> str:
    """The command the palette would run on enter ("" while it has none highlighted)."""
    screen = app.screen
    if not isinstance(screen, CommandPalette):
        return ""
    commands = screen.query_one(CommandList)
    if commands.highlighted is None:
        return ""
    prompt = commands.get_option_at_index(commands.highlighted).prompt
    return str(getattr(prompt, "plain", prompt))


def pane_status(pane: AnswerPane) -> str:
    return str(pane.query_one(".pane-status", Static).content)


def pane_error(pane: AnswerPane) -> str:
    return str(pane.query_one(".pane-error", Static).content)


async def type_prompt(pilot: Pilot[Any], composer: ComposerScreen, *lines: str) -> None:
    composer.query_one("#prompt", TextArea).focus()
    for n, line in enumerate(lines):
        if n:
            await pilot.press("enter")
        await pilot.press(*line)


def set_model(composer: ComposerScreen, model: str) -> None:
    composer.query_one("#model", Input).value = model


# -- (a) stand-in service --------------------------------------------------------------------


async def test_submit_streams_text_in_order_with_states_with_a_stand_in_service() -> None:
    service = StandInService({"llama3.2": Script(TOKENS, delay_s=0.03, waiting=6)})
    app = app_with_service(service)
    async with app.run_test(size=(100, 30)) as pilot:
        composer = await open_composer(pilot, app)
        # The model list came from the service in a thread worker, never on the event loop.
        assert "models: llama3.2" in hint(composer)
        assert service.threads and "MainThread" not in service.threads
        set_model(composer, "llama3.2")
        await type_prompt(pilot, composer, "Say hello in 3 languages")
        await pilot.press("ctrl+s")
        (pane,) = panes(composer)
        seen_status: list[str] = []
        seen_text: list[str] = []
        locked: list[bool] = []

        def sample() -> bool:
            status = str(pane.query_one(".pane-status", Static).content)
            if not seen_status or seen_status[-1] != status:
                seen_status.append(status)
            seen_text.append(pane.shown_text)
            locked.append(composer.query_one("#prompt", TextArea).read_only)
            return pane.state.final and pane.shown_text == ANSWER

        await until(pilot, sample, what="the whole answer")
        # In order: every text shown on the way was a prefix of the answer, multi-byte intact.
        assert all(ANSWER.startswith(t) for t in seen_text)
        assert pane.shown_text == ANSWER == pane.text
        assert any("waiting for a GPU · 0/2 free (cluster, needs 1)" in s for s in seen_status)
        assert any(s.startswith("● streaming · gpu-box-2 GPU 1") for s in seen_status)
        assert seen_status[-1] == "✔ done (stop) · gpu-box-2 GPU 1 · 10.0.0.6 · node b2c3d4e5"
        assert pane.border_subtitle == "ttft 0.12s · 41.5 tok/s"
        assert pane.started is not None and pane.started.node_id == NODE_A
        # The editor was locked while streaming and is open again, the prompt still there.
        assert True in locked
        prompt = composer.query_one("#prompt", TextArea)
        assert not prompt.read_only and prompt.text == "Say hello in 3 languages"
        (request,) = service.requests
        assert request == PromptRequest(
            "Say hello in 3 languages", "ollama", "llama3.2", num_gpus=1.0
        )


async def test_esc_cancels_running_streams_then_leaves_with_a_stand_in_service() -> None:
    service = StandInService({"slow": Script(["one ", "two ", "three "], hold_after=2)})
    app = app_with_service(service)
    async with app.run_test(size=(100, 30)) as pilot:
        composer = await open_composer(pilot, app)
        set_model(composer, "slow")
        await type_prompt(pilot, composer, "count slowly")
        await pilot.press("ctrl+s")
        (pane,) = panes(composer)
        await until(pilot, lambda: pane.shown_text == "one two ", what="two tokens")
        assert pane.state is RunState.STREAMING
        await pilot.press("escape")  # first esc: cancel, no confirmation
        await until(pilot, lambda: pane.state is RunState.CANCELLED, what="cancelled")
        assert [r.prompt for r in service.cancels] == ["count slowly"]
        assert isinstance(app.screen, ComposerScreen)  # still here, with what arrived
        await until(pilot, lambda: pane_status(pane).startswith("■ cancelled"), what="status")
        assert pane.shown_text == "one two "
        prompt = composer.query_one("#prompt", TextArea)
        assert prompt.text == "count slowly" and not prompt.read_only
        await pilot.press("escape")  # nothing running: esc goes back
        await until(pilot, lambda: isinstance(app.screen, ClusterScreen), what="back")


async def test_failure_shows_error_in_pane_and_keeps_prompt_with_a_stand_in_service() -> None:
    service = StandInService({"breaks": Script(TOKENS, error_after=3)})
    app = app_with_service(service)
    async with app.run_test(size=(100, 30)) as pilot:
        composer = await open_composer(pilot, app)
        set_model(composer, "breaks, missing")  # two models: two panes side by side
        await type_prompt(pilot, composer, 'He said "hi"; run `ls` $(whoami)', "second line")
        await pilot.press("ctrl+s")
        breaks, missing = panes(composer)
        await until(
            pilot,
            lambda: pane_error(breaks) and pane_error(missing),
            what="both errors shown",
        )
        assert breaks.state is RunState.FAILED and missing.state is RunState.FAILED
        assert breaks.shown_text == "".join(TOKENS[:3])  # what arrived stays
        error = str(breaks.query_one(".pane-error", Static).content)
        assert "failed mid-stream: unexpected EOF" in error
        assert "model missing not found" in str(missing.query_one(".pane-error", Static).content)
        assert breaks.has_class("-failed")
        prompt = composer.query_one("#prompt", TextArea)
        assert prompt.text == 'He said "hi"; run `ls` $(whoami)\nsecond line'
        assert not prompt.read_only
        assert [r.prompt for r in service.requests] == [prompt.text] * 2
        # Fix the model and send again: the same prompt, a fresh pane.
        set_model(composer, "ok")
        service.scripts["ok"] = Script(["fine"])
        await pilot.press("ctrl+s")
        await until(
            pilot, lambda: [p.shown_text for p in panes(composer)] == ["fine"], what="resend"
        )


async def test_start_error_and_bad_input_are_shown_with_a_stand_in_service() -> None:
    service = StandInService({"llama3.2": Script(["x"])})
    app = app_with_service(service)
    async with app.run_test(size=(100, 30)) as pilot:
        composer = await open_composer(pilot, app)
        set_model(composer, "llama3.2")
        notices = Notices(app)
        await pilot.press("ctrl+s")  # empty prompt: refused, nothing sent
        await notices.next(pilot, "Cannot send", after=0)
        assert not service.requests and not panes(composer)
        await type_prompt(pilot, composer, "hi")
        composer.query_one("#temperature", Input).value = "7"
        await pilot.press("ctrl+s")
        await notices.next(pilot, "Cannot send", after=1)
        assert not service.requests  # temperature out of range: refused
        composer.query_one("#temperature", Input).value = "0.5"
        for n, (field, value) in enumerate(
            (("#gpus", "inf"), ("#gpus", "1e9"), ("#max-tokens", "9" * 30))
        ):
            composer.query_one(field, Input).value = value
            await pilot.press("ctrl+s")
            await notices.next(pilot, "Cannot send", after=2 + n)
            assert not service.requests, (field, value)  # infinite or absurd: refused
            composer.query_one(field, Input).value = ""
        composer.prefill(PromptRequest("hi", "ollama", "llama3.2", temperature=0.5, node="nowhere"))
        await pilot.pause()
        await pilot.press("ctrl+s")
        (pane,) = panes(composer)
        await until(
            pilot, lambda: "no alive Ray node 'nowhere'" in pane_error(pane), what="start failure"
        )
        assert pane.state is RunState.FAILED
        assert composer.query_one("#prompt", TextArea).text == "hi"


async def test_readonly_console_sends_nothing_and_keeps_the_prompt_with_a_stand_in_service() -> (
    None
):
    service = StandInService({"llama3.2": Script(["x"])})
    app = app_with_service(service, readonly=True)
    async with app.run_test(size=(100, 30)) as pilot:
        composer = await open_composer(pilot, app)
        set_model(composer, "llama3.2")
        await type_prompt(pilot, composer, "use the GPUs")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app._notifications, what="the read-only notice")
        (notice,) = list(app._notifications)
        assert "read-only console" in notice.message and "--readonly" in notice.message
        assert not service.requests and not panes(composer)
        assert composer.query_one("#prompt", TextArea).text == "use the GPUs"


async def test_vllm_backend_offers_the_models_loaded_in_engines_with_a_stand_in_service() -> None:
    service = StandInService({"llama3.2": Script(["x"])}, engine_models=["Qwen/Qwen3-8B"])
    app = app_with_service(service)
    async with app.run_test(size=(100, 30)) as pilot:
        composer = await open_composer(pilot, app)
        composer.query_one("#model", Input).value = ""
        composer.query_one("#backend", Select).value = "vllm"
        await until(pilot, lambda: "vLLM engines" in hint(composer), what="engine models")
        assert hint(composer) == (
            "loaded in vLLM engines: Qwen/Qwen3-8B (another model starts an engine: minutes)"
        )
        assert composer.query_one("#model", Input).value == "Qwen/Qwen3-8B"
        service.engine_models = []
        composer.query_one("#backend", Select).value = "openai"
        await until(pilot, lambda: hint(composer).startswith("openai"), what="openai hint")
        composer.query_one("#backend", Select).value = "vllm"
        await until(pilot, lambda: "no vLLM engine" in hint(composer), what="no engines")


HOSTILE = "RayTaskError: \x1b[36mray::tags_task()\x1b[39m (pid=2540, ip=192.0.2.2) [bold]x[/]"


async def test_errors_and_answers_that_look_like_markup_show_verbatim_with_a_stand_in_service() -> (
    None
):
    """Texts from Ray, model servers and models are never parsed as Textual markup."""
    service = StandInService(
        {"llama3.2": Script(["[red]not red[/] ", "[$accent] $(x)"])}, models_error=HOSTILE
    )
    app = app_with_service(service)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.state.generation >= 1, what="first snapshot")
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ComposerScreen), what="composer")
        composer = app.screen
        assert isinstance(composer, ComposerScreen)
        await until(pilot, lambda: "[bold]x[/]" in hint(composer), what="model-list error")
        composer.notify(HOSTILE)
        set_model(composer, "llama3.2")
        await type_prompt(pilot, composer, "[b]prompt[/b]")
        await pilot.press("ctrl+s")
        (pane,) = panes(composer)
        await until(
            pilot,
            lambda: "[red]not red[/]" in str(pane.query_one(".pane-text", Static).content),
            what="the answer shown",
        )
        assert pane.state is RunState.DONE
        assert pane.text == "[red]not red[/] [$accent] $(x)"
        assert app.is_running


async def test_four_prompts_one_per_line_open_four_panes_with_a_stand_in_service() -> None:
    themes = ["a haiku about GPUs", "a limerick about Ray", "a sonnet about tmux", "a koan"]
    service = StandInService({"llama3.2": Script(["ok ", "done"], delay_s=0.02)})
    app = app_with_service(service)
    async with app.run_test(size=(100, 30)) as pilot:
        composer = await open_composer(pilot, app)
        set_model(composer, "llama3.2")
        composer.query_one("#per-line", Checkbox).value = True
        await type_prompt(pilot, composer, themes[0], themes[1], "", themes[2], themes[3])
        await pilot.press("ctrl+s")
        shown = panes(composer)
        assert len(shown) == 4
        await until(
            pilot, lambda: all(p.shown_text == "ok done" for p in shown), what="four answers"
        )
        assert [r.prompt for r in service.requests] == themes
        assert [p.request.prompt for p in shown] == themes
        # A 2x2 grid: side by side, two rows.
        xs = sorted({p.region.x for p in shown})
        ys = sorted({p.region.y for p in shown})
        assert len(xs) == 2 and len(ys) == 2
        assert all(p.state is RunState.DONE for p in shown)


async def test_copy_answer_from_a_pane_and_node_choices_with_a_stand_in_service() -> None:
    service = StandInService({"llama3.2": Script(TOKENS)})
    app = app_with_service(service)
    async with app.run_test(size=(100, 30)) as pilot:
        composer = await open_composer(pilot, app)
        node_select = composer.query_one("#node", Select)
        await until(pilot, lambda: len(composer._node_options()) == 3, what="node list")
        node_select.value = NODE_A
        set_model(composer, "llama3.2")
        await type_prompt(pilot, composer, "hello")
        await pilot.press("ctrl+s")
        (pane,) = panes(composer)
        await until(pilot, lambda: pane.state is RunState.DONE, what="done")
        assert service.requests[0].node == NODE_A
        pane.focus()
        await pilot.press("y")
        assert app.clipboard == ANSWER


async def test_missing_model_offers_a_pull_with_progress_with_a_stand_in_service() -> None:
    service = StandInService(
        {"llama3.2": Script(["x"])},
        pullable={"qwen3": PullScript(Script(["pulled ", "answer"]))},
        hold_pulls=True,
    )
    app = app_with_service(service)
    async with app.run_test(size=(120, 36)) as pilot:
        composer = await open_composer(pilot, app)
        set_model(composer, "qwen3")
        await type_prompt(pilot, composer, "hello there")
        assert not composer.check_action("pull_model", ())  # nothing to pull yet
        await pilot.press("ctrl+s")
        (pane,) = panes(composer)
        await until(pilot, lambda: pane.shown_pull != "", what="the pull offer")
        assert pane.state is RunState.FAILED
        assert pane.shown_pull == (
            "model qwen3 is not on node b2c3d4e5 (gpu-box-2) — press ctrl+o to pull it"
        )
        assert composer.check_action("pull_model", ())  # the footer shows ^o now
        await pilot.press("ctrl+o")
        # Held after 50%: the progress is on screen, as status text, bar, percent and bytes.
        await until(pilot, lambda: "50%" in pane.shown_pull, what="pull progress")
        assert pane.pull_state is PullState.PULLING
        assert pane.shown_pull == (
            "pulling qwen3 on node b2c3d4e5 (gpu-box-2): pulling dde5aa3fc5ff "
            + "█" * 10
            + "░" * 10
            + " 50% 0.9/1.9 GiB"
        )
        # On the node the run found the model missing on, at the endpoint it used there.
        assert service.pulls == [PullCall("qwen3", NODE_A, "http://127.0.0.1:11434")]
        assert not composer.check_action("pull_model", ())  # no second pull of the same
        notices = Notices(app)
        await pilot.press("ctrl+s")  # refused while pulling: nothing sent
        await notices.next(pilot, "a model pull is still running", after=0)
        assert len(service.requests) == 1
        service.release_pulls()
        await until(pilot, lambda: pane.shown_pull.startswith("pulled"), what="the pull to finish")
        assert pane.shown_pull == "pulled qwen3 on node b2c3d4e5 (gpu-box-2) — ctrl+s to run again"
        assert pane.pull_completed == pane.pull_total
        prompt = composer.query_one("#prompt", TextArea)
        assert prompt.text == "hello there" and not prompt.read_only
        await until(pilot, lambda: "qwen3" in hint(composer), what="model list reloaded")
        await pilot.press("ctrl+s")  # the same prompt again: the model is there now
        await until(
            pilot,
            lambda: [p.shown_text for p in panes(composer)] == ["pulled answer"],
            what="the answer after the pull",
        )
        assert [r.prompt for r in service.requests] == ["hello there"] * 2


async def test_pull_error_is_shown_and_esc_stops_a_pull_with_a_stand_in_service() -> None:
    service = StandInService(
        {}, pullable={"slowpull": PullScript(Script(["ok"]))}, hold_pulls=True, models=["m"]
    )
    app = app_with_service(service)
    async with app.run_test(size=(120, 36)) as pilot:
        composer = await open_composer(pilot, app)
        set_model(composer, "nope, slowpull")  # two panes, both missing on the same node
        await type_prompt(pilot, composer, "hi")
        await pilot.press("ctrl+s")
        nope, slow = panes(composer)
        await until(pilot, lambda: nope.pull_offered and slow.pull_offered, what="offers")
        nope.focus()  # the focused pane's model is the one pulled
        await pilot.press("ctrl+o")
        failed_pull = (
            "pull of nope on node b2c3d4e5 (gpu-box-2) failed — ctrl+o to try again\n"
            "pull of nope on node b2c3d4e5 failed: pull model manifest: file does not exist"
        )
        await until(pilot, lambda: nope.shown_pull == failed_pull, what="pull error shown")
        assert nope.pull_state is PullState.FAILED
        assert slow.pull_state is PullState.OFFERED  # another model: its own offer
        slow.focus()
        await pilot.press("ctrl+o")
        await until(pilot, lambda: "50%" in slow.shown_pull, what="pull progress")
        await pilot.press("escape")  # stops the pull, stays on the composer
        await until(pilot, lambda: slow.pull_state is PullState.FAILED, what="stopped")
        assert isinstance(app.screen, ComposerScreen)
        assert service.pulls_closed == [PullCall("slowpull", NODE_A, "http://127.0.0.1:11434")]
        assert slow.pull_error == "stopped" and "slowpull" not in service.scripts


# -- (b) the real service on the session cluster ----------------------------------------------


@pytest.fixture
def wire_server() -> Iterator[OllamaWireServer]:
    srv = OllamaWireServer({"llama3.2": WireScript(TOKENS, tokens_per_s=40)})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.mark.ray
@pytest.mark.multinode
async def test_composer_streams_exact_text_with_provenance_through_real_ray(
    request: pytest.FixtureRequest, wire_server: OllamaWireServer
) -> None:
    from raytui.backends.service import RayPromptService
    from raytui.sources import attach
    from tests.support.prompt_runs import gpu2

    cluster = request.getfixturevalue("ray_driver")  # this process is the Ray driver
    conn = attach.connect(cluster.dashboard_url)  # the real connection the app would hold
    history = HistoryStore()
    service = RayPromptService(lambda: conn, history)
    node = gpu2(cluster)
    app = app_with_service(service)
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            # Nodes come from Ray; the model list from the wire server via a task on the node.
            composer = await open_composer_on_node(pilot, app, node.node_id)
            endpoint = composer.query_one("#endpoint", Input)
            endpoint.value = wire_server.url
            endpoint.focus()
            await pilot.press("enter")
            await until(
                pilot, lambda: "llama3.2:latest" in hint(composer), within=60, what="models"
            )
            set_model(composer, "llama3.2")
            await type_prompt(pilot, composer, "Say hello")
            await pilot.press("ctrl+s")
            (pane,) = panes(composer)
            await until(pilot, lambda: pane.state.final, within=60, what="the answer")
            assert pane.state is RunState.DONE, pane.error
            await until(pilot, lambda: pane.shown_text == ANSWER, what="the answer shown")
            assert pane.started is not None and pane.started.node_id == node.node_id
            status = str(pane.query_one(".pane-status", Static).content)
            assert f"node {node.node_id[:8]}" in status and pane.started.node_ip in status
            assert "tok/s" in str(pane.border_subtitle)
            (chat,) = [r for r in wire_server.requests if r.path == "/api/chat"]
            assert chat.json()["messages"] == [{"role": "user", "content": "Say hello"}]
            # The run is in history, and the history screen lists it.
            history.flush()
            (record,) = history.list()
            assert (record.state, record.text, record.node_id) == (
                RunState.DONE,
                ANSWER,
                node.node_id,
            )
            composer.query_one(AnswerPane).focus()
            await pilot.press("h")
            await until(pilot, lambda: isinstance(app.screen, HistoryScreen))
            screen = app.screen
            assert isinstance(screen, HistoryScreen)
            await until(pilot, lambda: screen.loads >= 1, what="history read")
            assert [r.run_id for r in screen.records] == [record.run_id]
    finally:
        service.close()
        conn.close()  # the session's driver is not this connection's to stop


@pytest.mark.ray
@pytest.mark.multinode
async def test_composer_pulls_a_missing_model_on_its_node_through_real_ray(
    request: pytest.FixtureRequest,
) -> None:
    from raytui.backends.service import RayPromptService
    from raytui.sources import attach
    from tests.support.prompt_runs import gpu2

    server = OllamaWireServer(
        {"llama3.2": WireScript(["x"])},
        pullable={"qwen3": WireScript(["pulled ", "answer"], tokens_per_s=None)},
    )
    server.start()
    cluster = request.getfixturevalue("ray_driver")
    conn = attach.connect(cluster.dashboard_url)
    service = RayPromptService(lambda: conn, HistoryStore())
    node = gpu2(cluster)
    app = app_with_service(service)
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            composer = await open_composer_on_node(pilot, app, node.node_id)
            composer.query_one("#endpoint", Input).value = server.url
            set_model(composer, "qwen3")
            await type_prompt(pilot, composer, "after the pull")
            await pilot.press("ctrl+s")
            (pane,) = panes(composer)
            await until(pilot, lambda: pane.state.final, within=60, what="the run to fail")
            await until(pilot, lambda: pane.shown_pull != "", what="the pull offer")
            assert pane.state is RunState.FAILED, pane.error
            assert pane.started is not None and pane.started.node_id == node.node_id
            host = pane.started.hostname or pane.started.node_ip
            assert pane.shown_pull == (
                f"model qwen3 is not on node {node.node_id[:8]} ({host}) — press ctrl+o to pull it"
            )
            await pilot.press("ctrl+o")
            await until(
                pilot,
                lambda: pane.pull_state in (PullState.DONE, PullState.FAILED),
                within=60,
                what="the pull",
            )
            assert pane.pull_state is PullState.DONE, pane.pull_error
            pulled = f"pulled qwen3 on node {node.node_id[:8]} ({host}) — ctrl+s to run again"
            await until(pilot, lambda: pane.shown_pull == pulled, what="the pull shown")
            # The wire server got the pull for that model, and streamed its progress back.
            (pull,) = [r for r in server.requests if r.path == "/api/pull"]
            assert pull.method == "POST" and pull.json()["model"] == "qwen3"
            assert pull.finished
            assert pane.pull_updates >= 8  # manifest, 5 byte counts, verify, write, success
            assert pane.pull_total == 2_019_393_189 == pane.pull_completed
            # The prompt is still there; sending it again works now that the node has the model.
            assert composer.query_one("#prompt", TextArea).text == "after the pull"
            await pilot.press("ctrl+s")
            await until(
                pilot,
                lambda: [p.state for p in panes(composer)] == [RunState.DONE],
                within=60,
                what="the second run",
            )
            (again,) = panes(composer)
            await until(pilot, lambda: again.shown_text == "pulled answer", what="answer shown")
            assert again.started is not None and again.started.node_id == node.node_id
            chats = [r for r in server.requests if r.path == "/api/chat"]
            assert [c.json()["model"] for c in chats] == ["qwen3", "qwen3"]
    finally:
        service.close()
        conn.close()  # the session's driver is not this connection's to stop
        server.stop()


# -- (c) history screen ----------------------------------------------------------------------


def write_run(
    store: HistoryStore,
    run_id: str,
    request: PromptRequest,
    text: list[str],
    created_at: float,
    fail: str | None = None,
) -> None:
    store.create(run_id, request, created_at=created_at)
    store.record(run_id, Started(NODE_A, "10.0.0.6", "gpu-box-2", ("1",), "", 1))
    for piece in text:
        store.record(run_id, Chunk(piece))
    final = Failed(fail, FailureKind.SERVER) if fail else Done(Timings(0.2, 33.3, eval_count=3))
    store.record(run_id, final).result(10)


@pytest.fixture
def store() -> Iterator[HistoryStore]:
    s = HistoryStore()
    now = time.time()
    haiku = PromptRequest("a haiku about GPUs", "ollama", "llama3.2")
    write_run(s, "r1", haiku, ["GPU ", "warm"], now - 300)
    write_run(
        s,
        "r2",
        PromptRequest(
            "greet Tokyo", "openai", "qwen3", system="be brief", temperature=0.3, max_tokens=64,
            num_gpus=2, node=NODE_A[:10], endpoint="http://127.0.0.1:8000/v1",
        ),
        ["こんにちは", "東京"],
        now - 200,
    )  # fmt: skip
    broken = PromptRequest("broken one", "ollama", "llama3.2")
    write_run(s, "r3", broken, ["par"], now - 100, fail="unexpected EOF")
    try:
        yield s
    finally:
        s.close()


async def open_history(pilot: Pilot[Any], app: RaytuiApp) -> HistoryScreen:
    await until(pilot, lambda: app.state.generation >= 1, what="first snapshot")
    await pilot.press("h")
    await until(pilot, lambda: isinstance(app.screen, HistoryScreen), what="history")
    screen = app.screen
    assert isinstance(screen, HistoryScreen)
    await until(pilot, lambda: screen.loads >= 1, what="history read")
    return screen


async def test_history_lists_searches_opens_and_copies_with_a_stand_in_service(
    store: HistoryStore,
) -> None:
    app = app_with_service(StandInService({}, history=store))
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_history(pilot, app)
        assert [r.run_id for r in screen.records] == ["r3", "r2", "r1"]  # newest first
        table = screen.query_one(DataTable)
        assert table.row_count == 3
        row = [str(c) for c in table.get_row("r2")]
        assert row[1:6] == ["done", "qwen3 (openai)", "gpu-box-2 b2c3d4e5", "0.20", "33.3"]
        assert row[6] == "greet Tokyo"
        assert str(table.get_row("r3")[1]) == "failed"
        # `/` searches prompts and answers (here: the answer's text).
        await pilot.press("slash", *"東京")
        await until(pilot, lambda: [r.run_id for r in screen.records] == ["r2"], what="hit")
        await pilot.press("enter")  # leaves the search box, filter kept
        await until(pilot, lambda: screen.needle == "東京" and table.has_focus, what="focus")
        await pilot.press("enter")  # full text
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen), what="detail")
        detail = app.screen
        assert isinstance(detail, RunDetailScreen)
        assert str(detail.query_one(".answer", Static).content) == "こんにちは東京"
        assert str(detail.query_one(".prompt", Static).content) == "greet Tokyo"
        await pilot.press("y")
        await until(pilot, lambda: app.clipboard == "こんにちは東京", what="copied answer")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, what="back to the list")
        await pilot.press("escape")  # clears the search
        await until(pilot, lambda: len(screen.records) == 3, what="all runs again")
        await pilot.press("y")  # copy from the list: the highlighted (newest) run
        await until(pilot, lambda: app.clipboard == "par", what="copied newest answer")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ClusterScreen), what="back")


async def test_history_resend_prefills_the_composer_with_a_stand_in_service(
    store: HistoryStore,
) -> None:
    service = StandInService({"qwen3": Script(["again"])}, history=store)
    app = app_with_service(service)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_history(pilot, app)
        await pilot.press("down")  # r2
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ComposerScreen), what="composer")
        composer = app.screen
        assert isinstance(composer, ComposerScreen)
        prompt = composer.query_one("#prompt", TextArea)
        await until(pilot, lambda: prompt.text == "greet Tokyo", what="prefill")
        assert composer.query_one("#backend", Select).value == "openai"
        assert composer.query_one("#model", Input).value == "qwen3"
        assert composer.query_one("#system", Input).value == "be brief"
        assert composer.query_one("#temperature", Input).value == "0.3"
        assert composer.query_one("#max-tokens", Input).value == "64"
        assert composer.query_one("#gpus", Input).value == "2"
        assert composer.query_one("#endpoint", Input).value == "http://127.0.0.1:8000/v1"
        assert composer.query_one("#node", Select).value == NODE_A[:10]
        await pilot.press("ctrl+s")
        await until(
            pilot, lambda: [p.shown_text for p in panes(composer)] == ["again"], what="re-sent"
        )
        (sent,) = service.requests
        assert sent == PromptRequest(
            "greet Tokyo", "openai", "qwen3", system="be brief", temperature=0.3,
            max_tokens=64, num_gpus=2.0, node=NODE_A[:10], endpoint="http://127.0.0.1:8000/v1",
        )  # fmt: skip
        # The new run went to history too, and the list shows it on top when we come back.
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, what="back to history")
        await until(pilot, lambda: len(screen.records) == 4, what="reloaded")
        assert screen.records[0].text == "again"


async def test_palette_opens_composer_and_history_with_a_stand_in_service(
    store: HistoryStore,
) -> None:
    app = app_with_service(StandInService({}, history=store))
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.state.generation >= 1, what="first snapshot")
        await pilot.press("colon", *"prompt")
        await until(pilot, lambda: palette_choice(app).startswith(":prompt"), what="palette hit")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ComposerScreen), what="composer")
        composer = app.screen
        composer.query_one("#backend", Select).focus()  # out of the editor: keys are commands
        await pilot.press("colon", *"history")
        await until(pilot, lambda: palette_choice(app).startswith(":history"), what="palette hit")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen), what="history")
        await pilot.press("c")  # back to the same composer instance, not a new one
        await until(pilot, lambda: app.screen is composer, what="same composer")
