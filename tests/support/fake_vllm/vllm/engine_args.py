"""STAND-IN for `vllm.engine.arg_utils.AsyncEngineArgs`: the fields raytui passes or a user may
put in engine kwargs, with 0.33's defaults. Like the real dataclass, an unknown field is a
TypeError."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class AsyncEngineArgs:
    model: str = "Qwen/Qwen3-0.6B"
    tokenizer: str | None = None
    tensor_parallel_size: int = 1
    distributed_executor_backend: str | None = None
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    dtype: str = "auto"
    enforce_eager: bool = False
    trust_remote_code: bool = False
    enable_log_requests: bool = False
    disable_log_stats: bool = False
