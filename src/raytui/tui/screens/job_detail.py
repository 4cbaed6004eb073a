"""One job (Enter on a job in the Jobs view, or right after a submit): its facts and its log.

Two thread workers run while the screen is open and stop when it closes (`closed` is set): one
reads the job's info every `poll` seconds until the job ends (status, message, times, runtime
env, driver node, entrypoint resources), the other follows the job's log through
`JobsClient.follow` into the `LogView`. `x` stops the job and `D` deletes a finished one, each
after asking; both are refused on a read-only console, and for the console's own Ray driver.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer

from raytui import debuglog
from raytui.errors import describe
from raytui.model.workbench import JobInfo
from raytui.sources.jobs import JobsClient
from raytui.tui import keys
from raytui.tui.screens.confirm import ConfirmScreen
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


class JobRead(Message):
    def __init__(self, info: JobInfo | None, error: str | None) -> None:
        super().__init__()
        self.info = info
        self.error = error


class JobActed(Message):
    def __init__(self, verb: str, error: str | None) -> None:
        super().__init__()
        self.verb = verb  # "stop" or "delete"
        self.error = error


class JobDetailScreen(Screen[None]):
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
        yield Footer(show_command_palette=False)

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
        self.run_worker(
            self._status_loop, thread=True, group="job-status", exclusive=True, exit_on_error=False
        )

    def _status_loop(self) -> None:
        while not self.closed.is_set():
            try:
                info = self.jobs().info(self.key)
            except Exception as exc:
                debuglog.report("jobs.info", exc)
                self.post_message(JobRead(None, describe(exc)))
            else:
                self.post_message(JobRead(info, None))
                if info.terminal:
                    return
            self.closed.wait(self.poll)

    def _follow_log(self) -> None:
        self.run_worker(
            self._log_loop, thread=True, group="job-log", exclusive=True, exit_on_error=False
        )

    def _log_loop(self) -> None:
        view = self.log_view
        error: str | None = None
        try:
            for chunk in self.jobs().follow(self.key, self.closed):
                if self.closed.is_set():
                    return
                view.append(chunk)
        except Exception as exc:  # an unreachable dashboard, an unknown job: one line
            debuglog.report("jobs.follow", exc)
            error = describe(exc)
        if not self.closed.is_set():
            view.finish(error)

    def on_job_read(self, message: JobRead) -> None:
        self.reads += 1
        ended = self.info is not None and not self.info.terminal
        if message.info is not None:
            self.info = message.info
        self.query_one(JobInfoPanel).show(message.info, message.error, self.now())
        if ended and self.info is not None and self.info.terminal:
            self.app.bell()

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
            try:
                client = jobs()
                client.stop(key) if verb == "stop" else client.delete(key)
            except Exception as exc:
                debuglog.report(f"jobs.{verb}", exc)
                self.post_message(JobActed(verb, describe(exc)))
            else:
                self.post_message(JobActed(verb, None))

        self.run_worker(work, thread=True, group=f"job-{verb}", exit_on_error=False)

    def on_job_acted(self, message: JobActed) -> None:
        if message.error is not None:
            self.notify(message.error, title=f"Cannot {message.verb} {self.key}", severity="error")
            return
        if message.verb == "stop":
            self.notify(f"stopping job {self.key}")  # the status shows STOPPED within a poll
            return
        self.notify(f"deleted job {self.key}")
        if self.on_deleted is not None:
            self.on_deleted()
        self.action_back()
