"""End to end: the installed `raytui` binary in a real terminal (tmux), driven by keystrokes.

Against the session cluster started with `ray start` (fake GPUs reported by Ray's agents), and
against the embedded default a new user gets with no cluster: the screen shows the nodes and
GPUs, `q` quits, and nothing raytui started is left running.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.support.ray_cluster import RayTestCluster
from tests.support.tmux import TmuxSession

pytestmark = pytest.mark.e2e

RAYTUI = str(Path(sys.executable).parent / "raytui")


def _env(home: Path, **extra: str) -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "USER", "LOGNAME", "TMPDIR")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(HOME=str(home), TERM="xterm-256color", RAYTUI_HOME=str(home / "raytui"))
    env.update(extra)
    return env


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


@pytest.fixture
def tmux_sessions() -> Iterator[list[TmuxSession]]:
    sessions: list[TmuxSession] = []
    yield sessions
    for s in sessions:
        s.kill()


def test_binary_in_tmux_shows_ray_start_cluster_and_quits_clean(
    ray_cluster: RayTestCluster, tmp_path: Path, tmux_sessions: list[TmuxSession]
) -> None:
    env = _env(tmp_path, RAY_AUTH_TOKEN=ray_cluster.token)
    term = TmuxSession(
        [RAYTUI, "--address", ray_cluster.dashboard_url, "--refresh", "1"], env, 120, 36
    )
    tmux_sessions.append(term)
    shorts = [n.node_id[:8] for n in ray_cluster.nodes[:3]]
    screen = term.wait_for(
        lambda s: all(short in s for short in shorts), 60, "the three nodes' short ids"
    )
    assert "Fake H100 80GB" in screen or "Fake A100 40GB" in screen, screen
    assert "Traceback" not in screen
    children = _descendants(term.pane_pid())
    term.send("q")
    assert term.wait_exit(30) == 0
    assert not [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_binary_in_tmux_embedded_default_starts_and_stops_ray(
    tmp_path: Path, tmux_sessions: list[TmuxSession]
) -> None:
    """The embedded cluster: raytui starts Ray itself and stops it on q.

    RAY_ADDRESS=local forces it, because the session cluster of other tests runs on this machine
    and would otherwise be found as "a cluster running here".
    """
    env = _env(tmp_path, RAY_ADDRESS="local")
    term = TmuxSession([RAYTUI, "--refresh", "1"], env, 100, 30)
    tmux_sessions.append(term)
    term.wait_for(lambda s: "embedded" in s.lower(), 30, "the embedded-start progress")
    screen = term.wait_for(lambda s: "ALIVE" in s, 120, "the embedded node ALIVE")
    assert "no GPUs" in screen or "GPU" in screen
    ray_procs = [p for p in _descendants(term.pane_pid()) if "ray" in " ".join(p.cmdline())]
    assert ray_procs, "embedded Ray runs under raytui"
    term.send("q")
    assert term.wait_exit(90) == 0
    _gone, alive = psutil.wait_procs(ray_procs, timeout=30)
    assert alive == [], [p.cmdline()[:2] for p in alive]


def test_binary_in_tmux_submits_a_job_from_the_dialog_and_shows_its_output(
    ray_cluster: RayTestCluster, tmp_path: Path, tmux_sessions: list[TmuxSession]
) -> None:
    """Jobs view, `n`, the fields typed (pasted) into the dialog, Enter: the job's detail opens
    and its output, uploaded from a working directory, appears on screen as it runs."""
    from raytui.sources.jobs import JobsClient

    work = tmp_path / "jobdir"
    work.mkdir()
    (work / "e2e_job.py").write_text(
        "import os\nfor i in range(10):\n    print('e2e', i, os.environ['E2E_WORD'], flush=True)\n"
    )
    env = _env(tmp_path, RAY_AUTH_TOKEN=ray_cluster.token)
    term = TmuxSession(
        [RAYTUI, "--address", ray_cluster.dashboard_url, "--refresh", "1"], env, 100, 30
    )
    tmux_sessions.append(term)
    term.wait_for(lambda s: "1:Nodes" in s and "alive" in s, 60, "the cluster view")
    term.send("3")
    term.wait_for(lambda s: "Jobs [" in s, 20, "the Jobs view")
    term.send("n")
    term.wait_for(lambda s: "Submit a Ray job" in s, 20, "the submit dialog")
    # Each field is checked on screen before the next: keys sent ahead of the app are not
    # a user typing.
    for text, shown, tabs in (
        (f"{sys.executable} e2e_job.py", "e2e_job.py", 1),
        (str(work), "jobdir", 2),
        ("E2E_WORD=tmux-ok", "E2E_WORD=tmux-ok", 2),
        ("0", None, 0),  # CPUs: the session cluster's CPUs may be busy with other tests' work
    ):
        term.paste(text)
        if shown is not None:
            term.wait_for(lambda s, t=shown: t in s, 20, f"{shown!r} in the dialog")
        for _ in range(tabs):  # one field at a time: the cursor moves down to the next input
            row = term.cursor_row()
            term.send("Tab")
            term.wait_until(lambda r=row: term.cursor_row() > r, 20, "the next field focused")
    term.send("Enter")
    screen = term.wait_for(lambda s: "e2e 9 tmux-ok" in s, 120, "the job's last line")
    assert all(f"e2e {i} tmux-ok" in screen for i in range(10)), screen
    screen = term.wait_for(lambda s: "SUCCEEDED" in s, 60, "the job's final state")
    assert "Traceback" not in screen
    term.send("q")
    assert term.wait_exit(30) == 0
    jobs = JobsClient(ray_cluster.dashboard_url, ray_cluster.token, timeout=20)
    for job in jobs.list():
        if "e2e_job.py" in job.entrypoint and job.terminal:
            jobs.delete(job.key)
