"""Issue 8, finding 14: while the TUI owns the terminal, what the process writes to file
descriptor 2 (Ray's C++ core does, past sys.stderr) lands in the debug log, never on the screen.
A sitecustomize (tests/fd2noise) writes Ray-like warning lines to fd 2 from inside the app's
process; the binary runs in tmux against an address that does not answer (no Ray needed)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.tmux import TmuxSession

pytestmark = pytest.mark.e2e

RAYTUI = str(Path(sys.executable).parent / "raytui")
NOISE = str(Path(__file__).parent / "fd2noise")


def _env(home: Path, **extra: str) -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "USER", "LOGNAME", "TMPDIR")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(
        HOME=str(home),
        TERM="xterm-256color",
        RAYTUI_HOME=str(home / "raytui"),
        PYTHONPATH=NOISE,
        RAYTUI_TEST_FD2_NOISE="30",
    )
    env.update(extra)
    return env


@pytest.fixture
def sessions() -> Iterator[list[TmuxSession]]:
    found: list[TmuxSession] = []
    yield found
    for s in found:
        s.kill()


@pytest.mark.parametrize("debug", [False, True])
def test_writes_to_fd2_never_reach_the_screen(
    tmp_path: Path, sessions: list[TmuxSession], debug: bool
) -> None:
    extra = {"RAYTUI_DEBUG": "1"} if debug else {}
    env = _env(tmp_path, **extra)
    term = TmuxSession([RAYTUI, "--address", "http://127.0.0.1:1", "--refresh", "1"], env, 100, 30)
    sessions.append(term)
    term.wait_for(lambda s: "127.0.0.1:1" in s, 30, "the TUI's first screen")
    state = tmp_path / "raytui" / "state"
    log = state / ("debug.log" if debug else "stderr.log")
    # Noise starts 3 s into the process and keeps coming: wait until some of it was written.
    term.wait_for(lambda _s: log.exists() and "FD2-NOISE 10" in log.read_text(), 30, "noise")
    screen = term.screen()
    assert "FD2-NOISE" not in screen and "core_worker.cc" not in screen, screen
    term.send("q")
    assert term.wait_exit(30) == 0
    after = term.screen()
    assert "Traceback" not in after
    text = log.read_text()
    assert "FD2-NOISE" in text
    assert oct(log.stat().st_mode & 0o777) == "0o600"
    if debug:
        # The poller's failed connects are reported with their traceback.
        assert "raytui-poll: poll failed" in text and "Traceback" in text, text[-3000:]
