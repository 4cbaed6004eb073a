"""The on-disk prompt history: written as chunks arrive, readable while written, searchable."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from raytui.backends.history import SCHEMA, HistoryStore, default_path
from raytui.model.prompts import (
    Chunk,
    Done,
    Failed,
    FailureKind,
    PromptRequest,
    RunState,
    Started,
    Timings,
    Waiting,
)

RAYTUI = Path(sys.executable).parent / "raytui"
REQ = PromptRequest("why is the sky blue?", "ollama", "llama3.2", system="terse", temperature=0.1)
STARTED = Started("abcdef0123456789", "10.0.0.5", "gpu-box", ("1",), "http://127.0.0.1:11434", 42)


def test_each_event_is_committed_and_visible_to_another_connection(raytui_home: Path) -> None:
    store = HistoryStore()
    assert store.path == default_path() and str(store.path).startswith(str(raytui_home))
    store.create("r1", REQ).result(5)
    store.record("r1", Waiting(1, 0, 2)).result(5)
    store.record("r1", STARTED).result(5)
    reader = HistoryStore(store.path)  # as another process would open it
    rec = reader.get("r1")
    assert rec is not None and rec.state == RunState.LOADING and rec.node_id == STARTED.node_id
    assert rec.gpu_ids == ("1",) and rec.hostname == "gpu-box"
    for piece in ["Ray", "leigh ", "scattering", " 漢字"]:
        store.record("r1", Chunk(piece)).result(5)
        rec = reader.get("r1")
        assert rec is not None and rec.text.endswith(piece)  # committed before the future resolved
    assert rec.state == RunState.STREAMING and rec.text == "Rayleigh scattering 漢字"
    store.record("r1", Done(Timings(ttft_s=0.25, tokens_per_s=41.5, eval_count=4), "stop"))
    store.close()
    rec = reader.get("r1")
    assert rec is not None
    assert (rec.state, rec.text, rec.ttft_s, rec.tokens_per_s, rec.eval_count, rec.done_reason) == (
        RunState.DONE, "Rayleigh scattering 漢字", 0.25, 41.5, 4, "stop",
    )  # fmt: skip
    assert rec.params == REQ.params() and rec.prompt == REQ.prompt and rec.finished_at


def test_failed_and_cancelled_runs_keep_their_text(raytui_home: Path) -> None:
    with HistoryStore() as store:
        for run_id, failure in (
            ("f", Failed("node 1234 died", FailureKind.NODE_DIED)),
            ("c", Failed("cancelled", FailureKind.CANCELLED)),
        ):
            store.create(run_id, REQ)
            store.record(run_id, STARTED)
            store.record(run_id, Chunk("half an "))
            store.record(run_id, Chunk("answer"))
            store.record(run_id, failure)
        store.flush()
        f, c = store.get("f"), store.get("c")
    assert f is not None and (f.state, f.text, f.error) == (
        RunState.FAILED, "half an answer", "node 1234 died",
    )  # fmt: skip
    assert c is not None and (c.state, c.text) == (RunState.CANCELLED, "half an answer")


def test_list_is_newest_first_with_limit_and_search(raytui_home: Path) -> None:
    with HistoryStore() as store:
        for i, (prompt, answer) in enumerate(
            [("zig tutorial", "comptime"), ("AI and blockchain", "ledger"), ("LLM comparison", "x")]
        ):
            store.create(f"r{i}", PromptRequest(prompt, "ollama", "m"), created_at=1000.0 + i)
            store.record(f"r{i}", Chunk(answer))
        store.flush()
        assert [r.run_id for r in store.list()] == ["r2", "r1", "r0"]
        assert [r.run_id for r in store.list(limit=2)] == ["r2", "r1"]
        assert [r.run_id for r in store.list(search="BLOCKCHAIN")] == ["r1"]
        assert [r.run_id for r in store.list(search="comptime")] == ["r0"]  # matches answers too
        assert store.list(search="nothing like this") == []


def test_history_cli_json_and_text(raytui_home: Path) -> None:
    with HistoryStore() as store:
        store.create("r1", REQ, created_at=1_700_000_000.0)
        store.record("r1", STARTED)
        store.record("r1", Chunk("blue light\nscatters"))
        store.record("r1", Done(Timings(ttft_s=0.5, tokens_per_s=30.0, eval_count=3), "stop"))
    out = subprocess.run(
        [str(RAYTUI), "history", "--json", "--limit", "5"],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    (row,) = json.loads(out.stdout)
    assert row["run_id"] == "r1" and row["text"] == "blue light\nscatters"
    assert row["state"] == "done" and row["gpu_ids"] == ["1"] and row["params"]["system"] == "terse"
    text = subprocess.run(
        [str(RAYTUI), "history", "--search", "sky"], capture_output=True, text=True, check=True
    ).stdout
    assert "done  ollama  llama3.2  node abcdef01 GPU 1  30.0 tok/s, ttft 0.50 s" in text
    assert "> why is the sky blue?" in text and "< blue light scatters" in text
    none = subprocess.run(
        [str(RAYTUI), "history", "--search", "zzz"], capture_output=True, text=True, check=True
    ).stdout
    assert "no runs match 'zzz'" in none


WRITER = """
import os, sys
from raytui.backends.history import HistoryStore
from raytui.model.prompts import Chunk, PromptRequest, Started
store = HistoryStore()
store.create("gone", PromptRequest("tell me a story", "ollama", "llama3.2")).result(5)
store.record("gone", Started("abcdef0123456789", "10.0.0.5", "gpu-box", ("0",), "", 1)).result(5)
for piece in ("Once ", "upon ", "a time"):
    store.record("gone", Chunk(piece)).result(5)
store.create("queued", PromptRequest("and another", "ollama", "llama3.2")).result(5)
print("written", flush=True)
sys.stdin.readline()  # killed here
"""


def test_runs_of_a_killed_process_turn_interrupted_with_their_text(raytui_home: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "written\n"
        alive = HistoryStore()  # its writer still runs: nothing is touched
        assert {r.run_id: r.state for r in alive.list()} == {
            "gone": RunState.STREAMING, "queued": RunState.WAITING,
        }  # fmt: skip
    finally:
        writer.kill()
        writer.wait(10)
    reopened = HistoryStore()
    gone, queued = reopened.get("gone"), reopened.get("queued")
    assert gone is not None and queued is not None
    assert (gone.state, gone.text, gone.node_id) == (
        RunState.INTERRUPTED, "Once upon a time", "abcdef0123456789",
    )  # fmt: skip
    assert gone.error == "the process running it ended while it was streaming"
    assert queued.state == RunState.INTERRUPTED and queued.text == ""
    out = subprocess.run(
        [str(RAYTUI), "history", "--json"], capture_output=True, text=True, check=True, timeout=30
    )
    assert {r["run_id"]: r["state"] for r in json.loads(out.stdout)} == {
        "gone": "interrupted", "queued": "interrupted",
    }  # fmt: skip


def test_a_history_from_before_owners_were_recorded_is_migrated(raytui_home: Path) -> None:
    first_schema = SCHEMA.replace(",\n    owner_pid INTEGER, owner_started REAL", "")
    assert "owner_pid" not in first_schema
    old = sqlite3.connect(default_path())
    old.executescript(
        first_schema
        + "INSERT INTO runs (run_id, created_at, prompt, backend, model, params, state)"
        " VALUES ('old', 1.0, 'hi', 'ollama', 'm', '{}', 'streaming');"
        "INSERT INTO chunks VALUES ('old', 0, 'half');"
    )
    old.close()
    store = HistoryStore()
    (rec,) = store.list()
    assert (rec.run_id, rec.state, rec.text) == ("old", RunState.INTERRUPTED, "half")
    store.create("new", REQ).result(5)
    store.close()
    assert HistoryStore().get("new") is not None
