"""`raytui submit`: send prompts to the cluster's GPUs and stream the answers to stdout.

Prompts come from the arguments, or one per stdin line with `-` (blank lines skipped). All
prompts are submitted at once and run in parallel as GPUs free up; each is recorded in history
as it streams.

Text output: with one prompt its answer streams to stdout as it arrives. With several, every
answer line is printed once complete, prefixed with the prompt's number (`[1] `, `[2] `...), so
streams never mix inside a line; a last partial line is printed when its run ends. Where each run
runs, waiting for a GPU, timings and errors go to stderr with the same prefix.

`--json`: one JSON object per line on stdout, each with `index` (1-based, the prompt's position)
and `run_id`, and `event` one of: `waiting` (gpus_needed, gpus_free, gpus_total, where), `start`
(node_id, node_ip, hostname, gpu_ids, endpoint, pid), `chunk` (text), `done` (done_reason,
timings: ttft_s, tokens_per_s, prompt_eval_count, eval_count, eval_duration_s, load_duration_s,
total_duration_s), `error` (error, kind: unreachable, model_missing, server, no_gpu, node_died,
cancelled, bad_request, internal).

A run that history could not record (the database damaged, the disk full) still prints its
answer; one line on stderr says history could not be saved and why. It does not change the exit
code, which is about the runs.

Exit code: 0 when every run succeeded, 1 when any failed, 2 on bad usage or input.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from raytui import config as config_mod
from raytui.backends import dispatch
from raytui.backends.history import HistoryStore
from raytui.commands import reserved_stdout
from raytui.commands.driver import connect, disconnect
from raytui.errors import UsageError
from raytui.model.prompts import (
    Chunk,
    Done,
    Event,
    Failed,
    Loading,
    PromptRequest,
    Started,
    Waiting,
    event_to_json,
    prompt_requests,
)

FLAGS = {"num_gpus": "--gpus", "temperature": "--temperature", "max_tokens": "--max-tokens"}


def read_prompts(args_prompts: list[str], stdin: TextIO) -> list[str]:
    if "-" in args_prompts:
        if len(args_prompts) != 1:
            raise UsageError("'-' reads every prompt from stdin: give no other prompt")
        prompts = [line.rstrip("\r\n") for line in stdin]
        prompts = [p for p in prompts if p.strip()]
    else:
        prompts = list(args_prompts)
    return prompts


class TextPrinter:
    """Human output: answers on stdout (prefixed per line when several), the rest on stderr."""

    def __init__(self, count: int, out: TextIO, err: TextIO) -> None:
        self.many = count > 1
        self.out, self.err = out, err
        self.partial: dict[int, str] = {}
        self.ended_with_newline: dict[int, bool] = {}
        self.loading_step: dict[int, int] = {}

    def event(self, run: dispatch.Run, event: Event) -> None:
        tag = f"[{run.index}] "
        if isinstance(event, Chunk):
            self._text(run.index, event.text)
        elif isinstance(event, Waiting):
            self._note(
                tag,
                f"waiting for a GPU: {event.gpus_free:g}/{event.gpus_total:g} free"
                f" ({event.where}, needs {event.gpus_needed:g})",
            )
        elif isinstance(event, Loading):
            # The first, then one every 10 s: a model load takes minutes.
            step = int(event.elapsed_s // 10)
            if self.loading_step.get(run.index, -1) < step:
                self.loading_step[run.index] = step
                self._note(tag, event.describe())
        elif isinstance(event, Started):
            gpus = ",".join(event.gpu_ids) or "none"
            self._note(
                tag,
                f"running on node {event.node_id[:8]} ({event.node_ip}, {event.hostname})"
                f" GPU {gpus}",
            )
        elif isinstance(event, Done | Failed):
            self._end(run.index)
            if isinstance(event, Done):
                t = event.timings
                parts = [event.done_reason or "done"]
                if t.eval_count is not None:
                    parts.append(f"{t.eval_count} tokens")
                if t.tokens_per_s is not None:
                    parts.append(f"{t.tokens_per_s:.1f} tok/s")
                if t.ttft_s is not None:
                    parts.append(f"first token {t.ttft_s:.2f} s")
                self._note(tag, "done: " + ", ".join(parts))
            else:
                self._note(tag, f"{event.kind}: {event.error}")

    def _note(self, tag: str, text: str) -> None:
        self.err.write(f"{tag if self.many else ''}{text}\n")
        self.err.flush()

    def _text(self, index: int, text: str) -> None:
        if not self.many:
            self.out.write(text)
            self.out.flush()
            self.ended_with_newline[index] = text.endswith("\n")
            return
        buf = self.partial.get(index, "") + text
        *lines, rest = buf.split("\n")
        for line in lines:
            self.out.write(f"[{index}] {line}\n")
        self.partial[index] = rest
        if lines:
            self.out.flush()

    def _end(self, index: int) -> None:
        if not self.many:
            if index in self.ended_with_newline and not self.ended_with_newline[index]:
                self.out.write("\n")
                self.out.flush()
            return
        rest = self.partial.pop(index, "")
        if rest:
            self.out.write(f"[{index}] {rest}\n")
            self.out.flush()


def run(args: argparse.Namespace) -> int:
    with reserved_stdout() as out:
        return _run(args, out)


def _run(args: argparse.Namespace, out: TextIO) -> int:
    gpus = args.gpus if args.gpus is not None else 1
    template = PromptRequest(
        prompt="",
        backend=args.backend,
        model=args.model,
        system=args.system,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        num_gpus=gpus,
        node=args.node,
        endpoint=args.endpoint,
    )
    requests = prompt_requests(
        read_prompts(args.prompts, sys.stdin), [args.model], template, names=FLAGS
    )
    cfg = config_mod.load()
    connect(getattr(args, "address", None), command="submit", via=getattr(args, "via", None))
    history = HistoryStore()
    failed = False
    try:
        nodes = dispatch.cluster_nodes()
        if args.node:
            dispatch.resolve_node(args.node, nodes)  # bad node names are usage errors (exit 2)
        runs = [
            dispatch.submit(r, index=i, history=history, config=cfg, nodes=nodes)
            for i, r in enumerate(requests, start=1)
        ]
        printer = TextPrinter(len(runs), out, sys.stderr)
        unsaved: set[int] = set()
        for run_, event in dispatch.stream_sync(runs):
            if args.json:
                body = {"index": run_.index, "run_id": run_.run_id, **event_to_json(event)}
                out.write(json.dumps(body, ensure_ascii=False) + "\n")
                out.flush()
            else:
                printer.event(run_, event)
            if isinstance(event, Failed):
                failed = True
            if run_.history_error and run_.index not in unsaved:
                unsaved.add(run_.index)
                tag = f"[{run_.index}] " if len(runs) > 1 else ""
                sys.stderr.write(f"raytui: {tag}{run_.history_error}\n")
                sys.stderr.flush()
        failed = failed or any(not isinstance(r.final, Done) for r in runs)
    finally:
        history.close()
        disconnect()
    return 1 if failed else 0
