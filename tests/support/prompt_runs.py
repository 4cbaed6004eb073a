"""Helpers for prompt tests: run `raytui submit` as a user would, collect a run's events."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from raytui.backends import dispatch
from raytui.model.prompts import Event
from tests.support.ray_cluster import RayTestCluster, TestNode

RAYTUI = Path(sys.executable).parent / "raytui"


def submit_cli(
    cluster: RayTestCluster,
    *args: str,
    stdin: str | None = None,
    timeout: float = 90,
) -> subprocess.CompletedProcess[str]:
    """`raytui submit --address <gcs> ARGS...`, prompts passed as argv items (never a shell)."""
    return subprocess.run(
        [str(RAYTUI), "submit", "--address", cluster.gcs_address, *args],
        input=stdin,
        env=cluster.client_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def json_events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def gpu2(cluster: RayTestCluster) -> TestNode:
    return next(n for n in cluster.nodes if n.num_gpus == 2)


async def collect(run: dispatch.Run, on_event: Callable[[Event], Any] | None = None) -> list[Event]:
    events: list[Event] = []
    async for event in run.events():
        events.append(event)
        if on_event is not None:
            on_event(event)
    return events
