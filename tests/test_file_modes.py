"""Nothing raytui writes is readable by another user: after a run of the daemon (detached, with its
log and pid file), the stored settings and the prompt history, under umask 022 and with raytui's
directories (and some files) already there with wide modes, every directory of raytui's own is
0700 and every file 0600."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from raytui.backends.history import HistoryStore
from raytui.model.prompts import Chunk, PromptRequest
from tests.proxy_support.daemons import free_port


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def raytui(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "raytui", *args], capture_output=True, text=True, timeout=60
    )


def _modes(home: Path) -> dict[str, str]:
    """Every path under `home` whose mode lets anyone but the owner in: relative path -> mode."""
    wide = {}
    for path in sorted(home.rglob("*")):
        st = path.lstat()
        mode = stat.S_IMODE(st.st_mode)
        expected = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
        if mode != expected:
            wide[str(path.relative_to(home))] = oct(mode)
    return wide


@pytest.mark.proxy
def test_files_and_dirs_are_owner_only_whatever_existed(raytui_home: Path, umask_022: None) -> None:
    for name in ("config", "data", "state", "run"):
        (raytui_home / name).mkdir(exist_ok=True)
        (raytui_home / name).chmod(0o755)
    # Files left by an older version with the umask's mode.
    for name in ("data/history.sqlite3", "state/proxy.log", "run/proxy.pid"):
        (raytui_home / name).write_bytes(b"")
        (raytui_home / name).chmod(0o644)

    port = free_port()
    out = raytui("proxy", "start", "--listen", f"/ip4/127.0.0.1/tcp/{port}")
    try:
        assert out.returncode == 0, out.stderr
        assert raytui("proxy", "expose", "web", "127.0.0.1:8080").returncode == 0
        with HistoryStore() as store:
            store.create("r1", PromptRequest("a private prompt", "ollama", "m")).result(5)
            store.record("r1", Chunk("a private answer")).result(5)
            assert (raytui_home / "data" / "history.sqlite3-wal").exists()
            assert _modes(raytui_home) == {}
        assert (raytui_home / "run" / "proxy.pid").read_text().split()[0].isdigit()
        assert (raytui_home / "state" / "proxy.log").stat().st_size > 0
        assert _modes(raytui_home) == {}
    finally:
        stopped = raytui("proxy", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert _modes(raytui_home) == {}
