"""The network-namespace kit (tests/support/netns.py) does what the overlay tests rely on:
a real NAT that lets boxes dial out and nobody dial in, link cuts, and nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.netns import (
    MARKER_DIR,
    PREFIX,
    Host,
    Topology,
    namespaces,
    remove_stale,
    require_netns,
    root_links,
)
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.netns, pytest.mark.timeout(120)]

PORT = 8000


@pytest.fixture
def topo() -> Iterator[Topology]:
    require_netns()
    with Topology() as topology:
        yield topology


def leftovers(tag: str) -> tuple[list[str], list[str]]:
    return namespaces(f"{PREFIX}-{tag}-"), root_links(PREFIX)


def test_box_behind_nat_dials_a_public_host_and_shows_the_routers_address(
    topo: Topology,
) -> None:
    head = topo.public("head")
    box = topo.behind_nat("box")
    server = head.listen(PORT)

    assert box.dial(head.address, PORT) == "connected"

    assert box.router is not None
    peers = wait_for(lambda: server.peers, 5, "the head's server to see the box")
    assert peers[0][0] == box.router.address  # masqueraded: the box's own address stays hidden
    assert box.address.startswith(box.router.lan_prefix + ".")


def test_a_public_host_cannot_dial_into_the_box(topo: Topology) -> None:
    head = topo.public("head")
    box = topo.behind_nat("box")
    box.listen(PORT)
    assert box.dial(box.address, PORT) == "connected"  # the listener is there
    assert box.router is not None

    assert head.dial(box.address, PORT, timeout=1.0) == "timeout"
    # Even knowing the way in (a route to the box's LAN through its router), new inbound
    # connections are dropped by the router, and its public address has nothing open.
    head.run(
        ["ip", "route", "add", f"{box.router.lan_prefix}.0/24", "via", box.router.address],
        check=True,
    )
    assert head.dial(box.address, PORT, timeout=1.0) == "timeout"
    assert head.dial(box.router.address, PORT, timeout=1.0) == "timeout"


def test_two_boxes_behind_two_nats_cannot_reach_each_other(topo: Topology) -> None:
    head = topo.public("head")
    one = topo.behind_nat("one")
    two = topo.behind_nat("two")
    for box in (one, two):
        box.listen(PORT)
    head.listen(PORT)
    assert one.router is not None and two.router is not None
    assert one.router is not two.router

    assert one.dial(head.address, PORT) == "connected"
    assert two.dial(head.address, PORT) == "connected"
    for src, dst in ((one, two), (two, one)):
        assert dst.router is not None
        assert src.dial(dst.address, PORT, timeout=1.0) != "connected"
        assert src.dial(dst.router.address, PORT, timeout=1.0) == "timeout"


def test_boxes_behind_one_nat_share_its_lan(topo: Topology) -> None:
    first = topo.behind_nat("first")
    assert first.router is not None
    second = topo.behind_nat("second", nat=first.router)
    second.listen(PORT)

    assert second.router is first.router
    assert first.dial(second.address, PORT) == "connected"


def test_a_host_with_its_own_host_name(topo: Topology) -> None:
    """Hosts of one machine share its host name unless given one (Ray and invites use it)."""
    code = "import os, socket; print(socket.gethostname(), os.getpid())"
    box = topo.behind_nat("box", hostname="gpu-box")
    plain = topo.public("plain")
    proc = box.popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=30)
    name, pid = out.split()
    assert name == "gpu-box" and int(pid) == proc.pid  # exec'd: the pid is the command's
    assert plain.python("import socket; print(socket.gethostname())").strip() == os.uname()[1]
    assert os.uname()[1] != "gpu-box"  # the machine's own name is untouched


def echo_client(box: Host, address: str) -> subprocess.Popen[str]:
    """A long-lived connection from `box`: each stdin line is sent, each echoed line printed."""
    code = (
        "import socket, sys\n"
        f"conn = socket.create_connection(({address!r}, {PORT}), timeout=5)\n"
        "conn.settimeout(None)\n"
        "reader = conn.makefile('r')\n"
        "print('connected', flush=True)\n"
        "for line in sys.stdin:\n"
        "    conn.sendall(line.encode())\n"
        "    print(reader.readline().strip(), flush=True)\n"
    )
    return box.popen(
        [sys.executable, "-u", "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def readline_within(proc: subprocess.Popen[str], seconds: float) -> str | None:
    import selectors

    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(seconds):
            return None
    return proc.stdout.readline().strip()


def test_cut_loses_packets_silently_and_restore_lets_the_connection_go_on(
    topo: Topology,
) -> None:
    head = topo.public("head")
    box = topo.behind_nat("box")
    head.listen(PORT)
    client = echo_client(box, head.address)
    assert client.stdin is not None
    assert readline_within(client, 10) == "connected"
    client.stdin.write("one\n")
    client.stdin.flush()
    assert readline_within(client, 5) == "one"

    topo.cut(box)
    assert topo.is_cut(box)
    client.stdin.write("two\n")
    client.stdin.flush()
    assert readline_within(client, 1.5) is None  # lost, not refused: the connection lives on
    assert box.dial(head.address, PORT, timeout=1.0) == "timeout"
    assert head.dial(box.router.address if box.router else "", PORT, timeout=1.0) == "timeout"

    topo.restore(box)
    assert not topo.is_cut(box)
    # TCP retransmits "two" through the same NAT mapping (the router kept its conntrack state).
    assert readline_within(client, 10) == "two"
    assert box.dial(head.address, PORT) == "connected"
    client.stdin.close()
    client.wait(5)


def test_cut_for_some_seconds_restores_by_itself(topo: Topology) -> None:
    head = topo.public("head")
    head.listen(PORT)
    other = topo.public("other")

    topo.cut(head, seconds=1.0)
    assert topo.is_cut(head)
    assert other.dial(head.address, PORT, timeout=0.5) == "timeout"
    wait_for(lambda: not topo.is_cut(head), 5, "the cut to end by itself")
    assert other.dial(head.address, PORT) == "connected"


def test_nothing_is_left_after_the_topology_even_when_the_test_fails() -> None:
    require_netns()
    topology = Topology()
    orphan_pid = 0
    with pytest.raises(RuntimeError, match="the test failed"), topology:
        head = topology.public("head")
        box = topology.behind_nat("box")
        box.popen(["sleep", "300"])
        # A process the kit did not start (daemonized, like Ray's raylet) keeps a namespace
        # alive after `ip netns del`: the kit kills everything inside.
        out = head.python(
            "import subprocess\n"
            "p = subprocess.Popen(['sleep', '300'], start_new_session=True,\n"
            "                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,\n"
            "                     stderr=subprocess.DEVNULL)\n"
            "print(p.pid)\n"
        )
        orphan_pid = int(out)
        assert len(namespaces(f"{PREFIX}-{topology.tag}-")) == 4  # net, head, box-nat, box
        raise RuntimeError("the test failed")

    assert leftovers(topology.tag) == ([], [])
    assert not (MARKER_DIR / f"{PREFIX}-{topology.tag}-head").exists()
    wait_for(lambda: not os.path.exists(f"/proc/{orphan_pid}"), 5, "the orphan to be gone")


def test_stale_namespaces_of_a_crashed_run_are_removed_and_live_ones_kept() -> None:
    require_netns()
    dead = f"{PREFIX}-dead{os.getpid() % 10000}-box"
    alive = f"{PREFIX}-live{os.getpid() % 10000}-box"
    subprocess.run(["ip", "netns", "add", dead], check=True)
    subprocess.run(["ip", "netns", "add", alive], check=True)
    try:
        MARKER_DIR.mkdir(parents=True, exist_ok=True)
        (MARKER_DIR / dead).write_text("999999999 1\n")  # its owner is long gone
        (MARKER_DIR / alive).write_text(f"{os.getpid()} {own_start_time()}\n")
        sleeper = subprocess.Popen(["ip", "netns", "exec", dead, "sleep", "300"])
        wait_for(lambda: str(sleeper.pid) in netns_pids(dead), 5, "the sleeper in the namespace")

        with Topology():
            pass  # entering cleans up

        assert dead not in namespaces()
        assert sleeper.wait(5) is not None
        assert alive in namespaces()
        assert dead not in remove_stale()  # nothing more to do
    finally:
        for ns in (dead, alive):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
            (MARKER_DIR / ns).unlink(missing_ok=True)


def own_start_time() -> str:
    stat = Path(f"/proc/{os.getpid()}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[19]


def netns_pids(ns: str) -> list[str]:
    done = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    return done.stdout.split()
