"""Polls spaced out when a fetch costs too much of the refresh interval, and the header says so.

The pace itself is pure (`PollPace`); the app test runs the real poller against a FAKE connection
whose fetch takes 0.3 s (a big cluster's summary, a slow link).
"""

from __future__ import annotations

from raytui.tui.app import RaytuiApp
from raytui.tui.poller import PollPace
from tests.support.tui_fakes import (
    FakeConnection,
    connector_for,
    frozen_clock,
    healthy,
    screen_text,
)
from tests.support.waiting import until


def test_cheap_fetches_keep_the_interval() -> None:
    pace = PollPace(2.0)
    assert pace.record(0.1) == 2.0
    assert pace.record(0.5) == 2.0  # exactly the share: still on time
    assert not pace.slowed and pace.period == 2.0


def test_a_costly_fetch_spaces_polls_to_whole_seconds_from_start_to_start() -> None:
    pace = PollPace(1.0)
    delay = pace.record(0.6)  # 0.6 / 0.25 = 2.4 s -> every 3 s
    assert pace.slowed and pace.period == 3.0
    assert delay == 3.0 - 0.6
    assert pace.record(3.0) == 8.0 - 3.0  # smoothed cost 1.8 -> 7.2 -> every 8 s


def test_the_pace_returns_to_the_interval_once_fetches_are_cheap_again() -> None:
    pace = PollPace(1.0)
    pace.record(0.8)
    assert pace.slowed
    periods = []
    for _ in range(4):
        pace.record(0.05)
        periods.append(pace.period)
    assert periods[-1] == 1.0 and not pace.slowed
    assert periods == sorted(periods, reverse=True)  # it eases back, never jumps up


async def test_a_slow_fetch_is_polled_less_often_and_the_header_says_so_with_fake_connection() -> (
    None
):
    conn = FakeConnection([healthy()])
    conn.fetch_cost = 0.3
    app = RaytuiApp(
        connector_for(conn), refresh=1.0, clock=frozen_clock, target="http://10.0.0.5:8265"
    )
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.state.generation >= 1, within=10)
        # 0.3 s (a little more on a busy machine) is more than a quarter of 1 s: every 2 s.
        period = app.poller.pace.period
        assert period >= 2.0
        note = f"poll every {period:.0f}s (fetch "
        await until(
            pilot,
            lambda: note in screen_text(app).splitlines()[1],
            what="the header's slow-poll note",
            detail=lambda: screen_text(app),
        )
        conn.fetch_cost = 0.0  # the cluster is quick again
        await until(pilot, lambda: not app.poller.busy)
        await pilot.press("r")
        generation = app.state.generation
        await until(pilot, lambda: app.state.generation > generation and not app.poller.busy)
        assert app.state.slow_poll is None
        assert "poll every" not in screen_text(app)
