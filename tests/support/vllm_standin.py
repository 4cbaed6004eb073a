"""A STAND-IN for vLLM 0.33's AsyncLLM (vLLM cannot be installed here: no GPU, CUDA wheels).

It has the interface raytui uses, with 0.33's signatures (read from vLLM's source):
`generate(prompt, sampling_params, request_id, *, tokenization_kwargs=None)` an async generator
of RequestOutput-like objects carrying DELTA text; `abort(request_id)` (async);
`get_tokenizer()` (sync) with `chat_template` and `apply_chat_template`; `shutdown()` (sync);
`errored` (property); `check_health()` (async, raises when the engine is dead). Sampling params
arrive as a dict; a missing `max_tokens` means vLLM's default, 16.

Like vLLM, it tokenizes a text prompt with special tokens (a BOS) unless `tokenization_kwargs`
says `add_special_tokens=False`, and its chat template starts with the BOS: the tokens it records
show whether a prompt got two. Its load (the factory's `create`) can take `load_s` seconds or
raise; its engine can die (`die_after` requests). It records what it was asked as JSON lines in
a file the test reads, since it lives in a Ray actor process.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

BOS = "<s>"
VLLM_DEFAULT_MAX_TOKENS = 16


class StandInEngineDeadError(Exception):
    """Named like vLLM's `vllm.v1.engine.exceptions.EngineDeadError`."""


StandInEngineDeadError.__name__ = "EngineDeadError"


@dataclass
class StandInCompletion:
    text: str
    token_ids: list[int]
    finish_reason: str | None = None


@dataclass
class StandInRequestOutput:
    request_id: str
    outputs: list[StandInCompletion]
    finished: bool
    prompt_token_ids: list[int] = field(default_factory=lambda: [1, 2, 3])


class StandInTokenizer:
    def __init__(self, chat_template: str | None = "{{ bos_token }}...") -> None:
        self.chat_template = chat_template
        self.bos_token = BOS

    def apply_chat_template(
        self, messages: list[dict[str, str]], tokenize: bool, add_generation_prompt: bool
    ) -> str:
        if self.chat_template is None:  # what transformers raises
            raise ValueError("Cannot use chat template functions because tokenizer.chat_template"
                             " is not set and no template argument was passed!")  # fmt: skip
        assert tokenize is False and add_generation_prompt is True
        body = "".join(f"<|{m['role']}|>{m['content']}" for m in messages)
        return BOS + body + "<|assistant|>"


class StandInAsyncLLM:
    def __init__(
        self,
        log: str,
        tokens: list[str],
        tokens_per_s: float,
        *,
        chat_template: bool = True,
        die_after: int | None = None,
        ignore_shutdown: bool = False,
    ) -> None:
        self.log, self.tokens, self.gap = log, tokens, 1.0 / tokens_per_s
        self.chat_template = chat_template
        self.die_after = die_after
        self.ignore_shutdown = ignore_shutdown
        self.requests = 0
        self.dead = False

    def _record(self, **entry: Any) -> None:
        with open(self.log, "a", encoding="utf-8") as f:
            f.write(json.dumps({"pid": os.getpid(), **entry}) + "\n")

    def get_tokenizer(self) -> StandInTokenizer:
        return StandInTokenizer("{{ bos_token }}..." if self.chat_template else None)

    @property
    def errored(self) -> bool:
        return self.dead

    async def check_health(self) -> None:
        if self.dead:
            raise StandInEngineDeadError("EngineCore encountered an issue.")

    async def generate(
        self,
        prompt: Any,
        sampling_params: Mapping[str, Any],
        request_id: str,
        *,
        tokenization_kwargs: dict[str, Any] | None = None,
    ) -> AsyncIterator[StandInRequestOutput]:
        if self.dead:
            raise StandInEngineDeadError("EngineCore encountered an issue.")
        text = prompt["prompt"] if isinstance(prompt, dict) else prompt
        add_special = (tokenization_kwargs or {}).get("add_special_tokens", True)
        tokenized = (BOS if add_special else "") + text
        bos_count = 0
        while tokenized.startswith(BOS * (bos_count + 1)):
            bos_count += 1
        self._record(
            event="generate", prompt=text, prompt_kind=type(prompt).__name__,
            params=dict(sampling_params), id=request_id, bos_count=bos_count,
        )  # fmt: skip
        self.requests += 1
        if self.die_after is not None and self.requests > self.die_after:
            self.dead = True
            raise StandInEngineDeadError("EngineCore encountered an issue.")
        limit = sampling_params.get("max_tokens", VLLM_DEFAULT_MAX_TOKENS)
        tokens = self.tokens[:limit] if limit is not None else self.tokens
        for i, token in enumerate(tokens):
            await asyncio.sleep(self.gap)
            last = i == len(tokens) - 1
            reason = ("length" if len(tokens) < len(self.tokens) else "stop") if last else None
            yield StandInRequestOutput(
                request_id, [StandInCompletion(token, [100 + i], reason)], finished=last
            )
        self._record(event="finished", id=request_id)

    async def abort(self, request_id: str) -> None:
        self._record(event="abort", id=request_id)

    def shutdown(self, timeout: float | None = None) -> None:
        self._record(event="shutdown")
        if self.ignore_shutdown:
            time.sleep(3600)  # a wedged engine core: raytui must kill the actor


class StandInFactory:
    """The engine factory hook of raytui.backends.vllm, building the stand-in.

    `create` is the model load, blocking like `AsyncLLM.from_engine_args`: it takes `load_s`
    seconds, then raises `load_error` if one is given (the first `fail_loads` times only).
    """

    def __init__(
        self,
        log: str,
        tokens: list[str],
        tokens_per_s: float = 50.0,
        *,
        load_s: float = 0.0,
        load_error: str | None = None,
        fail_loads: int | None = None,
        **engine: Any,
    ) -> None:
        self.log, self.tokens, self.tokens_per_s = log, tokens, tokens_per_s
        self.load_s, self.load_error, self.engine = load_s, load_error, engine
        self.fail_loads = fail_loads  # None: every load fails (with load_error)

    def create(
        self, model: str, tensor_parallel_size: int, engine_kwargs: Mapping[str, Any]
    ) -> StandInAsyncLLM:
        engine = StandInAsyncLLM(self.log, self.tokens, self.tokens_per_s, **self.engine)
        engine._record(
            event="create", model=model, tp=tensor_parallel_size, kwargs=dict(engine_kwargs)
        )
        time.sleep(self.load_s)
        failed = sum(e["event"] == "load_failed" for e in read_log(self.log))
        if self.load_error is not None and (self.fail_loads is None or failed < self.fail_loads):
            engine._record(event="load_failed")
            raise RuntimeError(self.load_error)
        engine._record(event="loaded")
        return engine

    def sampling_params(self, temperature: float | None, max_tokens: int | None) -> dict[str, Any]:
        return {"output_kind": "DELTA", "temperature": temperature, "max_tokens": max_tokens}


def read_log(path: str) -> list[dict[str, Any]]:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
