"""STAND-IN for `vllm.v1.engine.async_llm.AsyncLLM` (0.33's signatures), built on the stand-in
engine of tests/support/vllm_standin.py. `from_engine_args` records the args it got in
`CREATED`; `SETTINGS` configures the engines it builds (log file, tokens, ...)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping
from typing import Any

from tests.support.vllm_standin import StandInAsyncLLM, StandInRequestOutput

from vllm.engine_args import AsyncEngineArgs
from vllm.sampling_params import SamplingParams

CREATED: list[AsyncEngineArgs] = []
SETTINGS: dict[str, Any] = {"log": "/dev/null", "tokens": ["a", "b"], "tokens_per_s": 1000.0}


class AsyncLLM(StandInAsyncLLM):
    @classmethod
    def from_engine_args(
        cls,
        engine_args: AsyncEngineArgs,
        start_engine_loop: bool = True,
        usage_context: Any = None,
        stat_loggers: list[Any] | None = None,
    ) -> AsyncLLM:
        CREATED.append(engine_args)
        settings = dict(SETTINGS)
        return cls(settings.pop("log"), settings.pop("tokens"), settings.pop("tokens_per_s"),
                   **settings)  # fmt: skip

    async def generate(  # type: ignore[override]
        self,
        prompt: Any,
        sampling_params: SamplingParams,
        request_id: str,
        *,
        prompt_text: str | None = None,
        lora_request: Any = None,
        tokenization_kwargs: dict[str, Any] | None = None,
        trace_headers: Mapping[str, str] | None = None,
        priority: int = 0,
    ) -> AsyncIterator[StandInRequestOutput]:
        assert isinstance(sampling_params, SamplingParams), type(sampling_params)
        params = dataclasses.asdict(sampling_params)
        params["output_kind"] = sampling_params.output_kind.name
        async for out in super().generate(
            prompt, params, request_id, tokenization_kwargs=tokenization_kwargs
        ):
            yield out
