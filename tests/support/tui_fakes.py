"""Fakes for TUI tests: hand-built cluster snapshots and a FAKE connection that replays them.

Everything here is deterministic: a frozen clock, fixed IDs and numbers, no Ray.
"""

from __future__ import annotations

import html
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from msgspec.structs import replace  # nodes and GPUs are msgspec Structs
from rich.cells import cell_len

from raytui.errors import ClusterUnreachable, RaytuiError
from raytui.model.cluster import (
    ClusterSnapshot,
    Gpu,
    GpuProcess,
    Job,
    Node,
    NodeState,
    TaskCounts,
)
from raytui.model.nvml import GpuDetail, NvmlReport
from raytui.sources.connection import ProgressFn
from raytui.sources.workbench import Workbench
from tests.support.waiting import until

if TYPE_CHECKING:
    from textual.pilot import Pilot

    from raytui.tui.app import RaytuiApp

NOW = 1_795_312_318.0  # frozen wall clock for every TUI test
GIB = 1024**3

HEAD_ID = "a1b2c3d4e5f60718293a4b5c6d7e8f9001122334455667788990aabb"
GPU2_ID = "b2c3d4e5f60718293a4b5c6d7e8f9001122334455667788990aabbcc"
CPU_ID = "c3d4e5f60718293a4b5c6d7e8f9001122334455667788990aabbccdd"


def frozen_clock() -> float:
    return NOW


def head_node(**changes: object) -> Node:
    node = Node(
        node_id=HEAD_ID,
        hostname="gpu-head",
        ip="10.0.0.5",
        state=NodeState.ALIVE,
        is_head=True,
        cpu_percent=23.0,
        cpus_total=16,
        cpus_used=4,
        gpus_total=1,
        gpus_used=1,
        memory_used_bytes=48 * GIB,
        memory_total_bytes=128 * GIB,
        gpus=(
            Gpu(
                index=0,
                name="Fake H100 80GB",
                uuid="GPU-fake-head-0",
                utilization_pct=37.0,
                memory_used_mib=12_288.0,
                memory_total_mib=81_559.0,
                temperature_c=61.0,
                power_w=215.0,
                processes=(GpuProcess(pid=4242, memory_mib=12_000.0, label="actor VLLMEngine"),),
            ),
        ),
    )
    return replace(node, **changes)  # type: ignore[arg-type]


def gpu2_node(**changes: object) -> Node:
    node = Node(
        node_id=GPU2_ID,
        hostname="gpu-box-2",
        ip="10.0.0.6",
        state=NodeState.ALIVE,
        is_head=False,
        cpu_percent=71.0,
        cpus_total=32,
        cpus_used=30,
        gpus_total=2,
        gpus_used=2,
        memory_used_bytes=100 * GIB,
        memory_total_bytes=256 * GIB,
        gpus=(
            Gpu(
                index=0,
                name="Fake A100 40GB",
                uuid="GPU-fake-gpu2-0",
                utilization_pct=91.0,
                memory_used_mib=30_000.0,
                memory_total_mib=40_960.0,
                temperature_c=74.0,
                power_w=310.0,
                processes=(
                    GpuProcess(pid=5151, memory_mib=20_000.0, label="task generate"),
                    GpuProcess(pid=5152, memory_mib=9_000.0, label="ray worker"),
                ),
            ),
            Gpu(
                index=1,
                name="Fake A100 40GB",
                uuid="GPU-fake-gpu2-1",
                utilization_pct=3.0,
                memory_used_mib=512.0,
                memory_total_mib=40_960.0,
                temperature_c=35.0,
                power_w=52.0,
            ),
        ),
    )
    return replace(node, **changes)  # type: ignore[arg-type]


def cpu_node(**changes: object) -> Node:
    node = Node(
        node_id=CPU_ID,
        hostname="cpu-only",
        ip="10.0.0.7",
        state=NodeState.ALIVE,
        is_head=False,
        cpu_percent=5.0,
        cpus_total=8,
        cpus_used=0,
        memory_used_bytes=3 * GIB,
        memory_total_bytes=16 * GIB,
    )
    return replace(node, **changes)  # type: ignore[arg-type]


JOBS = (
    Job("02000000", "raysubmit_Kq2fP9", "RUNNING", "python train.py --epochs 10", NOW - 754),
    Job("01000000", "raysubmit_A7bX1c", "SUCCEEDED", "python prep.py", NOW - 4000, NOW - 3600),
    Job("03000000", None, "FAILED", "python broken.py", NOW - 300, NOW - 290),
)
TASKS = TaskCounts(
    by_state=(("RUNNING", 3), ("PENDING_NODE_ASSIGNMENT", 1), ("FINISHED", 120), ("FAILED", 2)),
    actors_alive=4,
)


def snapshot(nodes: Sequence[Node] | None = None, taken_at: float = NOW) -> ClusterSnapshot:
    return ClusterSnapshot(
        address="http://10.0.0.5:8265",
        ray_version="2.60.0",
        nodes=tuple(nodes if nodes is not None else (head_node(), gpu2_node(), cpu_node())),
        jobs=JOBS,
        tasks=TASKS,
        taken_at=taken_at,
    )


def healthy() -> ClusterSnapshot:
    return snapshot()


def with_dead_gpu2(died_ago: float = 180.0) -> ClusterSnapshot:
    dead = gpu2_node(
        state=NodeState.DEAD,
        death_time=NOW - died_ago,
        gpus=(),
        cpu_percent=None,
        state_message="raylet died (heartbeat timeout)",
    )
    return snapshot((head_node(), dead, cpu_node()), taken_at=NOW + 1)


def sparkline_series(count: int = 30) -> list[ClusterSnapshot]:
    """Snapshots whose GPU numbers move, so sparklines have a history (oldest first)."""
    out = []
    for i in range(count):
        util = float((i * 37) % 100)
        head = head_node(
            gpus=(
                replace(
                    head_node().gpus[0], utilization_pct=util, memory_used_mib=8_000.0 + i * 200
                ),
            )
        )
        out.append(snapshot((head, gpu2_node(), cpu_node()), taken_at=NOW - (count - i) * 2))
    return out


def nvml_report() -> NvmlReport:
    return NvmlReport(
        devices=(
            GpuDetail(
                index=0,
                name="Fake H100 80GB",
                uuid="GPU-fake-head-0",
                sm_clock_mhz=1410,
                sm_clock_max_mhz=1980,
                mem_clock_mhz=2619,
                mem_clock_max_mhz=2619,
                fan_pct=None,
                power_limit_w=700,
                ecc_corrected=0,
                ecc_uncorrected=0,
                pcie_gen=5,
                pcie_width=16,
                pcie_gen_max=5,
                pcie_width_max=16,
            ),
        ),
        driver_version="550.54.15",
        cuda_driver_version="12.4",
        sampled_at=NOW,
        hostname="gpu-head",
    )


class FakeConnection:
    """A FAKE ClusterConnection: `fetch_snapshot` replays `script` items in order.

    An item is a snapshot or an exception (raised). The last item repeats. Every call is counted,
    and the thread it ran on is recorded, so tests can assert nothing ran on the event loop.
    """

    def __init__(
        self,
        script: Sequence[ClusterSnapshot | BaseException],
        *,
        description: str = "fake cluster",
        probe: NvmlReport | BaseException | None = None,
    ) -> None:
        self.script = list(script)
        self._description = description
        self.fetches = 0
        self.closed = threading.Event()
        self.threads: set[str] = set()
        self.probes: list[str] = []
        self._probe = probe if probe is not None else nvml_report()
        self.fetch_gate: threading.Event | None = None  # when set, fetch waits for it
        self.fetch_cost = 0.0  # seconds each fetch takes (a big cluster, a slow link)
        self.workbench_url: str | None = None  # a real dashboard for the workbench views
        self.workbench_token: str | None = None
        self._workbench: Workbench | None = None  # made on first use, closed by close()
        self._workbench_lock = threading.Lock()

    @property
    def description(self) -> str:
        return self._description

    @property
    def dashboard_url(self) -> str:
        return "http://10.0.0.5:8265"

    def fetch_snapshot(self) -> ClusterSnapshot:
        self.threads.add(threading.current_thread().name)
        if self.fetch_gate is not None:
            self.fetch_gate.wait(10)
        if self.fetch_cost:
            time.sleep(self.fetch_cost)
        item = self.script[min(self.fetches, len(self.script) - 1)]
        self.fetches += 1
        if isinstance(item, BaseException):
            raise item
        return item

    def probe_node(self, node_id: str) -> NvmlReport:
        self.threads.add(threading.current_thread().name)
        self.probes.append(node_id)
        if isinstance(self._probe, BaseException):
            raise self._probe
        return self._probe

    def workbench(self) -> Workbench:
        """The real workbench clients of `workbench_url` (a real cluster's dashboard)."""
        if self.workbench_url is None:
            raise RaytuiError("this fake connection has no dashboard for jobs, tasks or logs")
        with self._workbench_lock:
            if self._workbench is None:
                self._workbench = Workbench.for_dashboard(self.workbench_url, self.workbench_token)
            return self._workbench

    def close(self) -> None:
        self.threads.add(threading.current_thread().name)
        with self._workbench_lock:
            wb, self._workbench = self._workbench, None
        if wb is not None:
            wb.close()
        self.closed.set()


def connector_for(
    conn: FakeConnection,
    *,
    fail_first: int = 0,
    progress: Sequence[str] = ("starting embedded Ray (this takes a few seconds)…",),
    gate: threading.Event | None = None,
) -> Callable[[ProgressFn], FakeConnection]:
    """A connector returning `conn`; the first `fail_first` calls raise ClusterUnreachable."""
    calls = {"n": 0}

    def connect(report: ProgressFn) -> FakeConnection:
        calls["n"] += 1
        for step in progress:
            report(step)
        if gate is not None:
            gate.wait(10)
        if calls["n"] <= fail_first:
            raise ClusterUnreachable("cannot reach http://10.0.0.5:8265: connection refused")
        return conn

    connect.calls = calls  # type: ignore[attr-defined]
    return connect


_SVG_TEXT = re.compile(
    r'<text class="[^"]*" x="([0-9.]+)" y="[0-9.]+" textLength="[0-9.]+" '
    r'clip-path="url\(#[^)]*-line-([0-9]+)\)">([^<]*)</text>'
)
_CELL_WIDTH = 20 * 0.61  # rich's export_svg: font size 20, aspect ratio 0.61


def screen_text(app: object) -> str:
    """What the terminal shows right now, as plain text (for assertions and debugging).

    Read from Textual's public screenshot (an SVG with one text run per style change), each run
    put back at its cell column, so no test reaches into Textual's compositor."""
    from textual.app import App

    assert isinstance(app, App)
    width, height = app.size
    lines = [""] * height
    for x, row, text in _SVG_TEXT.findall(app.export_screenshot()):
        y = int(row)
        if y >= height:
            continue
        column = round(float(x) / _CELL_WIDTH)
        pad = column - cell_len(lines[y])
        lines[y] += " " * max(pad, 0) + html.unescape(text).replace("\xa0", " ").rstrip("\n")
    return "\n".join(line.ljust(width) for line in lines) + "\n"


async def drive(
    pilot: Pilot[Any],
    app: RaytuiApp,
    history: Sequence[ClusterSnapshot] = (),
    keys: Sequence[str] = (),
    *,
    fail_next: bool = False,
    min_generation: int = 1,
    key_pause: float = 0.0,
) -> None:
    """Bring a replayed app to the state a snapshot test or screenshot shows: wait for the
    first fetches, feed `history` one snapshot at a time (through the poller's own message),
    optionally make the next poll fail, then press `keys`."""
    await until(pilot, lambda: app.state.generation >= min_generation and not app.poller.busy, 60.0)
    for snap in history:
        generation = app.state.generation
        app.feed(snap)
        await until(pilot, lambda g=generation: app.state.generation > g, 60.0)  # type: ignore[misc]
    if fail_next:
        await pilot.press("r")
        await until(pilot, lambda: app.poller.failures > 0 and not app.poller.busy, 60.0)
    for key in keys:
        await pilot.press(key)
        await pilot.pause(key_pause)
