"""The TUI (Pilot) against the shared real Ray cluster, whose agents report fake GPUs.

Every node's GPU panes show the values its agent reported; a node killed mid-test turns DEAD in
the node list, greyed, with how long ago it died.
"""

from __future__ import annotations

import pytest

from raytui.sources import attach
from raytui.tui.app import RaytuiApp
from raytui.tui.widgets.nodes import NodeTable
from tests.support.ray_cluster import RayTestCluster, fake_gpu
from tests.support.tui_fakes import screen_text, until

pytestmark = [pytest.mark.ray, pytest.mark.multinode]


def real_app(cluster: RayTestCluster) -> RaytuiApp:
    return RaytuiApp(
        lambda progress: attach.connect(cluster.dashboard_url, None, progress),
        refresh=1.0,
        target=cluster.dashboard_url,
        nvml_sampler=None,
    )


def expected_pane_text(gpu: dict[str, object]) -> list[str]:
    return [
        str(gpu["name"]),
        f"{gpu['utilization']}%",
        f"{gpu['temperature']}°C",
        f"{int(gpu['power_mw']) // 1000} W",  # type: ignore[call-overload]
    ]


async def test_every_nodes_fake_gpu_values_appear_in_its_panes(
    ray_cluster: RayTestCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_AUTH_TOKEN", ray_cluster.token)
    app = real_app(ray_cluster)
    nodes = ray_cluster.nodes[:3]
    async with app.run_test(size=(160, 48)) as pilot:
        await until(
            pilot,
            lambda: (
                app.state.snapshot is not None
                and {n.node_id for n in nodes}
                <= {n.node_id for n in app.state.snapshot.alive_nodes}
            ),
            within=60,
        )
        table = app.screen.query_one(NodeTable)
        for node in nodes:
            table.move_cursor_to_key(node.node_id)
            if node.fake_gpus:
                wanted = [t for g in node.fake_gpus for t in expected_pane_text(g)]
            else:
                wanted = ["no GPUs on this node"]
            await until(pilot, lambda w=wanted: all(t in screen_text(app) for t in w), 30)
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, within=60)


async def test_killed_node_turns_dead_and_greyed_in_the_node_list_with_fake_gpus(
    ray_cluster: RayTestCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_AUTH_TOKEN", ray_cluster.token)
    doomed = ray_cluster.add_node(
        num_gpus=1, fake_gpus=[fake_gpu("Fake L4 24GB", "GPU-fake-doomed-0", 55, 4_096, 23_034)]
    )
    app = real_app(ray_cluster)
    async with app.run_test(size=(160, 48)) as pilot:

        def row() -> str:
            try:
                return app.screen.query_one(NodeTable).row_text(doomed.node_id)
            except ValueError:  # not listed yet
                return ""

        await until(pilot, lambda: "ALIVE" in row(), within=60)
        app.screen.query_one(NodeTable).move_cursor_to_key(doomed.node_id)
        await until(pilot, lambda: "Fake L4 24GB" in screen_text(app), within=30)
        ray_cluster.kill_node(doomed)
        await until(
            pilot,
            lambda: "DEAD" in row() and "ago" in row(),
            within=60,
            detail=lambda: screen_text(app),
        )
        snap = app.state.snapshot
        assert snap is not None
        dead = snap.node(doomed.node_id)
        assert dead is not None and not dead.alive and dead.death_time is not None
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, within=60)
