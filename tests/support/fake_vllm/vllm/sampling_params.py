"""STAND-IN for `vllm.sampling_params`: `RequestOutputKind` and `SamplingParams` with 0.33's
defaults (notably `max_tokens=16`, and None meaning "up to the model's context")."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class RequestOutputKind(Enum):
    CUMULATIVE = 0
    DELTA = 1
    FINAL_ONLY = 2


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = 16
    output_kind: RequestOutputKind = RequestOutputKind.CUMULATIVE
