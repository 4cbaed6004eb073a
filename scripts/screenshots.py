"""Regenerate screenshots/*.svg (and .png when a converter is at hand) from real app runs.

    .venv/bin/python scripts/screenshots.py                 # replayed demo snapshots
    .venv/bin/python scripts/screenshots.py --address http://127.0.0.1:8265   # plus a live cluster
    sudo .venv/bin/python scripts/screenshots.py --overlay-demo --only-live   # join across NAT

Replayed runs use the TUI tests' fixed snapshots (tests/support/tui_fakes.py) fed through a fake
connection, so the pictures are the app as it runs, with deterministic numbers. The overlay
picture feeds a hand-built daemon reading too (tests/support/overlay_fakes.py); `--overlay-demo`
shoots the same view on real data: network namespaces with a real NAT, real daemons and Ray nodes
(root only). PNG conversion uses cairosvg if importable, else rsvg-convert or ImageMagick if on
PATH.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import tui_fakes as demo  # noqa: E402
from textual.pilot import Pilot  # noqa: E402
from textual.screen import ModalScreen  # noqa: E402

from raytui.errors import ClusterUnreachable  # noqa: E402
from raytui.tui.app import RaytuiApp  # noqa: E402

Steps = Callable[[Pilot[Any], RaytuiApp], Any]


async def shoot(
    app: RaytuiApp,
    out: Path,
    name: str,
    size: tuple[int, int],
    keys: Sequence[str] = (),
    history: Sequence[Any] = (),
    fail_next: bool = False,
    min_generation: int = 1,
    settle: float = 0.3,
) -> Path:
    async with app.run_test(size=size) as pilot:
        await demo.drive(
            pilot,
            app,
            history,
            keys,
            fail_next=fail_next,
            min_generation=min_generation,
            key_pause=0.2,
        )
        await pilot.pause(settle)
        path = out / f"{name}.svg"
        app.save_screenshot(filename=path.name, path=str(out))
        while isinstance(app.screen, ModalScreen):  # a dialog would take the q as text
            await pilot.press("escape")
        await pilot.press("q")
        await demo.until(pilot, lambda: not app.is_running)
    return path


def demo_app(script: list[Any], **kw: Any) -> RaytuiApp:
    conn = kw.pop("connection", None) or demo.FakeConnection(script)
    return RaytuiApp(
        demo.connector_for(conn, progress=()),
        refresh=3600,
        clock=demo.frozen_clock,
        target="http://10.0.0.5:8265",
        nvml_sampler=kw.pop("nvml", None),
        local_hostname=kw.pop("local_hostname", "not-a-cluster-node"),
        local_addresses=kw.pop("local_addresses", ("127.0.0.1", "10.0.0.5")),
        prompt_service=kw.pop("prompt_service", None),
    )


async def composer(out: Path) -> list[Path]:
    """The prompt composer with four answers in four states, and the history screen.

    A STAND-IN prompt service (tests/support/composer_standin.py) scripts the runs; history goes
    to a throwaway database.
    """
    import os
    import tempfile

    from tests.support.composer_standin import NODE_B, Script, StandInService
    from textual.widgets import Checkbox, Input

    from raytui.backends.history import HistoryStore

    os.environ["RAYTUI_HOME"] = tempfile.mkdtemp(prefix="raytui-shots-")
    answer = (
        "Silicon rivers hum,\nforty gigabytes of thought—\nthe fans breathe like tides.\n\n"
        "Each token a step\nacross a warm copper field;\nRay keeps the count."
    )
    words = [w + " " for w in answer.replace("\n", " \n").split(" ")]
    themes = [
        "a haiku about GPUs",
        "a limerick about a Ray cluster",
        "a sonnet about tmux over SSH",
        "a koan about cache misses",
    ]
    by_prompt = {
        themes[0]: Script(words),
        themes[1]: Script(words, hold_after=14, gpu="0", delay_s=0.02),
        themes[2]: Script(words, waiting=100_000),
        themes[3]: Script(
            words[:6],
            error_after=6,
            delay_s=0.02,
            node_id=NODE_B,
            hostname="gpu-head",
            ip="10.0.0.5",
            gpu="0",
            error="Ollama on node a1b2c3d4 (10.0.0.5) failed mid-stream: unexpected EOF",
        ),
    }

    async def shoot_composer(name: str, size: tuple[int, int], history: bool) -> list[Path]:
        service = StandInService(
            {}, models=["llama3.2", "qwen3:8b"], by_prompt=by_prompt, history=HistoryStore()
        )
        app = demo_app([demo.healthy()], prompt_service=service)
        shots = []
        async with app.run_test(size=size) as pilot:
            await demo.until(pilot, lambda: app.state.generation >= 1)
            await pilot.press("c")
            screen = app.screen
            await demo.until(pilot, lambda: bool(screen.query_one(Input).value))
            screen.query_one("#per-line", Checkbox).value = True
            screen.query_one("#temperature", Input).value = "0.7"
            for n, theme in enumerate(themes):
                await pilot.press(*(["enter"] if n else []), *theme)
            await pilot.press("ctrl+s")
            await pilot.pause(1.0)
            shots.append(out / f"{name}.svg")
            app.save_screenshot(filename=shots[-1].name, path=str(out))
            if history:
                await pilot.press("escape")  # cancels the runs still going
                await pilot.pause(0.5)
                await pilot.press("escape", "h")
                await pilot.pause(0.8)
                shots.append(out / "history-120x36.svg")
                app.save_screenshot(filename=shots[-1].name, path=str(out))
            service.close()
        return shots

    return [
        *await shoot_composer("composer-120x36", (120, 36), True),
        *await shoot_composer("composer-80x24", (80, 24), False),
        await engines(out),
    ]


async def engines(out: Path) -> Path:
    """The vLLM engines screen (`v`), with a STAND-IN prompt service listing two engines."""
    from tests.support.composer_standin import NODE_A, NODE_B, StandInService

    from raytui.model.prompts import EngineInfo

    listed = [
        EngineInfo(
            "raytui-vllm-Qwen_Qwen3-32B-tp2-0", True, "Qwen/Qwen3-32B", 2, NODE_A, "gpu-box-2",
            ("0", "1"), 3, demo.NOW - 7_400,
        ),
        EngineInfo(
            "raytui-vllm-meta-llama_Llama-3.1-8B-Instruct-tp1-0", True,
            "meta-llama/Llama-3.1-8B-Instruct", 1, NODE_B, "gpu-head", ("0",), 0,
            demo.NOW - 900,
        ),
        EngineInfo("raytui-vllm-mistralai_Mistral-7B-v0.3-tp1-0", False),
    ]  # fmt: skip
    app = demo_app([demo.healthy()], prompt_service=StandInService({}, engines=listed))
    async with app.run_test(size=(120, 36)) as pilot:
        await demo.until(pilot, lambda: app.state.generation >= 1)
        await pilot.press("v")
        await demo.until(pilot, lambda: getattr(app.screen, "loads", 0) >= 1)
        await pilot.pause(0.3)
        app.save_screenshot(filename="engines-120x36.svg", path=str(out))
    return out / "engines-120x36.svg"


async def jobs(out: Path) -> list[Path]:
    """Job detail with a live log, and the submit dialog at 80x24.

    A STAND-IN jobs client (the real JobsClient with `info`/`follow` scripted) plays a training
    job, so the picture is the same on every run; the tests run the same views on a real cluster.
    """
    import threading
    from collections.abc import Iterator
    from dataclasses import replace

    from raytui.model.workbench import JobInfo, JobSubmission
    from raytui.sources.jobs import JobsClient
    from raytui.sources.workbench import Workbench
    from raytui.tui.screens.job_detail import JobDetailScreen
    from raytui.tui.screens.job_submit import JobSubmitScreen
    from raytui.tui.widgets.jobs import JobTable

    os.environ["TZ"] = "UTC"
    time.tzset()
    key = demo.JOBS[0].submission_id or ""
    info = JobInfo(
        job_id="02000000",
        submission_id=key,
        status="RUNNING",
        message="Job is currently running.",
        entrypoint="python train.py --epochs 10",
        start_time=demo.NOW - 754,
        runtime_env=(
            ("env_vars", '{"WANDB_MODE": "offline"}'),
            ("pip", '["datasets==3.1"]'),
            ("working_dir", "gcs://_ray_pkg_4f2a9c1d8e7b6a50.zip"),
        ),
        driver_node_id=demo.HEAD_ID,
        driver_ip="10.0.0.5",
        driver_pid=48211,
        entrypoint_num_gpus=1.0,
        entrypoint_num_cpus=4.0,
    )
    lines = [
        "2026-11-21 09:13:02 loading dataset tinystories (train split)",
        "\x1b[32mINFO\x1b[0m model: 124M params, bf16, 1 GPU (Fake H100 80GB)",
    ] + [
        f"epoch {1 + i // 8:2d} step {i * 50 + 50:5d}  loss {2.9 / (1 + i * 0.21):.4f}"
        f"  lr 3.0e-04  {41_200 + (i * 137) % 900:,} tok/s"
        for i in range(26)
    ]

    class StandInJobs(JobsClient):
        def info(self, key: str) -> JobInfo:
            return info

        def follow(
            self, key: str, cancel: threading.Event | None = None, *, poll: float = 0.2
        ) -> Iterator[str]:
            yield "".join(line + "\n" for line in lines)
            if cancel is not None:
                cancel.wait()  # still running: the view keeps following

    class JobsConnection(demo.FakeConnection):
        def workbench(self) -> Workbench:
            wb = Workbench.for_dashboard("http://10.0.0.5:8265", None)
            return replace(wb, jobs=StandInJobs("http://10.0.0.5:8265"))

    paths = []
    app = demo_app([], connection=JobsConnection([demo.healthy()]))
    async with app.run_test(size=(120, 36)) as pilot:
        await demo.until(pilot, lambda: app.state.generation >= 1)
        await pilot.press("3")
        app.screen.query_one(JobTable).move_cursor_to_key(key)
        await pilot.press("enter")
        await demo.until(pilot, lambda: isinstance(app.screen, JobDetailScreen))
        detail = app.screen
        assert isinstance(detail, JobDetailScreen)
        await demo.until(pilot, lambda: detail.reads >= 1 and len(detail.log_view.ring) >= 28)
        await pilot.pause(0.3)
        app.save_screenshot(filename="job-detail-120x36.svg", path=str(out))
        paths.append(out / "job-detail-120x36.svg")
    app = demo_app([demo.healthy()])
    app.job_draft = JobSubmission(
        "python train.py --epochs 10",
        working_dir=".",
        pip="datasets==3.1",
        env_vars="WANDB_MODE=offline BAD-NAME=1",
        num_gpus="1",
        num_cpus="4",
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await demo.until(pilot, lambda: app.state.generation >= 1)
        await pilot.press("3", "n")
        await demo.until(pilot, lambda: isinstance(app.screen, JobSubmitScreen))
        await pilot.pause(0.3)
        app.save_screenshot(filename="job-submit-80x24.svg", path=str(out))
        paths.append(out / "job-submit-80x24.svg")
    return paths


async def replayed(out: Path) -> list[Path]:
    series = demo.sparkline_series()
    lost = ClusterUnreachable("cannot reach http://10.0.0.5:8265: connection refused")
    shots = [
        ("nodes-120x36", (120, 36), [series[0]], (), series[1:], False, {}),
        ("nodes-80x24", (80, 24), [series[0]], (), series[1:], False, {}),
        ("gpus-120x36", (120, 36), [series[0]], ("2",), series[1:], False, {}),
        ("jobs-120x36", (120, 36), [series[0]], ("3",), series[1:], False, {}),
        (
            "node-detail-120x36",
            (120, 36),
            [series[0]],
            ("enter",),
            series[1:],
            False,
            {"nvml": demo.nvml_report, "local_hostname": "gpu-head"},
        ),
        ("node-dead-120x36", (120, 36), [demo.with_dead_gpu2()], ("j",), (), False, {}),
        ("disconnected-120x36", (120, 36), [series[0], lost], (), series[1:], True, {}),
        ("help-120x36", (120, 36), [series[0]], ("question_mark",), (), False, {}),
    ]
    paths = []
    for name, size, script, keys, history, fail, kw in shots:
        app = demo_app(list(script), **kw)
        paths.append(await shoot(app, out, name, size, keys, history, fail))
    return paths


class _DemoWorkload:
    """A stand-in for the workload client, for a deterministic picture only (the tests use the
    real cluster): what runs on the demo head node."""

    def node_workload(self, node_id: str) -> Any:
        from raytui.model.workbench import ActorRow, NodeWorkload, Page, TaskRow, WorkerRow

        actor = ActorRow("a" * 32, "VLLMEngine", "engine-0", "ALIVE", node_id=node_id, pid=4242)
        task = TaskRow(
            "t" * 40, 0, "generate", "generate", "RUNNING", "NORMAL_TASK", worker_pid=5150
        )
        workers = (
            WorkerRow("w1", 4242, node_id, "10.0.0.5", "WORKER", True, gpu_ids=(0,)),
            WorkerRow("w2", 5150, node_id, "10.0.0.5", "WORKER", True),
            WorkerRow("w3", 6001, node_id, "10.0.0.5", "WORKER", True),
        )
        return NodeWorkload(
            node_id, Page((actor,), 1), Page((task,), 1), workers, taken_at=demo.NOW - 1
        )


async def node_workbench(out: Path) -> list[Path]:
    """Node detail with 15 minutes of replayed GPU history, and what runs on the node."""
    from types import SimpleNamespace

    from msgspec.structs import replace  # GPUs are msgspec Structs

    from raytui.tui.messages import OpenNode

    def sample(i: int) -> Any:
        g = replace(
            demo.head_node().gpus[0],
            utilization_pct=float(min(100, max(0, 55 + 40 * ((i // 60) % 2) - (i % 17)))),
            memory_used_mib=12_288.0 + 100 * (i % 90),
        )
        return demo.snapshot((demo.head_node(gpus=(g,)), demo.cpu_node()), demo.NOW - 900 + 2 * i)

    series = [sample(i) for i in range(451)]
    paths = []
    for name, tab_keys in (("node-history-120x36", ("t",)), ("node-runs-120x36", ("t", "t"))):
        app = RaytuiApp(
            demo.connector_for(demo.FakeConnection([series[0]]), progress=()),
            refresh=2.0,
            clock=demo.frozen_clock,
            target="http://10.0.0.5:8265",
            nvml_sampler=None,
            local_hostname="not-a-cluster-node",
        )
        app.poller.workbench = lambda: SimpleNamespace(
            jobs=None, workload=_DemoWorkload(), logs=None
        )  # type: ignore[method-assign,assignment,return-value]
        async with app.run_test(size=(120, 36)) as pilot:
            await demo.until(pilot, lambda a=app: a.state.generation >= 1)
            for snap in series[1:-1]:
                app.state.history.record(snap)
            app.feed(series[-1])
            await demo.until(pilot, lambda a=app: a.state.snapshot is series[-1])
            app.post_message(OpenNode(demo.HEAD_ID))
            await pilot.pause(0.3)
            await pilot.press(*tab_keys)
            await pilot.pause(0.5)
            app.save_screenshot(filename=f"{name}.svg", path=str(out))
            await pilot.press("escape", "q")
            await demo.until(pilot, lambda a=app: not a.is_running)
        paths.append(out / f"{name}.svg")
    return paths


async def overlay_nodes(out: Path) -> Path:
    """The head's Nodes view with boxes joined over the overlay: each node's PATH (local,
    overlay, via a hub), box-2's link down before Ray notices, and the peers sidebar."""
    from tests.support import overlay_fakes as ov

    replay = demo.FakeConnection([ov.overlay_cluster()], description="")
    app = RaytuiApp(
        demo.connector_for(replay, progress=()),
        refresh=3600,
        clock=demo.frozen_clock,
        target=f"http://{ov.HEAD_IP}:8265",
        nvml_sampler=None,
        local_hostname="gpu-head",
        local_addresses=("127.0.0.1", ov.HEAD_IP),
    )
    name = "overlay-nodes-120x36"
    async with app.run_test(size=(120, 36)) as pilot:
        await demo.drive(pilot, app)
        for tick in (0, 1):  # two readings 2 s apart: the sidebar shows bytes per second
            status = ov.daemon_status(box2_up=False, tick=tick)
            await ov.feed_daemon(pilot, app.peers, status, at=100.0 + 2 * tick)
        await pilot.press("j", "p")  # box-1 (behind NAT) highlighted; the sidebar shown
        await pilot.pause(0.5)
        app.save_screenshot(filename=f"{name}.svg", path=str(out))
    return out / f"{name}.svg"


OVERLAY_HEAD_SHOT = "overlay-head-120x36"


def overlay_demo(out: Path) -> Path:
    """The head's TUI on real data: a GPU box behind a real NAT joined the head's Ray cluster
    over the peer daemons' overlay, with an invite (2 logical GPUs; no NVIDIA hardware needed).

    Network namespaces made and removed here (tests/support/netns.py; root only): the head
    (public) and the box behind its own NAT, each with its own host name, a `raytui proxy run
    --overlay` daemon (tests/support/overlay_world.py) and a Ray node `raytui join` started. This
    process cannot reach overlay addresses, so the app runs inside the head's namespace: this
    script again (`--shoot-overlay-head`), with the head daemon's RAYTUI_HOME and the token.
    """
    import tempfile

    from tests.support.netns import Topology
    from tests.support.overlay_world import NsDaemon
    from tests.support.waiting import wait_for

    if os.geteuid() != 0:
        raise SystemExit("--overlay-demo builds network namespaces: run it as root")

    def ok(done: subprocess.CompletedProcess[str], what: str) -> str:
        if done.returncode != 0:
            raise SystemExit(f"{what} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")
        return done.stdout

    with Topology() as topo:
        daemons: list[NsDaemon] = []
        try:
            head = NsDaemon(topo.public("head", hostname="gpu-head"))
            box = NsDaemon(topo.behind_nat("box", hostname="gpu-box"))
            daemons += [head, box]
            for d in daemons:
                d.start("--overlay")
            ok(head.cli("proxy", "expose", "--ray-head", "--share-token"), "proxy expose")
            ok(head.cli("join", "--head", "--cpus", "2", "--gpus", "0"), "join --head")
            invite = ok(head.cli("invite", "--expires", "10m"), "invite").strip()
            ok(box.cli("join", invite, "--gpus", "2", "--cpus", "2"), "join INVITE on the box")
            joined = box.join_status()
            assert joined is not None and joined.node_id
            token = head.token()
            node_id = joined.node_id
            wait_for(lambda: head.node_state(token, node_id) == "ALIVE", 90, "the box ALIVE")
            env = head.ray_env(token)
            env["HOME"] = tempfile.mkdtemp(prefix="shots", dir=head.home)
            argv = [
                sys.executable, str(Path(__file__).resolve()), "--shoot-overlay-head",
                f"{head.overlay_address}:6379", "--box", box.overlay_address,
                "--out", str(out.resolve()), "--no-png",
            ]  # fmt: skip
            ok(head.host.run(argv, env=env, timeout=300), "the app in the head's namespace")
        finally:
            for d in daemons:
                d.cleanup()
    return out / f"{OVERLAY_HEAD_SHOT}.svg"


async def overlay_head(out: Path, address: str, box_ip: str) -> Path:
    """Run inside the head's namespace by `overlay_demo`: the app attached to the head, once
    the daemon reports the box's route, with the box's row highlighted and the sidebar shown."""
    from raytui.model.overlay import RouteState

    tui = importlib.import_module("raytui.commands.tui")
    app = RaytuiApp(lambda progress: tui.connect(address, None, progress), refresh=1.0,
                    target=address)  # fmt: skip

    def box_routed() -> bool:
        sidebar = app.peers.sidebar
        status = None if sidebar is None else sidebar.status
        route = None if status is None else status.overlay.route_to(box_ip)
        return route is not None and route.state is RouteState.UP

    async with app.run_test(size=(120, 36)) as pilot:
        # A dozen polls, so the bars have moved; the box's route known, so PATH shows.
        await demo.until(pilot, lambda: app.state.generation >= 12 and not app.poller.busy, 120)
        await demo.until(pilot, box_routed, 30, "the head's daemon reporting the box's route")
        await pilot.press("j", "p")  # the box's row (the head's comes first); the sidebar
        await pilot.pause(2.5)  # a second daemon reading: the sidebar shows bytes per second
        app.save_screenshot(filename=f"{OVERLAY_HEAD_SHOT}.svg", path=str(out))
        await pilot.press("q")
        await demo.until(pilot, lambda: not app.is_running, 60)
    return out / f"{OVERLAY_HEAD_SHOT}.svg"


async def live(out: Path, address: str) -> list[Path]:
    tui = importlib.import_module("raytui.commands.tui")
    paths = []
    for name, size, keys in (
        ("live-nodes-120x36", (120, 36), ()),
        ("live-gpus-120x36", (120, 36), ("2",)),
        ("live-node-detail-120x36", (120, 36), ("enter",)),
    ):
        app = RaytuiApp(
            lambda progress: tui.connect(address, None, progress),
            refresh=1.0,
            target=address,
        )
        # A dozen polls, so the sparklines have a history to show.
        paths.append(await shoot(app, out, name, size, keys, min_generation=12))
    return paths


FAILING_JOB = """
import ray
ray.init(log_to_driver=False)

@ray.remote(max_retries=0)
def load_shard(path):
    print("reading", path, flush=True)
    raise FileNotFoundError(f"no shard at {path}")

try:
    ray.get(load_shard.remote("/data/shard-0042.parquet"))
except ray.exceptions.RayTaskError:
    pass
"""


async def failed_task(out: Path, cluster: Any) -> Path:
    """Tasks view -> load_shard -> its failed task's detail (traceback), on a real cluster; the
    node list is replayed (deterministic), the task comes from the cluster's dashboard."""
    import shlex

    from raytui.model.workbench import JobSubmission
    from raytui.sources.jobs import JobsClient

    jobs = JobsClient(cluster.dashboard_url, cluster.token, timeout=30)
    key = jobs.submit(JobSubmission(f"{sys.executable} -c {shlex.quote(FAILING_JOB)}"))
    jobs.wait(key, 120)
    conn = demo.FakeConnection([demo.healthy()])
    conn.workbench_url, conn.workbench_token = cluster.dashboard_url, cluster.token
    app = RaytuiApp(
        demo.connector_for(conn, progress=()),
        refresh=3600,
        clock=demo.frozen_clock,
        target="http://10.0.0.5:8265",
        nvml_sampler=None,
    )
    from raytui.tui.screens.workload import TaskDetailScreen, TaskListScreen, TasksView
    from raytui.tui.widgets.workload import TaskGroupTable

    async with app.run_test(size=(100, 30)) as pilot:
        await demo.drive(pilot, app, (), ("4",))
        view = app.screen.query_one(TasksView)
        await demo.until(
            pilot, lambda: view.summary is not None and bool(view.summary.group("load_shard")), 60
        )
        view.query_one(TaskGroupTable).move_cursor_to_key("load_shard")
        await pilot.press("enter")
        await demo.until(
            pilot,
            lambda: isinstance(app.screen, TaskListScreen) and app.screen.page is not None,
            60,
        )
        await pilot.press("enter")
        await demo.until(
            pilot,
            lambda: isinstance(app.screen, TaskDetailScreen) and app.screen.detail is not None,
            60,
        )
        await pilot.pause(0.3)
        name = "failed-task-traceback-100x30"
        app.save_screenshot(filename=f"{name}.svg", path=str(out))
        await pilot.press("escape", "escape", "q")
        await demo.until(pilot, lambda: not app.is_running, 60)
    return out / f"{name}.svg"


async def peers(out: Path) -> list[Path]:
    """The peers sidebar and the add-peer dialog, against real `raytui proxy run` daemons."""
    from tests.proxy_support.daemons import Daemon, free_port, pair_up

    own, lab, home = Daemon("me"), Daemon("lab"), Daemon("home")
    daemons = [own, lab, home]
    saved = os.environ.get("RAYTUI_HOME")
    try:
        for daemon in daemons:
            daemon.start()
        pair_up(own, lab)
        pair_up(own, home)
        ghost = Daemon("ghost")  # never started: a peer that cannot be reached
        ghost_id = _peer_id_of(ghost)
        own.control.add_peer(f"/ip4/127.0.0.1/tcp/{free_port()}/p2p/{ghost_id}", name="ghost")
        lab.control.expose("ray-dashboard", "127.0.0.1:8265")
        own.control.forward("lab", "ray-dashboard", f"127.0.0.1:{free_port()}")
        own.control.expose("notebook", "127.0.0.1:8888")
        os.environ["RAYTUI_HOME"] = str(own.home)  # the app reads this daemon's control socket
        paths = []
        for name, size, keys in (
            ("peers-120x36", (120, 36), ("p",)),
            ("peers-80x24", (80, 24), ("p",)),
            ("add-peer-80x24", (80, 24), ("p", "a", *"/ip4/10.0.0.5/tcp/4701")),
        ):
            app = demo_app([demo.healthy()])
            paths.append(await shoot(app, out, name, size, keys, settle=2.5))
        return paths
    finally:
        if saved is None:
            os.environ.pop("RAYTUI_HOME", None)
        else:
            os.environ["RAYTUI_HOME"] = saved
        for daemon in daemons:
            daemon.cleanup()


def _peer_id_of(daemon: Any) -> str:
    """Start a daemon once to mint its identity, then stop it: its address stays unreachable."""
    daemon.start()
    try:
        return str(daemon.status().peer_id)
    finally:
        daemon.cleanup()


def start_demo_cluster() -> Any:
    """A real 3-node `ray start` cluster whose agents report fake GPUs (the tests' hook)."""
    import httpx
    from tests.conftest import GPU2_GPUS, HEAD_GPUS
    from tests.support.ray_cluster import start_cluster

    cluster = start_cluster(HEAD_GPUS)
    cluster.add_node(num_gpus=2, fake_gpus=GPU2_GPUS)
    cluster.add_node(num_gpus=0)
    headers = {"Authorization": f"Bearer {cluster.token}"}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        summary = httpx.get(
            f"{cluster.dashboard_url}/nodes", params={"view": "summary"}, headers=headers
        ).json()["data"]["summary"]
        if sum(len(node["gpus"]) for node in summary) == len(HEAD_GPUS) + len(GPU2_GPUS):
            break
        time.sleep(0.5)
    return cluster


def to_png(svg: Path) -> Path | None:
    png = svg.with_suffix(".png")
    try:
        import cairosvg  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:
        # cairosvg ignores the web font and its fallback; name an installed monospace font.
        text = svg.read_text(encoding="utf-8")
        for mono in ("Fira Code", "DejaVu Sans Mono", "Liberation Mono", "monospace"):
            if mono == "monospace" or _has_font(mono):
                text = text.replace("Fira Code, monospace", f"'{mono}', monospace")
                break
        cairosvg.svg2png(bytestring=text.encode(), write_to=str(png), output_width=1600)
        return png
    for tool, args in (
        ("rsvg-convert", ["-w", "1600", "-o", str(png), str(svg)]),
        ("convert", [str(svg), str(png)]),
    ):
        if shutil.which(tool):
            result = subprocess.run([tool, *args], capture_output=True)
            if result.returncode == 0:
                return png
    return None


def _has_font(name: str) -> bool:
    if not shutil.which("fc-list"):
        return False
    result = subprocess.run(["fc-list", name], capture_output=True, text=True)
    return bool(result.stdout.strip())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", help="also shoot a live cluster at this address")
    parser.add_argument(
        "--demo-cluster",
        action="store_true",
        help="also start a real 3-node Ray cluster with fake GPUs (as the tests do) and shoot it",
    )
    parser.add_argument(
        "--overlay-demo",
        action="store_true",
        help="also build a head and a GPU box behind NAT in network namespaces (root), join the "
        "box over the overlay, and shoot the head's TUI (overlay-head-120x36)",
    )
    parser.add_argument(
        "--only-live",
        action="store_true",
        help="only the pictures of real clusters (--address, --demo-cluster, --overlay-demo)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    parser.add_argument("--no-png", action="store_true")
    # Internal: what --overlay-demo runs inside the head's namespace.
    parser.add_argument("--shoot-overlay-head", metavar="GCS", help=argparse.SUPPRESS)
    parser.add_argument("--box", metavar="OVERLAY_IP", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.shoot_overlay_head:
        asyncio.run(overlay_head(args.out, args.shoot_overlay_head, args.box))
        return 0
    paths: list[Path] = []
    if not args.only_live:
        paths += asyncio.run(replayed(args.out))
        paths += asyncio.run(node_workbench(args.out))
        paths.append(asyncio.run(overlay_nodes(args.out)))
        paths += asyncio.run(composer(args.out))
        paths += asyncio.run(jobs(args.out))
        paths += asyncio.run(peers(args.out))
    if args.address:
        paths += asyncio.run(live(args.out, args.address))
    if args.demo_cluster:
        cluster = start_demo_cluster()
        os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=cluster.token)
        try:
            paths += asyncio.run(live(args.out, cluster.dashboard_url))
            paths.append(asyncio.run(failed_task(args.out, cluster)))
        finally:
            cluster.stop()
    if args.overlay_demo:
        paths.append(overlay_demo(args.out))
    for svg in paths:
        png = None if args.no_png else to_png(svg)
        print(svg.relative_to(ROOT) if svg.is_relative_to(ROOT) else svg, "+ png" if png else "")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
