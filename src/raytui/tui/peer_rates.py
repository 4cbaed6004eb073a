"""Bytes per second per peer, from two successive daemon snapshots. Pure; no Textual.

The daemon reports cumulative byte counters; a rate needs two readings and the time between
them. A counter that went down (daemon restarted, peer removed and re-added) gives no rate
rather than a negative or huge one.
"""

from __future__ import annotations

from typing import NamedTuple

from raytui.model.peers import DaemonStatus

NA = "-"


class Rate(NamedTuple):
    """Bytes per second received from (`inbound`) and sent to (`outbound`) one peer."""

    inbound: float | None
    outbound: float | None


NO_RATE = Rate(None, None)


def _delta(before: int, after: int, seconds: float) -> float | None:
    if after < before:
        return None
    return (after - before) / seconds


def byte_rates(
    previous: DaemonStatus | None,
    previous_at: float,
    current: DaemonStatus,
    current_at: float,
) -> dict[str, Rate]:
    """peer ID -> rate over `previous_at`..`current_at` (monotonic seconds).

    Peers new in `current`, a daemon that restarted in between (other pid), or no time elapsed
    give `NO_RATE`.
    """
    seconds = current_at - previous_at
    if previous is None or seconds <= 0 or previous.pid != current.pid:
        return {p.peer_id: NO_RATE for p in current.peers}
    before = {p.peer_id: p for p in previous.peers}
    rates: dict[str, Rate] = {}
    for peer in current.peers:
        old = before.get(peer.peer_id)
        if old is None:
            rates[peer.peer_id] = NO_RATE
            continue
        rates[peer.peer_id] = Rate(
            _delta(old.bytes_in, peer.bytes_in, seconds),
            _delta(old.bytes_out, peer.bytes_out, seconds),
        )
    return rates


def human_rate(bytes_per_s: float | None) -> str:
    """'0 B/s', '812 B/s', '12.3 kB/s', '104 MB/s' (decimal units, as network tools show)."""
    if bytes_per_s is None:
        return NA
    value = max(0.0, bytes_per_s)
    for unit in ("B/s", "kB/s", "MB/s", "GB/s"):
        if value < 999.5 or unit == "GB/s":
            if unit == "B/s" or value >= 99.95:
                return f"{value:.0f} {unit}"
            return f"{value:.1f} {unit}"
        value /= 1000.0
    return NA  # pragma: no cover - the loop always returns


def human_rtt(rtt_ms: float | None) -> str:
    if rtt_ms is None:
        return NA
    if rtt_ms < 10:
        return f"{rtt_ms:.1f} ms"
    return f"{rtt_ms:.0f} ms"
