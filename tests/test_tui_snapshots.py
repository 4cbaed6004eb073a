"""SVG snapshots of the main states at 80x24 and 160x48 (pytest-textual-snapshot).

Deterministic: a frozen clock, fixed snapshots replayed by a FAKE connection, sparkline history fed
through `SnapshotReady` one message at a time, no spinner on screen. Update with
`pytest tests/test_tui_snapshots.py --snapshot-update`, then look at the SVGs before keeping them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from textual.pilot import Pilot

from raytui.errors import ClusterUnreachable
from raytui.model.cluster import ClusterSnapshot
from raytui.tui.app import RaytuiApp
from raytui.tui.messages import ConnState
from tests.support import overlay_fakes as ov
from tests.support.tui_fakes import (
    CPU_ID,
    GPU2_ID,
    FakeConnection,
    connector_for,
    drive,
    frozen_clock,
    sparkline_series,
    with_dead_gpu2,
)

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((160, 48), id="160x48")]

SnapCompare = Callable[..., bool]


def replay_app(
    script: list[ClusterSnapshot | BaseException], target: str = "http://10.0.0.5:8265"
) -> RaytuiApp:
    return RaytuiApp(
        connector_for(FakeConnection(script), progress=()),
        refresh=3600,
        clock=frozen_clock,
        target=target,
        nvml_sampler=None,
        local_hostname="not-a-cluster-node",
    )


def prepare(
    history: list[ClusterSnapshot], *keys: str, poll_again: bool = False
) -> Callable[[Pilot[Any]], Awaitable[None]]:
    """Wait for the first fetch, feed `history` one snapshot at a time, then press `keys`."""

    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, RaytuiApp)
        await drive(pilot, app, history, keys, fail_next=poll_again)

    return run_before


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_healthy(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    series = sparkline_series()
    app = replay_app([series[0]])
    assert snap_compare(app, terminal_size=size, run_before=prepare(series[1:]))


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_node_dead(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    app = replay_app([with_dead_gpu2(died_ago=180)])

    async def run_before(pilot: Pilot[Any]) -> None:
        await prepare([], "j")(pilot)
        assert pilot.app.screen.query_one("#node-table").cursor_key == GPU2_ID  # type: ignore[attr-defined]

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_no_gpu(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    series = sparkline_series()
    app = replay_app([series[0]])

    async def run_before(pilot: Pilot[Any]) -> None:
        await prepare(series[1:], "j", "j")(pilot)
        assert pilot.app.screen.query_one("#node-table").cursor_key == CPU_ID  # type: ignore[attr-defined]

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_disconnected(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    series = sparkline_series()
    lost = ClusterUnreachable("cannot reach http://10.0.0.5:8265: connection refused")
    app = replay_app([series[0], lost])

    async def run_before(pilot: Pilot[Any]) -> None:
        await prepare(series[1:], poll_again=True)(pilot)
        assert isinstance(pilot.app, RaytuiApp)
        assert pilot.app.state.link.state is ConnState.DISCONNECTED

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_overlay_paths(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    """The head's node list with the peer daemon's overlay: PATH per node, box-2's link down."""
    app = replay_app([ov.overlay_cluster()], target=f"http://{ov.HEAD_IP}:8265")

    async def run_before(pilot: Pilot[Any]) -> None:
        await prepare([])(pilot)
        assert isinstance(pilot.app, RaytuiApp)
        await ov.feed_daemon(pilot, app.peers, ov.daemon_status(box2_up=False))
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)
