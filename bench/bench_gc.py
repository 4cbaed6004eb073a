"""What the cycle collector walks in the real app, headless, at N nodes x 8 GPUs (deterministic
counts, not timings of the loop).

Per size and view (Nodes, GPUs): the app (`RaytuiApp` at 200x60, as bench_cluster_view.py runs it)
polls a synthetic dashboard (its own process) every second; after the view has shown `--snapshots`
snapshots it reports the gc-tracked objects outside the frozen start-up heap (what every full
collection walks), the tracked objects that reference the snapshot's nodes or GPUs (per-row data
the view keeps: 0 expected), the full collections seen meanwhile and the longest one's CPU time
(`time.thread_time()` around the collection, from gc.callbacks: it holds the GIL throughout), and
the CPU time of one forced full collection at the end. The most common tracked types are listed.

    .venv/bin/python bench/bench_gc.py [--sizes 1024,4096] [--snapshots 8]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_cluster_view import SIZE, BenchApp, dashboard_process, load  # noqa: E402
from raytui.model.cluster import Gpu, Node  # noqa: E402
from raytui.sources import attach  # noqa: E402


def _row_holders() -> int:
    """Tracked objects that hold a Node or a Gpu (the views' per-row containers)."""
    return sum(
        1 for o in gc.get_objects() if any(isinstance(r, Node | Gpu) for r in gc.get_referents(o))
    )


async def measure(url: str, view: str, snapshots: int) -> dict[str, Any]:
    fulls: list[float] = []
    started: list[float] = []

    def timer(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[:] = [time.thread_time()]
        elif started and info["generation"] == 2:
            fulls.append(time.thread_time() - started[0])

    app = BenchApp(
        lambda progress: attach.connect(url, None, progress),
        refresh=1.0,
        nvml_sampler=None,
        local_hostname="bench",
    )
    async with app.run_test(size=SIZE) as pilot:
        deadline = time.monotonic() + 180
        while app.state.generation < 2:
            if time.monotonic() > deadline:
                raise TimeoutError("no snapshot within 180 s")
            await asyncio.sleep(0.05)
        if view == "gpus":
            await pilot.press("2")
        first = app.state.generation + 1
        while app.state.generation < first:  # noqa: ASYNC110 (polling the app, not an event)
            await asyncio.sleep(0.05)
        gc.callbacks.append(timer)
        while app.state.generation < first + snapshots:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        gc.callbacks.remove(timer)
        app.poller.interval = 1e9  # no more polls once the one in flight is done
        while app.poller.busy:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        gc.collect()
        t0 = time.thread_time()
        gc.collect()
        forced = time.thread_time() - t0
        objects = gc.get_objects()
        types = collections.Counter(type(o).__qualname__ for o in objects)
        out = {
            "tracked": len(objects),
            "frozen": gc.get_freeze_count(),
            "row_holders": _row_holders(),
            "fulls": len(fulls),
            "full_max": max(fulls, default=0.0),
            "forced": forced,
            "top": types.most_common(6),
        }
        del objects
        await pilot.press("q")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1024,4096")
    parser.add_argument("--snapshots", type=int, default=8, help="per view, measured")
    parser.add_argument("--one", default="", help=argparse.SUPPRESS)
    parser.add_argument("--view", default="nodes", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(asyncio.run(measure(args.one, args.view, args.snapshots))))
        return
    print(f"At the start: {load()}.\n")
    print(
        "| nodes x GPUs | view | gc-tracked objects (frozen) | tracked holders of nodes/GPUs "
        "| full collections in N snapshots | longest full, CPU ms | forced full, CPU ms "
        "| most common tracked types |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for n in (int(s) for s in args.sizes.split(",")):
        with dashboard_process(n) as (url, _mb):
            for view in ("nodes", "gpus"):
                cmd = [sys.executable, __file__, "--one", url, "--view", view]
                cmd += ["--snapshots", str(args.snapshots)]
                done = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
                r = json.loads(done.stdout.strip().splitlines()[-1])
                top = ", ".join(f"{t} {c}" for t, c in r["top"])
                print(
                    f"| {n} x 8 | {view} | {r['tracked']} ({r['frozen']}) | {r['row_holders']} "
                    f"| {r['fulls']} in {args.snapshots} | {1000 * r['full_max']:.1f} "
                    f"| {1000 * r['forced']:.1f} | {top} |",
                    flush=True,
                )
    print(f"\nAt the end: {load()}.")


if __name__ == "__main__":
    main()
