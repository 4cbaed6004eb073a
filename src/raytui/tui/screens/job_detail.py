"""One job (Enter on a job in the Jobs view, or right after a submit): its facts and its log.

While the screen is open (until `closed` is set) it reads the job's info in a thread worker
every `poll` seconds until the job ends (status, message, times, runtime env, driver node,
entrypoint resources), and another worker follows the job's log through `JobsClient.follow` into
the `LogView`; both hand their failure to one line on the screen (`ThreadWork`). `x` stops the
job and `D` deletes a finished one, each after asking; both are refused on a read-only console,
and for the console's own Ray driver.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.screen import Screen

from raytui.errors import describe
from raytui.model.workbench import JobInfo
from raytui.sources.jobs import JobsClient
from raytui.tui import keys
from raytui.tui.screens.confirm import ConfirmScreen
from raytui.tui.thread_work import ThreadWork
from raytui.tui.widgets.footer import KeysFooter
from raytui.tui.widgets.jobs import JobInfoPanel
from raytui.tui.widgets.log_view import LogView

__all__ = ["CONSOLE_REFUSED", "READONLY_DELETE", "READONLY_STOP", "JobDetailScreen"]

READONLY_STOP = "read-only console: jobs cannot be stopped (started with --readonly)"
READONLY_DELETE = "read-only console: jobs cannot be deleted (started with --readonly)"
CONSOLE_REFUSED = (
    "this is this console's own Ray driver (it runs prompts and GPU probes): "
    "it ends when raytui quits, not from here"
)

Jobs = Callable[[], JobsClient]
"""Blocking: the connected cluster's jobs client (raises RaytuiError when not connected)."""


class JobDetailScreen(ThreadWork, Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = keys.bindings("back", "job_stop", "job_delete")
    DEFAULT_CSS = """
    JobDetailScreen #job-log { height: 1fr; }
    """

    def __init__(
        self,
        key: str,
        jobs: Jobs,
        *,
        readonly: bool = False,
        console: bool = False,
        now: Callable[[], float] = time.time,
        max_lines: int = 50_000,
        poll: float = 2.0,
        on_deleted: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(id="job-detail")
        self.key = key
        self.jobs = jobs
        self.readonly = readonly
        self.console = console
        self.now = now
        self.max_lines = max_lines
        self.poll = poll
        self.on_deleted = on_deleted
        self.closed = threading.Event()
        self.info: JobInfo | None = None
        self.reads = 0  # answered info reads (tests wait on it)

    def compose(self) -> ComposeResult:
        yield JobInfoPanel(self.key, console=self.console, hint=self._hint(), id="job-info")
        yield LogView(f"job {self.key}", max_lines=self.max_lines, id="job-log")
        yield KeysFooter()

    def _hint(self) -> str:
        """The job's own keys, which the footer (log keys first) may cut at 80 columns."""
        remapped = getattr(self.app, "keymap", {})
        shown = []
        for binding_id, what in (("job_stop", "stop"), ("job_delete", "delete"), ("back", "back")):
            spec = keys.BY_ID[binding_id]
            key = keys.display_keys(remapped.get(binding_id, spec.keys)).split(" ")[0]
            shown.append(f"{key} {what}")
        return " · ".join(shown)

    @property
    def log_view(self) -> LogView:
        return self.query_one(LogView)

    def on_mount(self) -> None:
        self.query_one(JobInfoPanel).show(None, None, self.now())
        self._watch_status()
        self._follow_log()

    def on_unmount(self) -> None:
        self.closed.set()

    def action_back(self) -> None:
        self.closed.set()
        self.dismiss()

    # -- workers ------------------------------------------------------------------------------

    def _watch_status(self) -> None:
        if not self.closed.is_set():
            self.in_thread(self._read_info, self._info_read, name="status", group="job-status")

    def _read_info(self) -> JobInfo:
        return self.jobs().info(self.key)

    def _info_read(self, info: JobInfo | None, error: BaseException | None) -> None:
        self.reads += 1
        ended = self.info is not None and not self.info.terminal
        if info is not None:
            self.info = info
        self.query_one(JobInfoPanel).show(
            info, None if error is None else describe(error), self.now()
        )
        if ended and self.info is not None and self.info.terminal:
            self.app.bell()
        if (info is None or not info.terminal) and not self.closed.is_set():
            self.set_timer(self.poll, self._watch_status, name="job-status")

    def _follow_log(self) -> None:
        view = self.log_view

        def follow() -> None:
            for chunk in self.jobs().follow(self.key, self.closed):
                if self.closed.is_set():
                    return
                view.append(chunk)

        def ended(_: object, error: BaseException | None) -> None:
            if not self.closed.is_set():  # an unreachable dashboard, an unknown job: one line
                view.finish(None if error is None else describe(error))

        self.in_thread(follow, ended, name="log", group="job-log", exclusive=True)

    # -- stop and delete ----------------------------------------------------------------------

    def _refused(self, readonly_text: str) -> bool:
        if self.readonly:
            self.notify(readonly_text, severity="warning")
            return True
        if self.console:
            self.notify(CONSOLE_REFUSED, severity="warning")
            return True
        return False

    def action_stop_job(self) -> None:
        if self._refused(READONLY_STOP):
            return
        if self.info is not None and self.info.terminal:
            self.notify(f"job {self.key} already ended ({self.info.status})", severity="warning")
            return
        question = Text.assemble(
            "Stop job ",
            (self.key, "bold"),
            "?\n\n",
            ("Ray ends its driver and every task it started.", "dim"),
        )
        confirm = ConfirmScreen("Stop job", question, "stop", "keep", id="confirm-job-stop")
        self.app.push_screen(confirm, lambda yes: self._act("stop") if yes else None)

    def action_delete_job(self) -> None:
        if self._refused(READONLY_DELETE):
            return
        if self.info is None or not self.info.terminal:
            status = self.info.status if self.info is not None else "not read yet"
            self.notify(
                f"only a finished job can be deleted; {self.key} is {status} (x stops it)",
                severity="warning",
            )
            return
        question = Text.assemble(
            "Delete job ",
            (self.key, "bold"),
            "?\n\n",
            ("Its record and its log are removed from the cluster.", "dim"),
        )
        confirm = ConfirmScreen("Delete job", question, "delete", "keep", id="confirm-job-delete")
        self.app.push_screen(confirm, lambda yes: self._act("delete") if yes else None)

    def _act(self, verb: str) -> None:
        key, jobs = self.key, self.jobs

        def work() -> None:
            client = jobs()
            client.stop(key) if verb == "stop" else client.delete(key)

        self.in_thread(work, partial(self._acted, verb), name=verb, group=f"job-{verb}")

    def _acted(self, verb: str, _: object, error: BaseException | None) -> None:
        if error is not None:
            self.notify(describe(error), title=f"Cannot {verb} {self.key}", severity="error")
            return
        if verb == "stop":
            self.notify(f"stopping job {self.key}")  # the status shows STOPPED within a poll
            return
        self.notify(f"deleted job {self.key}")
        if self.on_deleted is not None:
            self.on_deleted()
        self.action_back()
