"""`raytui engines list [--json] | stop NAME... | stop --all`: the vLLM engines on the cluster.

A vLLM engine is a long-lived Ray actor holding one loaded model on its GPUs (loading costs
minutes, so `raytui submit --backend vllm` leaves it running for the next prompt). `list` shows
every raytui engine, whoever started it; `stop` kills engines and frees their GPUs.

`list --json` prints one JSON document: a list of engines, each with name (the Ray actor name,
namespace `raytui`), ready (false while the model loads), model, tensor_parallel_size, node_id,
hostname, gpu_ids, in_flight (requests streaming now), started_at (unix seconds, model loaded).

Exit codes: 0 ok; 1 cluster unreachable; 2 bad usage, or an engine name that does not exist.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import TextIO

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
        for name in vllm.stop_engines(names):
            out.write(f"stopped {name}\n")
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
        if not e.ready:
            lines.append(f"{e.name}  loading (not answering yet)")
            continue
        where = f"{e.hostname or '?'} ({(e.node_id or '')[:8]}) GPU {','.join(e.gpu_ids) or '-'}"
        up = f"up {now - e.started_at:.0f}s" if e.started_at else ""
        lines.append(
            f"{e.name}  {e.model}  TP {e.tensor_parallel_size}  {where}"
            f"  {e.in_flight} in flight  {up}".rstrip()
        )
    return "\n".join(lines)
