"""No library warning reaches the user's terminal: Python warnings go to the debug log.

The case a user meets: no XDG_RUNTIME_DIR (a `su` shell, some containers), where platformdirs
warns `RuntimeDirWarning: XDG_RUNTIME_DIR is not set` each time raytui finds its runtime dir.
Runs the installed `raytui` binary, with HOME and the XDG dirs in a temporary directory.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.raytui_cli import run_raytui


def bare_env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("XDG_RUNTIME_DIR", "RAYTUI_HOME", "RAYTUI_DEBUG", "PYTHONWARNINGS")
        and not k.startswith("XDG_")
    }
    env.update(HOME=str(home), **extra)
    return env


def test_no_warning_on_stderr_without_xdg_runtime_dir(tmp_path: Path) -> None:
    result = run_raytui(["proxy", "status"], bare_env(tmp_path), timeout=60)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "raytui: proxy daemon not running: start it with `raytui proxy start`"
    ]


def test_the_warning_goes_to_the_debug_log(tmp_path: Path) -> None:
    log = tmp_path / "debug.log"
    result = run_raytui(["--log-file", str(log), "peers", "list"], bare_env(tmp_path), timeout=60)
    assert result.returncode == 1
    assert "Warning" not in result.stderr
    assert "XDG_RUNTIME_DIR is not set" in log.read_text(encoding="utf-8")
