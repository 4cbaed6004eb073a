"""User configuration from `config.toml` in the config dir (see locations.py).

```toml
refresh = 2.0                  # seconds between polls
[keys]                         # binding id = key(s); see `?` in the TUI for the ids
quit = "q,ctrl+c"
[ollama.endpoints]             # per-node Ollama URL as that node sees it (node id prefix or IP)
"10.0.0.5" = "http://127.0.0.1:11435"
[logs]
max_lines = 50000              # lines each log view keeps (older ones are dropped, and counted)
```
Unknown keys are ignored so older raytui versions read newer files.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from raytui import locations
from raytui.errors import UsageError


@dataclass(frozen=True)
class Config:
    refresh: float = 2.0
    keys: dict[str, str] = field(default_factory=dict)
    ollama_endpoints: dict[str, str] = field(default_factory=dict)
    openai_endpoints: dict[str, str] = field(default_factory=dict)
    log_max_lines: int = 50_000
    raw: dict[str, Any] = field(default_factory=dict)


MAX_REFRESH = 86_400.0
LOG_LINES_RANGE = (100, 10_000_000)


def load(path: Path | None = None) -> Config:
    """The config file, checked key by key: a wrong type or value is a UsageError (exit 2)
    naming the file and the key. A missing file is the defaults."""
    path = path or locations.config_file()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config()
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not valid TOML: the file is not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    try:
        return Config(
            refresh=_refresh(raw.get("refresh", 2.0)),
            keys=_table_of_str(raw, "keys"),
            ollama_endpoints=_endpoints(raw, "ollama"),
            openai_endpoints=_endpoints(raw, "openai"),
            log_max_lines=_log_max_lines(raw),
            raw=raw,
        )
    except _Bad as exc:
        raise UsageError(f"{path}: {exc}") from None


class _Bad(ValueError):
    pass


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _refresh(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Bad(f"refresh must be a number of seconds, not {_kind(value)}")
    if not math.isfinite(value) or not 0 < value <= MAX_REFRESH:
        raise _Bad(f"refresh must be more than 0 and at most {MAX_REFRESH:g} seconds, got {value}")
    return float(value)


def _table(raw: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise _Bad(f"{where} must be a table ([{where}]), not {_kind(value)}")
    return value


def _table_of_str(raw: dict[str, Any], key: str, where: str | None = None) -> dict[str, str]:
    where = where or key
    table = _table(raw, key, where)
    for name, value in table.items():
        if not isinstance(value, str):
            raise _Bad(f"{where}.{name} must be a string, not {_kind(value)}")
    return dict(table)


def _endpoints(raw: dict[str, Any], backend: str) -> dict[str, str]:
    section = _table(raw, backend, backend)
    endpoints = _table_of_str(section, "endpoints", f"{backend}.endpoints")
    for node, url in endpoints.items():
        try:
            parts = urlsplit(url)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:
            ok = False
        if not ok or not url.isprintable():
            raise _Bad(
                f"{backend}.endpoints.{node} must be an http:// or https:// URL, got {url!r}"
            )
    return endpoints


def _log_max_lines(raw: dict[str, Any]) -> int:
    value = _table(raw, "logs", "logs").get("max_lines", 50_000)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"logs.max_lines must be a whole number of lines, not {_kind(value)}")
    lo, hi = LOG_LINES_RANGE
    if not lo <= value <= hi:
        raise _Bad(f"logs.max_lines must be from {lo:,} to {hi:,}, got {value:,}")
    return value
