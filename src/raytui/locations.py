"""Where raytui keeps its files (XDG dirs via platformdirs).

`RAYTUI_HOME` puts everything under one directory, which tests use to stay isolated.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "raytui"


def _home() -> Path | None:
    value = os.environ.get("RAYTUI_HOME")
    return Path(value) if value else None


def _ensure(path: Path, mode: int = 0o700) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    return path


def config_dir() -> Path:
    home = _home()
    return _ensure(home / "config" if home else platformdirs.user_config_path(APP))


def data_dir() -> Path:
    home = _home()
    return _ensure(home / "data" if home else platformdirs.user_data_path(APP))


def state_dir() -> Path:
    home = _home()
    return _ensure(home / "state" if home else platformdirs.user_state_path(APP))


def runtime_dir() -> Path:
    """For sockets and pid files; owner-only."""
    home = _home()
    if home:
        return _ensure(home / "run")
    return _ensure(platformdirs.user_runtime_path(APP))


def config_file() -> Path:
    return config_dir() / "config.toml"
