"""Until the first snapshot arrives the header says "connecting", also once the connector has
returned and the first fetch is still under way (4,096 nodes: ~0.5 s); then "connected"."""

from __future__ import annotations

import threading

from raytui.tui.messages import ConnState
from tests.support.tui_fakes import FakeConnection, healthy, screen_text, until
from tests.test_tui_app import make_app, started


async def test_header_says_connecting_until_the_first_snapshot_with_fake_connection() -> None:
    conn = FakeConnection([healthy()], description="10.0.0.5:6379 (http://10.0.0.5:8265)")
    conn.fetch_gate = threading.Event()
    app = make_app(conn)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            # Connected (the connector returned), the first fetch held back:
            await until(pilot, lambda: app.poller.connection is not None and app.poller.busy)
            await until(pilot, lambda: app.state.link.description.startswith("10.0.0.5:6379"))
            header = screen_text(app).splitlines()[0]
            assert "connecting" in header and "connected" not in header.replace("connecting", "")
            assert app.state.link.state is ConnState.CONNECTING
            assert "10.0.0.5:6379" in header  # what it is connecting to
            conn.fetch_gate.set()
            await started(pilot, app)
            await until(pilot, lambda: "● connected" in screen_text(app).splitlines()[0])
            assert app.state.link.state is ConnState.CONNECTED
            assert "gpu-head" in screen_text(app)
    finally:
        conn.fetch_gate.set()
