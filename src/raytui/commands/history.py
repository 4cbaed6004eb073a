"""`raytui history [--json] [--limit N] [--search TEXT]`: past prompts and answers, newest first.

`--json` prints one JSON document: a list of runs, each with run_id, created_at (epoch s), prompt,
backend, model, params, state (waiting, loading, streaming, done, failed, cancelled, interrupted:
the process running it ended first, e.g. killed or its SSH session lost), text (everything that
arrived), node_id, node_ip, hostname, gpu_ids, started_at, finished_at, ttft_s, tokens_per_s,
eval_count, done_reason, error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from raytui.backends.history import HistoryStore, default_path
from raytui.model.prompts import RunRecord


def run(args: argparse.Namespace) -> int:
    path = default_path()
    records: list[RunRecord] = []
    if path.exists():
        store = HistoryStore(path)
        try:
            records = store.list(limit=args.limit, search=args.search)
        finally:
            store.close()
        if store.unreadable:
            print(
                f"raytui: skipped {len(store.unreadable)} unreadable run(s) in {path}: "
                f"{store.unreadable[0]}" + (" …" if len(store.unreadable) > 1 else ""),
                file=sys.stderr,
            )
    if args.json:
        json.dump([r.to_json() for r in records], sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return 0
    if not records:
        print("no runs yet" if not args.search else f"no runs match {args.search!r}")
        return 0
    for rec in records:
        when = dt.datetime.fromtimestamp(rec.created_at).strftime("%Y-%m-%d %H:%M:%S")
        where = f"node {rec.node_id[:8]} GPU {','.join(rec.gpu_ids) or '-'}" if rec.node_id else ""
        stats = []
        if rec.tokens_per_s is not None:
            stats.append(f"{rec.tokens_per_s:.1f} tok/s")
        if rec.ttft_s is not None:
            stats.append(f"ttft {rec.ttft_s:.2f} s")
        head = "  ".join(
            x for x in (when, rec.state, rec.backend, rec.model, where, ", ".join(stats)) if x
        )
        print(head)
        print(f"  > {_one_line(rec.prompt)}")
        if rec.text:
            print(f"  < {_one_line(rec.text)}")
        if rec.error:
            print(f"  ! {rec.error}")
    return 0


def _one_line(text: str, width: int = 100) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
