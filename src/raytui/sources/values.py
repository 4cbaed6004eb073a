"""Lenient readers of the dashboard's JSON values, shared by the snapshot parser and the
workbench clients: a missing value or one of the wrong type reads as None, never an exception
(Ray's answers change shape between versions)."""

from __future__ import annotations

from typing import Any


def num(value: Any) -> float | None:
    """A number; the common JSON types are tested first (the snapshot parser calls this for
    every GPU field of every node)."""
    kind = type(value)
    if kind is float:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return float(value)
    if value is None or kind is bool:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def ms_to_s(value: Any) -> float | None:
    """Ray's millisecond timestamps in seconds; 0 means "not yet" (None)."""
    n = num(value)
    return n / 1000.0 if n else None


def whole(value: Any) -> int | None:
    """An integer (a number's whole part; a string only when it spells one)."""
    if isinstance(value, bool):
        return None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def text(value: Any) -> str | None:
    """A non-empty string ("" reads as None)."""
    return str(value) if value not in (None, "") else None
