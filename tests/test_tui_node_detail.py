"""Node detail: the GPU history charts, what runs on the node, and its logs.

The chart and ring tests replay snapshots (no Ray). The rest run the TUI attached to the shared
real Ray cluster through the real attach path (dashboard URL and token); the cluster's agents
report fake GPUs (tests/fakegpu), and a real actor's PID is put on one of them the way NVML would
show it, so the GPU process is a real worker whose log Ray serves.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from msgspec.structs import replace  # GPUs are msgspec Structs

from raytui.model.cluster import GpuProcess
from raytui.model.gpu_history import MAX_SAMPLES, WINDOW_S, GpuHistory, capacity_for, gpu_key
from raytui.model.workbench import ActorRow, NodeWorkload, Page, WorkerRow
from raytui.sources import attach
from raytui.tui.app import RaytuiApp
from raytui.tui.messages import OpenNode
from raytui.tui.screens.log_screen import LogScreen
from raytui.tui.screens.node_detail import NodeDetailScreen
from raytui.tui.screens.node_logs import NodeLogsPicker, ordered_groups
from raytui.tui.widgets.gpu_chart import GpuChart
from raytui.tui.widgets.node_runs import RunsTable, run_rows
from tests.support.ray_cluster import RayTestCluster
from tests.support.tui_fakes import (
    HEAD_ID,
    NOW,
    FakeConnection,
    connector_for,
    frozen_clock,
    head_node,
    screen_text,
    snapshot,
    until,
)

# -- history ring and chart (replayed snapshots) ------------------------------------------------


def moving(i: int, step: float = 2.0):  # type: ignore[no-untyped-def]
    g = replace(head_node().gpus[0], utilization_pct=float((i * 7) % 101))
    return snapshot((head_node(gpus=(g,)),), taken_at=NOW - 10_000 + i * step)


def test_history_capacity_covers_15_minutes_at_the_refresh_and_stays_bounded() -> None:
    assert capacity_for(2.0) == 451 and capacity_for(1.0) == 901 and capacity_for(60) == 120
    assert capacity_for(0.1) == MAX_SAMPLES == 901  # faster: samples spaced 1 s apart
    fast = GpuHistory(refresh=0.1)
    for i in range(10_000):
        fast.record(moving(i, step=0.1))
    assert fast.samples <= fast.capacity == MAX_SAMPLES
    times, util, _ = fast.timeline(gpu_key(HEAD_ID, "GPU-fake-head-0", 0))
    assert times[-1] - times[0] >= WINDOW_S - 1  # still 15 minutes
    normal = GpuHistory(refresh=2.0)
    for i in range(1_000):
        normal.record(moving(i))
    assert normal.samples == normal.capacity == 451
    times, util, _ = normal.timeline(gpu_key(HEAD_ID, "GPU-fake-head-0", 0))
    assert times[-1] - times[0] == pytest.approx(WINDOW_S)
    assert util[-1] == float((999 * 7) % 101)  # half-percent steps hold whole percents exactly


async def test_history_chart_renders_with_axes_after_replayed_snapshots() -> None:
    series = [moving(i) for i in range(500)]
    app = RaytuiApp(
        connector_for(FakeConnection([series[0]])),
        refresh=2.0,
        clock=frozen_clock,
        nvml_sampler=None,
        local_hostname="not-a-cluster-node",
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.state.generation >= 1)
        # SnapshotReady replaces queued ones (a slow UI renders no backlog): replay the older
        # snapshots into the app's ring as it records them, then feed the newest through the app.
        for snap in series[1:-1]:
            app.state.history.record(snap)
        app.feed(series[-1])
        await until(pilot, lambda: app.state.snapshot is series[-1])
        assert app.state.history.samples == 451
        app.post_message(OpenNode(HEAD_ID))
        await until(pilot, lambda: isinstance(app.screen, NodeDetailScreen))
        await pilot.press("t")  # the History tab
        chart = app.screen.query_one(GpuChart)
        await until(pilot, lambda: chart.points == 451 and "minutes ago" in screen_text(app))
        text = screen_text(app)
        assert "GPU 0 Fake H100 80GB" in text
        assert "100┤" in text and "  0┤" in text  # the y axis
        assert "15" in text and "minutes ago" in text  # the x axis
        assert "451 of 451 samples" in text
        assert app.state.history.samples == app.state.history.capacity  # bounded ring


def test_rows_merge_workload_with_gpu_processes_by_pid() -> None:
    node = head_node(
        gpus=(
            replace(
                head_node().gpus[0],
                processes=(GpuProcess(4242, 100.0, "actor Holder"), GpuProcess(777, 50.0, None)),
            ),
        )
    )
    workload = NodeWorkload(
        node_id=HEAD_ID,
        actors=Page((ActorRow("a1", "Holder", "h", "ALIVE", node_id=HEAD_ID, pid=4242),), 1),
        running_tasks=Page((), 0),
        workers=(
            WorkerRow("w1", 4242, HEAD_ID, "10.0.0.5", "WORKER", True),
            WorkerRow("w2", 5000, HEAD_ID, "10.0.0.5", "WORKER", True, gpu_ids=(3,)),
        ),
    )
    rows = run_rows(workload, node, {4242: (0,), 777: (0,)})
    assert [(r.kind, r.pid, r.gpus) for r in rows] == [
        ("actor", 4242, (0,)),  # its GPU from the GPU processes, by PID
        ("worker", 5000, (3,)),  # no GPU process: the slot Ray assigned
        ("process", 777, (0,)),  # on the GPU, no Ray worker
    ]


# -- against the real cluster -------------------------------------------------------------------

_HOLDER = """
import json, os, sys
from pathlib import Path
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

root, node_id = sys.argv[1], sys.argv[2]


@ray.remote(num_gpus=1, num_cpus=0)
class NodeDetailHolder:
    def hold_gpu(self, root):
        gpu = int(ray.get_gpu_ids()[0])
        node = ray.get_runtime_context().get_node_id()
        folder = Path(root) / node / str(gpu)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / str(os.getpid())).write_text("3072")
        print("node-detail holder ready on GPU", gpu, flush=True)
        return os.getpid(), gpu, node


ray.init(address=os.environ["GCS"], log_to_driver=False)
actor = NodeDetailHolder.options(
    scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)
).remote()
print(json.dumps(ray.get(actor.hold_gpu.remote(root), timeout=90)), flush=True)
sys.stdin.read()  # hold the actor until the test closes stdin
"""


@pytest.fixture(scope="module")
def gpu_holder(ray_cluster: RayTestCluster) -> Iterator[tuple[int, int, str]]:
    """A real actor holding one of the gpu2 node's GPUs, shown on that fake GPU by its PID."""
    gpu2 = ray_cluster.nodes[1]
    env = ray_cluster.client_env(GCS=ray_cluster.gcs_address)
    driver = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(ray_cluster.fake_gpu_procs), gpu2.node_id],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    pid_file: Path | None = None
    try:
        assert driver.stdout is not None
        line = driver.stdout.readline()
        assert line, "the holder's driver exited before reporting"
        pid, gpu, node_id = json.loads(line)
        pid_file = ray_cluster.fake_gpu_procs / node_id / str(gpu) / str(pid)
        yield pid, gpu, node_id
    finally:
        if driver.stdin is not None:
            driver.stdin.close()
        try:
            driver.wait(timeout=30)
        except subprocess.TimeoutExpired:
            driver.kill()
            driver.wait()
        if pid_file is not None:
            pid_file.unlink(missing_ok=True)


def real_app(cluster: RayTestCluster) -> RaytuiApp:
    return RaytuiApp(
        lambda progress: attach.connect(cluster.dashboard_url, None, progress),
        refresh=1.0,
        target=cluster.dashboard_url,
        nvml_sampler=None,
        local_hostname="not-a-cluster-node",
    )


def runs(app: RaytuiApp) -> RunsTable:
    return app.screen.query_one(RunsTable)


@pytest.mark.ray
@pytest.mark.multinode
async def test_gpu_actor_listed_with_its_gpu_and_its_gpu_process_opens_its_worker_log_fake_gpus(
    ray_cluster: RayTestCluster,
    gpu_holder: tuple[int, int, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pid, gpu, node_id = gpu_holder
    monkeypatch.setenv("RAY_AUTH_TOKEN", ray_cluster.token)
    app = real_app(ray_cluster)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.state.snapshot is not None, within=60)
        app.post_message(OpenNode(node_id))
        await until(pilot, lambda: isinstance(app.screen, NodeDetailScreen))
        detail = app.screen
        await pilot.press("t", "t")  # What runs

        def holder_row() -> bool:
            return any(
                r.kind == "actor"
                and r.pid == pid
                and r.gpus == (gpu,)
                and "NodeDetailHolder" in r.what
                for r in runs(app).rows_shown
            )

        await until(pilot, holder_row, within=60, what="the actor with its GPU index")
        assert "NodeDetailHolder" in screen_text(app)
        keys = [r.key for r in runs(app).rows_shown]
        row = next(r for r in runs(app).rows_shown if r.pid == pid)
        runs(app).move_cursor(row=keys.index(row.key))
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LogScreen))
        log = app.screen
        assert (
            isinstance(log, LogScreen) and log.source == f"worker pid {pid} on {node_id[:8]} stdout"
        )
        await until(
            pilot,
            lambda: f"node-detail holder ready on GPU {gpu}" in log.view.ring.text(),
            within=60,
            what="the worker's log line",
        )
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is detail)
        assert log.closed.is_set()


@pytest.mark.ray
@pytest.mark.multinode
async def test_node_logs_picker_opens_the_raylet_log_following(
    ray_cluster: RayTestCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_AUTH_TOKEN", ray_cluster.token)
    head = ray_cluster.head.node_id
    raylet_out = Path(ray_cluster.temp_dir) / "session_latest" / "logs" / "raylet.out"
    app = real_app(ray_cluster)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.state.snapshot is not None, within=60)
        app.post_message(OpenNode(head))
        await until(pilot, lambda: isinstance(app.screen, NodeDetailScreen))
        await pilot.press("L")
        await until(pilot, lambda: isinstance(app.screen, NodeLogsPicker))
        picker = app.screen
        assert isinstance(picker, NodeLogsPicker)
        await until(pilot, lambda: picker.logs is not None or picker.error is not None, 30)
        assert picker.error is None
        assert "raylet.out" in picker.logs.files("raylet")  # type: ignore[union-attr]
        # The listing is drawn after the logs arrive: wait for it on screen. The raylet's
        # files come first; the agent's may be below the fold (a busy head has dozens).
        assert any(
            "dashboard_agent" in name
            for _group, names in ordered_groups(picker.logs)  # type: ignore[arg-type]
            for name in names
        )
        await until(
            pilot, lambda: "raylet.out" in screen_text(app), within=10, what="the logs listed"
        )
        listing = picker.query_one("OptionList")
        listing.highlighted = listing.get_option_index("raylet.out")  # type: ignore[attr-defined]
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, LogScreen))
        log = app.screen
        assert isinstance(log, LogScreen) and log.source.startswith("raylet.out on ")
        wanted = ""
        if raylet_out.exists():  # the head's own file, read directly: the view must hold it
            lines = [ln for ln in raylet_out.read_text(errors="replace").splitlines() if ln]
            wanted = lines[-1] if lines else ""
        await until(
            pilot,
            lambda: len(log.view.ring) > 0 and (not wanted or wanted in log.view.ring.text()),
            within=30,
            what="raylet.out in the log view",
        )
        assert log.view.state == ""  # still following, no error
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, NodeDetailScreen))
