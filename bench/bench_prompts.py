"""Benchmark: the `ollama` client called directly vs raytui's path through Ray, same server.

Drives the Ollama-wire test server (tests/servers/ollama_wire.py, its own process) at 50, 500 and
unlimited tokens/s and measures, warm (worker and connection pools already up), per path:
- TTFT: request issued -> first text at the consumer;
- tokens/s: chunks after the first / time from first to last chunk at the consumer.
raytui's path is the one the CLI and TUI use: `dispatch.submit` (Ray streaming GPU task on an
embedded local Ray with 1 logical GPU, `ollama` client inside the task) -> `Run.events()` with
history committed per chunk. Run: `.venv/bin/python bench/bench_prompts.py [--reps 5]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RATES = [("tps-50", 50.0, 100), ("tps-500", 500.0, 500), ("tps-unlimited", 0.0, 2000)]


def start_server(tokens: int) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "tests.servers.ollama_wire", "--tokens", str(tokens)]
    for name, rate, _ in RATES:
        cmd += ["--paced", f"{name}={rate:g}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def direct(url: str, model: str, limit: int) -> tuple[float, float]:
    import httpx
    import ollama

    client = ollama.Client(host=url, timeout=httpx.Timeout(60.0, connect=5.0))
    t0 = time.perf_counter()
    first = last = 0.0
    n = 0
    for part in client.chat(model=model, messages=[{"role": "user", "content": "go"}],
                            options={"num_predict": limit}, stream=True):  # fmt: skip
        if part.message.content:
            now = time.perf_counter()
            if not n:
                first = now
            last = now
            n += 1
            if n >= limit:
                break
    client.close()
    return first - t0, (n - 1) / (last - first)


async def through_ray(url: str, model: str, limit: int, store: object) -> tuple[float, float]:
    from raytui.backends import dispatch
    from raytui.model.prompts import Chunk, PromptRequest

    t0 = time.perf_counter()
    run = dispatch.submit(
        PromptRequest("go", "ollama", model, max_tokens=limit, endpoint=url),
        history=store,  # type: ignore[arg-type]
    )
    first = last = 0.0
    n = 0
    async for event in run.events():
        if isinstance(event, Chunk):
            now = time.perf_counter()
            if not n:
                first = now
            last = now
            n += 1
    return first - t0, (n - 1) / (last - first)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS-prompts.md")
    args = parser.parse_args()
    os.environ["RAYTUI_HOME"] = tempfile.mkdtemp(prefix="raytui-bench-")
    sys.path.insert(0, str(ROOT))
    import ray

    from raytui.backends.history import HistoryStore

    server, url = start_server(max(t for *_, t in RATES))
    ray.init(address="local", num_cpus=2, num_gpus=1, log_to_driver=False,
             include_dashboard=False, logging_level="WARNING")  # fmt: skip
    store = HistoryStore()
    rows = []
    try:
        for name, rate, tokens in RATES:
            direct(url, name, 20)  # warm: connection, server threads
            asyncio.run(through_ray(url, name, 20, store))  # warm: Ray worker
            d = [direct(url, name, tokens) for _ in range(args.reps)]
            r = [asyncio.run(through_ray(url, name, tokens, store)) for _ in range(args.reps)]
            d_ttft, d_tps = (statistics.median(x) for x in zip(*d, strict=True))
            r_ttft, r_tps = (statistics.median(x) for x in zip(*r, strict=True))
            rows.append((rate, tokens, d_tps, r_tps, d_ttft, r_ttft))
            print(f"{name}: direct {d_tps:.0f} tok/s ttft {d_ttft*1e3:.1f} ms; "
                  f"ray {r_tps:.0f} tok/s ttft {r_ttft*1e3:.1f} ms", flush=True)  # fmt: skip
    finally:
        store.close()
        ray.shutdown()
        server.terminate()
        server.wait()
    lines = [
        "# Prompt path benchmark: `ollama` client direct vs raytui through Ray",
        "",
        f"`bench/bench_prompts.py --reps {args.reps}`, {time.strftime('%Y-%m-%d')}, "
        f"{os.cpu_count()} CPUs, embedded Ray (1 logical GPU), Ollama-wire test server in its own "
        "process; medians, warm. Targets: >= 0.95x tokens/s up to 500 tok/s, TTFT +<= 50 ms.",
        "",
        "| server rate | tokens | direct tok/s | raytui tok/s | ratio | direct TTFT | "
        "raytui TTFT | TTFT diff |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rate, tokens, d_tps, r_tps, d_ttft, r_ttft in rows:
        label = f"{rate:g} tok/s" if rate else "unlimited"
        lines.append(
            f"| {label} | {tokens} | {d_tps:.0f} | {r_tps:.0f} | {r_tps / d_tps:.2f}x | "
            f"{d_ttft * 1e3:.1f} ms | {r_ttft * 1e3:.1f} ms | {(r_ttft - d_ttft) * 1e3:+.1f} ms |"
        )
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
