"""The Jobs workbench in the TUI (Pilot): the submit dialog, job detail with its live log, stop and
delete, `--readonly`.

The cluster view replays the FAKE connection's snapshots (tests/support/tui_fakes.py), while the
job views talk to the session's REAL Ray cluster through its dashboard URL and token
(`FakeConnection.workbench_url`), as a console attached with `--via` would. One test runs the real
attach path (`attach.connect` with the dashboard URL only).
"""

from __future__ import annotations

import re
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import Input

from raytui.sources import attach
from raytui.sources.jobs import JobsClient
from raytui.tui.app import RaytuiApp
from raytui.tui.messages import OpenJob
from raytui.tui.screens.confirm import ConfirmScreen
from raytui.tui.screens.job_detail import (
    CONSOLE_REFUSED,
    READONLY_DELETE,
    READONLY_STOP,
    JobDetailScreen,
)
from raytui.tui.screens.job_submit import JobSubmitScreen
from raytui.tui.widgets.jobs import JobTable
from tests.conftest import RayTestCluster
from tests.support.tui_fakes import (
    FakeConnection,
    connector_for,
    frozen_clock,
    healthy,
    screen_text,
    until,
)
from tests.test_tui_composer import palette_choice

PY = sys.executable  # the cluster's nodes run this venv's Ray

COUNT_SCRIPT = (
    "import os, time\n"
    "for i in range(300):\n"
    "    print(f'line {i:04d} {os.environ[\"JOB_GREETING\"]}', flush=True)\n"
    "    if i % 60 == 0: time.sleep(0.2)\n"
    "while True:\n"
    "    time.sleep(0.5)\n"
)


def make_app(conn: FakeConnection, *, readonly: bool = False) -> RaytuiApp:
    return RaytuiApp(
        connector_for(conn, progress=()),
        refresh=3600,
        readonly=readonly,
        clock=frozen_clock,
        target="http://10.0.0.5:8265",
        nvml_sampler=None,
        local_hostname="not-a-cluster-node",
        local_addresses=("127.0.0.1",),
    )


def real_conn(cluster: RayTestCluster) -> FakeConnection:
    conn = FakeConnection([healthy()])
    conn.workbench_url = cluster.dashboard_url
    conn.workbench_token = cluster.token
    return conn


@pytest.fixture
def closed_port_url() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    yield url  # nothing listens there once closed


def fill(dialog: JobSubmitScreen, **values: str) -> None:
    for name, value in values.items():
        dialog.query_one(f"#job-{name}", Input).value = value


def field(dialog: JobSubmitScreen, name: str) -> str:
    return dialog.query_one(f"#job-{name}", Input).value


def tail_threads() -> list[threading.Thread]:
    """JobsClient.follow's readers still running."""
    return [t for t in threading.enumerate() if t.name == "raytui-job-tail" and t.is_alive()]


def log_text(screen: JobDetailScreen) -> str:
    return "\n".join(line.plain for line in screen.log_view.ring.lines())


async def open_jobs_view(pilot: object, app: RaytuiApp) -> None:
    await until(pilot, lambda: app.state.generation >= 1, 30)  # type: ignore[arg-type]
    await pilot.press("3")  # type: ignore[attr-defined]
    await until(pilot, lambda: app.screen.query_one(JobTable).has_focus, 10)  # type: ignore[arg-type]


# -- the dialog, the detail, the log, stop: against the real cluster ---------------------------


@pytest.mark.ray
async def test_job_submitted_from_the_dialog_is_followed_in_order_and_stopped(
    ray_cluster: RayTestCluster, tmp_path: Path
) -> None:
    (tmp_path / "count.py").write_text(COUNT_SCRIPT)
    conn = real_conn(ray_cluster)
    app = make_app(conn)
    async with app.run_test(size=(120, 36)) as pilot:
        await open_jobs_view(pilot, app)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, JobSubmitScreen), 10)
        dialog = app.screen
        assert isinstance(dialog, JobSubmitScreen)
        await pilot.press(*"python")  # typed keys reach the entrypoint field
        fill(
            dialog,
            entrypoint=f"{PY} count.py",
            working_dir=str(tmp_path),
            env_vars="JOB_GREETING=hello-dialog",
            num_cpus="0",
        )
        await pilot.pause()
        assert dialog.problems == {}
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, JobDetailScreen), 120)
        detail = app.screen
        assert isinstance(detail, JobDetailScreen)
        key = detail.key
        assert key.startswith("raysubmit_")
        assert app.job_draft is None  # a submitted draft is not offered again

        await until(pilot, lambda: "line 0299 hello-dialog" in log_text(detail), 120)
        numbers = [
            int(n) for n in re.findall(r"^line (\d{4}) hello-dialog$", log_text(detail), re.M)
        ]
        assert numbers == list(range(300))
        await until(pilot, lambda: detail.info is not None and detail.info.status == "RUNNING", 30)
        text = screen_text(app)
        assert "RUNNING" in text and "runtime env" in text and "JOB_GREETING" in text

        # Leaving the screen ends its log follower; opening the job again follows from the start.
        # (The replayed Jobs list does not hold this real job: the attached test below opens a
        # job from its row.)
        await pilot.press("escape")
        await until(pilot, lambda: not tail_threads(), 10)
        app.post_message(OpenJob(key))
        await until(pilot, lambda: isinstance(app.screen, JobDetailScreen), 10)
        detail = app.screen
        assert isinstance(detail, JobDetailScreen) and detail.key == key
        await until(pilot, lambda: "line 0299 hello-dialog" in log_text(detail), 60)

        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 10)
        await pilot.press("y")
        await until(pilot, lambda: detail.info is not None and detail.info.status == "STOPPED", 60)
        await until(pilot, lambda: detail.log_view.state == "ended", 30)
        await until(pilot, lambda: "STOPPED" in screen_text(app), 10)

        await pilot.press("D")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 10)
        await pilot.press("y")
        await until(pilot, lambda: not isinstance(app.screen, JobDetailScreen), 30)
    client = JobsClient(ray_cluster.dashboard_url, ray_cluster.token, timeout=20)
    assert all(j.submission_id != key for j in client.list())


@pytest.mark.ray
async def test_job_views_on_a_console_attached_by_dashboard_url_only(
    ray_cluster: RayTestCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The real attach path (`--address http://…:PORT`), no Ray driver in this process."""
    monkeypatch.setenv("RAY_AUTH_TOKEN", ray_cluster.token)
    (tmp_path / "hello.py").write_text("for i in range(5):\n    print('attached', i)\n")
    app = RaytuiApp(
        lambda progress: attach.connect(ray_cluster.dashboard_url, None, progress),
        refresh=1.0,
        target=ray_cluster.dashboard_url,
        nvml_sampler=None,
    )
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.state.snapshot is not None, 60)
        await pilot.press("3")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, JobSubmitScreen), 10)
        dialog = app.screen
        assert isinstance(dialog, JobSubmitScreen)
        fill(dialog, entrypoint=f"{PY} hello.py", working_dir=str(tmp_path), num_cpus="0")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, JobDetailScreen), 120)
        detail = app.screen
        assert isinstance(detail, JobDetailScreen)
        await until(pilot, lambda: "attached 4" in log_text(detail), 120)
        await until(
            pilot, lambda: detail.info is not None and detail.info.status == "SUCCEEDED", 60
        )
        key = detail.key
        # Back in the Jobs view the new job is listed; Enter on it opens its detail again.
        await pilot.press("escape")
        table = app.screen.query_one(JobTable)
        await until(pilot, lambda: table.move_cursor_to_key(key), 30)
        table.focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, JobDetailScreen), 10)
        again = app.screen
        assert isinstance(again, JobDetailScreen) and again.key == key
        await until(pilot, lambda: "attached 4" in log_text(again), 60)
        await until(pilot, lambda: "SUCCEEDED" in screen_text(app), 30)
        await pilot.press("D")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 10)
        await pilot.press("y")
        await until(pilot, lambda: not isinstance(app.screen, JobDetailScreen), 30)


# -- checked as typed, nothing lost -----------------------------------------------------------


async def test_bad_fields_are_marked_as_typed_and_submit_is_refused(tmp_path: Path) -> None:
    conn = FakeConnection([healthy()])  # no dashboard: a submit would fail, not hang
    app = make_app(conn)
    submits: list[object] = []
    async with app.run_test(size=(80, 24)) as pilot:
        await open_jobs_view(pilot, app)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, JobSubmitScreen), 10)
        dialog = app.screen
        assert isinstance(dialog, JobSubmitScreen)
        dialog.submit_job = lambda job: submits.append(job) or "never"  # type: ignore[func-returns-value]
        fill(dialog, entrypoint="python run.py")
        await pilot.pause()
        assert dialog.problems == {}
        fill(dialog, env_vars="GOOD=1 BROKEN", num_gpus="-1")
        await pilot.pause()
        assert set(dialog.problems) == {"env_vars", "num_gpus"}
        text = screen_text(app)
        assert "'BROKEN' is not NAME=value" in text
        assert "GPUs: '-1' must be 0 or more" in text
        await pilot.press("enter")
        await pilot.pause()
        assert submits == [] and isinstance(app.screen, JobSubmitScreen)
        assert "not submitted: fix the 2 field(s)" in screen_text(app)
        assert field(dialog, "env_vars") == "GOOD=1 BROKEN" and field(dialog, "num_gpus") == "-1"
        fill(dialog, env_vars="GOOD=1", num_gpus="1")
        await pilot.pause()
        assert dialog.problems == {}


async def test_failed_submit_keeps_every_field_and_esc_keeps_the_draft(
    tmp_path: Path, closed_port_url: str
) -> None:
    conn = FakeConnection([healthy()])
    conn.workbench_url = closed_port_url  # the dashboard is unreachable
    app = make_app(conn)
    typed = {
        "entrypoint": "python train.py --lr 3e-4",
        "working_dir": str(tmp_path),
        "pip": "requests==2.32",
        "env_vars": "A=1 B='two words'",
        "num_gpus": "1",
        "num_cpus": "2",
        "resources": "accel=1",
        "submission_id": "my-run-7",
    }
    async with app.run_test(size=(80, 24)) as pilot:
        await open_jobs_view(pilot, app)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, JobSubmitScreen), 10)
        dialog = app.screen
        assert isinstance(dialog, JobSubmitScreen)
        fill(dialog, **typed)
        await pilot.pause()
        await pilot.press("ctrl+s")
        await until(pilot, lambda: dialog.outcome.startswith("not submitted:"), 30)
        assert closed_port_url in dialog.outcome and "\n" not in dialog.outcome
        assert isinstance(app.screen, JobSubmitScreen)
        assert {name: field(dialog, name) for name in typed} == typed
        assert closed_port_url in screen_text(app)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, JobSubmitScreen), 10)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, JobSubmitScreen), 10)
        again = app.screen
        assert isinstance(again, JobSubmitScreen) and again is not dialog
        await pilot.pause()
        assert {name: field(again, name) for name in typed} == typed


# -- refused: read-only, the console's own driver ---------------------------------------------


async def test_readonly_refuses_submit_stop_and_delete(closed_port_url: str) -> None:
    conn = FakeConnection([healthy()])
    conn.workbench_url = closed_port_url
    app = make_app(conn, readonly=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_jobs_view(pilot, app)
        await pilot.press("n")
        await pilot.pause()
        assert not isinstance(app.screen, JobSubmitScreen)
        await pilot.press("colon")
        await pilot.pause()
        await pilot.press(*"submit-job")
        await until(pilot, lambda: "submit-job" in palette_choice(app), what="the palette's hit")
        await pilot.press("enter")
        refusal = "read-only console: jobs cannot be submitted (started with --readonly)"
        await until(
            pilot,
            lambda: [n.message for n in app._notifications].count(refusal) == 2,
            what="the second refusal",
        )
        assert not isinstance(app.screen, JobSubmitScreen)
        notes = [n.message for n in app._notifications]
        assert (
            notes.count("read-only console: jobs cannot be submitted (started with --readonly)")
            == 2
        )

        await pilot.press("enter")  # the first row: raysubmit_Kq2fP9, RUNNING in the snapshot
        await until(pilot, lambda: isinstance(app.screen, JobDetailScreen), 10)
        for key, text in (("x", READONLY_STOP), ("D", READONLY_DELETE)):
            await pilot.press(key)
            await pilot.pause()
            assert not isinstance(app.screen, ConfirmScreen)
            assert text in [n.message for n in app._notifications]


async def test_the_consoles_own_driver_cannot_be_stopped_and_says_why(closed_port_url: str) -> None:
    from dataclasses import replace

    from raytui.model.cluster import Job

    snap = healthy()
    own = Job("04000000", None, "RUNNING", "raytui console", snap.taken_at - 60, console=True)
    conn = FakeConnection([replace(snap, jobs=(own, *snap.jobs))])
    conn.workbench_url = closed_port_url
    app = make_app(conn)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_jobs_view(pilot, app)
        table = app.screen.query_one(JobTable)
        assert table.move_cursor_to_key("04000000")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, JobDetailScreen), 10)
        detail = app.screen
        assert isinstance(detail, JobDetailScreen) and detail.console
        await pilot.press("x")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert CONSOLE_REFUSED in [n.message for n in app._notifications]
        assert "this console" in screen_text(app)


async def test_esc_while_a_held_submit_runs_asks_before_closing() -> None:
    """The submit call is HELD (a stand-in for a slow upload, behind the dialog's submit callable):
    the first Esc says the submit goes on, the second closes."""
    gate = threading.Event()
    app = make_app(FakeConnection([healthy()]))
    async with app.run_test(size=(80, 24)) as pilot:
        await open_jobs_view(pilot, app)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, JobSubmitScreen), 10)
        dialog = app.screen
        assert isinstance(dialog, JobSubmitScreen)
        dialog.submit_job = lambda job: "raysubmit_held" if gate.wait(30) else ""
        fill(dialog, entrypoint="python slow.py")
        await pilot.press("enter")
        await until(pilot, lambda: dialog.busy, 10)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, JobSubmitScreen)
        assert dialog.outcome.startswith("still submitting")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, JobSubmitScreen), 10)
        gate.set()
