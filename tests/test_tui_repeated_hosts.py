"""The GPUs view tells nodes apart when two of them share a hostname (cloned machines, a node
that rejoined with a new ID), and names a node by hostname alone when its name is unique.
Fed by a FAKE connection replaying hand-built snapshots (tests/support/tui_fakes.py)."""

from __future__ import annotations

from raytui.tui.widgets.gpus import GpuTable, repeated_hostnames
from tests.support.tui_fakes import (
    CPU_ID,
    GPU2_ID,
    HEAD_ID,
    FakeConnection,
    cpu_node,
    gpu2_node,
    head_node,
    snapshot,
    until,
)
from tests.test_tui_app import make_app, started

TWIN_ID = "d4e5f60718293a4b5c6d7e8f9001122334455667788990aabbccddee"


async def test_gpus_view_shows_short_ids_only_for_repeated_hostnames() -> None:
    twins = snapshot(
        [head_node(), gpu2_node(), gpu2_node(node_id=TWIN_ID, ip="10.0.0.8"), cpu_node()]
    )
    app = make_app(FakeConnection([twins]))
    async with app.run_test(size=(120, 30)) as pilot:
        await started(pilot, app)
        await pilot.press("2")
        table = app.screen.query_one(GpuTable)
        await until(pilot, lambda: table.row_count == 5, what="five GPU rows")
        first = table.row_text(f"{GPU2_ID}/0")
        second = table.row_text(f"{TWIN_ID}/0")
        assert "gpu-box-2 b2c3d4e5" in first
        assert "gpu-box-2 d4e5f607" in second
        assert HEAD_ID[:8] not in table.row_text(f"{HEAD_ID}/0")  # unique: hostname alone
        assert "gpu-head" in table.row_text(f"{HEAD_ID}/0")


def test_repeated_hostnames_counts_nodes_not_rows() -> None:
    """A node with two GPUs is one node: its hostname is not "repeated" by its second GPU."""
    assert repeated_hostnames([gpu2_node(), gpu2_node(), head_node()]) == frozenset()
    twin = gpu2_node(node_id=TWIN_ID)
    assert repeated_hostnames([gpu2_node(), twin, cpu_node(node_id=CPU_ID)]) == {"gpu-box-2"}
