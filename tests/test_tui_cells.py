"""Issue 8, finding 12: text from outside (a job's entrypoint, a hostname, a GPU name) with line
breaks or terminal controls stays on its row. A multi-line entrypoint used to leave the Jobs row
showing fragments of the previous view; every cell now goes through `tui.format.cell`."""

from __future__ import annotations

from dataclasses import replace

from msgspec.structs import replace as replace_struct
from rich.text import Text

from raytui.model.cluster import Job
from raytui.tui import format as fmt
from raytui.tui.widgets.jobs import JobTable
from raytui.tui.widgets.nodes import NodeTable
from tests.support.tui_fakes import (
    HEAD_ID,
    NOW,
    FakeConnection,
    head_node,
    screen_text,
    snapshot,
    until,
)
from tests.test_tui_app import make_app, started

ENTRYPOINT = 'python -c "\nimport time\nfor i in range(3):\n    time.sleep(1)\n"'
EVIL = "host\x1b[2J\x1b[31m\ttab\r\nnext"


def _odd_snapshot() -> object:
    head = head_node(hostname=EVIL)
    gpu = replace_struct(head.gpus[0], name="Fake\nGPU\x9b2J")
    snap = snapshot((replace_struct(head, gpus=(gpu,)),))
    jobs = (
        Job("04000000", "raysubmit_multi", "RUNNING", ENTRYPOINT, NOW - 30),
        Job("05000000", "raysubmit_\x1b[5mblink", "PENDING", "echo\x1b]0;title\x07 hi", NOW - 20),
        *snap.jobs,
    )
    return replace(snap, jobs=jobs)


def test_cell_is_one_line_escaped_and_keeps_styles() -> None:
    assert fmt.cell(ENTRYPOINT).plain == (
        'python -c "⏎import time⏎for i in range(3):⏎    time.sleep(1)⏎"'
    )
    assert fmt.cell(EVIL).plain == "host\\u001b[2J\\u001b[31m tab⏎next"
    styled = Text("a\nb", style="bold")
    styled.stylize("red", 2, 3)
    out = fmt.cell(styled)
    assert out.plain == "a⏎b" and out.style == "bold"
    assert (2, 3, "red") in [(s.start, s.end, str(s.style)) for s in out.spans]
    assert fmt.cell(Text("[red]not markup[/]")).plain == "[red]not markup[/]"
    assert fmt.cell("[red]not markup[/]").plain == "[red]not markup[/]"


async def test_multi_line_entrypoint_stays_on_its_row() -> None:
    app = make_app(FakeConnection([_odd_snapshot()]))
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot, app)
        await pilot.press("1")
        nodes = app.screen.query_one(NodeTable)
        await until(pilot, lambda: nodes.row_count == 1)
        row = nodes.row_text(HEAD_ID)
        assert "\n" not in row and "\x1b" not in row and "host\\u001b[2J" in row
        await pilot.press("3")
        table = app.screen.query_one(JobTable)
        await until(pilot, lambda: table.row_count == 5 and table.has_focus)
        row = table.row_text("raysubmit_multi")
        assert "\n" not in row and 'python -c "⏎import time⏎' in row
        assert "\x1b" not in table.row_text("raysubmit_\x1b[5mblink")
        for y in range(table.size.height):
            for segment in table.render_line(y):
                assert not set(segment.text) & {"\n", "\r", "\x1b", "\x07", "\x9b"}, segment
        lines = screen_text(app).splitlines()
        assert len(lines) == 30
        job_lines = [line for line in lines if "raysubmit_" in line]
        assert len(job_lines) == 4, "\n".join(lines)  # and 03000000, which has no submission id
        (multi,) = [line for line in job_lines if "raysubmit_multi" in line]
        assert "RUNNING" in multi and 'python -c "⏎import' in multi
