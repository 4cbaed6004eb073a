"""Snapshots as plain JSON-able dicts (for `raytui status --json` and anything scripted).

The layout is documented in `raytui.commands.status`; bump `SCHEMA_VERSION` when a field changes
meaning or disappears (adding fields does not bump it).
"""

from __future__ import annotations

from typing import Any

from raytui.model.cluster import ClusterSnapshot, Gpu, Job, Node

SCHEMA_VERSION = 1


def gpu_to_dict(gpu: Gpu) -> dict[str, Any]:
    return {
        "index": gpu.index,
        "name": gpu.name,
        "uuid": gpu.uuid,
        "utilization_pct": gpu.utilization_pct,
        "memory_used_mib": gpu.memory_used_mib,
        "memory_total_mib": gpu.memory_total_mib,
        "temperature_c": gpu.temperature_c,
        "power_w": gpu.power_w,
        "processes": [
            {"pid": p.pid, "memory_mib": p.memory_mib, "label": p.label} for p in gpu.processes
        ],
    }


def node_to_dict(node: Node) -> dict[str, Any]:
    return {
        "node_id": node.node_id,
        "short_id": node.short_id,
        "hostname": node.hostname,
        "ip": node.ip,
        "state": node.state.value,
        "is_head": node.is_head,
        "state_message": node.state_message,
        "death_time": node.death_time,
        "cpu_percent": node.cpu_percent,
        "cpus_used": node.cpus_used,
        "cpus_total": node.cpus_total,
        "gpus_used": node.gpus_used,
        "gpus_total": node.gpus_total,
        "memory_used_bytes": node.memory_used_bytes,
        "memory_total_bytes": node.memory_total_bytes,
        "gpus": [gpu_to_dict(g) for g in node.gpus],
    }


def job_to_dict(job: Job, now: float) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "submission_id": job.submission_id,
        "status": job.status,
        "entrypoint": job.entrypoint,
        "start_time": job.start_time,
        "end_time": job.end_time,
        "duration_s": job.duration(now),
    }


def snapshot_to_dict(snapshot: ClusterSnapshot) -> dict[str, Any]:
    cpus_used, cpus_total = snapshot.cpus
    gpus_used, gpus_total = snapshot.gpus
    mem_used, mem_total = snapshot.memory
    return {
        "schema": SCHEMA_VERSION,
        "address": snapshot.address,
        "ray_version": snapshot.ray_version,
        "taken_at": snapshot.taken_at,
        "totals": {
            "nodes_alive": snapshot.nodes_alive,
            "nodes_dead": snapshot.nodes_dead,
            "cpus_used": cpus_used,
            "cpus_total": cpus_total,
            "gpus_used": gpus_used,
            "gpus_total": gpus_total,
            "gpu_devices": sum(len(n.gpus) for n in snapshot.alive_nodes),
            "memory_used_bytes": mem_used,
            "memory_total_bytes": mem_total,
        },
        "nodes": [node_to_dict(n) for n in snapshot.nodes],
        "jobs": [job_to_dict(j, snapshot.taken_at) for j in snapshot.jobs],
        "tasks": {
            "by_state": dict(snapshot.tasks.by_state),
            "actors_alive": snapshot.tasks.actors_alive,
        },
    }
