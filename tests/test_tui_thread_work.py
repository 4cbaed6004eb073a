"""A screen's thread worker that fails reaches the user as one line and the debug log with its
traceback, through the one shared handler (`raytui.tui.thread_work.ThreadWork`), not through a
try/except of the screen's own. Real parts: the workbench's HTTP client against a port where no
dashboard listens."""

from __future__ import annotations

import socket
from pathlib import Path

from textual.widgets import Static

from raytui.model.workbench import NodeLogs
from raytui.sources.workbench import Workbench
from raytui.tui.screens.node_logs import NodeLogsPicker
from raytui.tui.thread_work import ThreadWork
from tests.support.screen_host import ScreenHost
from tests.support.tui_fakes import until


def logged(path: Path) -> str:
    return path.read_text()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_failing_screen_worker_shows_one_line_and_logs_its_traceback(
    debug_log: Path,
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    workbench = Workbench.for_dashboard(url, None, timeout=2.0)

    def load() -> NodeLogs:
        return workbench.logs.node_logs("f" * 56)

    picker = NodeLogsPicker("node ffffffff", load)
    assert isinstance(picker, ThreadWork)
    app = ScreenHost(picker)
    try:
        async with app.run_test(size=(100, 24)) as pilot:
            await until(pilot, lambda: picker.error is not None, 30, "the listing to fail")
            status = str(picker.query_one("#logs-status", Static).render())
            assert status == f"cannot list the logs: {picker.error}"
            assert "\n" not in status and f"cannot reach the Ray dashboard at {url}" in status
            assert "Traceback" not in status
    finally:
        workbench.close()
    text = logged(debug_log)
    assert text.count("NodeLogsPicker: list failed") == 1  # one record, from the shared handler
    assert "Traceback (most recent call last)" in text and "ClusterUnreachable" in text
