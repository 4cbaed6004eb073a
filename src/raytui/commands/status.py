"""`raytui status [--address ADDR | --via PEER] [--json]`: one cluster snapshot, printed once.

Exit codes: 0 printed; 1 cluster unreachable or auth failure (one line on stderr); 2 bad usage.
An embedded cluster started for the occasion (`--address local`, or nothing running) is stopped
before exiting.

`--json` prints one JSON document::

    {
      "schema": 1,                      # bumped when a field changes meaning or disappears
      "connection": "http://10.0.0.5:8265",   # how raytui reached the cluster
      "embedded": false,                # true when raytui started (and stopped) the cluster
      "address": "http://10.0.0.5:8265",      # dashboard URL the data came from
      "ray_version": "2.60.0",
      "taken_at": 1795314307.5,         # unix seconds
      "totals": {                       # over ALIVE nodes
        "nodes_alive": 3, "nodes_dead": 1,
        "cpus_used": 1.0, "cpus_total": 4.0,      # logical Ray resources
        "gpus_used": 1.0, "gpus_total": 3.0,      # logical Ray resources
        "gpu_devices": 3,                         # physical GPUs reported by Ray's agents
        "memory_used_bytes": 3579000000, "memory_total_bytes": 50552000000
      },
      "nodes": [{                       # head first, then alive, then dead (newest death first)
        "node_id": "bf03...", "short_id": "bf03031f", "hostname": "gpu-a", "ip": "10.0.0.5",
        "state": "ALIVE" | "DEAD", "is_head": true,
        "state_message": null | "Unexpected termination: ...",
        "death_time": null | 1795314307.598,      # unix seconds, DEAD nodes
        "cpu_percent": 21.7 | null,
        "cpus_used": 0.0, "cpus_total": 2.0, "gpus_used": 0.0, "gpus_total": 1.0,
        "memory_used_bytes": 1791639552 | null, "memory_total_bytes": 25276063744 | null,
        "gpus": [{
          "index": 0, "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-...",
          "utilization_pct": 37.0, "memory_used_mib": 12288.0, "memory_total_mib": 81559.0,
          "temperature_c": 61.0, "power_w": 215.0,   # any of these null when not reported
          "processes": [{"pid": 7506, "memory_mib": 1234.0,
                         "label": "actor Engine" | "actor Engine.busy" | "task f"
                                  | "ray worker" | "driver" | null}]   # null: not a Ray process
        }]                              # a DEAD node keeps name/uuid/total, live values null
      }],
      "jobs": [{"job_id": "01000000", "submission_id": null | "raysubmit_...",
                "status": "RUNNING", "entrypoint": "python train.py",
                "start_time": 1795312295.039, "end_time": null, "duration_s": 24.4}],
      "tasks": {
        "by_state": {"RUNNING": 3, "PENDING_NODE_ASSIGNMENT": 0, "PENDING_ARGS_AVAIL": 0,
                     "SUBMITTED_TO_WORKER": 0, "FAILED": 0},   # a state missing: not known
        "actors_alive": 1 | null
      }
    }
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, TextIO

from raytui.commands import reserved_stdout
from raytui.durations import ago, span
from raytui.model.cluster import ClusterSnapshot, Node
from raytui.model.serialize import snapshot_to_dict
from raytui.sources.attach import connect

GIB = 1024**3


def run(args: argparse.Namespace) -> int:
    with reserved_stdout() as out:
        return _run(args, out)


def _run(args: argparse.Namespace, out: TextIO) -> int:
    interactive = sys.stderr.isatty()

    def progress(message: str) -> None:
        if interactive:
            print(message, file=sys.stderr, flush=True)

    connection = connect(getattr(args, "address", None), getattr(args, "via", None), progress)
    try:
        snapshot = connection.fetch_snapshot()
        if args.json:
            doc: dict[str, Any] = {
                "connection": connection.description,
                "embedded": connection.embedded,
            }
            doc.update(snapshot_to_dict(snapshot))  # "schema" first in the output
            doc = {"schema": doc.pop("schema"), **doc}
            json.dump(doc, out, indent=2)
            out.write("\n")
        else:
            out.write(render_text(snapshot, connection.description))
        out.flush()
    finally:
        connection.close()
    return 0


def _num(value: float | None, fmt: str = "{:.0f}", none: str = "-") -> str:
    return none if value is None else fmt.format(value)


def _gib(value: int | float | None) -> str:
    return "-" if value is None else f"{value / GIB:.1f}"


def _node_line(node: Node, now: float) -> str:
    name = node.short_id + ("*" if node.is_head else " ")
    if not node.alive:
        when = f" {ago(node.death_time, now)}" if node.death_time else ""
        why = f": {node.state_message}" if node.state_message else ""
        return f"{name}  {node.hostname[:16]:<16} {node.ip:<15} DEAD{when}{why}"
    mem = f"{_gib(node.memory_used_bytes)}/{_gib(node.memory_total_bytes)} GiB"
    return (
        f"{name}  {node.hostname[:16]:<16} {node.ip:<15} ALIVE {_num(node.cpu_percent):>4}% "
        f"{mem:>16}  CPU {node.cpus_used:g}/{node.cpus_total:g}  "
        f"GPU {node.gpus_used:g}/{node.gpus_total:g}"
    )


def render_text(snapshot: ClusterSnapshot, connection: str) -> str:
    """The human-readable table (stable enough to read, not to parse: use --json)."""
    now = snapshot.taken_at
    cpus_used, cpus_total = snapshot.cpus
    gpus_used, gpus_total = snapshot.gpus
    mem_used, mem_total = snapshot.memory
    lines = [
        f"Ray {snapshot.ray_version or '?'} at {connection}",
        f"nodes {snapshot.nodes_alive} alive, {snapshot.nodes_dead} dead · "
        f"CPU {cpus_used:g}/{cpus_total:g} · GPU {gpus_used:g}/{gpus_total:g} · "
        f"memory {_gib(mem_used)}/{_gib(mem_total)} GiB",
        "",
        f"{'NODE':<10} {'HOST':<16} {'IP':<15} STATE  CPU% {'MEMORY':>16}  RESOURCES",
    ]
    for node in snapshot.nodes:
        lines.append(_node_line(node, now))
        if not node.alive:
            continue
        if not node.gpus:
            lines.append("    no GPUs")
        for gpu in node.gpus:
            mem = (
                f"{_num(gpu.memory_used_mib)}/{_num(gpu.memory_total_mib)} MiB"
                if gpu.memory_total_mib is not None
                else "-"
            )
            lines.append(
                f"    GPU {gpu.index} {gpu.name[:24]:<24} util {_num(gpu.utilization_pct):>3}%  "
                f"mem {mem:<17} {_num(gpu.temperature_c):>3}°C {_num(gpu.power_w):>4} W"
            )
            for proc in gpu.processes:
                lines.append(
                    f"        pid {proc.pid:<8} {_num(proc.memory_mib):>6} MiB  {proc.label or ''}"
                )
    lines.append("")
    if snapshot.jobs:
        lines.append(f"{'JOB':<12} {'STATUS':<10} {'DURATION':>9}  ENTRYPOINT")
        for job in snapshot.jobs[:20]:
            lines.append(
                f"{job.job_id[:12]:<12} {job.status[:10]:<10} {span(job.duration(now)):>9}  "
                f"{job.entrypoint[:60]}"
            )
        if len(snapshot.jobs) > 20:
            lines.append(f"… {len(snapshot.jobs) - 20} more jobs")
    else:
        lines.append("no jobs")
    counts = " · ".join(f"{state.lower()} {n}" for state, n in snapshot.tasks.by_state)
    actors = snapshot.tasks.actors_alive
    lines.append(
        f"tasks: {counts or 'unknown'}"
        + (f" · actors alive {actors}" if actors is not None else "")
    )
    lines.append(f"taken {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(now))}")
    return "\n".join(lines) + "\n"
