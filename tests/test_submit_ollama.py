"""Prompts to Ollama on the cluster's GPUs, against a real HTTP server speaking Ollama's wire.

Runs go through a real multi-node Ray cluster (logical GPUs) and the real `ollama` client inside
Ray tasks; the CLI tests run the installed `raytui submit` as a separate process.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from raytui.backends import dispatch, ollama
from raytui.backends.history import HistoryStore
from raytui.model.prompts import (
    Chunk,
    Done,
    Failed,
    FailureKind,
    PromptRequest,
    PullProgress,
    RunState,
    Started,
    Waiting,
)
from tests.servers.ollama_wire import OllamaWireServer, Script
from tests.support.prompt_runs import (
    RAYTUI,
    collect,
    gpu2,
    json_events,
    submit_cli,
)
from tests.support.ray_cluster import RayTestCluster
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.ray, pytest.mark.multinode]

TOKENS = ["Grüße", " aus ", "東京", " — ", "naïve ", "😀", " <&>", "\n", "second line", "."]
ANSWER = "".join(TOKENS)


@pytest.fixture
def server() -> Iterator[OllamaWireServer]:
    srv = OllamaWireServer(
        {
            "llama3.2": Script(TOKENS, tokens_per_s=40),
            "slow": Script([f"tok{i} " for i in range(400)], tokens_per_s=20),
            "two-seconds": Script([f"w{i} " for i in range(30)], tokens_per_s=15),
            "breaks": Script(["partial ", "answer "] * 3, tokens_per_s=40, error_after=4),
        },
        pullable={"qwen3": Script(["pulled"], tokens_per_s=None)},
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_submit_streams_exact_text_with_provenance_json(
    ray_cluster: RayTestCluster, server: OllamaWireServer
) -> None:
    proc = submit_cli(
        ray_cluster, "--backend", "ollama", "--model", "llama3.2", "--endpoint", server.url,
        "--json", "Say hello",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    events = json_events(proc.stdout)
    kinds = [e["event"] for e in events if e["event"] != "waiting"]
    assert kinds == ["start"] + ["chunk"] * len(TOKENS) + ["done"]
    assert {e["index"] for e in events} == {1}
    start = next(e for e in events if e["event"] == "start")
    assert start["node_id"] in {n.node_id for n in ray_cluster.nodes}
    assert start["gpu_ids"] and start["endpoint"] == server.url
    assert [e["text"] for e in events if e["event"] == "chunk"] == TOKENS
    done = events[-1]
    assert done["done_reason"] == "stop"
    assert done["timings"]["eval_count"] == len(TOKENS)
    assert done["timings"]["tokens_per_s"] > 0
    # History has the same run, with where it ran.
    (rec,) = HistoryStore().list()
    assert (rec.state, rec.text, rec.node_id) == (RunState.DONE, ANSWER, start["node_id"])
    assert rec.gpu_ids == tuple(start["gpu_ids"])


def test_prompt_with_shell_characters_reaches_server_byte_for_byte(
    ray_cluster: RayTestCluster, server: OllamaWireServer
) -> None:
    prompt = "He said \"hi\" & 'bye'; run `ls` then $(rm -rf ~) | $HOME\n\tnext line \\ 漢字 😀\n"
    system = "You are `terse` $(whoami)"
    proc = submit_cli(
        ray_cluster, "--backend", "ollama", "--model", "llama3.2", "--endpoint", server.url,
        "--system", system, "--temperature", "0.2", "--max-tokens", "64", prompt,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ANSWER + "\n"  # one prompt: the answer exactly, streamed raw
    (req,) = [r for r in server.requests if r.path == "/api/chat"]
    body = req.json()
    assert body["messages"] == [
        {"role": "system", "content": system},
        {"role": "user", "content": prompt},
    ]
    assert req.headers["content-type"] == "application/json"
    assert body["options"] == {"temperature": 0.2, "num_predict": 64}
    assert body["stream"] is True and body["model"] == "llama3.2"
    assert "running on node" in proc.stderr and "done: stop" in proc.stderr


def test_four_prompts_on_two_gpus_two_run_two_wait_all_complete(
    ray_cluster: RayTestCluster, server: OllamaWireServer
) -> None:
    node = gpu2(ray_cluster)
    proc = submit_cli(
        ray_cluster, "--backend", "ollama", "--model", "two-seconds", "--endpoint", server.url,
        "--node", node.node_id[:10], "--json", "-",
        stdin="theme one\ntheme two\n\ntheme three\ntheme four\n",
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    events = json_events(proc.stdout)
    assert {e["index"] for e in events} == {1, 2, 3, 4}
    expected = [f"w{i} " for i in range(30)]
    for i in (1, 2, 3, 4):
        mine = [e for e in events if e["index"] == i]
        assert [e["text"] for e in mine if e["event"] == "chunk"] == expected
        assert mine[-1]["event"] == "done"
        assert next(e for e in mine if e["event"] == "start")["node_id"] == node.node_id
    # Never more than two streams at once on the two-GPU node, and two did run together.
    assert server.max_active == 2
    # Two runs started only after another finished: they waited, and said so.
    pos = {id(e): n for n, e in enumerate(events)}
    first_done = min(pos[id(e)] for e in events if e["event"] == "done")
    late = [
        i
        for i in (1, 2, 3, 4)
        if pos[id(next(e for e in events if e["index"] == i and e["event"] == "start"))]
        > first_done
    ]
    assert len(late) == 2
    for i in late:
        waits = [e for e in events if e["index"] == i and e["event"] == "waiting"]
        assert waits, f"run {i} never reported waiting"
        assert (waits[0]["gpus_free"], waits[0]["gpus_total"]) == (0, 2)
    prompts = sorted(r.json()["messages"][-1]["content"] for r in server.requests)
    assert prompts == ["theme four", "theme one", "theme three", "theme two"]


def test_unknown_node_is_bad_usage(ray_cluster: RayTestCluster, server: OllamaWireServer) -> None:
    proc = submit_cli(
        ray_cluster, "--backend", "ollama", "--model", "llama3.2", "--endpoint", server.url,
        "--node", "no-such-node", "hello",
    )  # fmt: skip
    assert proc.returncode == 2
    assert "no alive Ray node 'no-such-node'" in proc.stderr
    assert server.requests == []


def test_sigkill_of_submit_mid_stream_keeps_received_text_in_history(
    ray_cluster: RayTestCluster, server: OllamaWireServer
) -> None:
    proc = subprocess.Popen(
        [
            str(RAYTUI), "submit", "--address", ray_cluster.gcs_address, "--backend", "ollama",
            "--model", "slow", "--endpoint", server.url, "--json", "write a long essay",
        ],
        env=ray_cluster.client_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    seen: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            event = json.loads(line)
            if event["event"] == "chunk":
                seen.append(event["text"])
                if len(seen) == 5:
                    break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert seen == [f"tok{i} " for i in range(5)]
    (rec,) = HistoryStore().list()
    full = "".join(f"tok{i} " for i in range(400))
    assert rec.text.startswith("".join(seen)), rec.text  # everything printed was on disk
    assert full.startswith(rec.text)
    # The next store to open finds the run's process gone: interrupted, text kept.
    assert rec.state == RunState.INTERRUPTED and rec.prompt == "write a long essay"
    assert rec.node_id is not None and rec.gpu_ids
    # The driver's death ends its task: Ollama's stream is closed, not left generating.
    (req,) = [r for r in server.requests if r.path == "/api/chat"]
    wait_for(lambda: req.closed_by_client, 30, "the dead driver's stream to be closed")


RAY_CLIENT_DRIVER = """
import json, os, sys
import ray
from raytui.backends import dispatch
from raytui.backends.history import HistoryStore
from raytui.model.prompts import PromptRequest, event_to_json
ray.init(os.environ["CLIENT_ADDRESS"], log_to_driver=False)
history = HistoryStore()
run = dispatch.submit(PromptRequest("keep me", "ollama", "llama3.2"), history=history)
for _, event in dispatch.stream_sync([run]):
    print(json.dumps(event_to_json(event)), flush=True)
history.close()
"""


def test_prompts_through_ray_client_fail_clearly_and_keep_the_prompt(
    ray_cluster: RayTestCluster,
) -> None:
    # What the TUI's composer does when it reaches the head only through Ray Client (a remote
    # dashboard, or --via): Ray refuses streaming generators over Ray Client.
    address = f"ray://127.0.0.1:{ray_cluster.client_port}"
    for _attempt in range(2):
        proc = subprocess.run(
            [sys.executable, "-c", RAY_CLIENT_DRIVER],
            env=ray_cluster.client_env(CLIENT_ADDRESS=address),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        # Ray's client proxy starts a server per client; once in a full-suite run that server
        # failed to start ("Starting Ray client server failed", before any raytui code ran).
        # That is Ray's, not what this test is about: one more client, then its logs if it fails.
        if "Starting Ray client server failed" not in proc.stderr:
            break
    server_logs = sorted(ray_cluster.temp_dir.glob("session_*/logs/ray_client_server_*.err"))
    tails = "\n".join(f"{f}: {f.read_text(errors='replace')[-600:]}" for f in server_logs[-2:])
    assert proc.returncode == 0, proc.stderr[-2000:] + "\n" + tails
    (event,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert event["event"] == "error" and event["kind"] == "bad_request"
    assert event["error"] == dispatch.RAY_CLIENT_CANNOT_STREAM
    (rec,) = HistoryStore().list()
    assert (rec.prompt, rec.state, rec.error) == (
        "keep me", RunState.FAILED, dispatch.RAY_CLIENT_CANNOT_STREAM,
    )  # fmt: skip


# -- in-process, through the dispatch API the TUI uses -------------------------------------


async def test_cancel_mid_stream_closes_connection_and_frees_the_gpu(
    ray_driver: RayTestCluster, server: OllamaWireServer
) -> None:
    node = gpu2(ray_driver)
    free_before, total = dispatch.gpu_counts(node.node_id)
    assert total == 2
    run = dispatch.submit(
        PromptRequest("go on forever", "ollama", "slow", node=node.node_id, endpoint=server.url),
        history=HistoryStore(),
    )
    events = []
    async for event in run.events():
        events.append(event)
        if sum(isinstance(e, Chunk) for e in events) == 3:
            run.cancel()
    assert isinstance(events[-1], Failed) and events[-1].kind == FailureKind.CANCELLED
    assert run.state == RunState.CANCELLED
    (req,) = [r for r in server.requests if r.path == "/api/chat"]
    await _until(lambda: req.closed_by_client, 10, "the server to see the connection closed")
    assert not req.finished and req.chunks_sent < 50
    await _until(
        lambda: dispatch.gpu_counts(node.node_id)[0] == free_before, 10, "the GPU to be free"
    )
    assert run.history is not None
    run.history.flush()
    rec = run.history.get(run.run_id)
    assert rec is not None and rec.state == RunState.CANCELLED
    assert rec.text.startswith("tok0 tok1 tok2 ")


async def test_missing_model_fails_with_pull_hint(
    ray_driver: RayTestCluster, server: OllamaWireServer
) -> None:
    run = dispatch.submit(PromptRequest("hi", "ollama", "nope:7b", endpoint=server.url))
    events = await collect(run)
    started = next(e for e in events if isinstance(e, Started))
    failed = events[-1]
    assert isinstance(failed, Failed) and failed.kind == FailureKind.MODEL_MISSING
    assert f"model nope:7b not found on node {started.node_id[:8]}" in failed.error
    assert "ollama pull nope:7b" in failed.error
    assert "model 'nope:7b' not found" in failed.error


async def test_error_line_mid_stream_fails_and_keeps_text(
    ray_driver: RayTestCluster, server: OllamaWireServer
) -> None:
    store = HistoryStore()
    run = dispatch.submit(
        PromptRequest("hi", "ollama", "breaks", endpoint=server.url), history=store
    )
    events = await collect(run)
    assert [e.text for e in events if isinstance(e, Chunk)] == ["partial ", "answer "] * 2
    failed = events[-1]
    assert isinstance(failed, Failed) and failed.kind == FailureKind.SERVER
    assert "failed mid-stream: an error was encountered" in failed.error
    rec = store.get(run.run_id)
    assert rec is not None and rec.state == RunState.FAILED
    assert rec.text == "partial answer partial answer " and rec.error == failed.error


async def test_unreachable_ollama_names_the_node(ray_driver: RayTestCluster) -> None:
    run = dispatch.submit(PromptRequest("hi", "ollama", "m", endpoint="http://127.0.0.1:9"))
    events = await collect(run)
    failed = events[-1]
    assert isinstance(failed, Failed) and failed.kind == FailureKind.UNREACHABLE
    assert "Ollama unreachable on node" in failed.error and "127.0.0.1:9" in failed.error


async def test_no_node_with_enough_gpus_fails_at_once(ray_driver: RayTestCluster) -> None:
    run = dispatch.submit(PromptRequest("hi", "ollama", "m", num_gpus=5))
    events = await collect(run)
    assert len(events) == 1 and isinstance(events[0], Failed)
    assert events[0].kind == FailureKind.NO_GPU


async def test_model_list_and_pull_with_progress(
    ray_driver: RayTestCluster, server: OllamaWireServer
) -> None:
    node = gpu2(ray_driver)
    models = await asyncio.to_thread(ollama.list_models, node.node_id, server.url)
    assert models == ["breaks:latest", "llama3.2:latest", "slow:latest", "two-seconds:latest"]
    gen = ollama.pull_model("qwen3", node.node_id, server.url)
    progress = []
    async for ref in gen:
        progress.append(await ref)
    assert isinstance(progress[-1], Done)
    steps = [p for p in progress if isinstance(p, PullProgress)]
    assert steps[0].status == "pulling manifest" and steps[-1].status == "success"
    assert [p.completed for p in steps if p.total][-1] == steps[1].total
    models = await asyncio.to_thread(ollama.list_models, node.node_id, server.url)
    assert "qwen3:latest" in models


async def test_node_removed_mid_stream_fails_keeps_text_and_driver_survives(
    ray_driver: RayTestCluster, server: OllamaWireServer
) -> None:
    node = await asyncio.to_thread(ray_driver.add_node, num_gpus=1)
    store = HistoryStore()
    run = dispatch.submit(
        PromptRequest("long one", "ollama", "slow", node=node.node_id, endpoint=server.url),
        history=store,
    )
    events = []
    async for event in run.events():
        events.append(event)
        if sum(isinstance(e, Chunk) for e in events) == 4:
            await asyncio.to_thread(ray_driver.kill_node, node)
    failed = events[-1]
    assert isinstance(failed, Failed) and failed.kind == FailureKind.NODE_DIED, failed
    assert node.node_id[:8] in failed.error
    text = "".join(e.text for e in events if isinstance(e, Chunk))
    assert text.startswith("tok0 tok1 tok2 tok3 ")
    rec = store.get(run.run_id)
    assert rec is not None and rec.state == RunState.FAILED and rec.text == text
    # The driver is still good for work.
    again = dispatch.submit(PromptRequest("hi", "ollama", "llama3.2", endpoint=server.url))
    assert isinstance((await collect(again))[-1], Done)


async def _until(predicate: object, within: float, what: str) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {within}s waiting for {what}")


def test_waiting_event_is_reported_in_json_shape() -> None:
    from raytui.model.prompts import event_to_json

    assert event_to_json(Waiting(1, 0, 2, "node abcd1234")) == {
        "event": "waiting",
        "gpus_needed": 1,
        "gpus_free": 0,
        "gpus_total": 2,
        "where": "node abcd1234",
    }
