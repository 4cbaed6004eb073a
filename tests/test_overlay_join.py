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
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.netns import Topology, require_netns
from tests.support.overlay_world import NsDaemon, allow_each_other
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.netns, pytest.mark.timeout(900)]


@dataclass
class World:
    topo: Topology
    head: NsDaemon
    box: NsDaemon
    box2: NsDaemon
    token: str

    def cluster_nodes(self) -> list[dict[str, object]]:
        """`raytui status --json` on the head: its view of the cluster's nodes."""
        address = f"{self.head.overlay_address}:6379"
        done = self.head.host.run(
            [sys.executable, "-m", "raytui", "status", "--json", "--address", address],
            env=self.head.ray_env(self.token),
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        nodes: list[dict[str, object]] = json.loads(done.stdout)["nodes"]
        return nodes

    def node_state(self, node_id: str | None) -> str | None:
        try:
            nodes = self.cluster_nodes()
        except AssertionError:  # the head's dashboard is slow to answer on a busy machine
            return None
        return next((str(n["state"]) for n in nodes if n["node_id"] == node_id), None)

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
        daemons: list[NsDaemon] = []
        try:
            head = NsDaemon(topo.public("head"))
            box = NsDaemon(topo.behind_nat("box"))
            box2 = NsDaemon(topo.behind_nat("box2"))
            daemons += [head, box, box2]
            for d in daemons:
                d.start("--overlay")
            allow_each_other(head, box)
            allow_each_other(head, box2)
            done = head.cli("proxy", "expose", "--ray-head", "--share-token")
            assert done.returncode == 0, done.stderr
            done = head.cli("join", "--head", "--cpus", "1", "--gpus", "0")
            assert done.returncode == 0, f"{done.stdout}{done.stderr}\n{head.node_log_tail()}"
            token = head.token()
            yield World(topo, head, box, box2, token)
        finally:
            for d in daemons:
                d.cleanup()


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
