"""Prompts sent to the cluster's GPUs, the events their runs stream back, and history rows.

A run streams, in order: zero or more `Waiting` (added by dispatch while no GPU was granted), one
`Started` (sent by the task from the node it runs on), zero or more `Loading` (a vLLM engine still
loading its model, with the time spent so far), zero or more `Chunk`, then exactly one of
`Done` or `Failed` (`Failed(kind="cancelled")` for a cancelled run). All are plain frozen values so
they pickle across Ray and can be handed to a UI thread without locks.

`prompt_requests(...)` is the one check of what a user asks for (the composer's form and
`raytui submit`): non-blank prompts, at least one model, GPUs, temperature and max tokens in range.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from raytui.errors import UsageError

BACKENDS = ("ollama", "openai", "vllm")
MAX_GPUS = 4096  # per run
MAX_TOKENS = 10_000_000
MAX_TEMPERATURE = 2.0

DEFAULT_ENDPOINTS = {
    "ollama": "http://127.0.0.1:11434",
    "openai": "http://127.0.0.1:8000/v1",
}


@dataclass(frozen=True, slots=True)
class PromptRequest:
    """One prompt for one model. `endpoint` is the model server as the node sees it."""

    prompt: str
    backend: str
    model: str
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    num_gpus: float = 1
    node: str | None = None  # node id (prefix), IP or hostname; None = any node
    endpoint: str | None = None  # None: config file's per-node value, else the backend default

    def chat_messages(self) -> list[dict[str, str]]:
        """The chat as every backend sends it: the system prompt (if any), then the prompt."""
        messages = []
        if self.system:
            messages.append({"role": "system", "content": self.system})
        messages.append({"role": "user", "content": self.prompt})
        return messages

    def params(self) -> dict[str, Any]:
        """The generation parameters as stored in history (JSON-serialisable)."""
        return {
            "system": self.system,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "num_gpus": self.num_gpus,
            "node": self.node,
            "endpoint": self.endpoint,
        }


FIELD_NAMES = {"num_gpus": "GPUs per run", "temperature": "temperature", "max_tokens": "max tokens"}
"""How `prompt_requests` names the fields in its messages (the CLI passes its flags instead)."""


def split_prompts(text: str) -> list[str]:
    """One prompt per non-blank line (the line ends dropped, the rest kept as typed)."""
    return [line.rstrip("\r") for line in text.split("\n") if line.strip()]


def prompt_requests(
    prompts: Sequence[str],
    models: Sequence[str],
    template: PromptRequest,
    *,
    max_runs: int | None = None,
    names: Mapping[str, str] = FIELD_NAMES,
) -> list[PromptRequest]:
    """Every prompt x every model as requests shaped like `template`; `UsageError` (one line)
    for a blank prompt, no model, a value out of range or more than `max_runs` runs."""
    if not prompts or any(not p.strip() for p in prompts):
        raise UsageError("the prompt is empty")
    models = [m.strip() for m in models if m.strip()]
    if not models:
        raise UsageError("no model given")
    gpus = template.num_gpus
    if not math.isfinite(gpus) or not 0 <= gpus <= MAX_GPUS:
        raise UsageError(f"{names['num_gpus']} must be from 0 to {MAX_GPUS}")
    temperature = template.temperature
    if temperature is not None and not 0 <= temperature <= MAX_TEMPERATURE:
        raise UsageError(f"{names['temperature']} must be between 0 and {MAX_TEMPERATURE:g}")
    max_tokens = template.max_tokens
    if max_tokens is not None and not 1 <= max_tokens <= MAX_TOKENS:
        raise UsageError(f"{names['max_tokens']} must be from 1 to {MAX_TOKENS}")
    count = len(prompts) * len(models)
    if max_runs is not None and count > max_runs:
        raise UsageError(f"{count} runs at once is too many (at most {max_runs})")
    return [replace(template, prompt=prompt, model=model) for prompt in prompts for model in models]


class RunState(StrEnum):
    WAITING = "waiting"  # submitted, no GPU granted yet
    LOADING = "loading"  # running on a node, no token yet (model loading, prompt eval)
    STREAMING = "streaming"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # the process running it ended first (killed, SSH session lost)

    @property
    def final(self) -> bool:
        return self not in (RunState.WAITING, RunState.LOADING, RunState.STREAMING)


@dataclass(frozen=True, slots=True)
class Waiting:
    """No GPU granted yet. GPU counts are for the pinned node, or the whole cluster."""

    gpus_needed: float
    gpus_free: float
    gpus_total: float
    where: str = "cluster"  # "cluster" or "node <id8>"


@dataclass(frozen=True, slots=True)
class Started:
    """Sent by the task from the node it runs on, before it contacts the model server."""

    node_id: str
    node_ip: str
    hostname: str
    gpu_ids: tuple[str, ...]
    endpoint: str = ""
    pid: int = 0


@dataclass(frozen=True, slots=True)
class Loading:
    """The engine that will answer is still loading its model (sent every second or so)."""

    model: str
    node_id: str
    hostname: str
    gpu_ids: tuple[str, ...]
    elapsed_s: float  # since the engine started loading

    def describe(self) -> str:
        """'loading model M on node 1a2b3c4d (host, GPU 0,1) · 12s'"""
        gpus = ",".join(self.gpu_ids) or "-"
        where = f"node {self.node_id[:8]} ({self.hostname}, GPU {gpus})"
        return f"loading model {self.model} on {where} · {self.elapsed_s:.0f}s"


@dataclass(frozen=True, slots=True)
class Chunk:
    text: str


@dataclass(frozen=True, slots=True)
class Timings:
    """What is known when a run ends; None where the server did not say."""

    ttft_s: float | None = None  # request sent on the node -> first text
    tokens_per_s: float | None = None  # server's eval rate, else measured on the node
    prompt_eval_count: int | None = None
    eval_count: int | None = None
    eval_duration_s: float | None = None
    load_duration_s: float | None = None
    total_duration_s: float | None = None


@dataclass(frozen=True, slots=True)
class Done:
    timings: Timings = field(default_factory=Timings)
    done_reason: str | None = None


class FailureKind(StrEnum):
    UNREACHABLE = "unreachable"  # model server not reachable from the node
    MODEL_MISSING = "model_missing"
    SERVER = "server"  # the model server answered an error (before or mid-stream)
    NO_GPU = "no_gpu"  # no node in the cluster can ever grant the GPUs asked for
    NODE_DIED = "node_died"
    CANCELLED = "cancelled"
    BAD_REQUEST = "bad_request"  # unknown node, bad endpoint, ...
    INTERNAL = "internal"


@dataclass(frozen=True, slots=True)
class Failed:
    error: str
    kind: FailureKind = FailureKind.INTERNAL


@dataclass(frozen=True, slots=True)
class PullProgress:
    """One line of an Ollama model pull."""

    status: str
    completed: int | None = None
    total: int | None = None


Event = Waiting | Started | Loading | Chunk | Done | Failed
PullEvent = PullProgress | Done | Failed
"""What a model pull streams: progress lines, then Done or Failed."""

EVENT_NAMES: dict[type[Any], str] = {
    Waiting: "waiting",
    Started: "start",
    Loading: "loading",
    Chunk: "chunk",
    Done: "done",
    Failed: "error",
}


def event_to_json(event: Event) -> dict[str, Any]:
    """The `--json` shape of an event (without the prompt index)."""
    body: dict[str, Any] = {"event": EVENT_NAMES[type(event)]}
    if isinstance(event, Done):
        body["done_reason"] = event.done_reason
        body["timings"] = asdict(event.timings)
    elif isinstance(event, Started | Loading):
        body.update(asdict(event))
        body["gpu_ids"] = list(event.gpu_ids)
    else:
        body.update(asdict(event))
    return body


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """One vLLM engine actor (a loaded model) as `raytui engines list` shows it.

    `state`: "ready"; "loading" (the model loads, since `loading_since`); "starting" (the actor
    does not answer yet: waiting for GPUs or a worker); "failed" (the load raised: `error`);
    "dead" (the engine's core died or fails its health check: `error`). A failed or dead engine
    is replaced by the next prompt to its model.
    """

    name: str  # the Ray actor name, in namespace `raytui`
    ready: bool  # state == "ready"
    model: str | None = None
    tensor_parallel_size: int | None = None
    node_id: str | None = None
    hostname: str | None = None
    gpu_ids: tuple[str, ...] = ()
    in_flight: int = 0
    started_at: float | None = None  # unix seconds, when the model finished loading
    state: str = ""  # "" = derived from `ready` ("ready" / "starting")
    error: str | None = None
    loading_since: float | None = None  # unix seconds, when the load began

    @property
    def status(self) -> str:
        return self.state or ("ready" if self.ready else "starting")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ready": self.ready,
            "model": self.model,
            "tensor_parallel_size": self.tensor_parallel_size,
            "node_id": self.node_id,
            "hostname": self.hostname,
            "gpu_ids": list(self.gpu_ids),
            "in_flight": self.in_flight,
            "started_at": self.started_at,
            "state": self.status,
            "error": self.error,
            "loading_since": self.loading_since,
        }


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One history row. `text` is everything that arrived, even for a run that never finished."""

    run_id: str
    created_at: float  # epoch seconds
    prompt: str
    backend: str
    model: str
    params: dict[str, Any]
    state: RunState
    text: str = ""
    node_id: str | None = None
    node_ip: str | None = None
    hostname: str | None = None
    gpu_ids: tuple[str, ...] = ()
    started_at: float | None = None
    finished_at: float | None = None
    ttft_s: float | None = None
    tokens_per_s: float | None = None
    eval_count: int | None = None
    done_reason: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["state"] = str(self.state)
        body["gpu_ids"] = list(self.gpu_ids)
        return body
