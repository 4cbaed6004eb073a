"""The overlay's kernel side (raytui.proxy.overlay_kernel), for real, inside a network namespace:
interception of connections to overlay addresses, undo after a crash, privilege messages.

Every kernel change happens in a namespace of tests/support/netns.py (snippets run there with
`ip netns exec`), never in the machine's own namespace.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network, IPv6Address
from pathlib import Path
from typing import Any

import pytest

from raytui.errors import UsageError
from raytui.proxy import overlay_kernel
from raytui.proxy.overlay_kernel import CHAIN, KernelPlan
from tests.support.netns import Host, Topology, require_netns

NETNS = pytest.mark.netns
OWN = "100.64.0.1"
PORT = 15001

PRELUDE = """
import ipaddress, json, os, socket, sys
from pathlib import Path
from raytui.proxy import overlay_kernel as ok

def plan(address, port, prefix="100.64.0.0/10"):
    return ok.KernelPlan(ipaddress.IPv4Address(address), ipaddress.IPv4Network(prefix), port)

def done(**result):
    print(json.dumps(result))
"""


@pytest.fixture
def node() -> Iterator[Host]:
    require_netns()
    with Topology() as topology:
        yield topology.public("node")


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory a non-root user can write its record into."""
    path = Path(tempfile.mkdtemp(prefix="rtui-overlay-"))
    path.chmod(0o777)
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


def snippet(host: Host, code: str, **kwargs: Any) -> dict[str, Any]:
    out = host.python(PRELUDE + code, **kwargs)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def kernel_state(host: Host) -> dict[str, str]:
    def text(argv: list[str]) -> str:
        return host.run(argv, check=True).stdout

    return {
        "addr": text(["ip", "-4", "addr", "show", "dev", "lo"]),
        "route": text(["ip", "-4", "route", "show", "table", "all"]),
        "nat": text(["iptables", "-w", "-t", "nat", "-S"]),
    }


@NETNS
def test_connections_to_other_overlay_addresses_land_on_the_intercept_port(
    node: Host, tmp_path: Path
) -> None:
    record = tmp_path / "overlay.json"
    result = snippet(
        node,
        f"""
ok.apply(plan({OWN!r}, {PORT}), Path({str(record)!r}))
intercept = socket.socket()
intercept.bind(("127.0.0.1", {PORT}))
intercept.listen()
own = socket.socket()
own.bind(({OWN!r}, 7001))
own.listen()

client = socket.create_connection(("100.64.7.9", 6379), timeout=5)
accepted, peer = intercept.accept()
v4 = [ok.original_destination(accepted), list(peer), list(client.getsockname())]

client6 = socket.socket(socket.AF_INET6)
client6.settimeout(5)
client6.connect(("::ffff:100.127.250.3", 10002))
accepted6, _ = intercept.accept()
v6 = ok.original_destination(accepted6)

direct = socket.create_connection(({OWN!r}, 7001), timeout=5)
served, _ = own.accept()
intercept.setblocking(False)
try:
    intercept.accept()
    stolen = True
except BlockingIOError:
    stolen = False
done(v4=v4, v6=v6, own=ok.original_destination(served), stolen=stolen)
""",
    )
    destination, peer, client_side = result["v4"]
    assert destination == ["100.64.7.9", 6379]
    assert peer == client_side and peer[0] == OWN  # comes from this machine's overlay address
    assert result["v6"] == ["100.127.250.3", 10002]  # IPv4-mapped IPv6 sockets are caught too
    # Our own overlay address is LOCAL: not redirected, the server bound on it got it.
    assert result["stolen"] is False
    assert result["own"] == [OWN, 7001]


@NETNS
def test_after_a_crash_undo_from_a_fresh_process_leaves_nothing(node: Host, tmp_path: Path) -> None:
    record = tmp_path / "overlay.json"
    before = kernel_state(node)
    holder = node.popen(
        [
            sys.executable,
            "-u",
            "-c",
            PRELUDE + f"ok.apply(plan({OWN!r}, {PORT}), Path({str(record)!r}))\n"
            "print('applied', flush=True)\n"
            "import time; time.sleep(300)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "applied"
    holder.send_signal(signal.SIGKILL)  # the daemon dies without undoing anything
    holder.wait(10)

    during = kernel_state(node)
    assert f"inet {OWN}/32" in during["addr"]
    assert "100.64.0.0/10 dev lo" in during["route"]
    assert f"-A OUTPUT -j {CHAIN}" in during["nat"]
    assert (
        f"-A {CHAIN} -d 100.64.0.0/10 -p tcp -m addrtype ! --dst-type LOCAL "
        f"-j REDIRECT --to-ports {PORT}"
    ) in during["nat"]

    result = snippet(node, f"done(removed=ok.undo(Path({str(record)!r})))")

    assert result["removed"] == [
        f"iptables -t nat OUTPUT -j {CHAIN}",
        f"iptables -t nat chain {CHAIN}",
        "route 100.64.0.0/10 dev lo",
        f"address {OWN}/32 dev lo",
    ]
    assert kernel_state(node) == before
    assert not record.exists()
    again = snippet(node, f"done(removed=ok.undo(Path({str(record)!r})))")
    assert again["removed"] == []


@NETNS
def test_a_failure_half_way_is_recorded_and_undone(node: Host, tmp_path: Path) -> None:
    record = tmp_path / "overlay.json"
    before = kernel_state(node)
    result = snippet(
        node,
        f"""
def broken(plan):
    raise ok.RaytuiError("iptables broke")
ok._ensure_chain = broken  # the address and route are in, the interception is not
try:
    ok.apply(plan({OWN!r}, {PORT}), Path({str(record)!r}))
except ok.RaytuiError as exc:
    error = str(exc)
done(error=error, recorded=json.loads(Path({str(record)!r}).read_text())["address"])
""",
    )
    assert result == {"error": "iptables broke", "recorded": OWN}
    assert f"inet {OWN}/32" in kernel_state(node)["addr"]

    removed = snippet(node, f"done(removed=ok.undo(Path({str(record)!r})))")["removed"]

    assert removed == ["route 100.64.0.0/10 dev lo", f"address {OWN}/32 dev lo"]
    assert kernel_state(node) == before


@NETNS
def test_apply_is_idempotent_keeps_a_private_record_and_replaces_an_older_plan(
    node: Host, tmp_path: Path
) -> None:
    record = tmp_path / "overlay.json"
    before = kernel_state(node)
    snippet(
        node,
        f"ok.apply(plan({OWN!r}, {PORT}), Path({str(record)!r}))\n"
        f"ok.apply(plan({OWN!r}, {PORT}), Path({str(record)!r}))\n"
        "done()",
    )
    state = kernel_state(node)
    assert state["addr"].count(f"inet {OWN}/32") == 1
    assert state["nat"].count(f"-A OUTPUT -j {CHAIN}") == 1
    assert state["nat"].count(f"-A {CHAIN} ") == 1
    assert record.stat().st_mode & 0o777 == 0o600
    data = json.loads(record.read_text())
    assert (data["address"], data["prefix"], data["intercept_port"]) == (
        OWN,
        "100.64.0.0/10",
        PORT,
    )

    # A new plan (another address and port) replaces the old one: nothing of it stays.
    snippet(
        node,
        f"ok.apply(plan('100.100.1.2', {PORT + 1}), Path({str(record)!r}))\ndone()",
    )
    state = kernel_state(node)
    assert OWN not in state["addr"] and "inet 100.100.1.2/32" in state["addr"]
    assert state["nat"].count(f"-A {CHAIN} ") == 1
    assert f"--to-ports {PORT + 1}" in state["nat"] and f"--to-ports {PORT}\n" not in state["nat"]
    assert "src 100.100.1.2" in state["route"]

    snippet(node, f"ok.undo(Path({str(record)!r}))\ndone()")
    assert kernel_state(node) == before


@NETNS
def test_undo_without_a_record_removes_a_leftover_chain(node: Host, tmp_path: Path) -> None:
    before = kernel_state(node)
    for argv in (
        ["-N", CHAIN],
        ["-A", CHAIN, "-d", "100.64.0.0/10", "-p", "tcp", "-j", "REDIRECT", "--to-ports", "1"],
        ["-A", "OUTPUT", "-j", CHAIN],
        ["-A", "OUTPUT", "-j", CHAIN],  # twice, as a crash between check and add could leave
    ):
        node.run(["iptables", "-w", "-t", "nat", *argv], check=True)

    result = snippet(node, f"done(removed=ok.undo(Path({str(tmp_path / 'none.json')!r})))")

    assert result["removed"] == [
        f"iptables -t nat OUTPUT -j {CHAIN}",
        f"iptables -t nat OUTPUT -j {CHAIN}",
        f"iptables -t nat chain {CHAIN}",
    ]
    assert kernel_state(node) == before


def as_nobody(host: Host, code: str, *, ambient_net_admin: bool = False) -> dict[str, Any]:
    setpriv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    if ambient_net_admin:
        setpriv += ["--inh-caps=+net_admin", "--ambient-caps=+net_admin"]
    done = host.run([*setpriv, sys.executable, "-c", PRELUDE + code], cwd="/")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@NETNS
def test_without_privilege_a_message_says_what_to_run_and_nothing_changes(
    node: Host, shared_dir: Path
) -> None:
    before = kernel_state(node)
    record = shared_dir / "overlay.json"
    result = as_nobody(
        node,
        f"""
message = ok.missing_privilege()
try:
    ok.apply(plan({OWN!r}, {PORT}), Path({str(record)!r}))
    error = None
except ok.OverlayPrivilegeError as exc:
    error = str(exc)
done(message=message, error=error, uid=os.geteuid())
""",
    )
    assert result["uid"] != 0
    message = result["message"]
    assert message is not None and "CAP_NET_ADMIN" in message
    assert "sudo raytui proxy start --overlay" in message
    assert result["error"] == message
    assert kernel_state(node) == before
    assert not record.exists()


@NETNS
def test_a_non_root_user_with_ambient_cap_net_admin_can_apply_and_undo(
    node: Host, shared_dir: Path
) -> None:
    before = kernel_state(node)
    record = shared_dir / "overlay.json"
    result = as_nobody(
        node,
        f"""
assert ok.missing_privilege() is None
ok.apply(plan({OWN!r}, {PORT}), Path({str(record)!r}))
intercept = socket.socket()
intercept.bind(("127.0.0.1", {PORT}))
intercept.listen()
socket.create_connection(("100.64.9.9", 8265), timeout=5)
accepted, _ = intercept.accept()
destination = ok.original_destination(accepted)
done(destination=destination, removed=ok.undo(Path({str(record)!r})), uid=os.geteuid())
""",
        ambient_net_admin=True,
    )
    assert result["uid"] != 0
    assert result["destination"] == ["100.64.9.9", 8265]
    assert len(result["removed"]) == 4
    assert kernel_state(node) == before


@NETNS
def test_without_the_iptables_command_apply_says_what_to_install(
    node: Host, tmp_path: Path
) -> None:
    before = kernel_state(node)
    record = tmp_path / "overlay.json"
    result = snippet(
        node,
        f"""
os.environ["PATH"] = "/nonexistent"
try:
    ok.apply(plan({OWN!r}, {PORT}), Path({str(record)!r}))
    error = None
except ok.RaytuiError as exc:
    error = str(exc)
done(error=error, removed=ok.undo(Path({str(record)!r})))
""",
    )
    assert result["error"] is not None and "apt-get install iptables" in result["error"]
    assert result["removed"] == []
    assert kernel_state(node) == before
    assert not record.exists()


# --- no root needed --------------------------------------------------------------------------


def test_the_plan_rejects_addresses_outside_the_prefix_and_bad_ports() -> None:
    prefix = IPv4Network(overlay_kernel.OVERLAY_PREFIX_DEFAULT)
    with pytest.raises(UsageError, match="not inside"):
        KernelPlan(IPv4Address("10.0.0.1"), prefix, PORT)
    with pytest.raises(UsageError, match="port"):
        KernelPlan(IPv4Address(OWN), prefix, 0)
    with pytest.raises(UsageError, match="IPv4"):
        KernelPlan(IPv6Address("fd00::1"), prefix, PORT)  # type: ignore[arg-type]


def test_the_redirect_rule_is_the_measured_one() -> None:
    plan = KernelPlan(IPv4Address(OWN), IPv4Network("100.64.0.0/10"), PORT)
    assert " ".join(plan.rule()) == (
        "-d 100.64.0.0/10 -p tcp -m addrtype ! --dst-type LOCAL -j REDIRECT --to-ports 15001"
    )


def test_privilege_check_reads_the_effective_capability(monkeypatch: pytest.MonkeyPatch) -> None:
    sets = {"CapEff": 0, "CapAmb": 0}
    monkeypatch.setattr(overlay_kernel, "_capabilities", lambda field: sets[field])
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "CAP_NET_ADMIN" in (overlay_kernel.missing_privilege() or "")
    sets["CapEff"] = 1 << 12
    assert "ambient" in (overlay_kernel.missing_privilege() or "")  # iptables would lose it
    sets["CapAmb"] = 1 << 12
    assert overlay_kernel.missing_privilege() is None
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    sets.update(CapEff=0, CapAmb=0)  # root in a container without CAP_NET_ADMIN
    assert overlay_kernel.missing_privilege() is not None
    sets["CapEff"] = 1 << 12
    assert overlay_kernel.missing_privilege() is None
