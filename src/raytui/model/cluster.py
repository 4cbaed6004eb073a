"""The cluster as raytui sees it at one instant: nodes, their GPUs, jobs and task counts.

Snapshots are immutable so a poller thread can hand one to the UI without locks.

Nodes, GPUs and GPU processes (~10 objects per node, 300k at 4,096 x 8 with processes) are
msgspec Structs with `gc=False`: the cycle collector never tracks them, so its collections do
not walk snapshots, whatever the cluster's size, and nothing has to be frozen out of its way.
They hold only strings, numbers, an enum and tuples of each other, so they cannot be part of a
reference cycle (what `gc=False` requires); the tuples are untracked by the first collection
that sees them. Change them with `msgspec.structs.replace`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

import msgspec

MIB = 1024 * 1024


def percent(used: float | None, total: float | None) -> float | None:
    """used/total in %, or None when either is unknown (or the total is 0)."""
    if used is None or not total:
        return None
    return 100.0 * used / total


class NodeState(StrEnum):
    ALIVE = "ALIVE"
    DEAD = "DEAD"


class GpuProcess(msgspec.Struct, frozen=True, gc=False):
    """A process holding memory on a GPU, labelled when it is one of Ray's workers."""

    pid: int
    memory_mib: float | None
    label: str | None = None  # "actor VLLMEngine", "task generate", "ray worker", "driver"


class Gpu(msgspec.Struct, frozen=True, gc=False):
    index: int
    name: str
    uuid: str
    utilization_pct: float | None
    memory_used_mib: float | None
    memory_total_mib: float | None
    temperature_c: float | None = None
    power_w: float | None = None
    processes: tuple[GpuProcess, ...] = ()

    @property
    def memory_pct(self) -> float | None:
        return percent(self.memory_used_mib, self.memory_total_mib)


class Node(msgspec.Struct, frozen=True, gc=False):
    node_id: str
    hostname: str
    ip: str
    state: NodeState
    is_head: bool
    cpu_percent: float | None = None
    cpus_total: float = 0.0  # logical CPU resource
    cpus_used: float = 0.0
    gpus_total: float = 0.0  # logical GPU resource
    gpus_used: float = 0.0
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    gpus: tuple[Gpu, ...] = ()
    death_time: float | None = None  # unix seconds, when known
    state_message: str | None = None

    @property
    def short_id(self) -> str:
        return self.node_id[:8]

    @property
    def alive(self) -> bool:
        return self.state is NodeState.ALIVE


@dataclass(frozen=True, slots=True)
class Job:
    job_id: str
    submission_id: str | None
    status: str
    entrypoint: str
    start_time: float | None  # unix seconds
    end_time: float | None = None
    # This console's own Ray driver (the process showing the snapshot, attached to run prompts
    # and the NVML probe): listed as the console, never counted as someone's running job.
    console: bool = False

    def duration(self, now: float) -> float | None:
        if self.start_time is None:
            return None
        return (self.end_time or now) - self.start_time


@dataclass(frozen=True, slots=True)
class TaskCounts:
    """Counts gathered with server-side filtered queries only (see sources/dashboard_client.py)."""

    by_state: tuple[tuple[str, int], ...] = ()
    actors_alive: int | None = None

    def get(self, state: str) -> int:
        return dict(self.by_state).get(state, 0)


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    address: str  # dashboard URL the data came from
    ray_version: str
    nodes: tuple[Node, ...]
    jobs: tuple[Job, ...] = ()
    tasks: TaskCounts = field(default_factory=TaskCounts)
    taken_at: float = field(default_factory=time.time)

    @property
    def jobs_running(self) -> int:
        """Running jobs, not counting this console's own driver."""
        return sum(1 for j in self.jobs if j.status == "RUNNING" and not j.console)

    @property
    def alive_nodes(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.alive)

    @property
    def nodes_alive(self) -> int:
        return sum(1 for n in self.nodes if n.alive)

    @property
    def nodes_dead(self) -> int:
        return len(self.nodes) - self.nodes_alive

    @property
    def cpus(self) -> tuple[float, float]:
        """Logical CPUs (used, total) over alive nodes."""
        alive = self.alive_nodes
        return sum(n.cpus_used for n in alive), sum(n.cpus_total for n in alive)

    @property
    def gpus(self) -> tuple[float, float]:
        """Logical GPUs (used, total) over alive nodes."""
        alive = self.alive_nodes
        return sum(n.gpus_used for n in alive), sum(n.gpus_total for n in alive)

    @property
    def memory(self) -> tuple[int, int]:
        """Host memory bytes (used, total) over alive nodes."""
        alive = self.alive_nodes
        return (
            sum(n.memory_used_bytes or 0 for n in alive),
            sum(n.memory_total_bytes or 0 for n in alive),
        )

    def node(self, node_id: str) -> Node | None:
        for n in self.nodes:
            if n.node_id == node_id or n.node_id.startswith(node_id):
                return n
        return None
