"""Benchmark: the real app, headless, attached to synthetic clusters of 8 to 1,024 nodes x 8 GPUs.

For each size a stand-in dashboard (bench/synthetic_dashboard.py, real HTTP, pre-rendered frames)
runs in its own process, so serving 20 MB a second does not count against the app. The app is
`RaytuiApp` at 200x60, connected through the real connector (`attach.connect(url)`), polling
every second (`--refresh 1`). Measured per size and view (Nodes, then GPUs, in one app run):

- fetch: `fetch_snapshot()` in the poll worker (HTTP + JSON decode + building the snapshot);
- apply: the `SnapshotReady` handler on the event loop (state, history, the visible view);
- stall: how late an asyncio task sleeping 5 ms in the app's loop wakes up (max and p99) —
  everything that blocks the loop counts: apply, Textual's layout/compositing/repaint, and the
  GIL held by the worker thread;
- RSS of the process (app only; the server is elsewhere), the highest sample seen.

Baselines in the same run: the same app with no polling (idle: Textual's own floor at that
size), and at 1,024 nodes the summary decoded in one `json.loads` call (what the incremental
decode replaced). Then launch-to-first-populated-frame: the installed `raytui --address URL` in
tmux against the 8-node dashboard, polling the screen until a node hostname appears (median of 5).

    .venv/bin/python bench/bench_cluster_view.py [--seconds 6] [--sizes 8,64,256,1024] [--out F]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import raytui.tui.app as app_module  # noqa: E402
from raytui.model.cluster import ClusterSnapshot  # noqa: E402
from raytui.sources import attach, dashboard  # noqa: E402
from raytui.sources.connection import ClusterConnection, ProgressFn  # noqa: E402
from raytui.tui.app import RaytuiApp  # noqa: E402
from raytui.tui.messages import SnapshotReady  # noqa: E402

SIZE = (200, 60)
TICK = 0.005


# -- the dashboard, in its own process -----------------------------------------------------------


@contextmanager
def dashboard_process(nodes: int) -> Iterator[tuple[str, float]]:
    """(url, summary MB) of a synthetic dashboard running in a child process."""
    cmd = [sys.executable, str(ROOT / "bench" / "synthetic_dashboard.py"), "--nodes", str(nodes)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if not line:
            raise RuntimeError("the synthetic dashboard did not start")
        yield line[0], float(line[2])
    finally:
        proc.terminate()
        proc.wait(10)


# -- the app, instrumented -----------------------------------------------------------------------


@dataclass
class Window:
    """What one measurement window saw."""

    fetch: list[float] = field(default_factory=list)
    apply: list[float] = field(default_factory=list)
    stalls: list[float] = field(default_factory=list)
    rss: int = 0
    snapshots: int = 0


class TimedConnection:
    """Wraps the real connection; times `fetch_snapshot` in the worker thread."""

    def __init__(self, inner: ClusterConnection, record: Callable[[float], None]) -> None:
        self._inner = inner
        self._record = record

    def fetch_snapshot(self) -> ClusterSnapshot:
        t0 = time.perf_counter()
        snap = self._inner.fetch_snapshot()
        self._record(time.perf_counter() - t0)
        return snap

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class BenchApp(RaytuiApp):
    """The real app; the subclass only times the SnapshotReady handler."""

    CSS_PATH = str(Path(app_module.__file__).parent / "raytui.tcss")

    def __init__(self, connector: Any, **kw: Any) -> None:
        super().__init__(connector, **kw)
        self.window = Window()

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        t0 = time.perf_counter()
        super().on_snapshot_ready(message)
        self.window.apply.append(time.perf_counter() - t0)
        self.window.snapshots += 1
        message.prevent_default()  # the base handler already ran (above)


async def _watch(app: BenchApp, stop: asyncio.Event) -> None:
    """Lateness of a 5 ms sleep in the app's loop; RSS every ~0.25 s."""
    me = psutil.Process()
    n = 0
    while not stop.is_set():
        t0 = time.perf_counter()
        await asyncio.sleep(TICK)
        app.window.stalls.append(max(0.0, time.perf_counter() - t0 - TICK))
        n += 1
        if n % 50 == 0:
            app.window.rss = max(app.window.rss, me.memory_info().rss)


async def _window(app: BenchApp, seconds: float) -> Window:
    app.window = Window(rss=psutil.Process().memory_info().rss)
    stop = asyncio.Event()
    task = asyncio.create_task(_watch(app, stop))
    await asyncio.sleep(seconds)
    stop.set()
    await task
    return app.window


async def run_size(url: str, seconds: float, *, idle: bool = True) -> dict[str, Window]:
    """Nodes view, GPUs view, and (idle) the GPUs view with polling stopped."""
    fetches: list[float] = []
    holder: list[BenchApp] = []

    def record(dt: float) -> None:
        if holder:
            holder[0].window.fetch.append(dt)
        fetches.append(dt)

    def connector(progress: ProgressFn) -> ClusterConnection:
        conn = attach.connect(url, None, progress)
        return TimedConnection(conn, record)  # type: ignore[return-value]

    app = BenchApp(connector, refresh=1.0, nvml_sampler=None, local_hostname="bench")
    holder.append(app)
    out: dict[str, Window] = {}
    async with app.run_test(size=SIZE) as pilot:
        deadline = time.monotonic() + 60
        while app.state.generation < 2:  # settled past the first frame and first history point
            if time.monotonic() > deadline:
                raise TimeoutError("no snapshot within 60 s")
            await asyncio.sleep(0.05)
        out["nodes"] = await _window(app, seconds)
        await pilot.press("2")
        await asyncio.sleep(1.5)  # past the switch and one poll: measure the steady state
        out["gpus"] = await _window(app, seconds)
        if idle:
            app.poller.refresh = 1e9  # no more polls once the one in flight is done
            while app.poller.busy:  # noqa: ASYNC110 (polling the app, not an event)
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            out["idle"] = await _window(app, min(seconds, 3.0))
        await pilot.press("q")
    return out


@contextmanager
def whole_json_summary() -> Iterator[None]:
    """Baseline: decode the node summary in one `json.loads` call, as before."""
    saved = dashboard._loads_summary  # type: ignore[attr-defined]
    dashboard._loads_summary = json.loads  # type: ignore[attr-defined]
    try:
        yield
    finally:
        dashboard._loads_summary = saved  # type: ignore[attr-defined]


# -- launch to first frame -----------------------------------------------------------------------


def first_frame(url: str, needle: str, reps: int) -> list[float]:
    """Seconds from starting the installed `raytui --address URL` in tmux to `needle` on screen."""
    from tests.support.tmux import TmuxSession

    exe = ROOT / ".venv" / "bin" / "raytui"
    times: list[float] = []
    with tempfile.TemporaryDirectory() as home:
        env = {
            k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "PYTHONPATH") if k in os.environ
        }
        env.update(HOME=home, TERM="xterm-256color", RAYTUI_HOME=str(Path(home) / "raytui"))
        for _ in range(reps):
            t0 = time.perf_counter()
            term = TmuxSession([str(exe), "--address", url, "--refresh", "1"], env, *SIZE)
            try:
                while needle not in term.screen():
                    if time.perf_counter() - t0 > 30:
                        raise TimeoutError(f"no {needle!r} on screen after 30 s")
                    time.sleep(0.01)
                times.append(time.perf_counter() - t0)
                term.send("q")
                term.wait_exit(15)
            finally:
                term.kill()
    return times


# -- report --------------------------------------------------------------------------------------


def _ms(values: list[float], q: float | None = None) -> str:
    if not values:
        return "-"
    if q is None:
        return f"{1000 * statistics.median(values):.1f}"
    s = sorted(values)
    return f"{1000 * s[min(len(s) - 1, int(q * len(s)))]:.1f}"


def _row(label: str, view: str, w: Window) -> str:
    return (
        f"| {label} | {view} | {w.snapshots} | {_ms(w.fetch)} / {_ms(w.fetch, 1.0)} | "
        f"{_ms(w.apply)} / {_ms(w.apply, 1.0)} | {_ms(w.stalls, 1.0)} | {_ms(w.stalls, 0.99)} | "
        f"{w.rss / 2**20:.0f} |"
    )


HEADER = (
    "| nodes x GPUs (summary) | view | snapshots | fetch ms median / max | apply ms median / max "
    "| max stall ms | p99 stall ms | RSS MB |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|"
)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    gpu = "no GPU" if shutil.which("nvidia-smi") is None else "NVIDIA GPU present"
    mem = psutil.virtual_memory().total / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {gpu}; Python "
        f"{platform.python_version()}, {platform.system()} {platform.release()}"
    )


def one_size(n: int, seconds: float, baseline_json: bool) -> list[str]:
    """The table rows of one size (run in a fresh process: RSS and GC state are its own)."""
    rows = []
    with dashboard_process(n) as (url, mb):
        label = f"{n} x 8 ({mb:.1f} MB)"
        res = asyncio.run(run_size(url, seconds))
        rows.append(_row(label, "Nodes", res["nodes"]))
        rows.append(_row(label, "GPUs", res["gpus"]))
        rows.append(_row(label + ", baseline: no polling", "GPUs", res["idle"]))
    if baseline_json:
        with dashboard_process(n) as (url, mb), whole_json_summary():
            base = asyncio.run(run_size(url, seconds, idle=False))
        label = f"{n} x 8 ({mb:.1f} MB), baseline: one json.loads"
        rows.append(_row(label, "Nodes", base["nodes"]))
        rows.append(_row(label, "GPUs", base["gpus"]))
    return rows


def _in_child(n: int, seconds: float, baseline_json: bool) -> list[str]:
    cmd = [sys.executable, __file__, "--one", str(n), "--seconds", str(seconds)]
    if baseline_json:
        cmd.append("--baseline-json")
    done = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
    rows: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="per view and size")
    parser.add_argument("--sizes", default="8,64,256,1024")
    parser.add_argument("--reps", type=int, default=5, help="launch-to-first-frame runs")
    parser.add_argument("--out", type=Path, default=None, help="also write the report here")
    parser.add_argument("--label", default="", help="a heading for the report")
    parser.add_argument("--one", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--baseline-json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_size(args.one, args.seconds, args.baseline_json)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    lines = [f"### {args.label}" if args.label else "", f"Machine: {machine()}.", "", HEADER]
    print("\n".join(lines[1:]), flush=True)

    def emit(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    started = time.monotonic()
    for n in sizes:
        for row in _in_child(n, args.seconds, n == max(sizes)):
            emit(row)
    with dashboard_process(8) as (url, _mb):
        times = first_frame(url, "gpu-node-0000", args.reps)
    emit("")
    emit(
        f"Launch to first populated frame (installed `raytui --address URL`, tmux {SIZE[0]}x"
        f"{SIZE[1]}, 8 x 8 dashboard, {len(times)} runs): median "
        f"{statistics.median(times):.2f} s, min {min(times):.2f} s, max {max(times):.2f} s."
    )
    emit(f"Bench wall time: {time.monotonic() - started:.0f} s.")
    if args.out:
        args.out.write_text("\n".join(lines).strip() + "\n")


if __name__ == "__main__":
    main()
