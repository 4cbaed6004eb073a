"""Benchmark: the real app, headless, on synthetic clusters of 1,024 and 4,096 nodes x 8 GPUs.

For each size a stand-in dashboard (bench/synthetic_dashboard.py, real HTTP, pre-rendered frames)
runs in its own process, so serving 20-83 MB a second does not count against the app. The app is
`RaytuiApp` at 200x60, connected through the real connector (`attach.connect(url)`), polling
every second (`--refresh 1`). Each run is a fresh process measuring the Nodes view, then the GPUs
view, then (new path only) the GPUs view with polling stopped; each size runs several times and
the report gives the worst and the median run. Per view and run:

- fetch: `fetch_snapshot()` in the poll worker (HTTP + decode + building the snapshot);
- apply: the `SnapshotReady` handler on the event loop (state, history, the visible view);
- GC pause: each cycle collection, in any thread, from gc.callbacks' start to stop (it holds
  the GIL throughout), the longest per run, and how many were full (generation 2);
- stall: how late an asyncio task sleeping 5 ms in the app's loop wakes up (max and p99) —
  everything that blocks the loop counts: apply, Textual's layout/compositing/repaint, and the
  GIL held by the worker thread;
- RSS of the process (app only; the server is elsewhere), the highest sample seen.

Baseline, same run: the dashboard client as of BASELINE_COMMIT (read with `git show`), with the
summary decoded in one `json.loads` call — the path before the schema-driven decoder. Both paths
must give the same snapshot (checked first, at each size). Then launch-to-first-populated-frame:
`raytui --address URL` in tmux against an 8-node dashboard, polling the screen until a node
hostname appears, for this tree and for BASELINE_COMMIT's tree (`git archive`), alternating.

    .venv/bin/python bench/bench_cluster_view.py [--runs 3] [--seconds 6] [--sizes 1024,4096]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from io import BytesIO
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import raytui.tui.app as app_module  # noqa: E402
from raytui.model.cluster import ClusterSnapshot  # noqa: E402
from raytui.sources import attach  # noqa: E402
from raytui.sources.connection import ClusterConnection, ProgressFn  # noqa: E402
from raytui.sources.dashboard_client import DashboardClient  # noqa: E402
from raytui.tui.app import RaytuiApp  # noqa: E402
from raytui.tui.messages import SnapshotReady  # noqa: E402

SIZE = (200, 60)
TICK = 0.005
BASELINE_COMMIT = "4154bed8cddced67f9c47e28cbafbf969d14646d"
"""main before this change: one json.loads of the summary was its previous baseline too."""

PATHS = ("new", "baseline")


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


# -- today's path, from git ----------------------------------------------------------------------


def _git_show(path: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{BASELINE_COMMIT}:{path}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def baseline_dashboard() -> types.ModuleType:
    """`raytui.sources.dashboard` as of BASELINE_COMMIT, decoding the summary with json.loads."""
    spec = importlib.util.spec_from_loader("raytui_baseline_dashboard", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    exec(
        compile(_git_show("src/raytui/sources/dashboard.py"), "baseline_dashboard", "exec"),
        module.__dict__,
    )
    module._loads_summary = json.loads
    return module


def baseline_client(url: str) -> Any:
    return baseline_dashboard().DashboardClient(url)


def check_same_snapshot(url: str) -> None:
    """The new decoder and today's path give the same snapshot of this dashboard."""
    from synthetic_dashboard import FRAMES

    with DashboardClient(url) as new, baseline_client(url) as old:
        a = new.fetch_snapshot()
        for _ in range(FRAMES - 1):  # the summary's frames rotate per request: back to a's
            new.get_json("/nodes", {"view": "summary"}, decode=len)
        b = old.fetch_snapshot()
    if replace(a, taken_at=0.0) != replace(b, taken_at=0.0):
        raise AssertionError(f"the new decoder and the baseline disagree on {url}")


# -- the app, instrumented -----------------------------------------------------------------------


@dataclass
class Window:
    """What one measurement window saw."""

    fetch: list[float] = field(default_factory=list)
    apply: list[float] = field(default_factory=list)
    stalls: list[float] = field(default_factory=list)
    rss: int = 0
    snapshots: int = 0
    cyclic_garbage: int = 0
    full_collection: float = 0.0
    gc_pauses: list[tuple[int, float]] = field(default_factory=list)  # (generation, seconds)

    def summary(self) -> dict[str, Any]:
        s = sorted(self.stalls) or [0.0]
        return {
            "fetch": self.fetch,
            "apply": self.apply,
            "max_stall": s[-1],
            "p99_stall": s[min(len(s) - 1, int(0.99 * len(s)))],
            "rss": self.rss,
            "snapshots": self.snapshots,
            "cyclic_garbage": self.cyclic_garbage,
            "full_collection": self.full_collection,
            "gc_max": max((d for _, d in self.gc_pauses), default=0.0),
            "gc_full": sum(1 for g, _ in self.gc_pauses if g == 2),
        }


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


async def run_app(url: str, seconds: float, path: str) -> dict[str, Window]:
    """Nodes view, GPUs view, and (new path) the GPUs view with polling stopped."""
    fetches: list[float] = []
    holder: list[BenchApp] = []

    def record(dt: float) -> None:
        if holder:
            holder[0].window.fetch.append(dt)
        fetches.append(dt)

    def connector(progress: ProgressFn) -> ClusterConnection:
        conn = attach.connect(url, None, progress)
        if path == "baseline":
            conn._client.close()  # the bench swaps in today's client
            conn._client = baseline_client(url)
        return TimedConnection(conn, record)  # type: ignore[return-value]

    app = BenchApp(connector, refresh=1.0, nvml_sampler=None, local_hostname="bench")
    holder.append(app)
    started: list[float] = []

    def gc_timer(phase: str, info: dict[str, int]) -> None:
        """Every cycle collection, in any thread: it holds the GIL from start to stop."""
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            app.window.gc_pauses.append((info["generation"], time.perf_counter() - started[0]))

    gc.callbacks.append(gc_timer)
    out: dict[str, Window] = {}
    async with app.run_test(size=SIZE) as pilot:
        deadline = time.monotonic() + 120
        while app.state.generation < 2:  # settled past the first frame and first history point
            if time.monotonic() > deadline:
                raise TimeoutError("no snapshot within 120 s")
            await asyncio.sleep(0.05)
        out["nodes"] = await _window(app, seconds)
        await pilot.press("2")
        await asyncio.sleep(1.5)  # past the switch and one poll: measure the steady state
        out["gpus"] = await _window(app, seconds)
        if path == "new":
            app.poller.pace.interval = 1e9  # no more polls once the one in flight is done
            while app.poller.busy:  # noqa: ASYNC110 (polling the app, not an event)
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            out["idle"] = await _window(app, min(seconds, 3.0))
        # What the run left for the cycle collector, frozen ones included, and what the poller's
        # periodic full collection (every `full_collection_every` fetches) costs at this size.
        gc.callbacks.remove(gc_timer)  # not counted in the last window
        gc.unfreeze()
        t0 = time.perf_counter()
        out["gpus"].cyclic_garbage = gc.collect()
        out["gpus"].full_collection = time.perf_counter() - t0
        await pilot.press("q")
    return out


def _in_child(url: str, seconds: float, path: str) -> dict[str, dict[str, Any]]:
    """One run in a fresh process (its own RSS and GC state)."""
    cmd = [sys.executable, __file__, "--one", url, "--path", path, "--seconds", str(seconds)]
    done = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
    result: dict[str, dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- launch to first frame -----------------------------------------------------------------------


def _baseline_tree(into: Path) -> Path:
    """BASELINE_COMMIT's `src/` unpacked under `into`."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", BASELINE_COMMIT, "src"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


_LAUNCH = "import sys; from raytui.cli import main; sys.argv[0] = 'raytui'; sys.exit(main())"


def first_frame(url: str, needle: str, reps: int) -> dict[str, list[float]]:
    """Seconds from starting `raytui --address URL` in tmux to `needle` on screen, per tree."""
    from tests.support.tmux import TmuxSession

    times: dict[str, list[float]] = {p: [] for p in PATHS}
    with tempfile.TemporaryDirectory() as home:
        trees = {"new": ROOT / "src", "baseline": _baseline_tree(Path(home) / "baseline")}
        env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL") if k in os.environ}
        env.update(HOME=home, TERM="xterm-256color", RAYTUI_HOME=str(Path(home) / "raytui"))
        for path, tree in trees.items():  # the tree each run imports is the one named
            found = subprocess.run(
                [sys.executable, "-c", "import raytui; print(raytui.__file__)"],
                env={**env, "PYTHONPATH": str(tree)},
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            assert found.startswith(str(tree)), (path, found)
        for _ in range(reps):
            for path in PATHS:
                argv = [sys.executable, "-c", _LAUNCH, "--address", url, "--refresh", "1"]
                t0 = time.perf_counter()
                term = TmuxSession(argv, {**env, "PYTHONPATH": str(trees[path])}, *SIZE)
                try:
                    while needle not in term.screen():
                        if time.perf_counter() - t0 > 30:
                            raise TimeoutError(f"no {needle!r} on screen after 30 s")
                        time.sleep(0.01)
                    times[path].append(time.perf_counter() - t0)
                    term.send("q")
                    term.wait_exit(15)
                finally:
                    term.kill()
    return times


# -- report --------------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return f"{1000 * value:.1f}"


def _med(values: list[float]) -> str:
    return _ms(statistics.median(values)) if values else "-"


def _row(label: str, view: str, runs: list[dict[str, Any]]) -> str:
    fetch = [f for r in runs for f in r["fetch"]]
    apply = [a for r in runs for a in r["apply"]]
    stalls = [r["max_stall"] for r in runs]
    p99 = [r["p99_stall"] for r in runs]
    snaps = [r["snapshots"] for r in runs]
    rss = max(r["rss"] for r in runs) / 2**20
    gc_max = [r.get("gc_max", 0.0) for r in runs]
    gc_full = max(r.get("gc_full", 0) for r in runs)
    return (
        f"| {label} | {view} | {len(runs)} | {statistics.median(snaps):.0f} | "
        f"{_med(fetch)} / {_ms(max(fetch)) if fetch else '-'} | "
        f"{_med(apply)} / {_ms(max(apply)) if apply else '-'} | "
        f"**{_ms(max(stalls))}** / {_med(stalls)} | {_ms(max(p99))} / {_med(p99)} | "
        f"{_ms(max(gc_max))} / {_med(gc_max)} ({gc_full}) | {rss:.0f} |"
    )


HEADER = (
    "| nodes x GPUs (summary) | view | runs | snapshots per run | fetch ms median / max "
    "| apply ms median / max | max stall ms: worst run / median run "
    "| p99 stall ms: worst / median run | longest GC pause ms: worst / median run (full ones) "
    "| RSS MB, worst run |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    gpu = "no GPU" if shutil.which("nvidia-smi") is None else "NVIDIA GPU present"
    mem = psutil.virtual_memory().total / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {gpu}; Python "
        f"{platform.python_version()}, {platform.system()} {platform.release()}"
    )


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


def one_size(
    n: int, runs: int, seconds: float, emit: Callable[[str], None], garbage: list[str]
) -> None:
    with dashboard_process(n) as (url, mb):
        check_same_snapshot(url)
        results: dict[str, list[dict[str, dict[str, Any]]]] = {p: [] for p in PATHS}
        for _ in range(runs):  # alternate, so a noisy minute hits both paths
            for path in PATHS:
                results[path].append(_in_child(url, seconds, path))
    label = f"{n} x 8 ({mb:.1f} MB)"
    for path in PATHS:
        name = label if path == "new" else f"{label}, baseline: one json.loads"
        for key, view in (("nodes", "Nodes"), ("gpus", "GPUs")):
            emit(_row(name, view, [r[key] for r in results[path]]))
        if path == "new":
            idle = [r["idle"] for r in results[path]]
            emit(_row(f"{label}, baseline: no polling", "GPUs", idle))
    for path in PATHS:
        garbage.append(
            f"{label}, {path}: "
            + ", ".join(
                f"{r['gpus']['cyclic_garbage']} objects, {_ms(r['gpus']['full_collection'])} ms"
                for r in results[path]
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="per view and run")
    parser.add_argument("--sizes", default="1024,4096")
    parser.add_argument("--runs", type=int, default=3, help="runs per size and path")
    parser.add_argument("--reps", type=int, default=5, help="launch-to-first-frame runs per tree")
    parser.add_argument("--no-first-frame", action="store_true", help="skip launch timing")
    parser.add_argument("--out", type=Path, default=None, help="also write the report here")
    parser.add_argument("--label", default="", help="a heading for the report")
    parser.add_argument("--one", default="", help=argparse.SUPPRESS)
    parser.add_argument("--path", choices=PATHS, default="new", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        res = asyncio.run(run_app(args.one, args.seconds, args.path))
        print(json.dumps({k: w.summary() for k, w in res.items()}))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    lines = [f"### {args.label}" if args.label else "", f"Machine: {machine()}.", ""]
    lines.append(f"At the start: {load()}.")
    lines += ["", HEADER]
    print("\n".join(lines[1:]), flush=True)

    def emit(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    started = time.monotonic()
    garbage: list[str] = []
    for n in sizes:
        one_size(n, args.runs, args.seconds, emit, garbage)
    emit("")
    emit("One full collection at the end of each run, frozen objects included (what the poller")
    emit("ran every 300 fetches before issue 12's stall work; nothing runs it now): objects it")
    emit("freed (cyclic garbage) and how long it held the GIL:")
    for line in garbage:
        emit(f"- {line}")
    if args.no_first_frame:
        emit("")
        emit(f"At the end: {load()}. Bench wall time: {time.monotonic() - started:.0f} s.")
        if args.out:
            args.out.write_text("\n".join(lines).strip() + "\n")
        return
    with dashboard_process(8) as (url, _mb):
        times = first_frame(url, "gpu-node-0000", args.reps)
    emit("")
    emit(
        f"Launch to first populated frame (`raytui --address URL`, tmux {SIZE[0]}x{SIZE[1]}, "
        f"8 x 8 dashboard, {args.reps} runs each, alternating):"
    )
    for path, label in (("new", "this tree"), ("baseline", f"baseline {BASELINE_COMMIT[:7]}")):
        t = times[path]
        emit(
            f"- {label}: median {statistics.median(t):.2f} s, min {min(t):.2f} s, "
            f"max {max(t):.2f} s."
        )
    emit("")
    emit(f"At the end: {load()}. Bench wall time: {time.monotonic() - started:.0f} s.")
    if args.out:
        args.out.write_text("\n".join(lines).strip() + "\n")


if __name__ == "__main__":
    main()
