"""An HTTP server that speaks Ollama's API on the wire, byte for byte.

`/api/chat` and `/api/generate` stream `application/x-ndjson` with chunked transfer encoding: one
JSON object per line, paced at `Script.tokens_per_s`; a line holding a multi-byte UTF-8 character
is written as two HTTP chunks split inside that character; the last line has `"done":true`,
`done_reason` and nanosecond timings. A script may end with an `{"error":...}` line mid-stream
(status 200 already sent, as Ollama does). Unknown models get 404 `{"error":"model 'x' not found"}`.
`/api/tags` lists models; `/api/pull` streams progress and then knows the model.

Run as a thread (`OllamaWireServer(...).start()`) or a process:
`python -m tests.servers.ollama_wire --port 11500 --tokens-per-s 500 --tokens 200`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from dataclasses import dataclass

from tests.servers.base import Recorded, WireHandler, WireServer, go_json


@dataclass
class Script:
    """What the server answers for one model."""

    tokens: list[str]
    tokens_per_s: float | None = 50.0  # None: as fast as the socket takes them
    first_token_delay: float = 0.0
    error_after: int | None = None  # send an error line after this many tokens
    error: str = "an error was encountered while running the model: unexpected EOF"
    done_reason: str = "stop"
    split_utf8: bool = True

    @property
    def text(self) -> str:
        return "".join(self.tokens[: self.error_after])


def full_name(model: str) -> str:
    return model if ":" in model else f"{model}:latest"


def now_go() -> str:
    """Ollama's created_at: RFC 3339 with nanoseconds and a local offset."""
    t = dt.datetime.now().astimezone()
    off = t.strftime("%z")
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}123" + f"{off[:3]}:{off[3:]}"


@dataclass
class PullPlan:
    total: int = 2_019_393_189
    steps: int = 4
    error: str | None = None


class OllamaWireServer(WireServer):
    def __init__(
        self,
        models: dict[str, Script] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        pullable: dict[str, Script] | None = None,
    ) -> None:
        super().__init__(host, port)
        self.models = {full_name(k): v for k, v in (models or {}).items()}
        self.pullable = {full_name(k): v for k, v in (pullable or {}).items()}

    # -- routing -----------------------------------------------------------------------------

    def handle(self, h: WireHandler, rec: Recorded) -> None:
        path = rec.path.split("?")[0]
        if rec.method == "GET" and path == "/api/tags":
            self._tags(h)
        elif rec.method == "GET" and path in ("/", "/api/version"):
            h.send_body(200, b"Ollama is running", "text/plain; charset=utf-8")
        elif rec.method == "POST" and path in ("/api/chat", "/api/generate"):
            self._generate(h, rec, chat=path == "/api/chat")
        elif rec.method == "POST" and path == "/api/pull":
            self._pull(h, rec)
        else:
            h.send_body(404, b"404 page not found", "text/plain")

    def _error(self, h: WireHandler, status: int, message: str) -> None:
        h.send_body(status, go_json({"error": message}), "application/json; charset=utf-8")

    def _tags(self, h: WireHandler) -> None:
        models = [
            {
                "name": name,
                "model": name,
                "modified_at": "2025-05-01T10:00:00.123456789+02:00",
                "size": 2019393189,
                "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
                "details": {
                    "parent_model": "",
                    "format": "gguf",
                    "family": "llama",
                    "families": ["llama"],
                    "parameter_size": "3.2B",
                    "quantization_level": "Q4_K_M",
                },
            }
            for name in sorted(self.models)
        ]
        h.send_body(200, go_json({"models": models}), "application/json; charset=utf-8")

    # -- generation --------------------------------------------------------------------------

    def _generate(self, h: WireHandler, rec: Recorded, chat: bool) -> None:
        try:
            req = rec.json()
        except ValueError:
            self._error(h, 400, "invalid character in request body")
            return
        model = str(req.get("model", ""))
        script = self.models.get(full_name(model))
        if script is None:
            self._error(h, 404, f"model '{model}' not found")
            return
        if req.get("stream", True) is False:
            self._error(h, 400, "this test server only streams")
            return
        h.start_stream("application/x-ndjson")
        self.stream(h, rec, lambda: self._stream_tokens(h, rec, model, script, chat))

    def _line(self, model: str, chat: bool, text: str, **final: object) -> bytes:
        body: dict[str, object] = {"model": model, "created_at": now_go()}
        if chat:
            body["message"] = {"role": "assistant", "content": text}
        else:
            body["response"] = text
        body["done"] = bool(final)
        if final:
            body = {**body, "done_reason": final.pop("done_reason"), **final}
            if not chat:
                body["context"] = [128006, 9125, 128007]
        return go_json(body) + b"\n"

    def _stream_tokens(
        self, h: WireHandler, rec: Recorded, model: str, script: Script, chat: bool
    ) -> None:
        started = time.monotonic_ns()
        gap = 1.0 / script.tokens_per_s if script.tokens_per_s else 0.0
        if script.first_token_delay:
            h.pause(script.first_token_delay)
        first_at = time.monotonic_ns()
        sent = 0
        for i, token in enumerate(script.tokens):
            if script.error_after is not None and i == script.error_after:
                h.write_chunk(rec, go_json({"error": script.error}) + b"\n")
                h.end_stream()
                return
            if i and gap:
                h.pause(gap)
            line = self._line(model, chat, token)
            cut = _split_point(line) if script.split_utf8 else None
            if cut is None:
                h.write_chunk(rec, line)
            else:
                h.write_chunk(rec, line[:cut])
                h.pause(0.003)
                h.write_chunk(rec, line[cut:])
            sent += 1
        end = time.monotonic_ns()
        h.write_chunk(
            rec,
            self._line(
                model,
                chat,
                "",
                done_reason=script.done_reason,
                total_duration=end - started + 1_334_875,
                load_duration=1_334_875,
                prompt_eval_count=26,
                prompt_eval_duration=max(first_at - started, 1),
                eval_count=sent,
                eval_duration=max(end - first_at, 1),
            ),
        )
        h.end_stream()

    # -- pull --------------------------------------------------------------------------------

    def _pull(self, h: WireHandler, rec: Recorded) -> None:
        req = rec.json()
        model = full_name(str(req.get("model") or req.get("name") or ""))
        script = self.pullable.get(model)

        def body() -> None:
            h.write_chunk(rec, go_json({"status": "pulling manifest"}) + b"\n")
            if script is None:
                h.write_chunk(rec, go_json({"error": "pull model manifest: file does not exist"}))
                h.end_stream()
                return
            digest = "sha256:dde5aa3fc5ffc17176b5e8bdc82f587b24b2678c6c66101bf7da77af9f7ccdff"
            total = 2_019_393_189
            for step in range(5):
                h.pause(0.01)
                h.write_chunk(
                    rec,
                    go_json(
                        {
                            "status": f"pulling {digest[7:19]}",
                            "digest": digest,
                            "total": total,
                            "completed": total * step // 4,
                        }
                    )
                    + b"\n",
                )
            for status in ("verifying sha256 digest", "writing manifest", "success"):
                h.write_chunk(rec, go_json({"status": status}) + b"\n")
            self.models[model] = script
            h.end_stream()

        h.start_stream("application/x-ndjson")
        self.stream(h, rec, body)


def _split_point(line: bytes) -> int | None:
    """An offset inside the first multi-byte UTF-8 character of `line`, if it has one."""
    for i, byte in enumerate(line):
        if byte >= 0xC0:
            return i + 1
    return None


def default_script(tokens: int, tokens_per_s: float | None) -> Script:
    words = ["Ray ", "schedules ", "GPU ", "tasks; ", "Ollama ", "streams ", "é ", "字 "]
    return Script([words[i % len(words)] for i in range(tokens)], tokens_per_s=tokens_per_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--model", default="llama3.2")
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--tokens-per-s", type=float, default=0.0, help="0: unlimited")
    parser.add_argument(
        "--paced", action="append", default=[], metavar="NAME=RATE",
        help="another model streaming at RATE tokens/s (0: unlimited)",
    )  # fmt: skip
    args = parser.parse_args()
    models = {args.model: default_script(args.tokens, args.tokens_per_s or None)}
    for spec in args.paced:
        name, _, rate = spec.partition("=")
        models[name] = default_script(args.tokens, float(rate) or None)
    server = OllamaWireServer(models, args.host, args.port)
    print(server.url, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
