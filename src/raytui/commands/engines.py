"""`raytui engines list [--json] | stop NAME... | stop --all`: the vLLM engines on the cluster.

A vLLM engine is a long-lived Ray actor holding one loaded model on its GPUs (loading costs
minutes, so `raytui submit --backend vllm` leaves it running for the next prompt). `list` shows
every raytui engine, whoever started it; `stop` kills engines and frees their GPUs.

`list --json` prints one JSON document: a list of engines, each with name (the Ray actor name,
namespace `raytui`), ready (true once the model is loaded and the engine healthy), state
("ready", "loading", "starting" = not answering yet, "failed" = the load raised, "dead" = the
engine's core died; a failed or dead engine is replaced by the next prompt to its model), error
(why it failed or died), model, tensor_parallel_size, node_id, hostname, gpu_ids, in_flight
(requests streaming now), started_at (unix seconds, model loaded), loading_since (unix seconds).

`stop` asks each engine to shut vLLM down (its engine core processes free the GPUs) and exit;
one that has not within 30 s is killed ("killed NAME (did not shut down in 30 s)").

Exit codes: 0 ok; 1 cluster unreachable; 2 bad usage, or an engine name that does not exist.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import TextIO

from raytui import text
from raytui.backends import vllm
from raytui.commands import reserved_stdout
from raytui.commands.driver import connect, disconnect
from raytui.errors import UsageError
from raytui.model.prompts import EngineInfo


def run(args: argparse.Namespace) -> int:
    with reserved_stdout() as out:
        return _run(args, out)


def _run(args: argparse.Namespace, out: TextIO) -> int:
    action = args.engines_command
    if action == "stop" and bool(args.names) == bool(args.all):
        raise UsageError("engines stop needs engine NAMEs or --all (not both)")
    connect(
        getattr(args, "address", None),
        command="engines",
        streams=False,
        start_local=False,
        via=getattr(args, "via", None),
    )
    try:
        if action == "list":
            engines = vllm.list_engines()
            if args.json:
                out.write(json.dumps([e.to_dict() for e in engines], indent=2) + "\n")
            else:
                out.write(format_engines(engines) + "\n")
            return 0
        names = args.names or [e.name for e in vllm.list_engines()]
        for name, how in vllm.stop_engines_report(names):
            if how == "stopped":
                out.write(f"stopped {name}\n")
            else:
                out.write(f"killed {name} (did not shut down in {vllm.STOP_TIMEOUT_S:.0f} s)\n")
        if not names:
            out.write("no engines running\n")
        return 0
    finally:
        disconnect()


def format_engines(engines: list[EngineInfo], now: float | None = None) -> str:
    if not engines:
        return "no engines running (raytui submit --backend vllm starts one)"
    now = time.time() if now is None else now
    lines = []
    for e in engines:
        where = f"{e.hostname or '?'} ({(e.node_id or '')[:8]}) GPU {','.join(e.gpu_ids) or '-'}"
        state = e.status
        if state == "starting":
            lines.append(f"{e.name}  starting (not answering yet: waiting for GPUs or a worker)")
            continue
        if state == "loading":
            since = f" for {now - e.loading_since:.0f}s" if e.loading_since else ""
            lines.append(f"{e.name}  {e.model}  TP {e.tensor_parallel_size}  {where}"
                         f"  loading{since}")  # fmt: skip
            continue
        if state in ("failed", "dead"):
            why = text.one_line(e.error or "no reason given")
            lines.append(
                f"{e.name}  {e.model}  TP {e.tensor_parallel_size}  {where}  {state.upper()}:"
                f" {why} (the next prompt replaces it)"
            )
            continue
        up = f"up {now - e.started_at:.0f}s" if e.started_at else ""
        lines.append(
            f"{e.name}  {e.model}  TP {e.tensor_parallel_size}  {where}"
            f"  {e.in_flight} in flight  {up}".rstrip()
        )
    return "\n".join(lines)
