"""`VllmFactory` and the engine actor's body under a STAND-IN `vllm` package (vLLM 0.33's names,
signatures and defaults: tests/support/fake_vllm), in this process.

These check the arguments raytui hands vLLM: `AsyncEngineArgs(model, tensor_parallel_size,
distributed_executor_backend="mp", **engine_kwargs)`, `SamplingParams` with `max_tokens` always
given (vLLM's default is 16), a text prompt tokenized without special tokens (the chat template
carries the BOS), a synchronous `get_tokenizer()`, keyword-only `tokenization_kwargs`.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from raytui.backends import vllm as backend
from raytui.model.prompts import Chunk, Done, Event, Failed, FailureKind, PromptRequest, Started
from tests.support.ray_cluster import RayTestCluster
from tests.support.vllm_standin import read_log

FAKE = Path(__file__).parent / "support" / "fake_vllm"

pytestmark = [pytest.mark.ray]


@pytest.fixture
def standin_vllm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ModuleType]:
    """`import vllm` finds the stand-in package for the duration of one test."""
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(FAKE))
    import vllm.v1.engine.async_llm as async_llm

    async_llm.CREATED.clear()
    async_llm.SETTINGS.update(log=str(tmp_path / "engine.jsonl"), tokens=["x"] * 40)
    yield async_llm
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        del sys.modules[name]


def test_vllm_factory_builds_async_engine_args_like_vllm_033_standin(
    standin_vllm: Any,
) -> None:
    engine = backend.VllmFactory().create("org/m", 2, {"gpu_memory_utilization": 0.5})
    (args,) = standin_vllm.CREATED
    assert (args.model, args.tensor_parallel_size) == ("org/m", 2)
    assert args.distributed_executor_backend == "mp"  # "ray" would deadlock inside the actor
    assert args.gpu_memory_utilization == 0.5
    assert isinstance(engine, standin_vllm.AsyncLLM)
    with pytest.raises(TypeError):  # an unknown engine argument fails like vLLM's dataclass
        backend.VllmFactory().create("org/m", 1, {"no_such_field": 1})


def test_vllm_factory_sampling_params_never_fall_back_to_16_tokens_standin(
    standin_vllm: Any,
) -> None:
    from vllm.sampling_params import RequestOutputKind, SamplingParams

    assert SamplingParams().max_tokens == 16  # the stand-in mirrors vLLM's default
    unset = backend.VllmFactory().sampling_params(None, None)
    assert unset.max_tokens is None  # up to the model's context, not 16
    assert unset.output_kind is RequestOutputKind.DELTA
    assert unset.temperature == 1.0  # vLLM's default, untouched
    given = backend.VllmFactory().sampling_params(0.2, 300)
    assert (given.max_tokens, given.temperature) == (300, 0.2)


async def _run(engine: backend.VllmEngine, request: PromptRequest) -> list[Event]:
    return [e async for e in engine.generate(request, "req-1")]


async def _loaded(engine: backend.VllmEngine) -> None:
    deadline = asyncio.get_running_loop().time() + 10
    while engine.state == "loading":
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)


async def test_vllm_engine_streams_a_whole_answer_with_one_bos_through_standin_vllm(
    standin_vllm: Any, ray_driver: RayTestCluster
) -> None:
    engine = backend.VllmEngine("org/m", 1, {}, backend.VllmFactory())
    await _loaded(engine)
    events = await _run(engine, PromptRequest("hi", "vllm", "org/m", system="short"))
    assert isinstance(events[0], Started)
    chunks = [e for e in events if isinstance(e, Chunk)]
    assert len(chunks) == 40  # the whole answer: not cut at vLLM's default of 16 tokens
    assert isinstance(events[-1], Done) and events[-1].done_reason == "stop"
    (gen,) = [e for e in read_log(standin_vllm.SETTINGS["log"]) if e["event"] == "generate"]
    assert gen["bos_count"] == 1  # the template's BOS only: no second one from tokenization
    assert gen["prompt_kind"] == "dict"  # a TextPrompt, not the deprecated bare string
    assert gen["prompt"] == "<s><|system|>short<|user|>hi<|assistant|>"
    assert gen["params"]["max_tokens"] is None and gen["params"]["output_kind"] == "DELTA"


async def test_vllm_model_without_chat_template_gets_a_clear_message_standin(
    standin_vllm: Any, ray_driver: RayTestCluster
) -> None:
    standin_vllm.SETTINGS["chat_template"] = False
    try:
        engine = backend.VllmEngine("org/base", 1, {}, backend.VllmFactory())
        await _loaded(engine)
        events = await _run(engine, PromptRequest("hi", "vllm", "org/base"))
    finally:
        del standin_vllm.SETTINGS["chat_template"]
    last = events[-1]
    assert isinstance(last, Failed) and last.kind == FailureKind.BAD_REQUEST
    assert "org/base has no chat template" in last.error
    assert not [e for e in read_log(standin_vllm.SETTINGS["log"]) if e["event"] == "generate"]
    assert engine.in_flight == 0
