"""This console's own Ray driver is shown as the console, not counted as someone's running job.

The driver is recognised by the data layer (its pid and node address in `/api/jobs/`), so the
snapshot carries `Job.console` and widgets only read it. Parsing is checked on a captured answer,
the TUI with a FAKE connection replaying snapshots, and the recognition on the real Ray cluster
with this test process as the driver.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from raytui.model.cluster import ClusterSnapshot, Job
from raytui.sources.dashboard_client import DashboardClient
from raytui.sources.dashboard_parse import DashboardResponses, build_snapshot
from raytui.tui.widgets.jobs import CONSOLE_LABEL, JobTable
from tests.conftest import RayTestCluster
from tests.support.tui_fakes import NOW, FakeConnection, screen_text, snapshot, until
from tests.test_tui_app import make_app, started

FIXTURES = Path(__file__).parent / "fixtures" / "ray-dashboard"


def captured(name: str) -> object:
    return json.loads((FIXTURES / name).read_text())


def captured_snapshot(own_driver: tuple[int, frozenset[str]] | None) -> ClusterSnapshot:
    return build_snapshot(
        "http://x:8265",
        DashboardResponses(
            summary=captured("nodes_view_summary.json"),
            nodes=captured("api_v0_nodes.json"),
            jobs=captured("api_jobs.json"),
        ),
        own_driver=own_driver,
    )


def test_the_driver_with_this_pid_on_this_machine_is_the_console() -> None:
    # The captured driver: pid 14364 on 192.0.2.2.
    snap = captured_snapshot((14364, frozenset({"192.0.2.2"})))
    (job,) = snap.jobs
    assert job.console and job.status == "RUNNING"
    assert snap.jobs_running == 0


@pytest.mark.parametrize(
    "own",
    [(14365, frozenset({"192.0.2.2"})), (14364, frozenset({"192.0.2.9"})), None],
    ids=["another-pid", "another-machine", "not-told"],
)
def test_any_other_driver_is_a_users_job(own: tuple[int, frozenset[str]] | None) -> None:
    snap = captured_snapshot(own)
    (job,) = snap.jobs
    assert not job.console
    assert snap.jobs_running == 1


async def test_jobs_view_and_header_show_the_console_apart() -> None:
    console = Job("05000000", None, "RUNNING", "raytui", NOW - 60, console=True)
    user = Job("06000000", "raysubmit_Zz", "RUNNING", "python train.py", NOW - 30)
    snap = dataclasses.replace(snapshot(), jobs=(console, user))
    app = make_app(FakeConnection([snap]))
    async with app.run_test(size=(120, 30)) as pilot:
        await started(pilot, app)
        assert "jobs 1 running" in screen_text(app), screen_text(app)
        await pilot.press("3")
        table = app.screen.query_one(JobTable)
        await until(pilot, lambda: table.row_count == 2, what="two job rows")
        assert CONSOLE_LABEL in table.row_text("05000000")
        assert CONSOLE_LABEL not in table.row_text("raysubmit_Zz")


@pytest.mark.ray
def test_real_cluster_marks_this_process_as_the_console(ray_driver: RayTestCluster) -> None:
    """This test process is a Ray driver of the session cluster: its job is the console's."""
    client = DashboardClient(ray_driver.dashboard_url, token=ray_driver.token, timeout=10.0)
    try:
        snap = client.fetch_snapshot()
    finally:
        client.close()
    mine = [j for j in snap.jobs if j.console]
    assert len(mine) == 1, snap.jobs
    assert mine[0].status == "RUNNING" and mine[0].submission_id is None
    others_running = sum(1 for j in snap.jobs if j.status == "RUNNING" and not j.console)
    assert snap.jobs_running == others_running
