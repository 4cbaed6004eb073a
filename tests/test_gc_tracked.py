"""What the cluster views keep of a 1,024 x 8 snapshot, as the cycle collector sees it: counts of
objects, not timings.

Every full collection walks each gc-tracked object outside the frozen start-up heap, entry by
entry, and frees the cyclic garbage it finds. At 4,096 x 8 the views' per-row lists (one entry
per node) and replaced GPU rows left as cyclic garbage (each holding a whole snapshot's nodes,
GPUs and processes, freed several at once by one full collection) made those collections last
tens of ms on the UI's critical path (bench/bench_gc.py measures them). Freeing a replaced
snapshot is left to the poll worker. The app runs with snapshots from a FAKE connection or fed
through the poller's own message.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest
from textual.pilot import Pilot

from raytui.model.cluster import ClusterSnapshot, Gpu, Node, NodeState
from raytui.tui.app import RaytuiApp
from raytui.tui.widgets.gpus import GpuTable
from raytui.tui.widgets.nodes import NodeTable
from tests.support.tui_fakes import NOW, FakeConnection, healthy, snapshot, until
from tests.test_cluster_view_apply import synthetic
from tests.test_tui_app import make_app, started

NODES = 1024
ROW_REFERENCES = 128  # what a 120x40 screen shows: far below one per node
TRACKED_AFTER_DRAWN = 30_000


def is_row_data(o: object) -> bool:
    """A snapshot, or a sequence of many of its nodes or GPUs (per-row data of a view)."""
    if isinstance(o, ClusterSnapshot):
        return True
    return isinstance(o, tuple | list) and len(o) >= 100 and isinstance(o[0], Node | Gpu)


def references_to_rows() -> int:
    """References from gc-tracked objects to nodes, GPUs or sequences of them."""
    return sum(
        1
        for o in gc.get_objects()
        for r in gc.get_referents(o)
        if isinstance(r, Node | Gpu) or is_row_data(r)
    )


@pytest.fixture
def collector_paused() -> Iterator[None]:
    """Automatic collections off, so only refcounting frees what the app drops meanwhile."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


async def feed(app: RaytuiApp, pilot: Pilot[object], step: int) -> None:
    generation = app.state.generation
    app.feed(synthetic(NODES, step=step))
    await until(pilot, lambda: app.state.generation > generation)


async def show_both_views(app: RaytuiApp, pilot: Pilot[object], snapshots: int) -> None:
    """Feed `snapshots` of NODES x 8, the first in the Nodes view, the others in the GPUs view
    (the Nodes view keeps its rows meanwhile)."""
    await feed(app, pilot, 1)
    await until(pilot, lambda: app.screen.query_one(NodeTable).row_count == NODES)
    await pilot.press("2")
    table = app.screen.query_one(GpuTable)
    await until(pilot, lambda: table.row_count == NODES * 8)
    for step in range(2, snapshots + 1):
        await feed(app, pilot, step)
        await pilot.pause()


async def test_views_keep_no_tracked_container_with_an_entry_per_node_at_1024_x_8() -> None:
    app = make_app(FakeConnection([healthy()]))
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await show_both_views(app, pilot, 3)
        gc.collect()  # tuples and dicts that hold only untracked objects are untracked now
        refs = references_to_rows()
        assert refs <= ROW_REFERENCES, (
            f"{refs} references from gc-tracked objects to nodes/GPUs at {NODES} nodes: every "
            "full collection walks them; keep per-row data in tuples of gc-free objects"
        )


async def test_replaced_snapshots_are_freed_by_refcounting_not_left_to_the_collector(
    collector_paused: None,
) -> None:
    app = make_app(FakeConnection([healthy()]))
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await show_both_views(app, pilot, 4)
        gc.set_debug(gc.DEBUG_SAVEALL)  # keep what the collection finds, to look at it
        gc.collect()
        held = [
            type(o).__qualname__
            for o in gc.garbage
            if is_row_data(o) or any(is_row_data(r) for r in gc.get_referents(o))
        ]
        gc.set_debug(0)
        gc.garbage.clear()
        assert not held, (
            f"cyclic garbage holding replaced snapshots' rows: {sorted(set(held))} (a full "
            "collection then frees whole snapshots at once, on the UI's critical path)"
        )


FREED_ON_EVENT_LOOP: list[bool] = []


class CountedNode(Node, frozen=True, gc=False):
    """A node that records whether the event loop's thread freed it."""

    def __del__(self) -> None:
        FREED_ON_EVENT_LOOP.append(threading.current_thread() is threading.main_thread())


def nodes_of(step: int, kind: type[Node]) -> ClusterSnapshot:
    """20 nodes with a GPU each; every number differs from one step to the next."""
    return snapshot(
        tuple(
            kind(
                node_id=f"{i:056x}",
                hostname=f"node-{i:02d}",
                ip=f"10.0.1.{i}",
                state=NodeState.ALIVE,
                is_head=i == 0,
                cpu_percent=float(step + i),
                gpus=(Gpu(0, "Fake H100", f"GPU-{i}", float(step), 1.0, 80.0),),
            )
            for i in range(20)
        ),
        taken_at=NOW + step,
    )


async def test_a_replaced_snapshot_is_freed_in_the_poll_worker_not_on_the_event_loop() -> None:
    """Freeing 4,096 x 8 nodes, GPUs and processes takes ~15 ms in one go: not on the UI."""
    FREED_ON_EVENT_LOOP.clear()
    conn = FakeConnection([nodes_of(1, CountedNode), nodes_of(2, Node)])
    app = make_app(conn)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        conn.script[0] = conn.script[1]  # fetched: the app holds the only reference to it
        await pilot.press("r")
        await started(pilot, app, generation=2)  # the CountedNodes are off screen now
        assert app.screen.query_one(NodeTable).row_text(f"{0:056x}").count("node-00") == 1
        await pilot.press("r")  # the worker frees them before its next fetch
        await until(pilot, lambda: len(FREED_ON_EVENT_LOOP) == 20, what="20 nodes freed")
        assert not any(FREED_ON_EVENT_LOOP)


async def test_a_view_drawn_once_leaves_few_objects_for_full_collections_at_1024_x_8() -> None:
    """A view's widgets and drawn lines (most of them Textual's, for the screen's containers)
    live as long as the app: once the view has been drawn, full collections do not walk them."""
    app = make_app(FakeConnection([healthy()]))
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await show_both_views(app, pilot, 3)
        gc.collect()
        tracked = len(gc.get_objects())  # outside the frozen heap: what a full one walks
        assert tracked <= TRACKED_AFTER_DRAWN, (
            f"{tracked} gc-tracked objects for full collections to walk (measured 16,689 here; "
            "54,301 when the views' drawn lines were not frozen)"
        )
