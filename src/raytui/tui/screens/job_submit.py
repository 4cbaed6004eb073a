"""The job submit dialog (`n` in the Jobs view, or `:submit-job`).

Every field is checked as it is typed (`JobSubmission.validate`, the same check the data layer
runs before it submits), with the message under the field. Enter or ^s submits only when nothing
is wrong; the submit runs in a thread worker (it may upload a working directory) and the dialog
stays open until it answers: on failure it shows the error on one line and keeps every field. What
is typed is handed to `keep` on every change, so the app can reopen the dialog with the last draft
after Esc.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from functools import partial
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from raytui.errors import describe
from raytui.model.workbench import JobSubmission
from raytui.text import one_line
from raytui.tui import keys
from raytui.tui.screens.confirm import DIALOG_CSS
from raytui.tui.thread_work import ThreadWork

__all__ = ["FIELDS", "JobSubmitScreen"]

# (JobSubmission field, label, placeholder)
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("entrypoint", "Entrypoint", "python run.py --epochs 3"),
    ("working_dir", "Working dir", "a local directory, uploaded (optional)"),
    ("pip", "pip packages", "requests==2.32 numpy (optional)"),
    ("env_vars", "Env vars", "NAME=value OTHER='two words' (optional)"),
    ("num_gpus", "GPUs", "entrypoint GPUs, e.g. 1 (default 0)"),
    ("num_cpus", "CPUs", "entrypoint CPUs, e.g. 0.5 (default 1)"),
    ("resources", "Resources", "custom resources NAME=amount (optional)"),
    ("submission_id", "Submission ID", "chosen by Ray when empty"),
)
assert [f[0] for f in FIELDS] == [f.name for f in fields(JobSubmission)]

Submit = Callable[[JobSubmission], str]
"""Blocking: submit the job, return its submission ID; raises RaytuiError (one line)."""


class JobSubmitScreen(ThreadWork, ModalScreen[str | None]):
    """Dismisses with the new job's submission ID, or None when cancelled."""

    DEFAULT_CSS = f"""
    JobSubmitScreen {{ {DIALOG_CSS} }}
    JobSubmitScreen > Vertical {{ overflow-y: auto; }}
    JobSubmitScreen .job-row {{ height: 1; }}
    JobSubmitScreen .job-row Label {{ width: 15; color: $text-muted; }}
    JobSubmitScreen .job-row Input {{ width: 1fr; }}
    JobSubmitScreen .job-row Input.-invalid {{ color: $error; }}
    JobSubmitScreen .job-check {{ height: auto; padding-left: 15; color: $error; display: none; }}
    JobSubmitScreen .job-check.-shown {{ display: block; }}
    JobSubmitScreen #job-outcome {{ height: auto; margin-top: 1; display: none; }}
    JobSubmitScreen #job-outcome.-shown {{ display: block; }}
    """
    BINDINGS: ClassVar[list[BindingType]] = keys.bindings("back", "job_send")

    def __init__(
        self,
        submit: Submit,
        draft: JobSubmission | None = None,
        *,
        keep: Callable[[JobSubmission], None] | None = None,
        is_dir: Callable[[str], bool] | None = None,
    ) -> None:
        super().__init__(id="job-submit")
        self.submit_job = submit
        self.initial = draft or JobSubmission("")
        self.keep = keep
        self.is_dir = is_dir
        self.busy = False
        self._leave_asked = False
        self.problems: dict[str, str] = {}
        self.outcome = ""  # the last answer or refusal, as shown

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Submit a Ray job"
            box.border_subtitle = "⏎/^s submit · tab next field · esc cancel (keeps the draft)"
            for name, label, placeholder in FIELDS:
                with Horizontal(classes="job-row"):
                    yield Label(label)
                    yield Input(
                        getattr(self.initial, name),
                        placeholder=placeholder,
                        select_on_focus=False,
                        compact=True,
                        id=f"job-{name}",
                    )
                yield Static("", id=f"job-{name}-check", classes="job-check", markup=False)
            yield Static("", id="job-outcome", markup=False)

    def on_mount(self) -> None:
        self._check()
        self.query_one("#job-entrypoint", Input).focus()

    @property
    def draft(self) -> JobSubmission:
        """What the fields hold now."""
        values = {name: self.query_one(f"#job-{name}", Input).value for name, _, _ in FIELDS}
        return JobSubmission(**values)

    def _check(self) -> dict[str, str]:
        job = self.draft
        self.problems = job.validate() if self.is_dir is None else job.validate(self.is_dir)
        for name, _, _ in FIELDS:
            message = self.problems.get(name, "")
            # The empty entrypoint of a fresh dialog is not an error yet: say it on submit.
            typed = name != "entrypoint" or bool(self.query_one(f"#job-{name}", Input).value)
            shown = one_line(message) if typed else ""
            check = self.query_one(f"#job-{name}-check", Static)
            check.update(shown)
            check.set_class(bool(shown), "-shown")
            self.query_one(f"#job-{name}", Input).set_class(bool(shown), "-invalid")
        return self.problems

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._check()
        if self.keep is not None:
            self.keep(self.draft)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def _say(self, text: str, style: str = "") -> None:
        self.outcome = text
        outcome = self.query_one("#job-outcome", Static)
        outcome.update(Text(one_line(text), style=style))
        outcome.set_class(bool(text), "-shown")

    def action_submit(self) -> None:
        if self.busy:
            return
        problems = self._check()
        if problems:
            self.app.bell()
            first = next(name for name, _, _ in FIELDS if name in problems)
            for name, _, _ in FIELDS:  # show them all now, the empty entrypoint included
                if name in problems:
                    check = self.query_one(f"#job-{name}-check", Static)
                    check.update(one_line(problems[name]))
                    check.add_class("-shown")
                    self.query_one(f"#job-{name}", Input).add_class("-invalid")
            self._say(f"not submitted: fix the {len(problems)} field(s) marked above", "red")
            self.query_one(f"#job-{first}", Input).focus()
            return
        job = self.draft
        self.busy = True
        uploading = " (uploading the working directory)" if job.working_dir.strip() else ""
        self._say(f"submitting…{uploading}", "dim")
        self.in_thread(partial(self.submit_job, job), self._done, name="submit", group="job-submit")

    def _done(self, key: str | None, error: BaseException | None) -> None:
        self.busy = False
        self._leave_asked = False
        if error is not None or key is None:
            self._say(f"not submitted: {None if error is None else describe(error)}", "red")
            return
        self.dismiss(key)

    def action_back(self) -> None:
        if self.busy and not self._leave_asked:
            # Closing cannot take back a submit under way (an upload may take minutes).
            self._leave_asked = True
            self._say("still submitting: esc again closes, and the job may still start", "yellow")
            return
        if self.keep is not None:
            self.keep(self.draft)
        self.dismiss(None)
