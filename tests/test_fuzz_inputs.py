"""Property-based: whatever a user types, writes in config.toml or leaves in the daemon's stored
state or the history database, raytui ends with exit 0, 1 or 2, at most one line on stderr, no
traceback, and the stored file exactly as it was.

Everything runs in this process through `cli.main` (no subprocesses); the network is cut off
(`offline` in test_one_line_errors), so a valid input ends in "unreachable" at once. The daemon's
stored state is started for real (a libp2p host on loopback) and stopped as soon as it is up.
The control socket's messages go, raw, to a real daemon in its own process: each line gets one
JSON line back (an error with code 1 or 2, never "internal error"), the daemon keeps its pid and
its stored state is unchanged unless a valid op changed it.
"""

from __future__ import annotations

import json
import math
import socket
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from raytui.backends.history import HistoryStore
from raytui.model.prompts import Chunk, Done, PromptRequest, Timings
from raytui.proxy.control import MAX_REQUEST, SCHEMA
from raytui.tui.keys import BY_ID
from tests.proxy_support.daemons import Daemon
from tests.support.inprocess import assert_one_line, run_main
from tests.test_one_line_errors import offline  # noqa: F401 - a fixture

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- strategies ---------------------------------------------------------------------------------

# What argv and files can hold: any character but NUL and lone surrogates.
CHARS = st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")
TRICKY = st.sampled_from(
    ["", " ", ":", "::", "[", "]", "@", "/", "\uff0f", "\u00b9", "\u0661", "\x1b[2J", "\n",
     "\u202e", "%", "?", "#", "..", "-", "\x9b", "0", "65536", "99999999999999999999999"]
)  # fmt: skip
TEXT = st.one_of(st.text(CHARS, max_size=30), TRICKY, st.lists(TRICKY, max_size=4).map("".join))
HOSTS = st.one_of(
    st.sampled_from(["127.0.0.1", "::1", "[::1]", "head-1.lan", "999.1.2.3", "h\uff0fx", "xn--"]),
    st.ip_addresses().map(str),
    TEXT,
)
PORTS = st.one_of(st.integers(-5, 70000).map(str), TEXT)
ADDRESSES = st.one_of(
    TEXT,
    st.sampled_from(["auto", "local", "local ", "AUTO"]),
    st.builds(
        lambda scheme, user, host, port, rest: f"{scheme}{user}{host}{port}{rest}",
        st.sampled_from(["", "http://", "https://", "ray://", "foo://", "HTTP://", "://"]),
        st.sampled_from(["", "user:pw@", "@", "a@"]),
        HOSTS,
        st.one_of(st.just(""), PORTS.map(lambda p: f":{p}")),
        st.sampled_from(["", "/", "/x/", "?q=1", "#f", "/\u00e9"]),
    ),
)
MULTIADDRS = st.one_of(
    TEXT,
    st.lists(
        st.one_of(
            st.sampled_from(["ip4", "ip6", "dns", "tcp", "udp", "p2p", "ipfs", "quic", ""]),
            HOSTS,
            PORTS,
            st.sampled_from(["12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN", "Qm", "bafz"]),
        ),
        max_size=7,
    ).map(lambda parts: "/" + "/".join(parts)),
)
NUMBERS = st.one_of(
    st.integers().map(str),
    st.floats().map(str),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "0x10", "1_000", " 5 ", "\u00b9", "+3"]),
    TEXT,
)
SUBMIT = ["submit", "--backend", "ollama", "--model", "m"]


def _argv() -> st.SearchStrategy[list[str]]:
    a, m, n, t, num = ADDRESSES, MULTIADDRS, TEXT, ADDRESSES, NUMBERS
    return st.one_of(
        a.map(lambda x: ["status", "--address", x]),
        a.map(lambda x: ["--address", x, "status", "--json"]),
        n.map(lambda x: ["status", "--via", x]),
        a.map(lambda x: ["engines", "list", "--address", x]),
        st.tuples(a, n).map(lambda x: [*SUBMIT, "--address", x[0], x[1] or "-"]),
        st.tuples(m, n).map(lambda x: ["peers", "add", x[0], "--name", x[1]]),
        n.map(lambda x: ["peers", "remove", x]),
        st.tuples(n, t).map(lambda x: ["proxy", "expose", x[0], x[1]]),
        st.tuples(n, n, t).map(lambda x: ["proxy", "forward", x[0], x[1], "--bind", x[2]]),
        t.map(lambda x: ["proxy", "unforward", x]),
        st.tuples(m, m).map(lambda x: ["proxy", "start", "--listen", x[0], "--listen", x[1]]),
        num.map(lambda x: ["history", "--limit", x]),
        n.map(lambda x: ["history", "--search", x]),
        num.map(lambda x: ["--refresh", x, "status"]),
        st.tuples(num, num, num).map(
            lambda x: [*SUBMIT, "--gpus", x[0], "--temperature", x[1], "--max-tokens", x[2], "p"]
        ),
        st.tuples(num, num, n).map(lambda x: ["join", "--gpus", x[0], "--cpus", x[1], x[2]]),
    )


@pytest.mark.parametrize("seed", [0])  # one test id; hypothesis does the rest
@settings(FUZZ, max_examples=100)
@given(argv=_argv(), stdin=st.text(CHARS, max_size=200))
def test_command_line(offline: None, seed: int, argv: list[str], stdin: str) -> None:  # noqa: F811
    if argv[:1] == ["proxy"] and argv[1:2] == ["start"] and all("/tcp/" in a for a in argv[3::2]):
        argv = [*argv, "--listen", "bad"]  # never start a real daemon from here
    result = run_main(argv, stdin=stdin)
    assert_one_line(result)
    assert "\x1b" not in result.err and "\x9b" not in result.err


# -- config.toml --------------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


def _toml(doc: dict[str, Any]) -> str:
    return "".join(f"{json.dumps(k)} = {_toml_value(v)}\n" for k, v in doc.items())


SCALARS = st.one_of(st.booleans(), st.integers(), st.floats(), TEXT)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=6,
)
KEY_NAMES = st.one_of(
    st.sampled_from(["q", "r", "ctrl+r", "f5", "F5", "escape", "?", "question_mark", "ctrl+",
                     "shift+foo", "qq", "enter", "j,k", "", ",", "alt+ctrl+x"]),
    TEXT,
)  # fmt: skip
KEYMAPS = st.dictionaries(st.one_of(st.sampled_from(sorted(BY_ID)), TEXT), KEY_NAMES, max_size=4)
ENDPOINTS = st.dictionaries(
    TEXT, st.one_of(ADDRESSES, st.just("http://127.0.0.1:11434"), SCALARS), max_size=3
)
CONFIGS = st.one_of(
    st.text(CHARS, max_size=80),
    st.dictionaries(TEXT, VALUES, max_size=4).map(_toml),
    st.fixed_dictionaries(
        {},
        optional={
            "refresh": st.one_of(st.floats(), st.integers(), st.booleans(), TEXT),
            "keys": st.one_of(KEYMAPS, SCALARS),
            "ollama": st.one_of(st.fixed_dictionaries({"endpoints": ENDPOINTS}), VALUES),
            "openai": st.one_of(st.fixed_dictionaries({"endpoints": ENDPOINTS}), VALUES),
        },
    ).map(_toml),
)


class _StubApp:
    """The Textual app, not run: the property is about loading the configuration."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.return_code = 0
        self.poller = self

    def run(self) -> None:
        return None

    def close_blocking(self) -> None:
        return None


@pytest.mark.parametrize("seed", [0])
@FUZZ
@given(text=CONFIGS)
def test_config_file(
    offline: None,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    raytui_home: Path,
    seed: int,
    text: str,
) -> None:
    import raytui.tui.app

    monkeypatch.setattr(raytui.tui.app, "RaytuiApp", _StubApp)
    config = raytui_home / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_bytes(text.encode())
    for argv in ([], [*SUBMIT, "--address", "127.0.0.1:1", "hi"]):
        result = run_main(argv)
        assert_one_line(result)
        if result.code == 2:
            assert "config.toml" in result.err
    assert config.read_bytes() == text.encode()


# -- the daemon's stored state ------------------------------------------------------------------

PEER_ID = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=6,
)


def _either(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the right type (so the daemon gets to start), sometimes anything."""
    return st.one_of(good, good, good, JSONISH)


STRUCTURED = st.fixed_dictionaries(
    {
        "listen": st.one_of(
            *[st.just(["/ip4/127.0.0.1/tcp/0"])] * 4, st.lists(MULTIADDRS, max_size=2)
        )
    },
    optional={
        "peers": _either(
            st.lists(
                st.fixed_dictionaries(
                    {"peer_id": _either(st.sampled_from([PEER_ID, "Qm", "x"]))},
                    optional={
                        "name": _either(TEXT),
                        "addrs": _either(st.lists(MULTIADDRS, max_size=2)),
                    },
                ),
                max_size=2,
            )
        ),
        "services": _either(st.dictionaries(TEXT, _either(ADDRESSES), max_size=2)),
        "forwards": _either(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "peer_id": _either(st.sampled_from([PEER_ID, "x"])),
                        "service": _either(TEXT),
                        "bind": _either(st.one_of(st.just("127.0.0.1:0"), ADDRESSES)),
                    }
                ),
                max_size=2,
            )
        ),
        "share_token": _either(st.booleans()),
        "version": JSONISH,
    },
)
STATES = st.one_of(
    JSONISH.filter(lambda d: not isinstance(d, dict) or not {"overlay", "join"} & set(d)),
    STRUCTURED,
    STRUCTURED,
    STRUCTURED,
)


def _start_and_stop(checks: list[Callable[[Any], None]]) -> Callable[[Any], Any]:
    """Stands in for the daemon's main: the node starts for real, is looked at, and stops."""

    async def main(node: Any) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            event("the node started")
            for check in checks:
                check(node)
            node.shutdown.set()

    return main


@pytest.mark.parametrize("seed", [0])
@FUZZ
@given(state=STATES)
def test_daemon_stored_state(
    monkeypatch: pytest.MonkeyPatch, raytui_home: Path, seed: int, state: Any
) -> None:
    from raytui.commands.proxy import format_status
    from raytui.proxy import daemon

    def show(node: Any) -> None:
        status = node.status()
        for line in format_status(status).splitlines():
            assert "\n" not in line
        json.dumps(status.to_dict())

    monkeypatch.setattr(daemon, "DEFAULT_LISTEN", ("/ip4/127.0.0.1/tcp/0",))
    monkeypatch.setattr(daemon, "_main", _start_and_stop([show]))
    file = raytui_home / "config" / "proxy.json"
    file.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(state)
    file.write_text(text)
    result = run_main(["proxy", "run"])
    assert result.code in (0, 1, 2), result
    assert "Traceback" not in result.err and "internal error" not in result.err, result.err
    if result.code:
        assert len(result.err.splitlines()) == 1 and "proxy.json" in result.err, result.err
    assert file.read_text() == text


# -- the history database ------------------------------------------------------------------------

COLUMNS = ["state", "params", "gpu_ids", "created_at", "prompt", "text", "ttft_s", "eval_count",
           "node_id", "error", "started_at"]  # fmt: skip
SQL_VALUES = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    TEXT,
    st.binary(max_size=8),
    st.sampled_from(["done", "failed", "streaming", "{}", "[]", '["0"]', '{"a": 1}', "null"]),
)


@pytest.mark.parametrize("seed", [0])
@FUZZ
@given(changes=st.lists(st.tuples(st.sampled_from(COLUMNS), SQL_VALUES), max_size=4))
def test_history_rows(raytui_home: Path, seed: int, changes: list[tuple[str, Any]]) -> None:
    path = raytui_home / "data" / "history.sqlite3"
    path.unlink(missing_ok=True)
    with HistoryStore(path) as store:
        for i in range(2):
            store.create(f"run{i}", PromptRequest("p", "ollama", "m"), created_at=1.7e9 + i)
            store.record(f"run{i}", Chunk("answer"))
            store.record(f"run{i}", Done(Timings(), "stop"))
        store.flush()
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE runs RENAME TO old_runs")  # no NOT NULL: any value fits
        conn.execute("CREATE TABLE runs AS SELECT * FROM old_runs")
        conn.execute("DROP TABLE old_runs")
        for column, value in changes:
            conn.execute(f"UPDATE runs SET {column} = ? WHERE run_id = 'run1'", (value,))
    for argv in (["history"], ["history", "--json"]):
        result = run_main(argv)
        assert_one_line(result, codes=(0,))
        if argv[-1] == "--json":
            assert len(json.loads(result.out)) in (1, 2)


# -- the daemon's control socket -----------------------------------------------------------------

# Every op but `shutdown` (which, valid, ends the daemon on purpose).
CONTROL_OPS = sorted(op for op in SCHEMA if op != "shutdown")
FIELD_NAMES = sorted({key for spec in SCHEMA.values() for key in spec} | {"op", "", "x"})
# Ops that answer without changing the stored state.
READ_ONLY_OPS = {"ping", "status", "peers.list", "token"}
FIELD_VALUES = st.one_of(
    JSONISH,
    st.floats(),  # nan and infinities too (json.dumps writes NaN, Infinity)
    st.integers(-(2**80), 2**80),
    st.text(CHARS, min_size=1, max_size=30),
    st.sampled_from(["false", "true", "0", "127.0.0.1:1", "/ip4/127.0.0.1/tcp/1", "h" * 70_000]),
    st.dictionaries(st.sampled_from(["ray-gcs", "ray-dashboard", "x"]), JSONISH, max_size=3),
)
REQUESTS = st.builds(
    lambda op, fields: {"op": op, **fields},
    st.one_of(st.sampled_from(CONTROL_OPS), JSONISH),
    st.dictionaries(st.one_of(st.sampled_from(FIELD_NAMES), TEXT), FIELD_VALUES, max_size=4),
).filter(lambda r: r["op"] != "shutdown")
RAW_LINES = st.sampled_from(
    [
        b"",
        b"   ",
        b"\xff\xfe\x80 not UTF-8",
        b'{"op": "ping"}{"op": "status"}',  # two requests on one line
        b'{"op": "expose", "name": "\\ud800", "target": "a:1"}',  # a lone surrogate
        b"[" * 30_000 + b"]" * 30_000,  # nested beyond the parser's recursion limit
        b'{"op": "ping", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b"9" * 5000,  # beyond int's digit limit
        b'"op"',
        b"null",
        b'{"op": "shutdown", "now": true}',  # shutdown takes no field: refused, not obeyed
    ]
)


def _payload(requests: list[Any], raw: list[bytes], newline_at_end: bool) -> tuple[bytes, int]:
    """The bytes to send and how many request lines they hold."""
    lines = [json.dumps(r).encode() for r in requests] + raw
    data = b"\n".join(lines) + (b"\n" if newline_at_end else b"")
    expected = len(lines) - (0 if newline_at_end or lines[-1].strip() else 1)
    return data, expected


def _exchange(path: Path, data: bytes) -> tuple[list[bytes], bool]:
    """Send everything, half-close, read every reply line until the daemon closes. Also whether
    the daemon reset the connection (it does after refusing an over-long request unread)."""
    buf = b""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(60)
        sock.connect(str(path))
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(65536):
                buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return buf.splitlines(), True
    assert buf == b"" or buf.endswith(b"\n"), buf[-200:]
    return buf.splitlines(), False


@pytest.fixture(scope="module")
def control_daemon() -> Iterator[Daemon]:
    daemon = Daemon("fz")
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.cleanup()


@pytest.mark.proxy
@pytest.mark.parametrize("seed", [0])
@settings(FUZZ, max_examples=100)
@given(
    requests=st.lists(REQUESTS, max_size=3),
    raw=st.lists(RAW_LINES, max_size=2),
    newline_at_end=st.booleans(),
)
def test_control_socket_messages(
    control_daemon: Daemon,
    seed: int,
    requests: list[Any],
    raw: list[bytes],
    newline_at_end: bool,
) -> None:
    daemon = control_daemon
    pid = daemon.control.ping()["pid"]
    state_file = daemon.home / "config" / "proxy.json"
    before = state_file.read_bytes() if state_file.exists() else None
    if not requests and not raw:
        raw = [b""]
    data, expected = _payload(requests, raw, newline_at_end)
    lines, reset = _exchange(daemon.home / "run" / "proxy.sock", data)
    replies = [json.loads(line) for line in lines]

    over_long = any(len(line) > MAX_REQUEST for line in data.split(b"\n"))
    too_long = [r for r in replies if "longer than" in str(r.get("error"))]
    if reset or too_long:
        assert over_long, (reset, replies)
        event("an over-long request: refused, connection closed")
    if too_long:
        assert replies[-1] is too_long[0] and len(replies) <= expected, replies
    elif not reset:
        assert len(replies) == expected, (data[:300], replies)
    changed = False
    for reply in replies:
        assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool), reply
        if not reply["ok"]:
            assert reply.get("code") in (1, 2), reply
            error = reply.get("error")
            assert isinstance(error, str) and "\n" not in error and len(error) < 2000, reply
            assert "internal error" not in error, reply
            event(f"refused with code {reply['code']}")
        else:
            changed = True
    for request, reply in zip(requests, replies, strict=False):
        if reply.get("ok") and request["op"] not in READ_ONLY_OPS:
            event(f"valid op {request['op']}")
    assert daemon.proc is not None and daemon.proc.poll() is None, daemon.log_tail()
    assert daemon.control.ping()["pid"] == pid
    if not changed:
        after = state_file.read_bytes() if state_file.exists() else None
        assert after == before
