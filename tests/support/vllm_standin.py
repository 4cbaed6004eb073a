"""A STAND-IN for vLLM's AsyncLLM (vLLM cannot be installed here: no GPU, CUDA wheels).

It has the async engine's interface as raytui uses it: `generate(prompt, sampling_params,
request_id)` is an async generator of RequestOutput-like objects carrying DELTA text,
`abort(request_id)`, `get_tokenizer()` with `apply_chat_template`. It records what it was asked
(prompt, sampling params, aborts) as JSON lines in a file the test reads, since it lives in a
Ray actor process.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any


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
    def apply_chat_template(
        self, messages: list[dict[str, str]], tokenize: bool, add_generation_prompt: bool
    ) -> str:
        assert tokenize is False and add_generation_prompt is True
        body = "".join(f"<|{m['role']}|>{m['content']}" for m in messages)
        return body + "<|assistant|>"


class StandInAsyncLLM:
    def __init__(self, log: str, tokens: list[str], tokens_per_s: float) -> None:
        self.log, self.tokens, self.gap = log, tokens, 1.0 / tokens_per_s

    def _record(self, **entry: Any) -> None:
        with open(self.log, "a", encoding="utf-8") as f:
            f.write(json.dumps({"pid": os.getpid(), **entry}) + "\n")

    async def get_tokenizer(self) -> StandInTokenizer:
        return StandInTokenizer()

    async def generate(
        self, prompt: str, sampling_params: dict[str, Any], request_id: str
    ) -> AsyncIterator[StandInRequestOutput]:
        self._record(event="generate", prompt=prompt, params=sampling_params, id=request_id)
        limit = sampling_params.get("max_tokens") or len(self.tokens)
        tokens = self.tokens[:limit]
        for i, token in enumerate(tokens):
            await asyncio.sleep(self.gap)
            last = i == len(tokens) - 1
            reason = ("length" if limit < len(self.tokens) else "stop") if last else None
            yield StandInRequestOutput(
                request_id, [StandInCompletion(token, [100 + i], reason)], finished=last
            )
        self._record(event="finished", id=request_id)

    async def abort(self, request_id: str) -> None:
        self._record(event="abort", id=request_id)


class StandInFactory:
    """The engine factory hook of raytui.backends.vllm, building the stand-in."""

    def __init__(self, log: str, tokens: list[str], tokens_per_s: float = 50.0) -> None:
        self.log, self.tokens, self.tokens_per_s = log, tokens, tokens_per_s

    def create(
        self, model: str, tensor_parallel_size: int, engine_kwargs: Mapping[str, Any]
    ) -> StandInAsyncLLM:
        engine = StandInAsyncLLM(self.log, self.tokens, self.tokens_per_s)
        engine._record(
            event="create", model=model, tp=tensor_parallel_size, kwargs=dict(engine_kwargs)
        )
        return engine

    def sampling_params(self, temperature: float | None, max_tokens: int | None) -> dict[str, Any]:
        return {"output_kind": "DELTA", "temperature": temperature, "max_tokens": max_tokens}


def read_log(path: str) -> list[dict[str, Any]]:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
