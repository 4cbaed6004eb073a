"""The Textual app driven by Pilot, fed by a FAKE connection that replays hand-built snapshots.

Snapshots reach the UI through the very message the poller posts (`SnapshotReady`); the clock is
frozen, so ages ("died 3m ago") and countdowns are exact.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from raytui import config
from raytui.errors import ClusterUnreachable
from raytui.model.cluster import ClusterSnapshot, Gpu, Node, NodeState
from raytui.model.gpu_history import GpuHistory, Ring, gpu_key
from raytui.tui.app import RaytuiApp
from raytui.tui.cluster_poller import backoff_delay, connected_to
from raytui.tui.messages import ConnState, SnapshotReady
from raytui.tui.screens.cluster import ClusterScreen
from raytui.tui.screens.help import HelpScreen
from raytui.tui.screens.node_detail import NodeDetailScreen
from raytui.tui.widgets.gpus import GpuPanel, GpuTable
from raytui.tui.widgets.nodes import NodeTable
from tests.support.tui_fakes import (
    CPU_ID,
    GPU2_ID,
    HEAD_ID,
    NOW,
    FakeConnection,
    connector_for,
    cpu_node,
    frozen_clock,
    gpu2_node,
    head_node,
    healthy,
    nvml_report,
    screen_text,
    snapshot,
    until,
    with_dead_gpu2,
)


def make_app(
    conn: FakeConnection,
    *,
    fail_first: int = 0,
    keymap: dict[str, str] | None = None,
    gate: threading.Event | None = None,
    nvml: Callable[[], object] | None = None,
    local_hostname: str = "not-a-cluster-node",
    local_addresses: tuple[str, ...] = ("127.0.0.1", "10.0.0.5"),
) -> RaytuiApp:
    return RaytuiApp(
        connector_for(conn, fail_first=fail_first, gate=gate),
        refresh=3600,  # tests poll with `r`, never on a timer
        keymap=keymap,
        clock=frozen_clock,
        target="http://10.0.0.5:8265",
        nvml_sampler=nvml,  # type: ignore[arg-type]
        local_hostname=local_hostname,
        local_addresses=local_addresses,
    )


async def started(pilot: Pilot[object], app: RaytuiApp, generation: int = 1) -> None:
    await until(pilot, lambda: app.state.generation >= generation and not app.poller.busy)


def nodes_table(app: RaytuiApp) -> NodeTable:
    return app.screen.query_one(NodeTable)


# -- the cluster view -----------------------------------------------------------------------------


async def test_nodes_and_gpu_panes_shown_with_replayed_snapshots() -> None:
    conn = FakeConnection([healthy()])
    app = make_app(conn)
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot, app)
        text = screen_text(app)
        for expected in ("gpu-head", "gpu-box-2", "cpu-only", "ALIVE", "head", "a1b2c3d4"):
            assert expected in text
        # Header totals and link.
        assert "connected" in text and "nodes 3 alive" in text and "Ray 2.60.0" in text
        assert "GPU 3/3" in text and "CPU 34/56" in text
        # GPU pane of the highlighted (first) node.
        for expected in ("Fake H100 80GB", "37%", "12.0/79.6 GiB", "61°C", "215 W"):
            assert expected in text
        assert "pid 4242" in text and "actor VLLMEngine" in text
        # Every call on the connection ran in a worker thread, never on the event loop.
        assert conn.threads and threading.main_thread().name not in conn.threads


async def test_gpu_panes_follow_the_highlighted_node_with_replayed_snapshots() -> None:
    app = make_app(FakeConnection([healthy()]))
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot, app)
        await pilot.press("j")
        await until(pilot, lambda: nodes_table(app).cursor_key == GPU2_ID)
        text = screen_text(app)
        assert "Fake A100 40GB" in text and "91%" in text and "29.3/40.0 GiB" in text
        assert "task generate" in text and "pid 5152" in text


async def test_node_without_gpus_says_so_with_replayed_snapshots() -> None:
    app = make_app(FakeConnection([healthy()]))
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot, app)
        await pilot.press("down", "down")
        await until(pilot, lambda: nodes_table(app).cursor_key == CPU_ID)
        assert app.screen.query_one(GpuPanel).message == "no GPUs on this node"
        assert "no GPUs on this node" in screen_text(app)


async def test_node_with_logical_gpus_and_no_metrics_says_why_with_replayed_snapshots() -> None:
    """A box that joined with `--gpus 2` but has no NVIDIA driver: Ray counts 2 GPUs, nothing
    reports their metrics. The panel must not say the node has no GPUs."""
    logical = cpu_node(gpus_total=2.0)
    app = make_app(FakeConnection([snapshot((head_node(), gpu2_node(), logical))]))
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot, app)
        await pilot.press("down", "down")
        await until(pilot, lambda: nodes_table(app).cursor_key == CPU_ID)
        message = app.screen.query_one(GpuPanel).message
        assert message.startswith("2 GPUs in Ray's resources, but no GPU metrics"), message
        assert "no GPUs on this node" not in screen_text(app)


async def test_node_death_turns_row_dead_with_replayed_snapshots() -> None:
    conn = FakeConnection([healthy(), with_dead_gpu2(died_ago=180)])
    app = make_app(conn)
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot, app)
        assert "ALIVE" in nodes_table(app).row_text(GPU2_ID)
        await pilot.press("r")
        await started(pilot, app, generation=2)
        row = nodes_table(app).row_text(GPU2_ID)
        assert "DEAD 3m ago" in row and "ALIVE" not in row
        text = screen_text(app)
        assert "1 dead" in text and "nodes 2 alive" in text
        # The dead node's GPU pane says why there is nothing to show.
        await pilot.press("j")
        await until(pilot, lambda: nodes_table(app).cursor_key == GPU2_ID)
        assert "died 3m ago: no live GPU data" in app.screen.query_one(GpuPanel).message


async def test_gpus_view_lists_every_gpu_with_replayed_snapshots() -> None:
    app = make_app(FakeConnection([healthy()]))
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot, app)
        await pilot.press("2")
        table = app.screen.query_one(GpuTable)
        await until(pilot, lambda: table.row_count == 3 and table.has_focus)
        assert "Fake A100 40GB" in table.row_text(f"{GPU2_ID}/1")
        await pilot.press("3")
        await pilot.pause()
        text = screen_text(app)
        assert "raysubmit_Kq2fP9" in text and "python train.py" in text and "12m" in text
        assert "running 3" in text and "failed 2" in text and "actors alive 4" in text


async def test_snapshot_fed_as_poller_message_is_shown() -> None:
    """The bench path: `SnapshotReady` posted straight to the app (here from another thread)."""
    app = make_app(FakeConnection([healthy()]))
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot, app)
        bigger = snapshot(
            (
                *healthy().nodes,
                Node("d" * 56, "late-joiner", "10.0.0.9", NodeState.ALIVE, False),
            ),
            taken_at=NOW + 2,
        )
        feeder = threading.Thread(target=app.feed, args=(bigger,))
        feeder.start()
        feeder.join()
        await until(pilot, lambda: nodes_table(app).row_count == 4)
        assert "late-joiner" in screen_text(app)


def test_snapshot_ready_replaces_an_older_one() -> None:
    a, b = SnapshotReady(healthy()), SnapshotReady(with_dead_gpu2())
    assert b.can_replace(a)
    assert not b.can_replace(Input.Changed(Input(), "x"))


# -- connecting, disconnected, recovery -----------------------------------------------------------


async def test_first_frame_shows_progress_while_connecting_with_fake_connection() -> None:
    gate = threading.Event()
    app = make_app(FakeConnection([healthy()]), gate=gate)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: "starting embedded Ray" in screen_text(app))
            text = screen_text(app)
            assert "connecting to http://10.0.0.5:8265" in text
            assert app.state.link.state is ConnState.CONNECTING
            gate.set()
            await started(pilot, app)
            assert "gpu-head" in screen_text(app)
    finally:
        gate.set()


async def test_disconnected_state_and_recovery_with_fake_connection() -> None:
    lost = ClusterUnreachable("cannot reach http://10.0.0.5:8265: connection refused")
    conn = FakeConnection([healthy(), lost, lost, with_dead_gpu2()])
    app = make_app(conn)
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot, app)
        await pilot.press("r")
        await until(pilot, lambda: app.state.link.state is ConnState.DISCONNECTED)
        text = screen_text(app)
        assert "disconnected · retry in 1s" in text
        # Stale data stays on screen, dimmed.
        assert "gpu-head" in text and app.screen.has_class("-stale")
        await until(pilot, lambda: not app.poller.busy)
        await pilot.press("r")
        await until(pilot, lambda: app.poller.failures == 2 and not app.poller.busy)
        assert "retry in 2s" in screen_text(app)
        # One notification when it started failing, not one per poll.
        assert [n.title for n in app._notifications] == ["Lost the Ray cluster"]
        await pilot.press("r")
        await started(pilot, app, generation=2)
        await until(pilot, lambda: app.state.link.state is ConnState.CONNECTED)
        assert not app.screen.has_class("-stale")
        assert "DEAD 3m ago" in nodes_table(app).row_text(GPU2_ID)
        assert "The Ray cluster answers again" in [n.message for n in app._notifications]


async def test_backoff_retries_on_its_own_with_fake_connection() -> None:
    conn = FakeConnection([healthy()])
    app = make_app(conn, fail_first=1)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.state.link.state is ConnState.DISCONNECTED)
        text = screen_text(app)
        assert "Cannot reach the Ray cluster" in text and "connection refused" in text
        assert "retrying in 1s" in text
        await started(pilot, app, generation=1)  # the 1 s backoff timer reconnected
        assert app.state.link.state is ConnState.CONNECTED


def test_backoff_delays() -> None:
    assert [backoff_delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]


def test_back_online_notice_reads_for_addresses_and_peers() -> None:
    assert connected_to("10.0.0.5:6379 (http://10.0.0.5:8265)") == (
        "to 10.0.0.5:6379 (http://10.0.0.5:8265)"
    )
    assert connected_to("via lab (overlay)") == "via lab (overlay)"  # not "to via lab"


async def test_peers_sidebar_stays_shown_when_the_first_snapshot_arrives_and_views_switch() -> None:
    """`p` while still connecting (a box that is about to join its cluster from the add-peer
    dialog): the first snapshot and the view keys must not hide the sidebar."""
    gate = threading.Event()
    app = make_app(FakeConnection([healthy()]), gate=gate)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.peers.sidebar.is_mounted)
        await pilot.press("p")
        sidebar = app.peers.sidebar
        assert sidebar is not None and sidebar.display
        gate.set()
        await started(pilot, app)
        await pilot.pause()
        assert sidebar.display and app.cluster_screen.query_one("#body").has_class("-peers")
        for view in ("2", "3", "1"):
            await pilot.press(view)
            await pilot.pause()
            assert sidebar.display, f"hidden after {view}"
        await pilot.press("p")  # focus is back on the view: p focuses the sidebar,
        await pilot.press("p")  # and again hides it
        assert not sidebar.display


# -- keys, filter, screens ------------------------------------------------------------------------


async def test_filter_narrows_the_node_list_with_replayed_snapshots() -> None:
    app = make_app(FakeConnection([healthy()]))
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot, app)
        await pilot.press("slash")
        box = app.screen.query_one("#filter", Input)
        assert box.has_focus
        await pilot.press(*"box")
        await until(pilot, lambda: nodes_table(app).row_count == 1)
        assert nodes_table(app).cursor_key == GPU2_ID
        assert "Nodes [1/3] /box" in screen_text(app)
        await pilot.press("enter")
        assert nodes_table(app).has_focus
        await pilot.press("slash")
        await pilot.press("escape")
        await until(pilot, lambda: nodes_table(app).row_count == 3)
        assert not box.display
        # By IP and by state too.
        await pilot.press("slash", *"10.0.0.7")
        await until(pilot, lambda: nodes_table(app).row_count == 1)
        assert nodes_table(app).cursor_key == CPU_ID


async def test_enter_opens_node_detail_and_escape_returns_with_replayed_snapshots() -> None:
    app = make_app(FakeConnection([healthy()]), nvml=nvml_report, local_hostname="gpu-head")
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot, app)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, NodeDetailScreen))
        detail = app.screen
        assert isinstance(detail, NodeDetailScreen)
        # This machine's node: the local NVML sampler adds clocks, power limit, PCIe.
        await until(pilot, lambda: detail.report is not None)
        text = screen_text(app)
        assert HEAD_ID in text and "Fake H100 80GB" in text
        assert "SM 1410/1980 MHz" in text and "PCIe gen5 x16" in text
        assert "NVML (this machine) · driver 550.54.15 · CUDA 12.4" in text
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ClusterScreen))


async def test_a_node_elsewhere_with_this_machines_hostname_is_not_read_locally() -> None:
    # Machines set up alike often share a hostname: NVML here must not pass for that node's.
    sampled: list[object] = []

    def nvml() -> object:
        sampled.append(1)
        return nvml_report()

    app = make_app(
        FakeConnection([healthy()]),
        nvml=nvml,
        local_hostname="gpu-head",
        local_addresses=("127.0.0.1", "192.168.1.20"),
    )
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot, app)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, NodeDetailScreen))
        await until(pilot, lambda: "p: read clocks" in screen_text(app), what="the probe offer")
        assert "NVML (this machine)" not in screen_text(app) and sampled == []


async def test_node_detail_probes_a_remote_node_in_a_worker_with_fake_connection() -> None:
    conn = FakeConnection([healthy()])
    app = make_app(conn)
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot, app)
        await pilot.press("j", "enter")
        await until(pilot, lambda: isinstance(app.screen, NodeDetailScreen))
        assert "p: read clocks" in screen_text(app)
        await pilot.press("p")
        await until(pilot, lambda: conn.probes == [GPU2_ID] and not app.screen.probing)  # type: ignore[attr-defined]
        assert "NVML (probe)" in screen_text(app)
        assert threading.main_thread().name not in conn.threads


async def test_dead_node_detail_says_so_with_replayed_snapshots() -> None:
    app = make_app(FakeConnection([with_dead_gpu2(died_ago=180)]))
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot, app)
        await pilot.press("j", "enter")
        await until(pilot, lambda: isinstance(app.screen, NodeDetailScreen))
        text = screen_text(app)
        assert "DEAD · died 3m ago" in text and "raylet died" in text
        assert "the node is not alive" in text


async def test_keymap_remap_from_config_file(raytui_home: Path) -> None:
    cfg_file = raytui_home / "config" / "config.toml"
    cfg_file.parent.mkdir(parents=True, exist_ok=True)
    cfg_file.write_text('[keys]\nview_gpus = "v"\nquit = "x"\nno_such_key = "z"\n')
    cfg = config.load(cfg_file)
    conn = FakeConnection([healthy()])
    app = make_app(conn, keymap=cfg.keys)
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot, app)
        await pilot.press("2")  # no longer bound
        await pilot.pause()
        assert app.cluster_screen.view == "nodes"
        await pilot.press("v")
        await until(pilot, lambda: app.cluster_screen.view == "gpus")
        assert "v:GPUs" in screen_text(app)
        assert any("no_such_key" in str(n.message) for n in app._notifications)
        await pilot.press("x")
        await until(pilot, lambda: not app.is_running)
    assert conn.closed.is_set()


async def test_help_lists_keys_and_binding_ids_with_replayed_snapshots() -> None:
    app = make_app(FakeConnection([healthy()]), keymap={"refresh": "f5"})
    async with app.run_test(size=(100, 50)) as pilot:
        await started(pilot, app)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = screen_text(app)
        for expected in (
            "view_gpus",
            "cursor_down",
            "probe",
            "palette",
            "toggle_peers",
            "f5",
            "[keys]",
        ):
            assert expected in text
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ClusterScreen))


async def test_palette_commands_switch_views_and_open_nodes_with_replayed_snapshots() -> None:
    app = make_app(FakeConnection([healthy()]))
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot, app)
        await pilot.press("colon")
        await pilot.pause()
        await pilot.press(*"jobs")
        await until(pilot, lambda: ":jobs" in screen_text(app))
        await pilot.press("enter")
        await until(pilot, lambda: app.cluster_screen.view == "jobs")
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"node gpu-box")
        await until(pilot, lambda: ":node gpu-box-2" in screen_text(app))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, NodeDetailScreen))
        assert app.screen.node_id == GPU2_ID  # type: ignore[attr-defined]


async def test_quit_closes_the_connection_in_a_worker_with_fake_connection() -> None:
    conn = FakeConnection([healthy()])
    app = make_app(conn)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, app)
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running)
    assert conn.closed.is_set()
    assert threading.main_thread().name not in conn.threads
    assert app.return_code == 0


async def test_quit_while_connecting_closes_once_connected_with_fake_connection() -> None:
    gate = threading.Event()
    conn = FakeConnection([healthy()])
    app = make_app(conn, gate=gate)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.poller.busy)
            await pilot.press("q")
            await until(pilot, lambda: "stopping" in screen_text(app))
            gate.set()
            await until(pilot, lambda: not app.is_running)
    finally:
        gate.set()
    assert conn.closed.is_set() and conn.fetches == 0


async def test_gpus_view_at_1024_nodes_only_draws_what_is_visible() -> None:
    gpus = tuple(
        Gpu(i, "Fake H100 80GB", f"GPU-{i}", 50.0, 1000.0, 81_559.0, 60.0, 300.0) for i in range(8)
    )
    nodes = tuple(
        Node(
            f"{n:056x}",
            f"node-{n:04d}",
            f"10.1.{n // 256}.{n % 256}",
            NodeState.ALIVE,
            n == 0,
            cpu_percent=10.0,
            gpus_total=8,
            gpus=gpus,
        )
        for n in range(1024)
    )
    big = ClusterSnapshot("http://10.0.0.5:8265", "2.60.0", nodes, taken_at=NOW)
    app = make_app(FakeConnection([big]))
    async with app.run_test(size=(160, 48)) as pilot:
        await started(pilot, app)
        await pilot.press("2")
        table = app.screen.query_one(GpuTable)
        await until(pilot, lambda: table.row_count == 8192)
        await pilot.press("end")
        await pilot.pause()
        assert "node-1023" in screen_text(app)
        assert len(app.state.history) == 8192


# -- history and hygiene --------------------------------------------------------------------------


def test_ring_keeps_the_newest_samples() -> None:
    ring = Ring(3)
    for v in (1.0, None, 3.0, 4.0):
        ring.append(v)
    assert ring.values() == [None, 3.0, 4.0]
    assert ring.values(2) == [3.0, 4.0] and ring.latest() == 4.0 and len(ring) == 3


def test_gpu_history_records_once_per_snapshot_and_forgets_vanished_gpus() -> None:
    history = GpuHistory(capacity=10)
    history.record(healthy())
    history.record(healthy())  # same taken_at: not a new sample
    key = gpu_key(HEAD_ID, "GPU-fake-head-0", 0)
    ring = history.utilization(key)
    assert ring is not None and ring.values() == [37.0]
    history.record(with_dead_gpu2())
    assert history.utilization(gpu_key(GPU2_ID, "GPU-fake-gpu2-0", 0)) is None
    assert len(history) == 1


def test_tui_never_imports_ray_trio_or_libp2p() -> None:
    code = (
        "import sys, raytui.tui.app, raytui.commands.tui;"
        "bad = [m for m in ('ray', 'trio', 'libp2p') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("size", [(80, 24), (200, 60)])
async def test_header_fits_two_lines_with_replayed_snapshots(size: tuple[int, int]) -> None:
    app = make_app(FakeConnection([with_dead_gpu2()]))
    async with app.run_test(size=size) as pilot:
        await started(pilot, app)
        lines = screen_text(app).splitlines()
        assert "raytui ● connected" in lines[0] and "Ray 2.60.0" in lines[0]
        assert "nodes 2 alive · 1 dead" in lines[1]
