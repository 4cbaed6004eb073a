"""Durations as people read them, the same in the TUI and on the command line: '42s', '3m',
'2h05m', '3d04h', and ages ('3m ago'). Pure functions of their input.
"""

from __future__ import annotations

NA = "-"


def span(seconds: float | None) -> str:
    """Compact duration: '42s', '3m', '2h05m', '3d04h'; '-' when unknown."""
    if seconds is None:
        return NA
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def ago(then: float | None, now: float) -> str:
    """'3m ago'; 'a while ago' when the time is unknown."""
    return "a while ago" if then is None else f"{span(now - then)} ago"
