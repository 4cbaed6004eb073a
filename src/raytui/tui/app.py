"""The raytui Textual app.

It is handed a `Connector` (see sources/connection.py) and never imports Ray. It composes its
parts: the cluster poller (cluster_poller.py, a hidden widget on the cluster screen that calls the
connector and the connection in its thread workers; its messages bubble up here) and the peers
controller (peers_controller.py, which owns the peers sidebar and its poller; the app routes
`p`/`a`/`P` to it). Tests and the benchmark feed `SnapshotReady` messages exactly as the poller
does (`app.feed(snapshot)` from any thread). The link's state changes in one place, `_set_link`.

Screens are registered here: `ClusterScreen` is the default (views inside it are listed in
`screens/cluster.py`), `NodeDetailScreen` and `HelpScreen` are pushed on top. A new screen that
shows live data subclasses `LiveScreen` and gets `show_snapshot` / `show_link` calls while on top.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, ClassVar

from textual.app import App
from textual.binding import BindingType
from textual.command import Provider
from textual.notifications import SeverityLevel
from textual.screen import Screen

from raytui.model.cluster import ClusterSnapshot
from raytui.model.gpu_history import GpuHistory
from raytui.model.nvml import NvmlReport
from raytui.sources.connection import Connector
from raytui.tui import keys, peers_controller
from raytui.tui.cluster_poller import ClusterPoller
from raytui.tui.messages import (
    ConnectionClosed,
    ConnectionStateChanged,
    ConnectProgress,
    ConnState,
    OpenJob,
    OpenNode,
    OverlayPathsChanged,
    SnapshotReady,
)
from raytui.tui.palette import RaytuiCommands
from raytui.tui.peers_controller import PeersController
from raytui.tui.screens.cluster import ClusterScreen
from raytui.tui.screens.live import LiveScreen
from raytui.tui.state import UiState

if TYPE_CHECKING:
    from raytui.backends.service import PromptService
    from raytui.model.prompts import PromptRequest
    from raytui.model.workbench import JobSubmission
    from raytui.tui.screens.composer import ComposerScreen

# The screens pushed on top of the cluster view are imported when first opened, not at start:
# they are off the path to the first frame (issue 12).

Clock = Callable[[], float]


def _local_nvml() -> NvmlReport:
    from raytui.sources import nvml

    return nvml.sample()


@peers_controller.serve_keys  # p, a, P: the peers sidebar's keys, served by `self.peers`
class RaytuiApp(App[int]):
    CSS_PATH = "raytui.tcss"
    TITLE = "raytui"
    BINDINGS: ClassVar[list[BindingType]] = (
        peers_controller.BINDINGS
        + keys.bindings(
            "quit", "quit_now", "help", "palette", "refresh", "view_nodes", "view_gpus", "view_jobs"
        )
        + keys.bindings("view_tasks", "view_actors")
        + keys.bindings("composer", "history", "engines")
    )
    COMMANDS: ClassVar[set[type[Provider] | Callable[[], type[Provider]]]] = {
        *App.COMMANDS,
        RaytuiCommands,
    }
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]

    def __init__(
        self,
        connector: Connector,
        refresh: float = 2.0,
        readonly: bool = False,
        keymap: Mapping[str, str] | None = None,
        clock: Clock = time.time,
        *,
        target: str = "",
        nvml_sampler: Callable[[], NvmlReport] | None = _local_nvml,
        config_path: str | None = None,
        history_capacity: int | None = None,
        local_hostname: str | None = None,
        local_addresses: Iterable[str] | None = None,
        prompt_service: PromptService | None = None,
        log_max_lines: int = 50_000,
    ) -> None:
        """
        connector: blocking; resolves the address and starts or attaches (run in a worker).
        refresh: seconds between polls. readonly: no actions that change the cluster.
        keymap: binding id -> keys (config `[keys]`). clock: wall clock for ages and countdowns.
        target: what we connect to, shown while connecting ("embedded Ray", an address).
        nvml_sampler: reads this machine's GPUs (blocking; None: no local NVML).
        local_hostname, local_addresses: this machine, to tell which node it is (default: read).
        prompt_service: runs prompts for the composer and holds their history (None: no prompts).
        log_max_lines: lines each log viewer keeps (config `[logs] max_lines`).
        history_capacity: GPU samples kept (default: 15 minutes at `refresh`).
        """
        super().__init__()
        self.state = UiState(
            clock=clock,
            readonly=readonly,
            history=GpuHistory(history_capacity, refresh=refresh),
            refresh=refresh,
        )
        if local_hostname is not None:
            self.state.local_hostname = local_hostname
        if local_addresses is not None:
            self.state.local_addresses = frozenset(local_addresses)
        self.state.link.target = target
        known, self.unknown_keys = keys.split_keymap(dict(keymap or {}))
        self.keymap = known
        self.state.keys = keys.current_keys(known)
        self.poller = ClusterPoller(connector, refresh)
        self.peers = PeersController(readonly=readonly, keymap=known)
        self.nvml_sampler = nvml_sampler
        self.config_path = config_path
        self.prompt_service = prompt_service
        self.log_max_lines = log_max_lines
        self.job_draft: JobSubmission | None = None  # the submit dialog's fields, kept across Esc
        self._quitting = False
        self.exit_code = 0

    # -- screens ------------------------------------------------------------------------------

    def get_default_screen(self) -> Screen[None]:
        return ClusterScreen(self.state, workbench=self.poller.workbench)

    @property
    def cluster_screen(self) -> ClusterScreen:
        return next(s for s in self.screen_stack if isinstance(s, ClusterScreen))

    def on_mount(self) -> None:
        self.set_keymap(self.keymap)
        if self.unknown_keys:
            self.notify(
                "unknown key binding ids in [keys]: "
                + ", ".join(self.unknown_keys)
                + " (see ? for the ids)",
                severity="warning",
            )
        self.screen.mount(self.poller)  # it starts polling once mounted
        self.call_after_refresh(self._start_peers)
        self.call_after_refresh(gc.freeze)

    def _start_peers(self) -> None:
        # In the body, below the header (composed by now): the header keeps its full width.
        self.cluster_screen.query_one("#body").mount(self.peers)

    # -- data from the poller -----------------------------------------------------------------

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Notifications carry error texts, hostnames and prompts: never parse them as markup.

        Widgets' `notify` passes Textual's default `markup=True` along; it is ignored here.
        """
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def feed(self, snapshot: ClusterSnapshot) -> None:
        """Hand the app a snapshot as the poller would (thread-safe)."""
        self.post_message(SnapshotReady(snapshot))

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        state = self.state
        replaced = state.snapshot
        state.snapshot = message.snapshot
        state.slow_poll = message.slow
        state.generation += 1
        state.history.record(message.snapshot, message.sample)
        if state.generation == 1:
            self.call_after_refresh(gc.freeze)
        if state.link.state is ConnState.CONNECTING:
            # Fed directly (tests, bench): a snapshot means connected.
            self._set_link(ConnState.CONNECTED)
        state.link.ever_connected = True
        screen = self.screen
        if isinstance(screen, LiveScreen) and screen.ready:
            screen.show_snapshot()
        self.poller.retire(replaced)  # freed in the poll worker, not on the event loop

    def on_overlay_paths_changed(self, message: OverlayPathsChanged) -> None:
        self.state.paths = message.paths
        if any(isinstance(s, ClusterScreen) for s in self.screen_stack):
            cluster = self.cluster_screen
            if cluster.ready:
                cluster.show_paths()

    def on_connect_progress(self, message: ConnectProgress) -> None:
        self.state.link.progress = message.text
        self._show_link()

    def on_connection_state_changed(self, message: ConnectionStateChanged) -> None:
        self._set_link(message.state, message.error, message.next_retry_in, message.description)

    def _set_link(
        self,
        state: ConnState,
        error: str | None = None,
        next_retry_in: float | None = None,
        description: str | None = None,
    ) -> None:
        """The one place the link changes state (from the poller's messages, a fed snapshot)."""
        link = self.state.link
        link.state = state
        link.error = error
        if description is not None:
            link.description = description
        link.retry_at = None if next_retry_in is None else self.state.now() + next_retry_in
        if state is ConnState.CONNECTED:
            link.ever_connected = True
        self._show_link()

    def _show_link(self) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, LiveScreen) and screen.ready:
                screen.show_link()

    # -- actions ------------------------------------------------------------------------------

    def action_refresh(self) -> None:
        self.poller.poll_now()

    def open_composer(self, request: PromptRequest | None = None) -> ComposerScreen:
        """Show the prompt composer (one instance: its runs keep streaming when it is hidden)."""
        from raytui.tui.screens.composer import ComposerScreen

        if not self.is_screen_installed("composer"):
            composer_screen = ComposerScreen(self.prompt_service, readonly=self.state.readonly)
            self.install_screen(composer_screen, name="composer")
        screen = self.get_screen("composer")
        assert isinstance(screen, ComposerScreen)
        composer: ComposerScreen = screen
        if composer in self.screen_stack:
            while self.screen is not composer:
                self.pop_screen()
        else:
            self.push_screen(composer)
        if request is not None:
            self.call_after_refresh(composer.prefill, request)
        return composer

    def action_open_composer(self) -> None:
        self.open_composer()

    def action_open_history(self) -> None:
        from raytui.tui.screens.history import HistoryScreen

        if isinstance(self.screen, HistoryScreen):
            return
        store = self.prompt_service.history if self.prompt_service is not None else None
        self.push_screen(HistoryScreen(store, now=self.state.now))

    def action_open_engines(self) -> None:
        from raytui.tui.screens.engines import EnginesScreen

        if not isinstance(self.screen, EnginesScreen):
            self.push_screen(
                EnginesScreen(self.prompt_service, readonly=self.state.readonly, now=self.state.now)
            )

    def action_help(self) -> None:
        from raytui.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.state.keys, self.config_path))

    def action_switch_view(self, view: str) -> None:
        while len(self.screen_stack) > 1 and not isinstance(self.screen, ClusterScreen):
            self.pop_screen()
        self.cluster_screen.switch_view(view)

    def action_filter(self) -> None:
        self.action_switch_view(self.cluster_screen.view)
        self.cluster_screen.action_filter()

    def on_open_node(self, message: OpenNode) -> None:
        from raytui.tui.screens.node_detail import NodeDetailScreen

        if isinstance(self.screen, NodeDetailScreen):
            self.pop_screen()
        self.push_screen(
            NodeDetailScreen(
                self.state,
                message.node_id,
                sample_local=self.nvml_sampler,
                probe=self.poller.probe_node,
                workbench=self.poller.workbench,
            )
        )

    def action_open_job_submit(self) -> None:
        from raytui.model.workbench import JobSubmission
        from raytui.tui.screens.job_submit import JobSubmitScreen

        if self.state.readonly:
            self.notify(
                "read-only console: jobs cannot be submitted (started with --readonly)",
                severity="warning",
            )
            return
        if isinstance(self.screen, JobSubmitScreen):
            return

        def keep(draft: JobSubmission) -> None:
            self.job_draft = draft

        def submitted(key: str | None) -> None:
            if key is not None:
                self.job_draft = None
                self.notify(f"submitted job {key}")
                self.poller.poll_now()
                self.post_message(OpenJob(key))

        def submit(job: JobSubmission) -> str:
            return self.poller.workbench().jobs.submit(job)

        draft = self.job_draft or JobSubmission("")
        self.push_screen(JobSubmitScreen(submit, draft, keep=keep), submitted)

    def on_open_job(self, message: OpenJob) -> None:
        from raytui.tui.screens.job_detail import JobDetailScreen

        if isinstance(self.screen, JobDetailScreen):
            self.pop_screen()
        snap = self.state.snapshot
        console = snap is not None and any(
            j.console and message.key in (j.submission_id, j.job_id) for j in snap.jobs
        )
        self.push_screen(
            JobDetailScreen(
                message.key,
                lambda: self.poller.workbench().jobs,
                readonly=self.state.readonly,
                console=console,
                now=self.state.now,
                max_lines=self.log_max_lines,
                on_deleted=self.poller.poll_now,
            )
        )

    async def action_quit(self) -> None:
        """Close the connection in a worker (stopping an embedded Ray), then exit.

        Quitting again while that runs exits at once.
        """
        if self._quitting:
            self.exit(self.exit_code)
            return
        self._quitting = True
        self.peers.stop()
        embedded = "embedded" in (self.state.link.description or self.state.link.target).lower()
        self.state.link.state = ConnState.STOPPING
        self.state.link.progress = (
            "stopping embedded Ray… (q again to quit at once)"
            if embedded
            else "disconnecting… (q again to quit at once)"
        )
        self._show_link()
        self.notify(self.state.link.progress, title="raytui", timeout=30)
        self.poller.stop()

    def on_connection_closed(self, message: ConnectionClosed) -> None:
        detail = None
        if message.error:
            detail = f"raytui: closing the connection failed: {message.error}"
        self.exit(self.exit_code, message=detail)
