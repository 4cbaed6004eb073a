"""Benchmark, part 1 (no Ray): the log viewer opening a big log and following a fast one.

- open: 100,000 lines handed to `LogView.append` in one chunk (a fetched log file) from a
  thread, as `LogScreen` feeds it (its feed runs in a thread worker, so decoding happens there,
  not in the UI thread). Measured: until the first screen with lines is drawn ("first"; target
  <= 300 ms) and until all 100,000 are in the ring and drawn ("all").
- follow: a thread writes 5,000 lines/s (50 lines every 10 ms) for `--seconds` (default 30) into
  a `LogView` with the default ring (50,000 lines) while the view follows. Measured: how late an
  asyncio task sleeping 5 ms in the app's loop wakes up (max and p99; as bench_cluster_view.py
  does: everything that blocks the loop counts), RSS (highest sample), and that no line was
  lost (every line written is in the ring or counted as dropped, the last one is the last line).
  Target: max stall <= 50 ms. On a shared machine the longest stalls are often the process
  waiting for a CPU, not running: so the UI thread's own CPU time within each 5 ms tick is
  reported beside it ("ui cpu", `time.thread_time`): what the view's work costs the loop.

Baseline in the same run: Textual's own `Log` widget fed the same lines (`write_lines`, with
`max_lines` = the ring size, through `call_from_thread`), with no sanitizing, colour or search.
Both apps `gc.freeze()` their start-up heap after the first refresh, as raytui's app does
(and unfreeze and collect after each run, so one run's leftovers do not stay frozen into the
next). "gc max" is the longest garbage collection seen during the run, in any thread: it holds
the GIL, so it stalls the UI wherever it runs.
To compare with an older LogView, run only `--kinds logview` with `PYTHONPATH=<old checkout>/src`.
Figures are the worst of `--runs` runs. The machine's load (`os.getloadavg`) is printed beside
them: on a shared machine, rerun on a quiet one before believing a figure.

    .venv/bin/python bench/bench_logs.py [--seconds 30] [--runs 3]

Results and method: bench/RESULTS-logs.md.

Part 2 (a real local Ray): the Tasks view's summary at `--tasks` (default 100,000) tiny finished
tasks, `WorkloadClient.task_summary()` (one `/api/v0/tasks/summarize` call: the dashboard counts,
no task list comes to raytui) timed beside `ray summary tasks` (the CLI, a process of its own)
and Ray's `summarize_tasks()` in this process, in the same run. Ray's summary counts at most
10,000 tasks (`RAY_MAX_LIMIT_FROM_API_SERVER`); the "counted" column says how many it saw.

    .venv/bin/python bench/bench_logs.py --part 2 [--tasks 100000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import psutil
from textual.app import App, ComposeResult
from textual.widgets import Log

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from raytui.tui.widgets.log_view import LogView  # noqa: E402

SIZE = (200, 60)
TICK = 0.005
RATE = 5_000
BATCH = 50


def line(i: int) -> str:
    colour = "\x1b[32mINFO\x1b[0m" if i % 10 else "\x1b[31mERROR\x1b[0m"
    return f"2026-01-01 12:00:00,{i % 1000:03d} {colour} worker.py:42 -- step {i} loss=0.{i % 97}\n"


class Bench(App[None]):
    def __init__(self, kind: str, max_lines: int) -> None:
        super().__init__()
        self.kind = kind
        self.max_lines = max_lines

    def on_mount(self) -> None:
        self.call_after_refresh(gc.freeze)  # as raytui's app does with its start-up heap

    def compose(self) -> ComposeResult:
        if self.kind == "logview":
            yield LogView("bench", max_lines=self.max_lines)
        else:
            yield Log(max_lines=self.max_lines)

    def feed(self, text: str) -> None:
        """From any thread."""
        if self.kind == "logview":
            self.query_one(LogView).append(text)
        else:
            log = self.query_one(Log)
            lines = text.splitlines()
            if threading.current_thread() is threading.main_thread():
                log.write_lines(lines)
            else:
                self.call_from_thread(log.write_lines, lines)

    def count(self) -> int:
        if self.kind == "logview":
            view = self.query_one(LogView)
            return view.ring.end
        return self.query_one(Log).line_count


async def open_big(kind: str) -> tuple[float, float]:
    """(first screen, all lines) in seconds: until the first frame drawn with lines in it, and
    until the first frame drawn with all 100,000 in. The chunk is fed from a thread, as
    LogScreen does. Frames are timed by wrapping the screen's compositor refresh (a private
    Textual method; `pilot.pause()` cannot time a frame: it waits for the process to go idle,
    which it never is while a thread decodes)."""
    app = Bench(kind, 100_000)
    text = "".join(line(i) for i in range(100_000))
    frames: list[tuple[float, int]] = []
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        refresh = screen._compositor_refresh

        def timed() -> None:
            refresh()
            frames.append((time.perf_counter(), app.count()))

        screen._compositor_refresh = timed  # type: ignore[method-assign]
        t0 = time.perf_counter()
        feeder = threading.Thread(target=app.feed, args=(text,), daemon=True)
        feeder.start()
        deadline = time.monotonic() + 60
        while not (frames and frames[-1][1] >= 100_000) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        feeder.join()
        after_run()
        first = next((t for t, n in frames if n > 0), float("nan"))
        full = next((t for t, n in frames if n >= 100_000), float("nan"))
        return first - t0, full - t0


async def follow(kind: str, seconds: float) -> dict[str, float]:
    app = Bench(kind, 50_000)
    me = psutil.Process()
    stalls: list[float] = []
    cpu: list[float] = []  # the UI thread's CPU time per tick
    rss = me.memory_info().rss
    written = 0
    done = threading.Event()

    def producer() -> None:
        nonlocal written
        start = time.perf_counter()
        while written < RATE * seconds:
            app.feed("".join(line(written + k) for k in range(BATCH)))
            written += BATCH
            delay = start + written / RATE - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        done.set()

    gc_timer = GcTimer()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        gc_timer.start()
        thread = threading.Thread(target=producer, daemon=True)
        thread.start()
        n = 0
        while not done.is_set():
            t0, c0 = time.perf_counter(), time.thread_time()
            await asyncio.sleep(TICK)
            stalls.append(max(0.0, time.perf_counter() - t0 - TICK))
            cpu.append(time.thread_time() - c0)
            n += 1
            if n % 50 == 0:
                rss = max(rss, me.memory_info().rss)
        gc_timer.stop()
        lost, last_ok = -1, True  # not checked for the baseline (its count stops at max_lines)
        if kind == "logview":
            deadline = time.monotonic() + 10
            while app.count() < written and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            view = app.query_one(LogView)
            last_ok = view.ring.line(view.ring.end - 1).plain.endswith(
                f"step {written - 1} loss=0.{(written - 1) % 97}"
            )
            lost = written - (len(view.ring) + view.ring.dropped)
        stalls.sort()
        cpu.sort()
        after_run()
        return {
            "max_ms": stalls[-1] * 1000,
            "p99_ms": stalls[int(len(stalls) * 0.99)] * 1000,
            "median_ms": statistics.median(stalls) * 1000,
            "cpu_max_ms": cpu[-1] * 1000,
            "cpu_p99_ms": cpu[int(len(cpu) * 0.99)] * 1000,
            "rss_mb": rss / 2**20,
            "lost": float(lost),
            "last_ok": float(last_ok),
            "gc_ms": gc_timer.longest,
        }


class GcTimer:
    """The longest garbage collection (ms) between `start` and `stop`, via `gc.callbacks`."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.longest = max(self.longest, (time.perf_counter() - self._t0) * 1000)

    def start(self) -> None:
        gc.callbacks.append(self)

    def stop(self) -> None:
        gc.callbacks.remove(self)


def after_run() -> None:
    gc.unfreeze()
    gc.collect()


def task_summary(tasks: int, runs: int) -> None:
    """Part 2: start a local Ray (auth off, this process the driver), run `tasks` tiny tasks,
    then time raytui's summary beside Ray's, each `runs` times."""
    import shutil
    import subprocess

    os.environ["RAY_AUTH_MODE"] = "disabled"  # read when ray is first imported
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray
    from ray.util.state import summarize_tasks

    from raytui.sources.workload import WorkloadClient

    ctx = ray.init(
        address="local", include_dashboard=True, log_to_driver=False, dashboard_host="127.0.0.1"
    )
    try:
        url = f"http://{ctx.dashboard_url}"

        @ray.remote(max_retries=0)
        def bench_tiny(i: int) -> int:
            return i

        started = time.perf_counter()
        for lo in range(0, tasks, 10_000):
            ray.get([bench_tiny.remote(i) for i in range(lo, min(tasks, lo + 10_000))])
        print(f"ran {tasks:,} tiny tasks in {time.perf_counter() - started:.1f} s")
        client = WorkloadClient(url, None, timeout=120)
        # Task events reach the GCS in batches: wait until the summary stops growing.
        last, deadline = -1, time.monotonic() + 120
        while time.monotonic() < deadline:
            s = client.task_summary()
            if s.matched == last and s.matched >= min(tasks, 10_000):
                break
            last = s.matched
            time.sleep(2)
        cli = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
        for _ in range(runs):
            t0 = time.perf_counter()
            s = client.task_summary()
            ours = time.perf_counter() - t0
            t0 = time.perf_counter()
            raw = summarize_tasks(address=url, timeout=120, raise_on_missing_output=False)
            sdk = time.perf_counter() - t0
            t0 = time.perf_counter()
            proc = subprocess.run(
                [cli, "summary", "tasks", "--address", url, "--timeout", "120"],
                capture_output=True,
                text=True,
                check=False,
            )
            cli_s = time.perf_counter() - t0
            group = s.group("bench_tiny")
            sdk_n = sum(
                g.get("state_counts", {}).get("FINISHED", 0)
                for g in (raw.get("cluster", {}) or {}).get("summary", {}).values()
            )
            print(
                f"summary of {tasks:,} tasks  raytui {ours * 1000:7.1f} ms "
                f"(counted {s.counted:,} of {s.source_total:,}; bench_tiny finished "
                f"{group.count('FINISHED') if group else 0:,})  "
                f"ray SDK {sdk * 1000:7.1f} ms (finished {sdk_n:,})  "
                f"`ray summary tasks` {cli_s * 1000:7.1f} ms (exit {proc.returncode})  "
                f"load {os.getloadavg()[0]:.2f}"
            )
        client.close()
    finally:
        ray.shutdown()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--part", choices=("1", "2", "all"), default="all")
    p.add_argument("--tasks", type=int, default=100_000, help="part 2: tiny tasks to summarise")
    p.add_argument("--kinds", default="logview,textual-log", help="part 1: views to measure")
    args = p.parse_args(argv)
    print(f"load before: {os.getloadavg()}  cpus: {os.cpu_count()}")
    if args.part in ("2", "all"):
        task_summary(args.tasks, args.runs)
    if args.part == "2":
        return 0
    kinds = args.kinds.split(",")
    for kind in kinds:
        opens = [asyncio.run(open_big(kind)) for _ in range(args.runs)]
        print(
            f"open 100,000 lines  {kind:12s} first screen worst "
            f"{max(o[0] for o in opens) * 1000:7.1f} ms  all lines worst "
            f"{max(o[1] for o in opens) * 1000:7.1f} ms  "
            f"runs {[(round(a * 1000), round(b * 1000)) for a, b in opens]}  "
            f"load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
    for kind in kinds:
        runs = [asyncio.run(follow(kind, args.seconds)) for _ in range(args.runs)]
        worst = {k: max(r[k] for r in runs) for k in runs[0]}
        worst["last_ok"] = min(r["last_ok"] for r in runs)
        print(
            f"follow {RATE}/s {args.seconds:g}s {kind:12s} stall max {worst['max_ms']:6.1f} ms  "
            f"p99 {worst['p99_ms']:5.1f}  median {worst['median_ms']:4.1f}  "
            f"ui cpu max {worst['cpu_max_ms']:5.1f} p99 {worst['cpu_p99_ms']:4.1f} ms  "
            f"RSS {worst['rss_mb']:6.1f} MB  lost {int(worst['lost'])}  "
            f"gc max {worst['gc_ms']:5.1f} ms  "
            f"runs' max stall {[round(r['max_ms']) for r in runs]}  "
            f"last line ok {bool(worst['last_ok'])}  load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
