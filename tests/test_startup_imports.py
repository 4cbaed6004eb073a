"""Nothing heavy on the path to the TUI's first frame: not Ray, NVML, libp2p or trio.

Measured on a 2-core machine: importing Ray costs seconds, trio ~90 ms (httpcore, under httpx,
imports it whenever it is installed), so the console, the connector and the dashboard client
that fetches the first snapshot must not import them.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("ray", "pynvml", "libp2p", "trio", "httpx", "httpcore", "ollama", "pygments")

_PROBE = """
import json, sys
import raytui.cli, raytui.commands.tui, raytui.tui.app
from raytui.backends.history import HistoryStore
from raytui.backends.service import RayPromptService
from raytui.sources import attach
from raytui.sources.dashboard_client import DashboardClient
from raytui.sources.dashboard_decode import decode_summary

attach.parse_address("http://127.0.0.1:8265")
client = DashboardClient("http://127.0.0.1:1", timeout=0.2)
try:
    client.ray_version()
except Exception:
    pass
decode_summary(b'{"data": {"summary": []}}')
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_tui_and_its_connect_path_import_nothing_heavy() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "textual" in loaded and "msgspec" in loaded  # the probe did import the path
    assert sorted(loaded.intersection(HEAVY)) == []


def test_screens_opened_later_are_imported_when_first_opened() -> None:
    """The app's module brings the cluster view only; the composer, node detail (its charts),
    history, engines, help and job screens load on first use."""
    probe = (
        "import json, sys; import raytui.tui.app; "
        "print(json.dumps(sorted(n for n in sys.modules if n.startswith(('raytui', 'textual_')))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "raytui.tui.screens.cluster" in loaded
    later = {
        f"raytui.tui.screens.{name}"
        for name in ("composer", "node_detail", "history", "engines", "help", "job_detail")
    } | {"raytui.tui.screens.job_submit", "raytui.backends.service", "textual_plotext"}
    assert sorted(loaded & later) == []
