"""The first frames: the header says "connecting" until the first snapshot arrives (also once
the connector returned and the first fetch is under way: ~0.5 s at 4,096 nodes), then
"connected"; and replaced snapshots and finished poll workers are freed."""

from __future__ import annotations

import gc
import threading
from dataclasses import replace

from raytui.model.cluster import ClusterSnapshot
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


class FreshSnapshots(FakeConnection):
    """A FAKE connection whose every fetch returns a new snapshot object (as the real one does)."""

    def fetch_snapshot(self) -> ClusterSnapshot:
        return replace(super().fetch_snapshot(), taken_at=float(self.fetches))


async def test_replaced_snapshots_are_freed_though_frozen_with_fake_connection() -> None:
    """Nothing that outlives a poll (the finished thread worker, in a cycle with its task, maybe
    frozen at start-up) may keep a snapshot alive once it is replaced."""
    conn = FreshSnapshots([healthy()])
    app = make_app(conn)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await started(pilot, app)
            for n in range(2, 10):
                await pilot.press("r")
                await started(pilot, app, generation=n)
            gc.unfreeze()  # frozen objects are invisible to gc.get_objects()
            fetched = [
                o.taken_at
                for o in gc.get_objects()
                if isinstance(o, ClusterSnapshot) and o.taken_at < 100  # not the script's own
            ]
            # The one shown (maybe the one before, still referenced by a finished message).
            assert len(fetched) <= 2 and 9.0 in fetched, fetched
    finally:
        gc.collect()


async def test_dead_poll_workers_are_freed_without_a_full_collection_with_fake_connection() -> None:
    """Nothing is frozen per poll (snapshots are untracked by the cycle collector instead), so
    each finished thread worker, in a cycle with its task, is freed by an ordinary collection;
    when each poll froze the heap they piled up until a long full collection (100-1,000 ms)."""
    app = make_app(FreshSnapshots([healthy()]))
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot, app)
        for n in range(2, 17):
            await pilot.press("r")
            await started(pilot, app, generation=n)
        gc.collect()  # what the collector does on its own, frozen objects left alone
        gc.unfreeze()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            gc.collect()
            trapped = sum(type(o).__name__ == "Worker" for o in gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.collect()
    # What the start-up freezes (on mount, after the first snapshot) caught, not one per fetch
    # (16 here, one per fetch, when each poll froze the heap).
    assert trapped <= 3, trapped
