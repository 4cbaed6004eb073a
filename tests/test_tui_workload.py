"""Tasks and Actors views (issue 11): the TUI (Pilot) against the shared real Ray cluster.

The cluster snapshots are replayed (FakeConnection), but every task, actor and log comes from the
real test cluster's dashboard (`workbench_url`), where a job started the workload below.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator

import pytest

from raytui.errors import UsageError
from raytui.model.workbench import ActorFilter, JobSubmission
from raytui.model.workload_query import actor_filter, task_filter
from raytui.sources.jobs import JobsClient
from raytui.sources.workload import WorkloadClient
from raytui.tui.app import RaytuiApp
from raytui.tui.screens.confirm import ConfirmScreen
from raytui.tui.screens.log_screen import LogScreen
from raytui.tui.screens.workload import (
    ActorDetailScreen,
    ActorsView,
    TaskDetailScreen,
    TaskListScreen,
    TasksView,
)
from raytui.tui.widgets.workload import ActorTable, TaskGroupTable
from tests.support.ray_cluster import RayTestCluster
from tests.support.tui_fakes import (
    FakeConnection,
    connector_for,
    frozen_clock,
    healthy,
    screen_text,
)
from tests.support.waiting import Notices, until, wait_for

PY = sys.executable

# -- the filter line (pure) ------------------------------------------------------------------


def test_filter_line_becomes_server_side_filters() -> None:
    snap = healthy()
    node = snap.nodes[1]
    query, where = task_filter(f"state:failed job:02000000 node:{node.node_id[:6]} name:f", snap)
    assert (where.state, where.job_id, where.node_id) == ("FAILED", "02000000", node.node_id)
    assert where.func_or_class_name == "f"
    assert query.text == f"state:FAILED job:02000000 node:{node.node_id[:6]} name:f"
    _, by_host = task_filter(f"node:{node.hostname}", snap)
    assert by_host.node_id == node.node_id
    _, bare = actor_filter("MyActor state:ALIVE class:Engine", snap)
    assert (bare.name, bare.state, bare.class_name) == ("MyActor", "ALIVE", "Engine")


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("colour:red", "unknown key 'colour'"),
        ("state:BOGUS", "no state 'BOGUS'"),
        ("state:", "needs a value"),
        ("node:zzzz", "no node 'zzzz'"),
        ("name:'open", "quotation"),
    ],
)
def test_a_bad_filter_is_one_clear_line(line: str, says: str) -> None:
    with pytest.raises(UsageError) as err:
        task_filter(line, healthy())
    assert says in str(err.value) and "\n" not in str(err.value)


# -- against the real cluster ------------------------------------------------------------------

WORKLOAD = """
import ray
ray.init(log_to_driver=False)

@ray.remote(max_retries=0)
def h11t_explode():
    print("h11t about to explode", flush=True)
    raise ValueError("kaboom [bold]h11t[/bold]")

@ray.remote
def h11t_quiet(i):
    print("h11t quiet", i, flush=True)
    return i

@ray.remote(num_cpus=0)
class H11tHolder:
    def __init__(self):
        print("h11t holder ready", flush=True)
    def ping(self):
        return 1

ray.get([h11t_quiet.remote(i) for i in range(3)])
try:
    ray.get(h11t_explode.remote())
except ray.exceptions.RayTaskError:
    pass
for name in ("h11t-logs", "h11t-victim"):
    h = H11tHolder.options(name=name, namespace="h11t", lifetime="detached").remote()
    ray.get(h.ping.remote())
"""


@pytest.fixture(scope="module")
def workload(ray_cluster: RayTestCluster) -> Iterator[WorkloadClient]:
    jobs = JobsClient(ray_cluster.dashboard_url, ray_cluster.token, timeout=20)
    key = jobs.submit(JobSubmission(f"{PY} -c {shlex.quote(WORKLOAD)}", num_cpus="0"))
    info = jobs.wait(key, 120)
    assert info.status == "SUCCEEDED", jobs.logs(key)[-2000:]
    with WorkloadClient(ray_cluster.dashboard_url, ray_cluster.token, timeout=20) as client:
        wait_for(
            lambda: (g := client.task_summary().group("h11t_explode")) and g.count("FAILED"),
            30,
            "the failed task in the summary",
        )
        yield client


def real_app(cluster: RayTestCluster, *, readonly: bool = False) -> RaytuiApp:
    conn = FakeConnection([healthy()])
    conn.workbench_url = cluster.dashboard_url
    conn.workbench_token = cluster.token
    app = RaytuiApp(
        connector_for(conn),
        refresh=3600,
        readonly=readonly,
        clock=frozen_clock,
        target="http://10.0.0.5:8265",
        nvml_sampler=None,
    )
    return app


def text_of(app: RaytuiApp) -> str:
    return screen_text(app)


async def open_view(pilot, app: RaytuiApp, key: str, view_type: type) -> TasksView | ActorsView:  # type: ignore[no-untyped-def]
    await until(pilot, lambda: app.state.generation >= 1, 60)
    await pilot.press(key)
    view = app.screen.query_one(view_type)
    await until(pilot, lambda: view.fetches >= 1, 30, "the first fetch", lambda: text_of(app))
    assert view.error is None, view.error
    return view  # type: ignore[no-any-return]


@pytest.mark.ray
async def test_failed_task_is_counted_failed_and_its_traceback_and_log_open(
    ray_cluster: RayTestCluster, workload: WorkloadClient
) -> None:
    app = real_app(ray_cluster)
    async with app.run_test(size=(120, 40)) as pilot:
        view = await open_view(pilot, app, "4", TasksView)
        groups = view.query_one(TaskGroupTable)
        assert groups.move_cursor_to_key("h11t_explode")
        # FAILED column counts it (PENDING RUNNING FINISHED FAILED TOTAL).
        assert groups.row_text("h11t_explode").split()[-2:] == ["1", "1"]
        await pilot.press("enter")
        listing = app.screen
        assert isinstance(listing, TaskListScreen)
        await until(pilot, lambda: listing.page is not None, 30, "the task list")
        assert [r.state for r in listing.page.rows] == ["FAILED"]  # type: ignore[union-attr]
        await pilot.press("enter")
        detail = app.screen
        assert isinstance(detail, TaskDetailScreen)
        await until(pilot, lambda: detail.detail is not None, 30, "the task detail")
        shown = text_of(app)
        assert "TASK_EXECUTION_EXCEPTION" in shown
        assert "ValueError: kaboom [bold]h11t[/bold]" in shown  # literal, not markup
        assert 'File "<string>", line 8, in h11t_explode' in shown  # Ray's traceback, literal
        await pilot.press("l")
        assert isinstance(app.screen, LogScreen)
        assert detail.detail is not None
        # Its worker's whole log stands in when Ray has no file for the attempt; in a busy
        # session Ray may not know even the worker (task events dropped): then one clear line.
        known = detail.detail.row.worker_pid is not None
        await until(
            pilot,
            lambda: (
                "h11t about to explode" in text_of(app)
                or (not known and "Could not find" in text_of(app))
            ),
            30,
            "the task's log",
            lambda: text_of(app),
        )


@pytest.mark.ray
async def test_name_filter_is_applied_by_the_dashboard_and_a_bad_one_says_why(
    ray_cluster: RayTestCluster, workload: WorkloadClient
) -> None:
    app = real_app(ray_cluster)
    async with app.run_test(size=(120, 40)) as pilot:
        view = await open_view(pilot, app, "4", TasksView)
        assert {g.name for g in view.summary.groups} >= {"h11t_quiet", "h11t_explode"}  # type: ignore[union-attr]
        await pilot.press("slash")
        await pilot.press(*"state:NOPE")
        await pilot.press("enter")
        assert "no state 'NOPE'" in text_of(app)
        assert view.filter_box.value == "state:NOPE"  # kept, to be corrected
        view.filter_box.value = ""
        await pilot.press(*"name:h11t_quiet", "enter")
        before = view.fetches
        await until(pilot, lambda: view.fetches > before and not view.busy, 30)
        summary = view.summary
        assert summary is not None
        # Only that function came back: the dashboard filtered (the client sends only the filter).
        assert [g.name for g in summary.groups] == ["h11t_quiet"]
        assert summary.matched == 3 and summary.groups[0].count("FINISHED") == 3
        assert "name:h11t_quiet" in str(view.border_title)


@pytest.mark.ray
async def test_actor_log_opens_from_its_detail(
    ray_cluster: RayTestCluster, workload: WorkloadClient
) -> None:
    (actor,) = workload.actors(ActorFilter(name="h11t-logs", state="ALIVE")).rows
    app = real_app(ray_cluster)
    async with app.run_test(size=(120, 40)) as pilot:
        view = await open_view(pilot, app, "5", ActorsView)
        table = view.query_one(ActorTable)
        assert table.move_cursor_to_key(actor.actor_id)
        assert "H11tHolder h11t-logs ALIVE" in table.row_text(actor.actor_id)
        await pilot.press("enter")
        detail = app.screen
        assert isinstance(detail, ActorDetailScreen)
        await until(pilot, lambda: detail.detail is not None, 30, "the actor detail")
        assert "h11t" in text_of(app) and str(actor.pid) in text_of(app)
        await pilot.press("l")
        assert isinstance(app.screen, LogScreen)
        await until(
            pilot,
            lambda: "h11t holder ready" in text_of(app),
            30,
            "the actor's log",
            lambda: text_of(app),
        )


@pytest.mark.ray
async def test_kill_refused_readonly_then_killed_after_confirmation(
    ray_cluster: RayTestCluster, workload: WorkloadClient
) -> None:
    (actor,) = workload.actors(ActorFilter(name="h11t-victim", state="ALIVE")).rows
    app = real_app(ray_cluster, readonly=True)
    async with app.run_test(size=(120, 40)) as pilot:
        notices = Notices(app)
        view = await open_view(pilot, app, "5", ActorsView)
        assert view.query_one(ActorTable).move_cursor_to_key(actor.actor_id)
        await pilot.press("K")
        await notices.next(pilot, "--readonly", 0)
        assert not isinstance(app.screen, ConfirmScreen)
    assert workload.actor(actor.actor_id).row.state == "ALIVE"

    app = real_app(ray_cluster)
    async with app.run_test(size=(120, 40)) as pilot:
        app.cluster_screen.workbench.kill_python = PY  # `python` on PATH may lack Ray here
        notices = Notices(app)
        view = await open_view(pilot, app, "5", ActorsView)
        table = view.query_one(ActorTable)
        assert table.move_cursor_to_key(actor.actor_id)
        await pilot.press("K")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, "the question")
        assert "h11t-victim" in text_of(app)
        await pilot.press("y")
        await notices.next(pilot, "actor killed", 0, within=90)
        await until(
            pilot,
            lambda: "DEAD" in table.row_text(actor.actor_id),
            30,
            "the actor DEAD in the list",
            lambda: text_of(app),
        )
    assert workload.actor(actor.actor_id).row.dead


@pytest.mark.ray
async def test_tasks_and_actors_are_usable_at_80x24(
    ray_cluster: RayTestCluster, workload: WorkloadClient
) -> None:
    app = real_app(ray_cluster)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_view(pilot, app, "4", TasksView)
        shown = text_of(app)
        for word in ("FUNCTION", "PENDING", "RUNNING", "FINISHED", "FAILED", "TOTAL", "4:Tasks"):
            assert word in shown, shown
        assert "h11t_explode" in shown and "/ filter" in shown
        await open_view(pilot, app, "5", ActorsView)
        shown = text_of(app)
        for word in ("CLASS", "NAME", "STATE", "NODE", "PID", "GPUS", "H11tHolder", "Kill actor"):
            assert word in shown, shown
