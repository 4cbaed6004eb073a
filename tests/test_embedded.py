"""`raytui status --address local`: an embedded Ray is started, reported, and fully stopped.

The shared session cluster also runs on this machine, so the embedded session's processes are
told apart by its own Ray temp dir (RAY_TMPDIR) and by descending from the raytui process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from tests.support.raytui_cli import RAYTUI_BIN

pytestmark = pytest.mark.ray


def _session_processes(raytui: psutil.Process, temp_dir: str) -> dict[int, float]:
    """pid -> create time of every descendant of raytui, and anything naming the temp dir."""
    found: dict[int, float] = {}
    try:
        for proc in raytui.children(recursive=True):
            try:
                found[proc.pid] = proc.create_time()
            except psutil.Error:
                continue
    except psutil.Error:
        pass
    for proc in psutil.process_iter(["cmdline", "create_time"]):
        try:
            if any(temp_dir in part for part in proc.info["cmdline"] or ()):
                found[proc.pid] = proc.info["create_time"]
        except (psutil.Error, TypeError):
            continue
    return found


def _still_running(pid: int, created: float) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


# The TUI's pattern: connect in a short-lived worker thread, poll, close from another thread.
# (Ray ties the embedded cluster's processes to the thread that started them: see embedded.py.)
_THREADED = """
import json, sys, threading
from raytui.model.serialize import snapshot_to_dict
from raytui.sources.attach import connect

box = {}
t = threading.Thread(target=lambda: box.update(c=connect("local")))
t.start()
t.join()
conn = box["c"]
doc = snapshot_to_dict(conn.fetch_snapshot())
doc.update(embedded=conn.embedded, connection=conn.description)
closer = threading.Thread(target=conn.close)
closer.start()
closer.join()
print(json.dumps(doc))
"""


@pytest.mark.parametrize(
    "command",
    [
        pytest.param([str(RAYTUI_BIN), "status", "--json", "--address", "local"], id="cli"),
        pytest.param([sys.executable, "-c", _THREADED], id="worker-threads"),
    ],
)
def test_embedded_cluster_has_zero_gpus_and_leaves_no_process(
    tmp_path: Path, command: list[str]
) -> None:
    temp_dir = tempfile.mkdtemp(prefix="rtemb-", dir="/tmp")  # short: AF_UNIX path limit
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), RAY_TMPDIR=temp_dir)
    try:
        proc = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        raytui = psutil.Process(proc.pid)
        seen: dict[int, float] = {}
        deadline = time.monotonic() + 150
        while proc.poll() is None and time.monotonic() < deadline:
            seen.update(_session_processes(raytui, temp_dir))
            time.sleep(0.2)
        if proc.poll() is None:
            proc.kill()
        stdout, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr
        assert "Traceback" not in stderr
        doc = json.loads(stdout)
        assert doc["embedded"] is True and doc["connection"] == "embedded (local)"
        (node,) = doc["nodes"]
        assert node["state"] == "ALIVE" and node["is_head"]
        assert node["gpus_total"] == 0.0 and node["gpus"] == []
        assert node["cpus_total"] >= 1 and node["memory_total_bytes"] > 0
        assert len(seen) >= 3, "the embedded cluster's processes were never seen"
        assert (home / ".ray" / "auth_token").exists()  # Ray's default: token auth on

        left = {pid for pid, created in seen.items() if _still_running(pid, created)}
        left |= set(_session_processes(raytui, temp_dir)) - {proc.pid}
        names = []
        for pid in left:
            try:
                names.append(f"{pid} {' '.join(psutil.Process(pid).cmdline())[:100]}")
            except psutil.Error:
                continue
        assert not names, f"Ray processes left behind: {names}"
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
