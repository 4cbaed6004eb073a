"""STAND-IN for the `vllm` package (0.33's names and defaults; see ../README.md)."""

from vllm.engine_args import AsyncEngineArgs
from vllm.sampling_params import SamplingParams

__version__ = "0.33.0+standin"
__all__ = ["AsyncEngineArgs", "SamplingParams"]
