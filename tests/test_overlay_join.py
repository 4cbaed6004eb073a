"""A GPU box behind NAT joins a Ray head through the peer daemons' overlay (issue: join across NAT).

Real parts only: network namespaces with real NAT routers (tests/support/netns.py), real
`raytui proxy run --overlay` daemons (root inside their namespaces), real `ray start` nodes that
`raytui join` starts, real Ray drivers, and an Ollama-wire HTTP server that listens only inside
the box's namespace. GPUs are logical (`--gpus N` on join): no NVIDIA hardware here.

One world per module (Ray nodes are slow to start): head (public), box and box2 (each behind its
own NAT: nobody can dial them, and they cannot dial each other).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.servers.ollama_wire import default_script
from tests.support.netns import Topology, require_netns
from tests.support.overlay_world import (
    NsDaemon,
    allow_each_other,
    make_head,
    running,
    wait_route,
)
from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.netns, pytest.mark.timeout(900)]


@dataclass
class World:
    topo: Topology
    head: NsDaemon
    box: NsDaemon
    box2: NsDaemon
    token: str

    def cluster_nodes(self) -> list[dict[str, Any]]:
        return self.head.cluster_nodes(self.token)

    def node_state(self, node_id: str | None) -> str | None:
        return self.head.node_state(self.token, node_id)

    def driver(self, body: str, timeout: float = 240) -> object:
        code = textwrap.dedent(
            f"""
            import json, ray
            ray.init(address="{self.head.overlay_address}:6379", log_to_driver=False)
            """
        ) + textwrap.dedent(body)
        return self.head.driver(code, self.token, timeout=timeout)


def _joined(d: NsDaemon) -> bool:
    status = d.join_status()
    return status is not None and status.state == "running" and status.node_id is not None


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    require_netns()
    with Topology() as topo:
        head = NsDaemon(topo.public("head"))
        box = NsDaemon(topo.behind_nat("box"))
        box2 = NsDaemon(topo.behind_nat("box2"))
        with running(head, box, box2):
            allow_each_other(head, box)
            allow_each_other(head, box2)
            make_head(head)
            yield World(topo, head, box, box2, head.token())


def _join(world: World, d: NsDaemon, gpus: int) -> str:
    if not _joined(d):
        done = d.cli("join", "head", "--gpus", str(gpus), "--cpus", "2")
        assert done.returncode == 0, f"{done.stdout}{done.stderr}\n{d.node_log_tail()}"
    status = d.join_status()
    assert status is not None and status.node_id
    return status.node_id


def test_box_behind_nat_joins_and_runs_gpu_tasks(world: World) -> None:
    # The NAT is real: the head cannot dial the box.
    assert world.head.host.dial(world.box.host.address, 4701) != "connected"
    start = time.monotonic()
    box_node = _join(world, world.box, gpus=2)
    joined_in = time.monotonic() - start
    wait_for(lambda: world.node_state(box_node) == "ALIVE", 60, "the box ALIVE on the head")
    nodes = {n["node_id"]: n for n in world.cluster_nodes()}
    head_node = world.head.join_status().node_id  # type: ignore[union-attr]
    assert nodes[head_node]["state"] == "ALIVE"
    box = nodes[box_node]
    assert box["ip"] == world.box.overlay_address
    assert box["gpus_total"] == 2
    result = world.driver(
        """
        @ray.remote(num_gpus=1)
        def where(i):
            return ray.get_runtime_context().get_node_id()
        ids = ray.get([where.remote(i) for i in range(20)])
        print(json.dumps(ids))
        """
    )
    assert result == [box_node] * 20
    assert joined_in < 90


def test_box_route_is_direct_and_overlay_counts_connections(world: World) -> None:
    _join(world, world.box, gpus=2)
    status = world.head.status().overlay
    route = status.route_to(world.box.overlay_address)
    assert route is not None and route.via is None and route.state == "up"
    assert status.carried > 0


def test_prompt_on_the_head_runs_on_the_box_against_its_own_model_server(world: World) -> None:
    """The Ollama-wire server listens on 127.0.0.1 inside the box's namespace only: the answer
    can only come from a task that ran on the box."""
    box_node = _join(world, world.box, gpus=2)
    server = world.box.host.popen(
        [sys.executable, "-m", "tests.servers.ollama_wire", "--port", "11434", "--tokens", "40"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(REPO),
    )
    assert server.stdout is not None and server.stdout.readline().startswith("http://")
    assert world.head.host.dial("127.0.0.1", 11434) != "connected"
    prompt = 'Quote "this" and $(rm -rf /) `too` — 字'
    done = world.head.host.run(
        [
            sys.executable, "-m", "raytui", "submit",
            "--address", f"{world.head.overlay_address}:6379",
            "--backend", "ollama", "--model", "llama3.2", "--node", box_node, prompt,
        ],
        env=world.head.ray_env(world.token),
        timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == default_script(40, None).text + "\n"
    assert "running on node" in done.stderr
    server.kill()


def test_two_boxes_behind_two_nats_share_objects_through_the_hub(world: World) -> None:
    box_node = _join(world, world.box, gpus=2)
    box2_node = _join(world, world.box2, gpus=1)
    wait_for(lambda: world.node_state(box2_node) == "ALIVE", 60, "box2 ALIVE on the head")
    # Neither box can dial the other: the only path is through the head.
    assert world.box2.host.dial(world.box.host.address, 4701) != "connected"
    head_id = world.head.peer_id
    wait_route(world.box2, world.box.overlay_address, via=head_id)
    wait_route(world.box, world.box2.overlay_address, via=head_id)
    result = world.driver(
        f"""
        import hashlib, random
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy as On

        @ray.remote(num_cpus=0)
        def make(n):
            return random.Random(7).randbytes(n)

        @ray.remote(num_cpus=0)
        def digest(blob):
            return hashlib.sha256(blob).hexdigest(), ray.get_runtime_context().get_node_id()

        ref = make.options(scheduling_strategy=On("{box_node}", soft=False)).remote(64 << 20)
        got = ray.get(
            digest.options(scheduling_strategy=On("{box2_node}", soft=False)).remote(ref)
        )
        want = hashlib.sha256(random.Random(7).randbytes(64 << 20)).hexdigest()
        print(json.dumps({{"got": got[0], "where": got[1], "want": want}}))
        """
    )
    assert isinstance(result, dict)
    assert result["where"] == box2_node
    assert result["got"] == result["want"]
    # The bytes went box -> head -> box2: the hub relayed overlay connections.
    hub = world.head.status().overlay
    assert hub.carried > 0


def test_a_console_outside_the_cluster_sends_a_prompt_via_the_head(world: World) -> None:
    """A third machine behind its own NAT: `raytui submit --via head` joins it as a node with no
    CPUs or GPUs and streams the answer from the box's model server."""
    box_node = _join(world, world.box, gpus=2)
    server = world.box.host.popen(
        [sys.executable, "-m", "tests.servers.ollama_wire", "--port", "11435", "--tokens", "25"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(REPO),
    )
    assert server.stdout is not None and server.stdout.readline().startswith("http://")
    desk = NsDaemon(world.topo.behind_nat("desk"))
    try:
        desk.start("--overlay")
        allow_each_other(world.head, desk)
        done = desk.cli(
            "submit", "--via", "head", "--backend", "ollama", "--model", "llama3.2",
            "--endpoint", "http://127.0.0.1:11435", "--node", box_node, "hello from the desk",
            timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, f"{done.stderr}\n{desk.log_tail()}\n{desk.node_log_tail()}"
        assert done.stdout == default_script(25, None).text + "\n"
        joined = desk.join_status()
        assert joined is not None and joined.role == "worker" and joined.node_id
        assert joined.head_address == f"{world.head.overlay_address}:6379"
        # `raytui leave` stops that node: the head sees it go.
        left = desk.cli("leave")
        assert left.returncode == 0 and "left: stopped the Ray worker node" in left.stdout
        assert desk.join_status() is None
        wait_for(lambda: world.node_state(joined.node_id) == "DEAD", 60, "the desk's node gone")
    finally:
        server.kill()
        desk.cleanup()


_PROBE = """
import json, sys, trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
import multiaddr
from raytui.proxy import identity
from raytui.proxy.host import build_host

key_file, head_addr, headers = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
keys = identity.load_or_create(__import__("pathlib").Path(key_file))

async def main():
    host = build_host(keys, [], lambda _peer: True)
    out = {"connected": False, "answers": []}
    async with host.run([]):
        info = info_from_p2p_addr(multiaddr.Multiaddr(head_addr))
        try:
            with trio.fail_after(15):
                await host.connect(info)
            for header in headers:
                stream = await host.new_stream(info.peer_id, [TProtocol("/raytui/overlay/1.0.0")])
                await stream.write(header.encode() + b"\\n")
                with trio.fail_after(15):
                    answer = await stream.read(512)
                out["answers"].append(answer.decode(errors="replace").strip())
            out["connected"] = True
        except Exception as exc:
            out["error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))

trio.run(main)
"""


def test_only_what_belongs_reaches_the_overlay(world: World, tmp_path: Path) -> None:
    """A stranger gets nothing; an allow-listed peer may not claim another peer's address nor
    reach a port outside Ray's set; a box's own stray connection to port 22 is refused."""
    _join(world, world.box, gpus=2)
    mallory = world.topo.hosts.get("mallory") or world.topo.public("mallory")
    head, box = world.head, world.box
    key = tmp_path / "mallory.key"
    own_id = mallory.python(
        "import pathlib, sys; from raytui.proxy import identity as i; "
        f"print(i.peer_id_of(i.load_or_create(pathlib.Path({str(key)!r}))))"
    ).strip()
    headers = [
        f"{box.overlay_address} {head.overlay_address} 6379",  # claims the box's address
        f"{box.overlay_address} {head.overlay_address} 22",  # and a port outside Ray's
    ]

    def probe() -> dict[str, object]:
        done = mallory.run(
            [sys.executable, "-c", _PROBE, str(key), head.addr, json.dumps(headers)],
            timeout=90,
            cwd=str(REPO),
        )
        assert done.stdout.strip(), done.stderr
        result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
        return result

    before = head.status()
    stranger = probe()
    assert stranger["connected"] is False
    assert head.status().refused > before.refused
    # Allow-listed, but hostile.
    head.control.add_peer(f"/ip4/{mallory.address}/tcp/4701/p2p/{own_id}", name="mallory")
    refused_before = dict(head.status().overlay.refused)
    allowed = probe()
    assert allowed["connected"] is True, allowed
    answers = allowed["answers"]
    assert isinstance(answers, list)
    assert answers[0].startswith("-source") and "not yours" in answers[0]
    assert answers[1].startswith("-port 22 is not a Ray port")
    refused = head.status().overlay.refused
    assert refused.get("source not the peer's", 0) > refused_before.get("source not the peer's", 0)
    assert refused.get("port not allowed", 0) > refused_before.get("port not allowed", 0)
    head.control.remove_peer("mallory")
    # On the box itself: a connection to the head's overlay address on a non-Ray port never
    # leaves the box. (The kernel hands it to the daemon, so it is accepted, then reset.)
    box_refused = box.status().overlay.refused.get("port not allowed", 0)
    outcome = box.host.python(
        textwrap.dedent(
            f"""
            import socket
            try:  # the reset may arrive before connect() returns
                s = socket.create_connection(("{head.overlay_address}", 22), timeout=10)
            except ConnectionResetError:
                print("reset")
            else:
                with s:
                    try:
                        print("data" if s.recv(1) else "closed")
                    except ConnectionResetError:
                        print("reset")
            """
        )
    )
    assert outcome.strip() == "reset"
    assert box.status().overlay.refused.get("port not allowed", 0) == box_refused + 1
