"""GPU history memory and record time at 4,096 nodes x 8 GPUs, 15 minutes at the refresh.

Run: `.venv/bin/python bench/bench_gpu_history.py [--nodes 4096] [--refresh 2]`. Prints the
samples held, the RSS growth from filling the ring, and the median time of one `record`.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from dataclasses import replace

import psutil

from raytui.model.cluster import ClusterSnapshot, Gpu, Node, NodeState
from raytui.model.gpu_history import GpuHistory


def cluster(nodes: int, gpus: int) -> ClusterSnapshot:
    out = []
    for n in range(nodes):
        out.append(
            Node(
                node_id=f"{n:056x}",
                hostname=f"node-{n}",
                ip=f"10.{n // 65536}.{n // 256 % 256}.{n % 256}",
                state=NodeState.ALIVE,
                is_head=n == 0,
                gpus_total=gpus,
                gpus=tuple(
                    Gpu(
                        index=g,
                        name="Fake H100",
                        uuid=f"GPU-{n}-{g}",
                        utilization_pct=float((n + g) % 100),
                        memory_used_mib=1000.0 * g,
                        memory_total_mib=81_559.0,
                    )
                    for g in range(gpus)
                ),
            )
        )
    return ClusterSnapshot("http://bench:8265", "2.60.0", tuple(out), taken_at=0.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=4096)
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--refresh", type=float, default=2.0)
    args = ap.parse_args()
    snap = cluster(args.nodes, args.gpus)
    gc.collect()
    proc = psutil.Process()
    before = proc.memory_info().rss
    history = GpuHistory(refresh=args.refresh)
    times = []
    for i in range(int(history.window / args.refresh) + 10):
        s = replace(snap, taken_at=i * args.refresh)
        t = time.perf_counter()
        history.record(s)
        times.append(time.perf_counter() - t)
    gc.collect()
    grown = proc.memory_info().rss - before
    print(
        f"{args.nodes} nodes x {args.gpus} GPUs, refresh {args.refresh:g} s: "
        f"{history.samples} samples (15 min), RSS +{grown / 2**20:.1f} MiB, "
        f"record median {statistics.median(times) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
