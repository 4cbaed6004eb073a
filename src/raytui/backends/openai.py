"""The OpenAI-compatible backend: a Ray GPU task streaming `/v1/chat/completions` (SSE).

For any server on the node that speaks the OpenAI chat API (`vllm serve`, llama.cpp's server,
...). Same shape as the Ollama task: yields `Started`, `Chunk`s from each `data:` line's
`choices[0].delta.content`, then `Done` (finish_reason, usage when the server sends it) or
`Failed`. httpx streams the response with timeouts; cancelling the task closes the connection.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from typing import Any

from raytui.backends.node import start_here
from raytui.backends.node import where as node_where
from raytui.backends.stream_task import (
    CONNECT_TIMEOUT_S,
    READ_TIMEOUT_S,
    StreamMeter,
    gpu_stream_task,
)
from raytui.model.prompts import (
    Chunk,
    Done,
    Event,
    Failed,
    FailureKind,
    PromptRequest,
)


def body_for(request: PromptRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": request.model,
        "messages": request.chat_messages(),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    return body


def _error_text(raw: bytes) -> str:
    try:
        err = json.loads(raw).get("error")
    except (ValueError, AttributeError):
        return raw.decode("utf-8", "replace")[:300]
    if isinstance(err, dict):
        return str(err.get("message") or err)
    return str(err)


def chat_task(
    request: PromptRequest,
    per_node_endpoints: Mapping[str, str] | None = None,
    read_timeout: float = READ_TIMEOUT_S,
) -> Iterator[Event]:
    """Runs on the node Ray chose. Yields Started, Chunk..., then Done or Failed."""
    import httpx

    started = start_here("openai", request.endpoint, per_node_endpoints or {})
    yield started
    url = f"{started.endpoint}/chat/completions"
    where = node_where(started)
    timeout = httpx.Timeout(read_timeout, connect=CONNECT_TIMEOUT_S)
    meter = StreamMeter()
    finish: str | None = None
    usage: dict[str, Any] = {}
    try:
        with (
            httpx.Client(timeout=timeout) as client,
            client.stream("POST", url, json=body_for(request)) as resp,
        ):
            if resp.status_code >= 400:
                message = _error_text(resp.read())
                kind = FailureKind.SERVER
                if resp.status_code == 404 and "model" in message.lower():
                    kind = FailureKind.MODEL_MISSING
                    message = f"model {request.model} not found on {where}: {message}"
                else:
                    message = f"server on {where} answered {resp.status_code}: {message}"
                yield Failed(message, kind)
                return
            for line in resp.iter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators, comments (": ping"), event:/id: fields
                data = line[5:].strip()
                if data == "[DONE]":
                    completion = usage.get("completion_tokens")
                    yield Done(
                        meter.timings(
                            count=completion or None,  # none or 0: the pieces of text
                            measure_total=True,
                            prompt_eval_count=usage.get("prompt_tokens"),
                            eval_count=completion,
                        ),
                        done_reason=finish,
                    )
                    return
                payload = json.loads(data)
                if "error" in payload:
                    yield Failed(
                        f"server on {where} failed mid-stream: {_error_text(data.encode())}",
                        FailureKind.SERVER,
                    )
                    return
                if payload.get("usage"):
                    usage = payload["usage"]
                for choice in payload.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content") or ""
                    if text:
                        meter.text()
                        yield Chunk(text)
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
        yield Failed(f"server on {where} ended the stream without [DONE]", FailureKind.SERVER)
    except httpx.ConnectError as exc:
        yield Failed(
            f"model server unreachable on {where} at {started.endpoint}: {exc}",
            FailureKind.UNREACHABLE,
        )
    except httpx.TimeoutException:
        yield Failed(f"server on {where} sent nothing for {read_timeout:g} s", FailureKind.SERVER)
    except (httpx.HTTPError, ValueError) as exc:
        yield Failed(f"server on {where}: {type(exc).__name__}: {exc}", FailureKind.SERVER)


@functools.cache
def remote_chat() -> Any:
    """`chat_task` as a Ray streaming generator task needing 1 GPU and no CPU by default."""
    return gpu_stream_task(chat_task)
