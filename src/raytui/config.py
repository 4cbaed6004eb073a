"""User configuration from `config.toml` in the config dir (see locations.py).

```toml
refresh = 2.0                  # seconds between polls
[keys]                         # binding id = key(s); see `?` in the TUI for the ids
quit = "q,ctrl+c"
[ollama.endpoints]             # per-node Ollama URL as that node sees it (node id prefix or IP)
"10.0.0.5" = "http://127.0.0.1:11435"
```
Unknown keys are ignored so older raytui versions read newer files.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raytui import locations
from raytui.errors import UsageError


@dataclass(frozen=True)
class Config:
    refresh: float = 2.0
    keys: dict[str, str] = field(default_factory=dict)
    ollama_endpoints: dict[str, str] = field(default_factory=dict)
    openai_endpoints: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


def load(path: Path | None = None) -> Config:
    path = path or locations.config_file()
    if not path.exists():
        return Config()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from exc
    refresh = raw.get("refresh", 2.0)
    if not isinstance(refresh, int | float) or refresh <= 0:
        raise UsageError(f"{path}: refresh must be a positive number of seconds")
    return Config(
        refresh=float(refresh),
        keys={str(k): str(v) for k, v in raw.get("keys", {}).items()},
        ollama_endpoints={
            str(k): str(v) for k, v in raw.get("ollama", {}).get("endpoints", {}).items()
        },
        openai_endpoints={
            str(k): str(v) for k, v in raw.get("openai", {}).get("endpoints", {}).items()
        },
        raw=raw,
    )
