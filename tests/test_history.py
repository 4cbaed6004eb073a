"""The on-disk prompt history: written as chunks arrive, readable while written, searchable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from raytui.backends.history import HistoryStore, default_path
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
