"""Issue 8, finding 5: every command that reaches a cluster gives up in bounded time and says
what it waited for. `engines list --address 127.0.0.1:1` used to wait forever (Ray's driver
retries an address it cannot use, after rewriting 127.0.0.1 to the machine's own IP)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.raytui_cli import run_raytui


@pytest.fixture
def not_a_gcs() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (not a Ray GCS)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        server.close()


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), RAYTUI_HOME=str(home), RAYTUI_DRIVER_TIMEOUT="4")
    return env


SUBMIT = ["submit", "--backend", "ollama", "--model", "m"]


@pytest.mark.parametrize(
    "argv",
    [
        ["engines", "list", "--address", "127.0.0.1:1"],
        ["engines", "stop", "--all", "--address", "127.0.0.1:1"],
        [*SUBMIT, "--address", "127.0.0.1:1", "hi"],
        ["status", "--address", "127.0.0.1:1"],
    ],
)
def test_closed_port_fails_at_once(tmp_path: Path, argv: list[str]) -> None:
    started = time.monotonic()
    result = run_raytui(argv, _env(tmp_path), timeout=60)
    took = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert "127.0.0.1:1" in result.stderr and len(result.stderr.splitlines()) == 1
    assert took < 20, took


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["engines", "list", "--address", "127.0.0.1:{port}"], ["gave up after 4 s", "ray.init"]),
        ([*SUBMIT, "--address", "127.0.0.1:{port}", "hi"], ["gave up after 4 s", "ray.init"]),
        (["status", "--address", "127.0.0.1:{port}"], ["did not answer within", "dashboard"]),
    ],
)
def test_a_port_that_is_not_ray_gives_up_and_says_on_what(
    tmp_path: Path, not_a_gcs: int, argv: list[str], words: list[str]
) -> None:
    argv = [a.format(port=not_a_gcs) for a in argv]
    started = time.monotonic()
    result = run_raytui(argv, _env(tmp_path), timeout=90)
    took = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    # Ray's C++ core may add its own warnings on fd 2; raytui's line says what it waited for.
    (ours,) = [line for line in result.stderr.splitlines() if line.startswith("raytui: ")]
    for word in words:
        assert word in ours, result.stderr
    assert "SIGTERM handler" not in result.stderr
    assert took < 25, took


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--address", "127.0.0.1:{port}"],
        ["engines", "list", "--address", "127.0.0.1:{port}"],
        [*SUBMIT, "--address", "127.0.0.1:{port}", "hi"],
    ],
)
def test_token_mode_without_a_token_is_one_line_not_a_ray_crash(
    tmp_path: Path, not_a_gcs: int, argv: list[str]
) -> None:
    """RAY_AUTH_MODE=token with no token anywhere: Ray's clients end the process from C++ (a
    failed RAY_CHECK and a stack dump on fd 2); raytui says it first."""
    env = _env(tmp_path)
    env["RAY_AUTH_MODE"] = "token"
    result = run_raytui([a.format(port=not_a_gcs) for a in argv], env, timeout=60)
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.splitlines()
    assert "RAY_AUTH_MODE=token but no Ray auth token" in line and "RAY_AUTH_TOKEN" in line
