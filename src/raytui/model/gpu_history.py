"""Recent GPU samples for sparklines, kept small enough for 1,024 nodes x 8 GPUs.

Each series is a fixed-size ring of 32-bit floats (`array('f')`), NaN for "not reported": about
0.5 KiB per GPU and metric at the default capacity, instead of ~4 KiB as a deque of Python floats.
No Textual here; the TUI reads `values()` when it draws.
"""

from __future__ import annotations

import math
from array import array
from collections import deque

from raytui.model.cluster import ClusterSnapshot

DEFAULT_CAPACITY = 120  # 4 minutes at the default 2 s refresh


class Ring:
    """A fixed-capacity ring of floats; the oldest sample falls out when full."""

    __slots__ = ("_buf", "_capacity", "_count", "_next")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._buf = array("f", bytes(4 * capacity))
        self._next = 0
        self._count = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    def __len__(self) -> int:
        return self._count

    def append(self, value: float | None) -> None:
        self._buf[self._next] = math.nan if value is None else value
        self._next = (self._next + 1) % self._capacity
        if self._count < self._capacity:
            self._count += 1

    def values(self, last: int | None = None) -> list[float | None]:
        """Oldest first; at most `last` of the newest samples; None where nothing was reported."""
        n = self._count if last is None else max(0, min(last, self._count))
        start = (self._next - n) % self._capacity
        out: list[float | None] = []
        for i in range(n):
            v = self._buf[(start + i) % self._capacity]
            out.append(None if math.isnan(v) else float(v))
        return out

    def latest(self) -> float | None:
        if not self._count:
            return None
        v = self._buf[(self._next - 1) % self._capacity]
        return None if math.isnan(v) else float(v)


GpuKey = tuple[str, str]
"""(node_id, GPU uuid or index as text)."""


def gpu_key(node_id: str, uuid: str, index: int) -> GpuKey:
    return (node_id, uuid or str(index))


class Series:
    """One GPU's samples across the recorded snapshots (a read-only view)."""

    __slots__ = ("_column", "_history", "_key")

    def __init__(self, history: GpuHistory, key: GpuKey, column: int) -> None:
        self._history, self._key, self._column = history, key, column

    def __len__(self) -> int:
        return len(self.values())

    def values(self, last: int | None = None) -> list[float | None]:
        return self._history._series(self._key, self._column, last)

    def latest(self) -> float | None:
        v = self.values(1)
        return v[0] if v else None


class GpuHistory:
    """Utilisation and memory-used percentages of every GPU, one sample per snapshot.

    Stored by snapshot, not by GPU: each sample is two `array('f')` rows in cluster order plus a
    shared index (GPU key -> column) rebuilt only when the set of nodes or their GPU counts
    change. Recording 8,192 GPUs is two list comprehensions, not 16,384 ring appends.
    A snapshot with the same `taken_at` as the last one is ignored (re-applying never doubles a
    sample). GPUs of dead nodes are not recorded; a GPU that vanishes falls out with its samples.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._rows: deque[tuple[dict[GpuKey, int], array[float], array[float]]] = deque(
            maxlen=capacity
        )
        self._layout: tuple[tuple[str, int], ...] = ()
        self._index: dict[GpuKey, int] = {}
        self._last_taken_at: float | None = None

    def __len__(self) -> int:
        """GPUs in the latest sample."""
        return len(self._index)

    def record(self, snapshot: ClusterSnapshot) -> None:
        if snapshot.taken_at == self._last_taken_at:
            return
        self._last_taken_at = snapshot.taken_at
        alive = [n for n in snapshot.nodes if n.alive and n.gpus]
        layout = tuple((n.node_id, len(n.gpus)) for n in alive)
        if layout != self._layout:
            self._layout = layout
            self._index = {
                (n.node_id, g.uuid or str(g.index)): i
                for i, (n, g) in enumerate((n, g) for n in alive for g in n.gpus)
            }
        nan = math.nan
        util = array(
            "f", [nan if (u := g.utilization_pct) is None else u for n in alive for g in n.gpus]
        )
        mem = array(
            "f",
            [
                nan
                if (t := g.memory_total_mib) is None or not t or g.memory_used_mib is None
                else 100.0 * g.memory_used_mib / t
                for n in alive
                for g in n.gpus
            ],
        )
        self._rows.append((self._index, util, mem))

    def utilization(self, key: GpuKey) -> Series | None:
        column = self._index.get(key)
        return None if column is None else Series(self, key, 0)

    def memory(self, key: GpuKey) -> Series | None:
        column = self._index.get(key)
        return None if column is None else Series(self, key, 1)

    def _series(self, key: GpuKey, which: int, last: int | None) -> list[float | None]:
        rows = self._rows
        n = len(rows) if last is None else max(0, min(last, len(rows)))
        out: list[float | None] = []
        for i in range(len(rows) - n, len(rows)):
            index, util, mem = rows[i]
            col = index.get(key)
            if col is None:
                out.append(None)
                continue
            v = (util if which == 0 else mem)[col]
            out.append(None if math.isnan(v) else float(v))
        # Samples from before the GPU appeared are not history: drop leading gaps.
        start = 0
        while (
            start < len(out)
            and out[start] is None
            and rows[len(rows) - n + start][0].get(key) is None
        ):
            start += 1
        return out[start:]
