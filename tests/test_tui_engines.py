"""The vLLM engines screen (`v`), driven by Pilot against a STAND-IN prompt service.

The service's `engines()` / `stop_engines()` are what `raytui engines` runs against real engine
actors (tests/test_vllm_standin.py checks those); here the screen's side: listing, the
confirmation, stopping in a worker, the read-only console.
"""

from __future__ import annotations

import threading
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from raytui.model.prompts import EngineInfo
from raytui.tui.app import RaytuiApp
from raytui.tui.screens.confirm import ConfirmScreen
from raytui.tui.screens.engines import EnginesScreen
from tests.support.composer_standin import NODE_A, StandInService, app_with_service
from tests.support.tui_fakes import NOW, until

QWEN = EngineInfo(
    "raytui-vllm-Qwen_Qwen3-8B-tp2-0", True, "Qwen/Qwen3-8B", 2, NODE_A, "gpu-box-2",
    ("0", "1"), 1, NOW - 3_700,
)  # fmt: skip
LOADING = EngineInfo("raytui-vllm-big-tp1-0", False)
FAILED = EngineInfo(
    "raytui-vllm-org_m-tp1-0", False, "org/m", 1, NODE_A, "gpu-box-2", ("0",), 0, None,
    state="failed", error="loading org/m failed: RuntimeError: CUDA out of memory",
)  # fmt: skip


async def open_engines(pilot: Pilot[Any], app: RaytuiApp) -> EnginesScreen:
    await until(pilot, lambda: app.state.generation >= 1, what="first snapshot")
    await pilot.press("v")
    await until(pilot, lambda: isinstance(app.screen, EnginesScreen), what="engines screen")
    screen = app.screen
    assert isinstance(screen, EnginesScreen)
    await until(pilot, lambda: screen.loads >= 1, what="engines read")
    return screen


def rows(screen: EnginesScreen) -> list[list[str]]:
    table = screen.query_one(DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def test_engines_are_listed_and_one_is_stopped_after_asking_with_a_stand_in_service() -> None:
    service = StandInService({}, engines=[QWEN, LOADING, FAILED])
    app = app_with_service(service)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_engines(pilot, app)
        assert rows(screen) == [
            ["Qwen/Qwen3-8B", "ready", f"gpu-box-2 {NODE_A[:8]}", "0,1", "2", "1", "1h01m",
             QWEN.name],
            ["starting…", "", "", "", "", "", "", LOADING.name],
            ["org/m", f"failed: {FAILED.error}", f"gpu-box-2 {NODE_A[:8]}", "0", "1", "0", "-",
             FAILED.name],
        ]  # fmt: skip
        assert "vLLM engines [3]" in str(screen.query_one("#engines-title", Static).content)
        assert threading.main_thread().name not in service.threads  # read in a worker

        await pilot.press("d")  # n: kept
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
        assert QWEN.name in str(app.screen.query_one("#confirm-question", Static).render())
        await pilot.press("n")
        await until(pilot, lambda: app.screen is screen, what="back to the list")
        assert service.stopped == []

        await pilot.press("d")  # y: stopped, and the list read again
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
        loads = screen.loads
        await pilot.press("y")
        await until(pilot, lambda: screen.loads > loads, what="the list read again")
        assert service.stopped == [QWEN.name]
        assert [r[-1] for r in rows(screen)] == [LOADING.name, FAILED.name]

        service.engine_list = []
        await pilot.press("r")
        await until(pilot, lambda: not screen.engines, what="an empty list")
        assert "no vLLM engine is running" in str(
            screen.query_one("#engines-empty", Static).render()
        )
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, EnginesScreen), what="back")


async def test_readonly_console_lists_engines_but_does_not_stop_them_with_a_stand_in_service() -> (
    None
):
    service = StandInService({}, engines=[QWEN])
    app = app_with_service(service, readonly=True)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_engines(pilot, app)
        await pilot.press("d")
        await until(pilot, lambda: app._notifications, what="the read-only notice")
        assert any("read-only console" in n.message for n in app._notifications)
        assert not isinstance(app.screen, ConfirmScreen) and service.stopped == []
        assert [r[-1] for r in rows(screen)] == [QWEN.name]


def test_engines_list_text_says_which_engine_failed_and_why() -> None:
    from raytui.commands.engines import format_engines

    text = format_engines([QWEN, LOADING, FAILED], now=NOW)
    lines = text.splitlines()
    assert lines[0].startswith(f"{QWEN.name}  Qwen/Qwen3-8B  TP 2  ")
    assert lines[1] == f"{LOADING.name}  starting (not answering yet: waiting for GPUs or a worker)"
    assert lines[2].endswith(
        "FAILED: loading org/m failed: RuntimeError: CUDA out of memory"
        " (the next prompt replaces it)"
    )
