"""Scenarios with a Ray driver that cannot connect, each run in a FRESH process (`python -m
tests.support.driver_scenarios NAME`): the test process is often a Ray driver already, and a
`ray.init` that hangs cannot be stopped, so neither belongs in the pytest process.

The "GCS" is a real TCP server that accepts connections and never says a word (`SilentServer`),
so Ray's real `ray.init` hangs as it does against a head it cannot use. The prompt path is real
(`RayPromptService` over a `RayConnection`); the TUI's cluster view is fed by the FAKE connection
of tests/support (no cluster exists here). Each scenario asserts and exits 0, or exits 1 with
the failed assertion on stderr.

- `composer`: the TUI's composer with Pilot (finding 13 of issue 8): the model lookup and a
  submit end in a clear error in the pane within the driver timeout, the prompt stays in the
  editor, a retry fails the same way, and esc while connecting cancels at once.
- `pool`: 16 runs wait on the driver connect while a poll-shaped `asyncio.to_thread` call
  (what Textual's thread workers and the pollers use) still completes.
- `close`: against the REAL cluster named by SCENARIO_GCS (a driver this process owns):
  `RayConnection.close()` while a Ray call is in flight (a model list held by a real HTTP server
  speaking Ollama's wire) waits for it instead of shutting Ray down under it, and a call made
  after close fails with a clear error.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor

SLOW = 60.0  # RAYTUI_DRIVER_TIMEOUT while a scenario needs the connect to hang on


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never answers (not a Ray GCS)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, name="silent-gcs", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)


def _connection(port: int) -> object:
    from raytui.sources.ray_connection import RayConnection, Target

    target = Target(
        dashboard_url="http://127.0.0.1:9",  # never asked: the driver address is given
        description=f"silent GCS 127.0.0.1:{port}",
        ray_address=f"127.0.0.1:{port}",
        token=None,
        token_source=None,
    )
    return RayConnection(target, timeout=2.0)


async def composer(server: SilentServer) -> None:
    from textual.widgets import Input, Static, TextArea

    from raytui.backends.service import RayPromptService
    from raytui.model.prompts import RunState
    from raytui.tui.screens.composer import ComposerScreen
    from raytui.tui.widgets.answer_pane import AnswerPane
    from tests.support.composer_standin import app_with_service
    from tests.support.waiting import until

    conn = _connection(server.port)
    service = RayPromptService(lambda: conn)
    app = app_with_service(service)
    timeout = float(os.environ["RAYTUI_DRIVER_TIMEOUT"])
    bound = timeout + 15  # the driver timeout, the TCP check, and a slow machine
    async with app.run_test(size=(110, 32)) as pilot:
        await until(pilot, lambda: app.state.generation >= 1, what="first snapshot")
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ComposerScreen), what="composer")
        screen = app.screen
        assert isinstance(screen, ComposerScreen)

        def hint() -> str:
            return str(screen.query_one("#models-hint", Static).content)

        await until(pilot, lambda: "gave up after" in hint(), within=bound, what=f"hint {hint()}")
        assert "ray.init" in hint() and f"127.0.0.1:{server.port}" in hint(), hint()

        screen.query_one("#model", Input).value = "llama3.2"
        prompt = screen.query_one("#prompt", TextArea)
        prompt.focus()
        await pilot.press(*"why is the sky blue?")

        for attempt in (1, 2):  # the second: a retry is possible, and ends the same way
            await pilot.press("ctrl+s")
            (pane,) = screen.query(AnswerPane)
            await until(pilot, lambda p=pane: p.state.final, within=bound, what="the error")
            assert pane.state is RunState.FAILED, (attempt, pane.state)
            assert pane.error and "gave up after" in pane.error, pane.error
            assert f"127.0.0.1:{server.port}" in pane.error and "\n" not in pane.error
            assert prompt.text == "why is the sky blue?" and not prompt.read_only

        # esc while the driver still connects: the cancel completes at once, not at the timeout
        os.environ["RAYTUI_DRIVER_TIMEOUT"] = str(SLOW)
        await pilot.press("ctrl+s")
        (pane,) = screen.query(AnswerPane)
        await until(pilot, lambda: "submitting" in pane.status_line(), what="submitting")
        await pilot.press("escape")
        await until(pilot, lambda: pane.state.final, within=10, what=f"{pane.status_line()}")
        assert pane.state is RunState.CANCELLED, pane.state
        assert not prompt.read_only and prompt.text == "why is the sky blue?"
    service.close()


async def pool(server: SilentServer) -> None:
    from raytui.backends.service import RayPromptService
    from raytui.model.prompts import PromptRequest

    # asyncio's default pool as on the 2-core machines this runs on: min(32, cores + 4).
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(6))
    conn = _connection(server.port)
    service = RayPromptService(lambda: conn)
    starts = [
        asyncio.ensure_future(service.start(PromptRequest(f"prompt {i}", "ollama", "m")))
        for i in range(16)
    ]
    # Each start hands its blocking call to a pool in its first step: one turn of the loop
    # runs the first step of all 16, in order, before this task goes on.
    await asyncio.sleep(0)
    # A poller's call (Textual's thread workers share asyncio's default pool with to_thread).
    polled = await asyncio.wait_for(asyncio.to_thread(lambda: "polled"), 20)
    assert polled == "polled"
    assert not any(s.done() for s in starts), "the runs were meant to be still waiting"


async def close(server: SilentServer) -> None:
    from raytui.backends.service import RayPromptService
    from raytui.errors import ClusterUnreachable
    from raytui.sources.ray_connection import RayConnection, Target
    from tests.servers.base import Recorded, WireHandler
    from tests.servers.ollama_wire import OllamaWireServer, Script

    asked, release = threading.Event(), threading.Event()

    class HeldTags(OllamaWireServer):
        """Answers /api/tags only once released: the model list stays a Ray call in flight."""

        def handle(self, h: WireHandler, rec: Recorded) -> None:
            if rec.path.startswith("/api/tags"):
                asked.set()
                release.wait(30)
            super().handle(h, rec)

    tags = HeldTags({"llama3.2": Script(["hi"])})
    tags.start()
    target = Target(
        dashboard_url=os.environ["SCENARIO_DASHBOARD"],
        description="the session cluster",
        ray_address=os.environ["SCENARIO_GCS"],
        token=os.environ["RAY_AUTH_TOKEN"],
        token_source="RAY_AUTH_TOKEN",
    )
    conn = RayConnection(target)
    service = RayPromptService(lambda: conn)
    loop = asyncio.get_running_loop()
    listing = loop.run_in_executor(None, service.models, "ollama", None, tags.url)
    deadline = loop.time() + 60
    while not asked.is_set():  # the task on the node has asked the server: the call is in flight
        assert loop.time() < deadline and not listing.done(), "the model list never started"
        await asyncio.sleep(0.05)
    closing = loop.run_in_executor(None, conn.close)
    while not conn._closed:
        assert loop.time() < deadline, "close() never started"
        await asyncio.sleep(0.01)
    try:
        service.nodes()
    except ClusterUnreachable as exc:
        assert "closed" in str(exc), exc
    else:
        raise AssertionError("a Ray call after close() went through")
    release.set()
    names = await asyncio.wait_for(listing, 30)  # was shut down under it: an error or a hang
    assert names == ["llama3.2:latest"], names
    await asyncio.wait_for(closing, 30)
    import ray

    assert not ray.is_initialized(), "close() left this process a driver"
    tags.stop()


def main() -> None:
    name = sys.argv[1]
    server = SilentServer()
    code = 0
    loop = asyncio.new_event_loop()  # not asyncio.run: its cleanup joins threads that hang
    try:
        loop.run_until_complete({"composer": composer, "pool": pool, "close": close}[name](server))
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # a hung ray.init thread must not keep the process alive


if __name__ == "__main__":
    main()
