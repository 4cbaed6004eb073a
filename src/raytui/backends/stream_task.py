"""What every task that streams an answer on a node shares: HTTP timeouts, the timing of the stream
(time to first token, tokens/s, with the formulas of `model/runs.py`) and the Ray task's shape.

Runs inside Ray workers (the Ollama and OpenAI-compatible tasks, the vLLM engine actor).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from raytui.model.prompts import Timings
from raytui.model.runs import tokens_per_s, ttft

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 300.0  # a big model can take minutes to load before its first token


class StreamMeter:
    """Times one answer on the node: from the request sent (its creation) to the first text, and
    how many pieces of text came."""

    def __init__(self) -> None:
        self.sent = time.monotonic()
        self.first: float | None = None
        self.pieces = 0

    def text(self) -> None:
        """A piece of text arrived (call before yielding it)."""
        if self.first is None:
            self.first = time.monotonic()
        self.pieces += 1

    def timings(
        self,
        *,
        count: int | None = None,
        rate: float | None = None,
        measure_total: bool = False,
        **known: Any,
    ) -> Timings:
        """The run's `Timings` now that it ended. tokens/s: `rate` when the server gave one, else
        `count` tokens (default: the pieces of text) over the time since the first text.
        `measure_total`: the total duration is the time since the request was sent. `known`: the
        other `Timings` fields, as the server reported them."""
        end = time.monotonic()
        if rate is None:
            rate = tokens_per_s(self.pieces if count is None else count, self.first, end)
        if measure_total:
            known["total_duration_s"] = end - self.sent
        return Timings(ttft_s=ttft(self.sent, self.first), tokens_per_s=rate, **known)


def gpu_stream_task(fn: Callable[..., Any]) -> Any:
    """`fn` as a Ray streaming generator task needing 1 GPU and no CPU by default (dispatch
    overrides `num_gpus` and pins nodes)."""
    import ray

    # max_calls=0: Ray would otherwise retire a GPU task's worker after one call (a new process
    # per prompt, ~0.4 s); the task holds no GPU memory itself, the model server does.
    return ray.remote(num_gpus=1, num_cpus=0, num_returns="streaming", max_retries=0, max_calls=0)(
        fn
    )
