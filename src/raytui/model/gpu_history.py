"""GPU samples for sparklines and the node-detail charts: the last 15 minutes of every GPU.

`GpuHistory` keeps one sample per snapshot for `WINDOW_S` seconds (capacity from the refresh
interval: `capacity_for`). Samples are stored as one byte per GPU and metric (half-percent
steps rounded down, 255 for "not reported"), so 4,096 nodes x 8 GPUs x 15 minutes at the default
2 s refresh is about 33 MiB of RSS (bench/bench_gpu_history.py), not 120 MiB as 32-bit floats.
A refresh under 1 s records at most one sample a second.
`Ring` is a small float ring for other uses.
No Textual here; the TUI reads `values()` / `timeline()` when it draws.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from dataclasses import dataclass

from raytui.model.cluster import ClusterSnapshot

DEFAULT_CAPACITY = 120  # a Ring's default size
WINDOW_S = 900.0  # the history kept per GPU: 15 minutes
MAX_SAMPLES = 901  # refresh faster than WINDOW_S / 900 s (1 s): samples are spaced out to that
_NAN_BYTE = 255
_STEPS = 2  # bytes per percent: 0..200 is 0..100 %


def capacity_for(refresh: float, window: float = WINDOW_S) -> int:
    """Samples needed to cover `window` seconds at one sample per `refresh` s (bounded)."""
    if refresh <= 0:
        raise ValueError("refresh must be more than 0")
    # Never fewer than the sparklines' DEFAULT_CAPACITY: a slow refresh then keeps longer.
    return max(DEFAULT_CAPACITY, min(MAX_SAMPLES, math.ceil(window / refresh) + 1))


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


@dataclass(frozen=True, slots=True, eq=False)
class GpuSample:
    """One snapshot's GPUs as `GpuHistory` stores them: one byte per GPU and metric in cluster
    order, and the GPU key -> column index of that order (`layout`: (node ID, GPU count) of the
    alive nodes with GPUs). Built in the poll worker; read-only after."""

    taken_at: float
    layout: tuple[tuple[str, int], ...]
    index: dict[GpuKey, int]
    util: bytes
    mem: bytes


def gpu_sample(snapshot: ClusterSnapshot, previous: GpuSample | None = None) -> GpuSample:
    """The history sample of `snapshot` (O(GPUs): ~15 ms at 32,768 GPUs, so not on the UI
    thread). The layout and index of `previous` are reused (the same objects) when the nodes
    and their GPU counts did not change, so recording it compares them by identity."""
    alive = [n for n in snapshot.nodes if n.alive and n.gpus]
    layout = tuple((n.node_id, len(n.gpus)) for n in alive)
    if previous is not None and layout == previous.layout:
        layout, index = previous.layout, previous.index
    else:
        index = {
            (n.node_id, g.uuid or str(g.index)): i
            for i, (n, g) in enumerate((n, g) for n in alive for g in n.gpus)
        }
    # Half-percent steps rounded down (so a sparkline level or colour threshold at a multiple of
    # 0.5 % reads as before), 255 for none; inlined: a call per GPU cost 2-4x at 32k GPUs.
    util = bytes(
        [
            _NAN_BYTE
            if (u := g.utilization_pct) is None or u != u
            else 0
            if u <= 0
            else 200
            if u >= 100
            else int(u * 2)
            for n in alive
            for g in n.gpus
        ]
    )
    mem = bytes(
        [
            _NAN_BYTE
            if not (t := g.memory_total_mib) or (m := g.memory_used_mib) is None or m != m
            else 0
            if m <= 0
            else 200
            if m >= t
            else int(200.0 * m / t)
            for n in alive
            for g in n.gpus
        ]
    )
    return GpuSample(snapshot.taken_at, layout, index, util, mem)


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

    Stored by snapshot, not by GPU: each sample is two byte rows (`bytes`, one byte per GPU in
    cluster order) plus a shared index (GPU key -> column) rebuilt only when the set of nodes or
    their GPU counts change, and the snapshot's time. The rows are made by `gpu_sample` (two list
    comprehensions at 32,768 GPUs, not 65,536 ring appends), in the poll worker: recording a
    sample made there is O(1) on the UI thread.
    A snapshot with the same `taken_at` as the last one is ignored (re-applying never doubles a
    sample); with a refresh faster than `window / MAX_SAMPLES`, snapshots closer than that to the
    last sample are skipped, so memory stays bounded at any refresh. GPUs of dead nodes are not
    recorded; a GPU that vanishes falls out with its samples.
    """

    def __init__(
        self,
        capacity: int | None = None,
        *,
        refresh: float = 2.0,
        window: float = WINDOW_S,
    ) -> None:
        """`capacity`: samples kept (default: enough for `window` s at one per `refresh` s)."""
        self.capacity = capacity if capacity is not None else capacity_for(refresh, window)
        if self.capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.window = window
        step = window / (MAX_SAMPLES - 1)  # the closest spacing that still covers `window`
        self._min_gap = 0.0 if capacity is not None or refresh >= step else step * 0.95
        self._rows: deque[tuple[dict[GpuKey, int], bytes, bytes, float]] = deque(
            maxlen=self.capacity
        )
        self._layout: tuple[tuple[str, int], ...] = ()
        self._index: dict[GpuKey, int] = {}
        self._last_taken_at: float | None = None

    def __len__(self) -> int:
        """GPUs in the latest sample."""
        return len(self._index)

    @property
    def samples(self) -> int:
        """Samples held (at most `capacity`)."""
        return len(self._rows)

    def record(self, snapshot: ClusterSnapshot, sample: GpuSample | None = None) -> None:
        """Add `snapshot`'s sample. `sample`: `gpu_sample(snapshot)`, computed off the UI thread
        (the poller's worker does); without it (or for another snapshot) it is computed here."""
        last = self._last_taken_at
        if snapshot.taken_at == last:
            return
        if self._min_gap and last is not None and 0 <= snapshot.taken_at - last < self._min_gap:
            return
        self._last_taken_at = snapshot.taken_at
        if sample is None or sample.taken_at != snapshot.taken_at:
            sample = gpu_sample(snapshot)
        if sample.layout is not self._layout and sample.layout != self._layout:
            self._layout, self._index = sample.layout, sample.index
        self._rows.append((self._index, sample.util, sample.mem, snapshot.taken_at))

    def utilization(self, key: GpuKey) -> Series | None:
        column = self._index.get(key)
        return None if column is None else Series(self, key, 0)

    def memory(self, key: GpuKey) -> Series | None:
        column = self._index.get(key)
        return None if column is None else Series(self, key, 1)

    def timeline(
        self, key: GpuKey, since: float | None = None
    ) -> tuple[list[float], list[float | None], list[float | None]]:
        """(times, utilisation %, memory %) of one GPU, oldest first, from `since` on (default:
        all held), from the first sample that had it; None where it reported nothing."""
        times: list[float] = []
        util: list[float | None] = []
        mem: list[float | None] = []
        for index, u_row, m_row, taken_at in self._rows:
            if since is not None and taken_at < since:
                continue
            col = index.get(key)
            if col is None:
                if not times:
                    continue
                u = m = _NAN_BYTE
            else:
                u, m = u_row[col], m_row[col]
            times.append(taken_at)
            util.append(None if u == _NAN_BYTE else u / _STEPS)
            mem.append(None if m == _NAN_BYTE else m / _STEPS)
        return times, util, mem

    def _series(self, key: GpuKey, which: int, last: int | None) -> list[float | None]:
        rows = self._rows
        n = len(rows) if last is None else max(0, min(last, len(rows)))
        out: list[float | None] = []
        for i in range(len(rows) - n, len(rows)):
            row = rows[i]
            col = row[0].get(key)
            if col is None:
                out.append(None)
                continue
            v = (row[1] if which == 0 else row[2])[col]
            out.append(None if v == _NAN_BYTE else v / _STEPS)
        # Samples from before the GPU appeared are not history: drop leading gaps.
        start = 0
        while (
            start < len(out)
            and out[start] is None
            and rows[len(rows) - n + start][0].get(key) is None
        ):
            start += 1
        return out[start:]
