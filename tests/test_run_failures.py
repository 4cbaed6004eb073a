"""Issue 8, findings 10 and 13: what goes wrong around a prompt run ends in one clear error and
loses nothing the model produced.

- A run's stream that breaks still ends with a Failed event saying why (it used to end with no
  terminal event: `dispatch.merge` swallowed the error and `raytui submit` exited 1 mute).
- History that cannot record a run is reported (pane, `submit`'s stderr) and the text is still
  shown; it used to vanish (the insert's Future was never looked at).
- Runs waiting on a driver connect do not take the threads the pollers need.
- A driver that cannot connect ends in an error within the driver timeout, in the TUI's composer
  too, and esc while connecting always completes.

Real parts: the session Ray cluster, a real HTTP server speaking Ollama's wire format, real
SQLite (made to refuse writes with a trigger, as a damaged or full database would), a real
`ray.init` against a real socket that accepts and stays silent (in a fresh process: see
tests/support/driver_scenarios.py).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from raytui.backends import dispatch
from raytui.backends.history import HistoryStore
from raytui.model.prompts import (
    Chunk,
    Done,
    Failed,
    FailureKind,
    PromptRequest,
    RunState,
    Started,
)
from tests.servers.ollama_wire import OllamaWireServer, Script
from tests.support.prompt_runs import gpu2, submit_cli
from tests.support.ray_cluster import RayTestCluster

TOKENS = ["Grüße", " aus ", "東京", " — ", "naïve ", "😀", "\n", "second line", "."]
ANSWER = "".join(TOKENS)


@pytest.fixture
def server() -> Iterator[OllamaWireServer]:
    srv = OllamaWireServer({"llama3.2": Script(TOKENS, tokens_per_s=40)})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def refuse(db: Path, table: str) -> None:
    """From now on SQLite refuses every INSERT into `table` (the error a damaged or full
    database gives), through a trigger in the real file."""
    with sqlite3.connect(db) as conn:
        conn.execute(
            f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table}"
            " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )


def _bad_stream() -> Any:
    """A Ray streaming task that sends part of an answer, then something that is no event."""
    import ray

    @ray.remote(num_returns="streaming", num_cpus=0)
    def bad_stream() -> Iterator[object]:
        yield Started("n" * 56, "10.0.0.9", "box", ("0",), "http://x", 1)
        yield Chunk("partial ")
        yield Chunk("answer")
        yield {"neither": "a chunk nor an end"}

    return bad_stream


@pytest.mark.ray
def test_a_stream_that_breaks_ends_with_a_failed_event_and_keeps_the_text(
    ray_driver: RayTestCluster, debug_log: Path
) -> None:
    history = HistoryStore()
    request = PromptRequest("hi", "ollama", "m", num_gpus=0)
    run = dispatch.Run(request, history=history)
    run._created = history.create(run.run_id, request)
    run._gen = _bad_stream().remote()
    try:
        events = [event for _run, event in dispatch.stream_sync([run])]
    finally:
        history.close()
    final = events[-1]
    assert isinstance(final, Failed), events  # it used to end with no terminal event at all
    assert final.kind is FailureKind.INTERNAL and "not a run event" in final.error
    assert "\n" not in final.error
    assert run.text == "partial answer" and run.final is final
    record = HistoryStore().get(run.run_id)
    assert record is not None
    assert (record.state, record.text) == (RunState.FAILED, "partial answer")
    assert "not a run event" in debug_log.read_text()


@pytest.mark.ray
@pytest.mark.multinode
def test_history_that_cannot_write_mid_stream_is_reported_and_the_run_completes(
    ray_driver: RayTestCluster, server: OllamaWireServer, debug_log: Path
) -> None:
    history = HistoryStore()
    node = gpu2(ray_driver)
    request = PromptRequest("hi", "ollama", "llama3.2", node=node.node_id, endpoint=server.url)
    refuse(history.path, "chunks")  # the run's row goes in; its text cannot
    run = dispatch.submit(request, history=history)
    try:
        events = [event for _run, event in dispatch.stream_sync([run])]
    finally:
        history.close()
    # The run was not ended by its history: it went on to Done with every token shown.
    assert isinstance(events[-1], Done), events[-3:]
    assert "".join(e.text for e in events if isinstance(e, Chunk)) == ANSWER == run.text
    assert run.history_error is not None
    assert "history could not be saved" in run.history_error
    assert "database or disk is full" in run.history_error
    assert "Traceback" in debug_log.read_text()


@pytest.mark.ray
@pytest.mark.multinode
def test_submit_prints_the_answer_and_says_when_history_could_not_save_it(
    ray_cluster: RayTestCluster, server: OllamaWireServer
) -> None:
    path = HistoryStore().path
    HistoryStore(path).close()  # the database exists, with its tables
    refuse(path, "runs")  # the run's insert fails
    proc = submit_cli(
        ray_cluster, "--backend", "ollama", "--model", "llama3.2", "--endpoint", server.url,
        "--node", gpu2(ray_cluster).node_id, "Say hello",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr  # the run itself succeeded
    assert proc.stdout == ANSWER + "\n"
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("raytui: ")]
    assert "history could not be saved" in line and "database or disk is full" in line
    assert "Traceback" not in proc.stderr
    assert HistoryStore().list() == []


def _scenario(
    name: str, tmp_path: Path, timeout: float, **extra: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAYTUI_HOME=str(tmp_path), HOME=str(tmp_path), RAYTUI_DRIVER_TIMEOUT="3")
    env.update(extra)
    root = Path(__file__).resolve().parents[1]
    return subprocess.run(
        [sys.executable, "-m", "tests.support.driver_scenarios", name],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_composer_ends_a_driver_connect_that_hangs_with_an_error_and_esc_cancels_it(
    tmp_path: Path,
) -> None:
    """Finding 13: Pilot drives the composer against a GCS address that accepts TCP and never
    answers (Ray's real ray.init hangs there); the cluster view uses a FAKE connection."""
    result = _scenario("composer", tmp_path, timeout=240)
    assert result.returncode == 0, result.stderr[-4000:]


def test_runs_waiting_on_the_driver_leave_the_pollers_threads_free(tmp_path: Path) -> None:
    """Finding 10c: 16 runs wait on a driver connect that hangs (a real ray.init against a
    silent socket); a poll-shaped asyncio.to_thread call still completes. It used to wait:
    the runs held all 6 threads of asyncio's default pool (2 cores)."""
    result = _scenario("pool", tmp_path, timeout=180)
    assert result.returncode == 0, result.stderr[-4000:]


@pytest.mark.ray
def test_closing_the_connection_waits_for_a_ray_call_in_flight_and_refuses_new_ones(
    tmp_path: Path, ray_cluster: RayTestCluster
) -> None:
    """Finding 10d, in a fresh process that owns its driver of the session cluster."""
    result = _scenario(
        "close",
        tmp_path,
        timeout=180,
        SCENARIO_GCS=ray_cluster.gcs_address,
        SCENARIO_DASHBOARD=ray_cluster.dashboard_url,
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=ray_cluster.token,
        RAYTUI_DRIVER_TIMEOUT="60",
    )
    assert result.returncode == 0, result.stderr[-4000:]
