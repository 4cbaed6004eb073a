"""The `raytui proxy` / `raytui peers` command line, and multiaddr validation."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from raytui.errors import UsageError
from raytui.model.peers import check_target, multiaddr_error, parse_peer_multiaddr
from tests.proxy_support.daemons import Daemon, free_port

GOOD_ID = "12D3KooWA73AbUA2dz1hWm1PToPN21piJoqKKoKioTHyCHR5m8jD"


def raytui(*args: str) -> subprocess.CompletedProcess[str]:
    """Uses the autouse RAYTUI_HOME of conftest.py (no daemon there)."""
    return subprocess.run(
        [sys.executable, "-m", "raytui", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("", "empty address"),
        ("hello world", "is not a multiaddr"),
        ("/ip4/1.2.3/tcp/4701/p2p/" + GOOD_ID, "not an IPv4 address"),
        ("/ip4/10.0.0.5/tcp/4701", "no /p2p/PEER_ID"),
        ("/ip4/10.0.0.5/udp/4701/quic-v1/p2p/" + GOOD_ID, "no /tcp/PORT"),
        ("/ip4/10.0.0.5/tcp/99999/p2p/" + GOOD_ID, "bad TCP port"),
        ("/ip4/10.0.0.5/tcp/4701/p2p/" + GOOD_ID[:-3], "not a valid libp2p peer ID"),
        ("/ip4/10.0.0.5/tcp/4701/p2p/12D3KooW0OIl", "not base58"),
        ("/ip4/10.0.0.5/tcp/4701/p2p/", "missing peer ID"),
        (
            "/ip4/10.0.0.5/tcp/4701/p2p/bafzbeigai3eoy2ccc7ybwjfz5r3rdxqrinwi4rwytly24tdbh6yk7zslrm",
            "CID form",
        ),
        ("/unix/tmp/x/p2p/" + GOOD_ID, "must start with /ip4/, /ip6/ or /dns/"),
    ],
)
def test_bad_multiaddrs_explain_themselves(text: str, expect: str) -> None:
    with pytest.raises(UsageError, match=re.escape(expect)):
        parse_peer_multiaddr(text)
    message = multiaddr_error(text)
    assert message is not None and expect in message


@pytest.mark.parametrize(
    "text",
    [
        f"/ip4/203.0.113.7/tcp/4701/p2p/{GOOD_ID}",
        f"/ip6/::1/tcp/4701/p2p/{GOOD_ID}",
        f"/dns4/lab.example.org/tcp/4701/p2p/{GOOD_ID}",
        f" /ip4/10.0.0.5/tcp/4701/ipfs/{GOOD_ID}/ ",
        "/ip4/10.0.0.5/tcp/4701/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",
    ],
)
def test_good_multiaddrs_parse(text: str) -> None:
    address = parse_peer_multiaddr(text)
    assert multiaddr_error(text) is None
    assert address.multiaddr == f"{address.transport}/p2p/{address.peer_id}"
    assert address.multiaddr.startswith(address.transport)


def test_cli_rejects_bad_multiaddr_with_exit_2() -> None:
    out = raytui("peers", "add", f"/ip4/10.0.0.5/tcp/4701/p2p/{GOOD_ID[:-3]}")
    assert out.returncode == 2
    assert "not a valid libp2p peer ID" in out.stderr
    assert "Traceback" not in out.stderr


def test_cli_without_daemon_says_how_to_start_it() -> None:
    out = raytui("proxy", "status")
    assert out.returncode == 1
    assert "proxy daemon not running: start it with `raytui proxy start`" in out.stderr


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("db..lan:5432", "empty or over-long label"),
        ("h" * 60_000 + ":80", "longer than a HOST:PORT can be"),
        ("h" * 254 + ":80", "longer than 253 characters"),
        ("x" * 64 + ".lan:80", "over-long label"),
        ("ho\x00st:80", "control characters"),
        ("ho\nst:80", "control characters"),
        ("ho st:80", "spaces"),
        ("a/b:80", "letters, digits"),
        ("-x:80", "letters, digits"),
        ("host:0", "from 1 to 65535"),
        ("host:65536", "from 0 to 65535"),
        ("host:\u00b2", "port must be a number"),
        ("host", "expected HOST:PORT"),
    ],
)
def test_bad_targets_explain_themselves(text: str, expect: str) -> None:
    with pytest.raises(UsageError, match=re.escape(expect)) as exc:
        check_target(text)
    assert "\n" not in str(exc.value) and len(str(exc.value)) < 300


@pytest.mark.parametrize(
    "text", ["127.0.0.1:80", "[::1]:6379", "localhost:8265", "db_1.lan:5432", "bücher.de:80"]
)
def test_good_targets_pass(text: str) -> None:
    host, port = check_target(text)
    assert port in (80, 6379, 8265, 5432) and host


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    d = Daemon("c")
    try:
        yield d.start()
    finally:
        d.cleanup()


@pytest.mark.proxy
def test_peers_remove_unknown_exits_2(daemon: Daemon) -> None:
    out = daemon.cli("peers", "remove", "nobody")
    assert out.returncode == 2
    assert "no peer 'nobody' on the allow-list" in out.stderr


@pytest.mark.proxy
def test_unreachable_peer_is_listed_and_reported(daemon: Daemon) -> None:
    port = free_port()  # nothing listens there
    out = daemon.cli("peers", "add", f"/ip4/127.0.0.1/tcp/{port}/p2p/{GOOD_ID}", "--name", "gone")
    # The normal first half of a mutual add: added (exit 0), with a one-line note on stderr.
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("added gone")
    assert len(out.stderr.splitlines()) == 1 and "not connected yet" in out.stderr
    assert "refused" in out.stderr.lower()
    listed = json.loads(daemon.cli("peers", "list", "--json").stdout)
    assert [(p["name"], p["state"]) for p in listed] == [("gone", "down")]
    out = daemon.cli("peers", "remove", "gone")
    assert out.returncode == 0, out.stderr
    assert json.loads(daemon.cli("peers", "list", "--json").stdout) == []


@pytest.mark.proxy
def test_expose_and_forward_errors_are_usage_errors(daemon: Daemon) -> None:
    assert daemon.cli("proxy", "expose", "bad name", "127.0.0.1:80").returncode == 2
    assert daemon.cli("proxy", "expose", "web", "nohostport").returncode == 2
    for bad in ("db..lan:5432", "h" * 60_000 + ":80", "ho\x01st:80", "web:0", "web:70000"):
        out = daemon.cli("proxy", "expose", "web", bad)
        assert out.returncode == 2, (bad[:20], out.stderr)
        assert out.stderr.startswith("raytui: bad "), out.stderr
        assert out.stderr.count("\n") == 1 and len(out.stderr) < 300
    assert daemon.cli("proxy", "forward", "nobody", "web").returncode == 2
    out = daemon.cli("proxy", "expose", "web", "127.0.0.1:8080")
    assert out.returncode == 0, out.stderr
    status = json.loads(daemon.cli("proxy", "status", "--json").stdout)
    assert status["services"] == [{"name": "web", "target": "127.0.0.1:8080"}]


@pytest.mark.proxy
def test_start_detaches_and_stop_stops(tmp_path_factory: pytest.TempPathFactory) -> None:
    d = Daemon("s")
    try:
        out = d.cli("proxy", "start", "--listen", d.listen)
        assert out.returncode == 0, out.stderr + d.log_tail()
        assert "/p2p/" in out.stdout
        pid = d.control.ping()["pid"]
        again = d.cli("proxy", "start")
        assert "already running" in again.stdout
        out = d.cli("proxy", "stop")
        assert out.returncode == 0 and f"pid {pid}" in out.stdout
        assert d.cli("proxy", "status").returncode == 1
    finally:
        d.cli("proxy", "stop")
        d.cleanup()


@pytest.mark.proxy
def test_unexpose_withdraws_services_and_the_token(daemon: Daemon) -> None:
    for name in ("ray-dashboard", "ray-client", "ray-gcs"):  # as --ray-head names them
        assert daemon.cli("proxy", "expose", name, "127.0.0.1:9001").returncode == 0
    assert daemon.cli("proxy", "expose", "--share-token").returncode == 0
    assert daemon.cli("proxy", "expose", "notes", "127.0.0.1:9000").returncode == 0
    out = daemon.cli("proxy", "unexpose", "notes")
    assert out.returncode == 0, out.stderr
    assert "no longer exposed: notes -> 127.0.0.1:9000" in out.stdout
    out = daemon.cli("proxy", "unexpose", "--ray-head", "--share-token")
    assert out.returncode == 0, out.stderr
    status = json.loads(daemon.cli("proxy", "status", "--json").stdout)
    assert {s["name"] for s in status["services"]} <= {"web"}
    assert status["share_token"] is False
    unknown = daemon.cli("proxy", "unexpose", "notes")
    assert unknown.returncode == 2
    assert "no exposed service named 'notes'" in unknown.stderr
    assert daemon.cli("proxy", "unexpose").returncode == 2


@pytest.mark.proxy
def test_unforward_closes_the_local_port(daemon: Daemon) -> None:
    # A forward needs an allow-listed peer, not a reachable one: the listener opens at once.
    far = f"/ip4/127.0.0.1/tcp/{free_port()}/p2p/{GOOD_ID}"
    daemon.cli("peers", "add", far, "--name", "far")
    try:
        out = daemon.cli("proxy", "forward", "far", "web")
        assert out.returncode == 0, out.stderr
        bind = re.search(r"forwarding (\S+) ->", out.stdout)
        assert bind is not None, out.stdout
        port = int(bind.group(1).rpartition(":")[2])
        # Listening: it accepts, then resets the connection (the peer cannot be reached), and
        # the reset may arrive before connect() returns. Refused would mean no listener.
        with contextlib.suppress(ConnectionResetError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        out = daemon.cli("proxy", "unforward", str(port))  # PORT alone means 127.0.0.1:PORT
        assert out.returncode == 0, out.stderr
        assert f"closed forward 127.0.0.1:{port} -> " in out.stdout
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
        assert json.loads(daemon.cli("proxy", "status", "--json").stdout)["forwards"] == []
        again = daemon.cli("proxy", "unforward", str(port))
        assert again.returncode == 2
        assert f"no forward bound to 127.0.0.1:{port}" in again.stderr
    finally:
        daemon.cli("peers", "remove", "far")


@pytest.mark.proxy
@pytest.mark.parametrize("content", ["{pid}\n", "{pid} 12345.67\n"])
def test_stop_with_a_stale_pid_file_signals_nothing(raytui_home: Path, content: str) -> None:
    """A daemon that crashed left its pid file; the pid now belongs to an unrelated process."""
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        (raytui_home / "run").mkdir(exist_ok=True)
        pid_file = raytui_home / "run" / "proxy.pid"
        pid_file.write_text(content.format(pid=bystander.pid))
        out = raytui("proxy", "stop")
        assert out.returncode == 0, out.stderr
        assert "stale pid file" in out.stdout and "nothing was signalled" in out.stdout
        assert str(bystander.pid) in out.stdout
        time.sleep(0.3)
        assert bystander.poll() is None, "proxy stop killed an unrelated process"
        assert not pid_file.exists()
        again = raytui("proxy", "stop")
        assert again.stdout.strip() == "proxy daemon not running"
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.proxy
def test_stop_finds_a_daemon_without_its_socket_by_its_recorded_start_time() -> None:
    d = Daemon("p").start()
    try:
        assert d.proc is not None
        pid_file = d.home / "run" / "proxy.pid"
        assert pid_file.read_text().split()[0] == str(d.proc.pid)
        (d.home / "run" / "proxy.sock").unlink()  # the control socket is gone
        out = d.cli("proxy", "stop")
        assert out.returncode == 0, out.stderr
        assert f"proxy daemon stopped (pid {d.proc.pid})" in out.stdout
        d.proc.wait(10)
    finally:
        d.cleanup()


@pytest.mark.proxy
@pytest.mark.parametrize("name", ["\x1b[2J", "a\nb", "\u202eevil", " pad", "x" * 65, "\x9b31m"])
def test_peer_names_that_would_drive_the_terminal_are_refused(daemon: Daemon, name: str) -> None:
    addr = f"/ip4/127.0.0.1/tcp/{free_port()}/p2p/{GOOD_ID}"
    out = daemon.cli("peers", "add", addr, "--name", name)
    assert out.returncode == 2 and "bad peer name" in out.stderr, out.stderr
    assert "\x1b" not in out.stderr and "\x9b" not in out.stderr
    # The daemon refuses it too (the TUI's dialog goes straight to it).
    with pytest.raises(UsageError, match="bad peer name"):
        daemon.control.add_peer(addr, name)
    assert daemon.status().peers == ()


@pytest.mark.proxy
def test_outside_text_is_printed_escaped() -> None:
    """A name stored by hand (or by an older raytui) still cannot drive the terminal."""
    d = Daemon("esc")
    try:
        file = d.home / "config" / "proxy.json"
        file.parent.mkdir(parents=True, exist_ok=True)
        evil = "\x1b[2J\x1b]0;pwned\x07\u009b31m\u202e"
        state = {"peers": [{"peer_id": GOOD_ID, "name": evil, "addrs": []}]}
        file.write_text(json.dumps(state))
        d.start()
        for args in (("peers", "list"), ("proxy", "status"), ("peers", "list", "--json")):
            out = d.cli(*args)
            assert out.returncode == 0, out.stderr
            for ch in ("\x1b", "\x07", "\x9b", "\u202e"):
                assert ch not in out.stdout, (args, out.stdout)
            assert "\\u001b[2J" in out.stdout
        doc = json.loads(d.cli("peers", "list", "--json").stdout)
        assert doc[0]["name"] == evil  # escaped on the terminal, exact in JSON
    finally:
        d.cleanup()


@pytest.mark.proxy
def test_expose_says_when_it_replaces_a_target(daemon: Daemon) -> None:
    first = daemon.cli("proxy", "expose", "db", "127.0.0.1:5432")
    assert first.returncode == 0 and first.stdout.strip() == "exposed db -> 127.0.0.1:5432"
    again = daemon.cli("proxy", "expose", "db", "127.0.0.1:5432")
    assert "(unchanged)" in again.stdout
    moved = daemon.cli("proxy", "expose", "db", "127.0.0.1:6543")
    assert moved.returncode == 0
    assert moved.stdout.strip() == "exposed db -> 127.0.0.1:6543 (replaces 127.0.0.1:5432)"
