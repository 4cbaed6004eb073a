"""An HTTP server speaking the OpenAI chat-completions streaming wire format (as `vllm serve` does).

`POST /v1/chat/completions` with `"stream": true` answers `text/event-stream`, chunked: one
`data: {json}\\n\\n` event per delta (the first carries the role), a last delta with
`finish_reason`, a usage-only chunk when `stream_options.include_usage` is set, then
`data: [DONE]\\n\\n`. Unknown models get 404 with an OpenAI error object; a script may send an
error event mid-stream. `GET /v1/models` lists models.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from tests.servers.base import Recorded, WireHandler, WireServer


@dataclass
class SseScript:
    tokens: list[str]
    tokens_per_s: float | None = 50.0
    finish_reason: str = "stop"
    error_after: int | None = None


def _event(obj: object) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


class OpenAIWireServer(WireServer):
    def __init__(self, models: dict[str, SseScript], host: str = "127.0.0.1", port: int = 0):
        super().__init__(host, port)
        self.models = models

    def handle(self, h: WireHandler, rec: Recorded) -> None:
        path = rec.path.split("?")[0]
        if rec.method == "GET" and path == "/v1/models":
            data = [{"id": m, "object": "model", "owned_by": "test"} for m in sorted(self.models)]
            body = json.dumps({"object": "list", "data": data}).encode()
            h.send_body(200, body, "application/json")
        elif rec.method == "POST" and path == "/v1/chat/completions":
            self._chat(h, rec)
        else:
            h.send_body(404, b'{"detail":"Not Found"}', "application/json")

    def _chat(self, h: WireHandler, rec: Recorded) -> None:
        req = rec.json()
        model = req.get("model")
        script = self.models.get(model)
        if script is None:
            err = {
                "error": {
                    "message": f"The model `{model}` does not exist.",
                    "type": "NotFoundError",
                    "param": None,
                    "code": 404,
                }
            }
            h.send_body(404, json.dumps(err).encode(), "application/json")
            return
        include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
        h.start_stream("text/event-stream; charset=utf-8")
        self.stream(h, rec, lambda: self._body(h, rec, model, script, include_usage))

    def _body(
        self, h: WireHandler, rec: Recorded, model: str, script: SseScript, include_usage: bool
    ) -> None:
        base = {
            "id": "chatcmpl-4f3c2a1b",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

        def choice(delta: dict[str, str], finish: str | None = None) -> dict[str, object]:
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

        gap = 1.0 / script.tokens_per_s if script.tokens_per_s else 0.0
        first = choice({"role": "assistant", "content": ""})
        h.write_chunk(rec, _event({**base, "choices": [first]}))
        for i, token in enumerate(script.tokens):
            if script.error_after is not None and i == script.error_after:
                h.write_chunk(
                    rec, _event({"error": {"message": "CUDA out of memory", "code": 500}})
                )
                h.end_stream()
                return
            if gap:
                h.pause(gap)
            h.write_chunk(rec, _event({**base, "choices": [choice({"content": token})]}))
        h.write_chunk(rec, _event({**base, "choices": [choice({}, script.finish_reason)]}))
        if include_usage:
            usage = {"prompt_tokens": 17, "completion_tokens": len(script.tokens)}
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            h.write_chunk(rec, _event({**base, "choices": [], "usage": usage}))
        h.write_chunk(rec, b"data: [DONE]\n\n")
        h.end_stream()
