"""What runs on one node: actors, running tasks, workers and GPU processes, one row each.

`run_rows` is pure: it merges the node's workload (Ray's state API, fetched by the screen) with
the GPU processes of the current cluster snapshot. A row's GPUs are the NVML GPUs where its PID
holds memory (`gpus_by_pid`), else the GPU slots Ray assigned to its worker. GPU processes that
are no Ray worker (an Ollama server, a notebook) are listed too. `RunsTable` shows the rows and
keeps the cursor on the same row across refreshes; it makes no calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rich.text import Text
from textual.widgets import DataTable

from raytui.model.cluster import Node
from raytui.model.workbench import NodeWorkload


@dataclass(frozen=True, slots=True)
class RunRow:
    key: str  # unique in the table: "actor:<id>", "task:<id>", "worker:<id>", "pid:<pid>"
    kind: str  # actor, task, worker, driver, process
    pid: int | None
    gpus: tuple[int, ...]
    state: str
    what: str


def run_rows(
    workload: NodeWorkload | None,
    node: Node | None,
    gpus: Mapping[int, tuple[int, ...]],
) -> list[RunRow]:
    """Actors, running tasks, workers not already shown, then other GPU processes."""
    rows: list[RunRow] = []
    shown: set[int] = set()

    def gpus_of(pid: int | None, slots: tuple[int, ...]) -> tuple[int, ...]:
        return (gpus.get(pid) or slots) if pid is not None else slots

    if workload is not None:
        for a in workload.actors.rows:
            label = a.class_name + (f" {a.name!r}" if a.name else "")
            rows.append(
                RunRow(
                    f"actor:{a.actor_id}", "actor", a.pid, gpus_of(a.pid, a.gpu_ids), a.state, label
                )
            )
            if a.pid is not None:
                shown.add(a.pid)
        for t in workload.running_tasks.rows:
            rows.append(
                RunRow(
                    f"task:{t.task_id}",
                    "task",
                    t.worker_pid,
                    gpus_of(t.worker_pid, ()),
                    t.state,
                    t.name,
                )
            )
            if t.worker_pid is not None:
                shown.add(t.worker_pid)
        for w in workload.workers:
            if w.pid in shown:
                continue
            shown.add(w.pid)
            kind = "driver" if w.kind == "DRIVER" else "worker"
            what = "idle worker" if kind == "worker" else "driver"
            rows.append(
                RunRow(
                    f"worker:{w.worker_id}", kind, w.pid, gpus_of(w.pid, w.gpu_ids), "ALIVE", what
                )
            )
    if node is not None:
        for gpu in node.gpus:
            for proc in gpu.processes:
                if proc.pid in shown:
                    continue
                shown.add(proc.pid)
                rows.append(
                    RunRow(
                        f"pid:{proc.pid}",
                        "process",
                        proc.pid,
                        gpus.get(proc.pid, ()),
                        "",
                        proc.label or "GPU process",
                    )
                )
    return rows


def gpu_text(gpus: tuple[int, ...]) -> str:
    return ",".join(str(g) for g in gpus) if gpus else "-"


class RunsTable(DataTable[Text]):
    """The rows of `run_rows`; Enter (or the log key) asks the screen for the row's log."""

    DEFAULT_CSS = """
    RunsTable { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self.rows_shown: list[RunRow] = []

    def on_mount(self) -> None:
        self.add_column("KIND", width=7, key="kind")
        self.add_column("PID", width=8, key="pid")
        self.add_column("GPU", width=5, key="gpu")
        self.add_column("STATE", width=8, key="state")
        self.add_column("WHAT", key="what")

    def show(self, rows: list[RunRow]) -> None:
        """Replace the rows, keeping the cursor on the same row (by key) when it is still there."""
        if rows == self.rows_shown:
            return
        current = self.current
        self.rows_shown = rows
        self.clear()
        for r in rows:
            self.add_row(
                Text(r.kind),
                Text("" if r.pid is None else str(r.pid)),
                Text(gpu_text(r.gpus)),
                Text(r.state),
                Text(r.what),  # from Ray: literal text, never markup
                key=r.key,
            )
        if current is not None:
            keys = [r.key for r in rows]
            if current.key in keys:
                self.move_cursor(row=keys.index(current.key), animate=False)

    @property
    def current(self) -> RunRow | None:
        if not self.rows_shown or not 0 <= self.cursor_row < len(self.rows_shown):
            return None
        return self.rows_shown[self.cursor_row]
