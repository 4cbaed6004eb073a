"""Where raytui keeps its files (XDG dirs via platformdirs).

`RAYTUI_HOME` puts everything under one directory, which tests use to stay isolated.

Modes, whatever the umask and whatever existed before: raytui's own directories are 0700 (made so
when they already existed with a wider mode) and the files it writes are 0600 (`open_private`).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

import platformdirs

APP = "raytui"
SOCKET_NAME = "proxy.sock"  # the proxy daemon's control socket, in `runtime_dir()`


PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def _home() -> Path | None:
    value = os.environ.get("RAYTUI_HOME")
    if not value:
        return None
    home = Path(value)
    # Created owner-only when missing; an existing one is the user's choice and left as it is.
    home.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    return home


def _ensure(path: Path) -> Path:
    """One of raytui's own directories: created, and tightened to 0700 if it existed wider."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    tighten(path, PRIVATE_DIR)
    return path


def tighten(path: Path, mode: int) -> None:
    """chmod `path` to `mode` when it is ours and has another mode (a missing path is skipped)."""
    with contextlib.suppress(FileNotFoundError):
        st = path.stat()
        if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) != mode:
            path.chmod(mode)


def open_private(path: Path, flags: int) -> int:
    """`os.open(path, flags | O_CREAT)` for a file only its owner may read or write: 0600 when
    created whatever the umask, and an existing file is made 0600 too."""
    fd = os.open(path, flags | os.O_CREAT, PRIVATE_FILE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != PRIVATE_FILE:
            os.fchmod(fd, PRIVATE_FILE)
    except BaseException:
        os.close(fd)
        raise
    return fd


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


def ray_token_files() -> list[tuple[Path, str]]:
    """Where Ray looks for its auth token file, in order, each with how to name it to the user:
    the file `RAY_AUTH_TOKEN_PATH` names (`~` expanded), then `~/.ray/auth_token`. (The
    `RAY_AUTH_TOKEN` variable, if set, comes before both.)"""
    files = []
    named = os.environ.get("RAY_AUTH_TOKEN_PATH", "").strip()
    if named:
        files.append((Path(named).expanduser(), "RAY_AUTH_TOKEN_PATH"))
    files.append((Path.home() / ".ray" / "auth_token", "~/.ray/auth_token"))
    return files
