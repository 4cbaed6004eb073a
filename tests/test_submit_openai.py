"""Prompts to an OpenAI-compatible server (vllm serve, llama.cpp) via Ray GPU tasks, over SSE."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from raytui.backends import dispatch
from raytui.backends.history import HistoryStore
from raytui.model.prompts import Chunk, Done, Failed, FailureKind, PromptRequest, RunState
from tests.servers.openai_wire import OpenAIWireServer, SseScript
from tests.support.prompt_runs import collect, json_events, submit_cli
from tests.support.ray_cluster import RayTestCluster

pytestmark = [pytest.mark.ray, pytest.mark.multinode]

TOKENS = ["Ça ", "va", " — ", "東京", " 😀", "\n", "fin"]


@pytest.fixture
def server() -> Iterator[OpenAIWireServer]:
    srv = OpenAIWireServer(
        {
            "qwen": SseScript(TOKENS, tokens_per_s=40, finish_reason="length"),
            "oom": SseScript(["one ", "two ", "three "], error_after=2),
        }
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_submit_openai_streams_exact_text_with_provenance(
    ray_cluster: RayTestCluster, server: OpenAIWireServer
) -> None:
    prompt = 'quote " backtick ` $(id) \n newline'
    proc = submit_cli(
        ray_cluster, "--backend", "openai", "--model", "qwen", "--endpoint", f"{server.url}/v1",
        "--max-tokens", "7", "--json", prompt,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    events = json_events(proc.stdout)
    assert [e["text"] for e in events if e["event"] == "chunk"] == TOKENS
    start = next(e for e in events if e["event"] == "start")
    assert start["node_id"] in {n.node_id for n in ray_cluster.nodes} and start["gpu_ids"]
    done = events[-1]
    assert done["event"] == "done" and done["done_reason"] == "length"
    assert done["timings"]["eval_count"] == len(TOKENS)
    (req,) = server.requests
    body = req.json()
    assert body["messages"] == [{"role": "user", "content": prompt}]
    assert body["stream"] is True and body["max_tokens"] == 7
    (rec,) = HistoryStore().list()
    assert rec.text == "".join(TOKENS) and rec.backend == "openai"


async def test_openai_unknown_model_and_mid_stream_error(
    ray_driver: RayTestCluster, server: OpenAIWireServer
) -> None:
    url = f"{server.url}/v1"
    missing = await collect(dispatch.submit(PromptRequest("hi", "openai", "nope", endpoint=url)))
    failed = missing[-1]
    assert isinstance(failed, Failed) and failed.kind == FailureKind.MODEL_MISSING
    assert "model nope not found on node" in failed.error and "does not exist" in failed.error

    store = HistoryStore()
    run = dispatch.submit(PromptRequest("hi", "openai", "oom", endpoint=url), history=store)
    events = await collect(run)
    assert [e.text for e in events if isinstance(e, Chunk)] == ["one ", "two "]
    failed = events[-1]
    assert isinstance(failed, Failed) and failed.kind == FailureKind.SERVER
    assert "CUDA out of memory" in failed.error
    rec = store.get(run.run_id)
    assert rec is not None and rec.state == RunState.FAILED and rec.text == "one two "


async def test_openai_run_completes_in_process(
    ray_driver: RayTestCluster, server: OpenAIWireServer
) -> None:
    run = dispatch.submit(
        PromptRequest("hi", "openai", "qwen", system="be brief", endpoint=f"{server.url}/v1")
    )
    events = await collect(run)
    assert isinstance(events[-1], Done) and run.text == "".join(TOKENS)
    assert server.requests[-1].json()["messages"][0] == {"role": "system", "content": "be brief"}
