"""Issue 8, finding 4: every class of bad input ends in one line and exit 1 or 2, never a
traceback: addresses and numbers (checked at parse time), config.toml, the history database,
the daemon's stored state, and a reader that closes the pipe (`| head -1`).

Commands run in this process through `cli.main`; the network is cut off (`offline`), so a
valid input ends in "unreachable" (exit 1) without waiting.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from raytui import cli
from raytui.backends.history import HistoryStore
from raytui.errors import ClusterUnreachable
from raytui.model.prompts import Chunk, Done, PromptRequest, Timings
from tests.support.inprocess import assert_one_line, run_main

REQ = PromptRequest("why is the sky blue?", "ollama", "llama3.2")
SUBMIT = ["submit", "--backend", "ollama", "--model", "m", "--address", "127.0.0.1:1", "hi"]


def _unreachable(*_args: object, **_kwargs: object) -> None:
    raise ClusterUnreachable("offline (test): no cluster is contacted")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every way a command reaches a cluster ends in ClusterUnreachable at once."""
    from raytui import ray_local
    from raytui.commands import driver
    from raytui.sources import attach

    monkeypatch.setattr(driver, "_check_tcp", _unreachable)
    monkeypatch.setattr(driver, "_start_local", _unreachable)
    monkeypatch.setattr(attach, "find_local_cluster", lambda: None)
    monkeypatch.setattr(ray_local, "find_local_cluster", lambda: None)  # commands' driver
    monkeypatch.setattr(attach, "dashboard_url_from_gcs", _unreachable)
    monkeypatch.setattr(attach, "EmbeddedRay", _unreachable)
    monkeypatch.setattr(attach.RayConnection, "check", _unreachable)


class _NoApp:
    """Stands in for the Textual app: a test of bad input must never get as far as the TUI."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("the TUI started despite bad input")


@pytest.fixture
def no_tui(monkeypatch: pytest.MonkeyPatch) -> None:
    import raytui.tui.app

    monkeypatch.setattr(raytui.tui.app, "RaytuiApp", _NoApp)


# --- addresses and numbers: checked at parse time ---------------------------------------------


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["status", "--address", "http://[::1"], ["not a URL"]),
        (["status", "--address", "http://[::1]:99999"], ["bad port"]),
        (["status", "--address", "http://h\uff0fx:8265"], ["not a URL"]),  # fullwidth slash
        (["status", "--address", "http://user:pw@host:8265"], ["user name or password"]),
        (["status", "--address", "h:\u00b9"], ["bad port"]),  # superscript one
        (["status", "--address", "h\x1b[2J:6379"], ["control characters"]),
        ([*SUBMIT[:5], "--address", "foo://127.0.0.1:1", "hi"], ["unknown scheme 'foo'"]),
        (["engines", "list", "--address", "foo://127.0.0.1:1"], ["unknown scheme 'foo'"]),
        (["--address", "ftp://x:1", "engines", "list"], ["unknown scheme"]),
        (["peers", "add", "/ip4/1.2.3.4/tcp/\u00b9/p2p/12D3KooWx"], ["bad TCP port"]),
        (["history", "--limit", "99999999999999999999999"], ["--limit", "1000000"]),
        (["history", "--limit", "0"], ["--limit"]),
        (["history", "--limit", "\u0661\u0662"], ["not a whole number"]),  # Arabic-Indic 12
        (["--refresh", "inf", "status"], ["finite"]),
        (["--refresh", "nan", "status"], ["finite"]),
        (["--refresh", "1e400", "status"], ["finite"]),
        ([*SUBMIT[:5], "--gpus", "\u00b9", "x"], ["--gpus", "not a whole number"]),
        ([*SUBMIT[:5], "--temperature", "nan", "x"], ["--temperature"]),
        ([*SUBMIT[:5], "--max-tokens", "1e3", "x"], ["--max-tokens"]),
        (["join", "--gpus", "99999"], ["--gpus"]),
    ],
)
def test_bad_arguments_are_one_usage_line(offline: None, argv: list[str], words: list[str]) -> None:
    result = run_main(argv)
    assert_one_line(result, codes=(2,))
    for word in words:
        assert word in result.err, result.err
    assert "\x1b" not in result.err


@pytest.mark.parametrize("value", ["foo://127.0.0.1:1", "http://[::1", "a b:6379"])
@pytest.mark.parametrize("argv", [[*SUBMIT[:5], "hi"], ["engines", "list"]])
def test_bad_ray_address_variable_is_a_usage_error_for_drivers(
    offline: None, monkeypatch: pytest.MonkeyPatch, argv: list[str], value: str
) -> None:
    """`RAY_ADDRESS=foo://...` used to reach ray.init, which imports a module named foo."""
    monkeypatch.setenv("RAY_ADDRESS", value)
    result = run_main(argv)
    assert_one_line(result, codes=(2,))
    assert "RAY_ADDRESS" in result.err


def test_good_addresses_get_as_far_as_the_network(offline: None) -> None:
    for argv in (
        ["status", "--address", "http://[::1]:8265"],
        ["status", "--address", "10.0.0.5:6379"],
        ["engines", "list", "--address", "10.0.0.5:6379"],
        SUBMIT,
    ):
        result = run_main(argv)
        assert_one_line(result, codes=(1,))
        assert "offline (test)" in result.err


# --- config.toml ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('keys = "q"\n', ["keys must be a table"]),
        ('ollama = "x"\n', ["ollama must be a table"]),
        ("endpoints = 5\n[ollama]\nendpoints = 5\n", ["ollama.endpoints must be a table"]),
        ('[ollama.endpoints]\n"10.0.0.5" = 11434\n', ["ollama.endpoints.10.0.0.5", "string"]),
        ('[openai.endpoints]\nhead = "not a url"\n', ["openai.endpoints.head", "http://"]),
        ("[keys]\nquit = 5\n", ["keys.quit must be a string"]),
        ("refresh = nan\n", ["refresh"]),
        ("refresh = inf\n", ["refresh"]),
        ("refresh = true\n", ["refresh", "boolean"]),
        ('refresh = "2"\n', ["refresh", "string"]),
        ("refresh = 0\n", ["refresh"]),
        ("refresh = [\n", ["not valid TOML"]),
    ],
)
def test_bad_config_is_one_line_naming_the_file(
    offline: None, no_tui: None, raytui_home: Path, text: str, words: list[str]
) -> None:
    config = raytui_home / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(text)
    for argv in ([], SUBMIT):
        result = run_main(argv)
        assert_one_line(result, codes=(2,))
        assert "config.toml" in result.err
        for word in words:
            assert word in result.err, result.err
    assert config.read_text() == text


@pytest.mark.parametrize("kind", ["directory", "not utf-8"])
def test_unreadable_config_file(offline: None, no_tui: None, raytui_home: Path, kind: str) -> None:
    config = raytui_home / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    if kind == "directory":
        config.mkdir()
    else:
        config.write_bytes(b"refresh = 2\n\xff\xfe\n")
    for argv in ([], SUBMIT):
        result = run_main(argv)
        assert_one_line(result, codes=(2,))
        assert "config.toml" in result.err


@pytest.mark.parametrize(
    ("keys", "words"),
    [
        ('refresh = "q"', ["'q'", "quit", "refresh"]),  # r-to-retry would quit
        ('refresh = "ctrl+"', ["'ctrl+'", "not a key name"]),
        ('quit = "qq"', ["'qq'", "not a key name"]),
        ('help = "F1"', ["'F1'", "not a key name"]),
        ('composer = "h"', ["'h'", "composer", "history"]),
    ],
)
def test_bad_keymap_is_refused_at_load(
    no_tui: None, raytui_home: Path, keys: str, words: list[str]
) -> None:
    config = raytui_home / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"[keys]\n{keys}\n")
    result = run_main([])
    assert_one_line(result, codes=(2,))
    for word in words:
        assert word in result.err, result.err


def test_good_keymaps_pass_the_check() -> None:
    from raytui.tui.keys import check_keymap

    check_keymap({})
    check_keymap({"quit": "q,ctrl+c", "cursor_down": "down,j,n", "help": "?,f1"})
    check_keymap({"probe": "ctrl+shift+p", "filter": "/", "refresh": "f5"})


# --- the history database ---------------------------------------------------------------------


def _history_with_runs(n: int = 3) -> Path:
    with HistoryStore() as store:
        for i in range(n):
            store.create(f"run{i}", REQ, created_at=1_700_000_000 + i)
            store.record(f"run{i}", Chunk(f"answer {i}\n"))
            store.record(f"run{i}", Done(Timings(eval_count=3), "stop"))
        store.flush()
        return store.path


@pytest.mark.parametrize(
    "damage", ["garbage bytes", "truncated", "text file", "directory", "header only"]
)
def test_damaged_history_is_one_line_and_kept(raytui_home: Path, damage: str) -> None:
    path = _history_with_runs(30)
    whole = path.read_bytes()
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    if damage == "directory":
        path.unlink()
        path.mkdir()
    else:
        content = {
            "garbage bytes": os.urandom(8192),
            "truncated": whole[: len(whole) // 3],
            "text file": b"these are my notes, not a database\n" * 100,
            "header only": whole[:100] + os.urandom(4000),
        }[damage]
        path.write_bytes(content)
    before = None if path.is_dir() else path.read_bytes()
    for argv in (["history"], ["history", "--json"], ["history", "--search", "x"]):
        result = run_main(argv)
        assert_one_line(result, codes=(1,))
        assert "history" in result.err and "move it away" in result.err, result.err
    if before is not None:
        assert path.read_bytes() == before  # never rewritten


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("state", "exploded"),
        ("params", "{not json"),
        ("params", "[1, 2]"),
        ("gpu_ids", '{"a": 1}'),
        ("created_at", "yesterday"),
        ("created_at", 1e300),
        ("prompt", None),
        ("tokens_per_s", "fast"),
    ],
)
def test_unreadable_rows_are_skipped_with_a_note(
    raytui_home: Path, column: str, value: object
) -> None:
    path = _history_with_runs(3)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA ignore_check_constraints = 1")
        conn.execute("PRAGMA writable_schema = 0")
        if value is None:  # NOT NULL column: rebuild the row without the constraint
            conn.execute("ALTER TABLE runs RENAME TO old_runs")
            conn.execute("CREATE TABLE runs AS SELECT * FROM old_runs")
            conn.execute("DROP TABLE old_runs")
        conn.execute(f"UPDATE runs SET {column} = ? WHERE run_id = 'run1'", (value,))
    result = run_main(["history"])
    assert_one_line(result, codes=(0,))
    assert "skipped 1 unreadable run" in result.err and "run1" in result.err
    assert "answer 0" in result.out and "answer 2" in result.out and "answer 1" not in result.out
    doc = json.loads(run_main(["history", "--json"]).out)
    assert [r["run_id"] for r in doc] == ["run2", "run0"]


# --- the daemon's stored state ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "words"),
    [
        ({"listen": ["garbage"]}, ["listen[0]", "garbage"]),
        ({"listen": ["/ip4/1.2.3.4/udp/5"]}, ["listen[0]", "/ip4/ADDR/tcp/PORT"]),
        ({"listen": ["/ip4/999.1.1.1/tcp/1"]}, ["listen[0]"]),
        ({"listen": "x"}, ["listen", "a list"]),
        ({"forwards": [{"peer_id": 1}]}, ["forwards[0].peer_id"]),
        ("[", ["unreadable proxy settings"]),
    ],
)
def test_bad_stored_state_is_one_line_before_any_daemon_starts(
    raytui_home: Path, state: object, words: list[str]
) -> None:
    file = raytui_home / "config" / "proxy.json"
    file.parent.mkdir(parents=True, exist_ok=True)
    text = state if isinstance(state, str) else json.dumps(state)
    file.write_text(text)
    for argv in (["proxy", "start"], ["proxy", "run"]):
        result = run_main(argv)
        assert_one_line(result, codes=(1, 2))
        assert "proxy.json" in result.err
        for word in words:
            assert word in result.err, result.err
    assert file.read_text() == text
    assert not (raytui_home / "run" / "proxy.pid").exists()


def test_stored_state_that_is_a_directory(raytui_home: Path) -> None:
    (raytui_home / "config" / "proxy.json").mkdir(parents=True)
    for argv in (["proxy", "start"], ["proxy", "run"]):
        result = run_main(argv)
        assert_one_line(result, codes=(1,))
        assert "proxy.json" in result.err and "cannot read" in result.err


@pytest.mark.proxy
def test_daemon_starts_with_garbage_stored_forward_binds_and_reports_them() -> None:
    from tests.proxy_support.daemons import Daemon

    d = Daemon("fw")
    try:
        binds = ["garbage", "h\x00st:1", "[::1:5", "127.0.0.1:99999", "\u00b9:\u00b9", "x" * 300]
        state = {
            "forwards": [{"peer_id": "12D3KooWnope", "service": "svc", "bind": b} for b in binds]
        }
        file = d.home / "config" / "proxy.json"
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(state))
        d.start()
        status = d.status()
        assert [f.bind for f in status.forwards] == binds
        assert all(f.error and "cannot listen" in f.error for f in status.forwards)
        shown = d.cli("proxy", "status")
        assert shown.returncode == 0 and "ERROR: cannot listen" in shown.stdout
        assert "\x00" not in shown.stdout
        assert json.loads(file.read_text())["forwards"] == state["forwards"]  # kept as they were
        assert "Traceback" not in d.log_tail(200)
    finally:
        d.cleanup()


# --- a reader that goes away (`raytui ... | head -1`) --------------------------------------------


class _ClosedPipe(io.StringIO):
    """stdout whose reader has gone: every write and flush fails like a closed pipe."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def isatty(self) -> bool:
        return False


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["status", "--help"], ["history"], ["history", "--json"], ["--version"]],
)
def test_closed_pipe_ends_quietly(raytui_home: Path, argv: list[str]) -> None:
    _history_with_runs(3)
    saved = sys.stdout, sys.stderr
    err = io.StringIO()
    sys.stdout, sys.stderr = _ClosedPipe(), err
    try:
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # --help and --version exit through argparse
            code = exc.code
    finally:
        sys.stdout, sys.stderr = saved
    assert code in (0, None), err.getvalue()
    assert err.getvalue() == ""


def test_head_minus_one_for_real(raytui_home: Path) -> None:
    """The real thing: `raytui history | head -1` with the OS's EPIPE and the exit-time flush."""
    _history_with_runs(3000)  # far more than a pipe holds: the writer meets EPIPE
    env = {**os.environ, "RAYTUI_HOME": str(raytui_home)}
    for args in (["history", "--limit", "3000"], ["history", "--json", "--limit", "3000"]):
        proc = subprocess.Popen(
            [sys.executable, "-m", "raytui", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline()
        proc.stdout.close()  # what head does after its line
        err = proc.stderr.read().decode()
        assert proc.wait(30) == 0, err
        assert err == "", err
