"""Run the installed `raytui` console script as a subprocess, the way scripts use it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

RAYTUI_BIN = Path(sys.executable).parent / "raytui"


def run_raytui(
    args: Sequence[str], env: Mapping[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RAYTUI_BIN), *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def status_json(address: str, env: Mapping[str, str], timeout: float = 60) -> dict[str, Any]:
    result = run_raytui(["status", "--json", "--address", address], env, timeout)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def poll_status(
    address: str,
    env: Mapping[str, str],
    until: Callable[[dict[str, Any]], bool],
    timeout: float = 60,
) -> dict[str, Any]:
    """`status --json` again and again until `until(doc)` holds; the last doc on timeout."""
    deadline = time.monotonic() + timeout
    doc = status_json(address, env)
    while not until(doc) and time.monotonic() < deadline:
        time.sleep(0.5)
        doc = status_json(address, env)
    return doc


def node(doc: dict[str, Any], node_id: str) -> dict[str, Any] | None:
    return next((n for n in doc["nodes"] if n["node_id"] == node_id), None)
