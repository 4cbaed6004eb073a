"""The Ollama backend: a Ray GPU task that streams one chat from the Ollama server on its node.

`chat_task` is the body of a `@ray.remote(num_gpus=1, num_cpus=0, num_returns="streaming")`
generator task (built lazily by `remote_chat()`; dispatch overrides `num_gpus` and pins nodes). It
yields `Started` (node, IP, hostname and the GPU ids Ray granted), then `Chunk`s as Ollama's NDJSON
lines arrive, then `Done` with Ollama's own timings, or `Failed` with a message naming the node.
It talks to Ollama through the official `ollama` client with a timeout; the prompt travels as JSON
data, never through a shell. Cancelling the task (`ray.cancel`) closes the HTTP stream, which makes
Ollama stop generating.

`list_models(node_id)` and `pull_model(model, node_id)` run small pinned tasks (no GPU) for the
model picker and the "model missing: pull it?" offer.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

from raytui.backends.node import endpoint_here, start_here, started_here
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
    PullProgress,
    Started,
)

_clients: dict[tuple[str, float], Any] = {}


def _client(endpoint: str, read_timeout: float) -> Any:
    """One client per endpoint per worker process: Ray reuses our workers, so the connection
    pool (and httpx's costly setup) is reused by the next prompt."""
    import httpx
    import ollama

    key = (endpoint, read_timeout)
    client = _clients.get(key)
    if client is None:
        timeout = httpx.Timeout(read_timeout, connect=CONNECT_TIMEOUT_S)
        client = _clients[key] = ollama.Client(host=endpoint, timeout=timeout)
    return client


def _ns(value: int | None) -> float | None:
    return value / 1e9 if value is not None else None


def options_for(request: PromptRequest) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if request.temperature is not None:
        options["temperature"] = request.temperature
    if request.max_tokens is not None:
        options["num_predict"] = request.max_tokens
    return options


def chat_task(
    request: PromptRequest,
    per_node_endpoints: Mapping[str, str] | None = None,
    read_timeout: float = READ_TIMEOUT_S,
) -> Iterator[Event]:
    """Runs on the node Ray chose. Yields Started, Chunk..., then Done or Failed."""
    import httpx
    import ollama

    started = start_here("ollama", request.endpoint, per_node_endpoints or {})
    yield started
    endpoint = started.endpoint
    where = node_where(started)
    client = _client(endpoint, read_timeout)
    stream: Any = None
    meter = StreamMeter()
    try:
        stream = client.chat(
            model=request.model,
            messages=request.chat_messages(),
            options=options_for(request) or None,
            stream=True,
        )
        for part in stream:
            text = part.message.content or ""
            if text:
                meter.text()
                yield Chunk(text)
            if part.done:
                eval_s = _ns(part.eval_duration)
                yield Done(
                    meter.timings(
                        rate=part.eval_count / eval_s if part.eval_count and eval_s else None,
                        prompt_eval_count=part.prompt_eval_count,
                        eval_count=part.eval_count,
                        eval_duration_s=eval_s,
                        load_duration_s=_ns(part.load_duration),
                        total_duration_s=_ns(part.total_duration),
                    ),
                    done_reason=part.done_reason,
                )
                return
        yield Failed(f"Ollama on {where} ended the stream without a final line", FailureKind.SERVER)
    except ollama.ResponseError as exc:
        yield _response_failure(exc, request.model, started, endpoint)
    except (httpx.ConnectError, ConnectionError) as exc:
        yield Failed(f"Ollama unreachable on {where} at {endpoint}: {exc}", FailureKind.UNREACHABLE)
    except httpx.TimeoutException:
        yield Failed(
            f"Ollama on {where} sent nothing for {read_timeout:g} s ({endpoint})",
            FailureKind.SERVER,
        )
    except httpx.HTTPError as exc:
        yield Failed(f"Ollama on {where}: {type(exc).__name__}: {exc}", FailureKind.SERVER)
    finally:
        if stream is not None:
            stream.close()  # closes the HTTP response: Ollama stops generating


def _response_failure(exc: Any, model: str, started: Started, endpoint: str) -> Failed:
    where = node_where(started)
    if exc.status_code == 404:
        return Failed(
            f"model {model} not found on {where}: pull it with `ollama pull {model}` on that "
            f"node (or the composer's pull action) [{exc.error}]",
            FailureKind.MODEL_MISSING,
        )
    if exc.status_code in (-1, None):
        return Failed(f"Ollama on {where} failed mid-stream: {exc.error}", FailureKind.SERVER)
    return Failed(f"Ollama on {where} answered {exc.status_code}: {exc.error}", FailureKind.SERVER)


@functools.cache
def remote_chat() -> Any:
    """`chat_task` as a Ray streaming generator task needing 1 GPU and no CPU by default."""
    return gpu_stream_task(chat_task)


# -- model list and pull -------------------------------------------------------------------


def tags_task(endpoint: str | None, per_node_endpoints: Mapping[str, str] | None) -> list[str]:
    """Runs on a node: the models its Ollama has (`/api/tags`)."""
    probe = started_here("")
    url = endpoint_here("ollama", endpoint, per_node_endpoints or {}, probe.node_id, probe.node_ip)
    client = _client(url, 10.0)
    return sorted(str(m.model) for m in client.list().models if m.model)


def pull_task(
    model: str, endpoint: str | None, per_node_endpoints: Mapping[str, str] | None
) -> Iterator[PullProgress | Done | Failed]:
    """Runs on a node: pulls `model` into its Ollama, yielding progress, then Done or Failed."""
    import httpx
    import ollama

    probe = started_here("")
    url = endpoint_here("ollama", endpoint, per_node_endpoints or {}, probe.node_id, probe.node_ip)
    client = _client(url, READ_TIMEOUT_S)
    stream: Any = None
    try:
        stream = client.pull(model, stream=True)
        for part in stream:
            yield PullProgress(str(part.status or ""), part.completed, part.total)
        yield Done()
    except ollama.ResponseError as exc:
        yield Failed(
            f"pull of {model} on {node_where(probe)} failed: {exc.error}", FailureKind.SERVER
        )
    except (httpx.HTTPError, ConnectionError) as exc:
        yield Failed(
            f"Ollama unreachable on {node_where(probe)} at {url}: {exc}", FailureKind.UNREACHABLE
        )
    finally:
        if stream is not None:
            stream.close()


def _pinned(node_id: str) -> dict[str, Any]:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return {
        "num_cpus": 0,
        "num_gpus": 0,
        "max_retries": 0,
        "scheduling_strategy": NodeAffinitySchedulingStrategy(node_id, soft=False),
    }


def list_models(
    node_id: str,
    endpoint: str | None = None,
    per_node_endpoints: Mapping[str, str] | None = None,
    timeout: float = 15.0,
) -> list[str]:
    """Blocking (call from a thread): the models Ollama on `node_id` has. Raises on failure."""
    import ray

    remote = ray.remote(tags_task).options(**_pinned(node_id))
    result: list[str] = ray.get(remote.remote(endpoint, per_node_endpoints), timeout=timeout)
    return result


def pull_model(
    model: str,
    node_id: str,
    endpoint: str | None = None,
    per_node_endpoints: Mapping[str, str] | None = None,
) -> Any:
    """Start a pull on `node_id`; returns the Ray generator of PullProgress, then Done/Failed.

    Consume with `async for ref in gen: event = await ref` (or `ray.get` off the UI loop);
    `ray.cancel(gen)` stops it.
    """
    import ray

    remote = ray.remote(pull_task).options(num_returns="streaming", **_pinned(node_id))
    return remote.remote(model, endpoint, per_node_endpoints)
