"""The peers sidebar, its poller and its dialogs, as one App base class (`PeersApp`).

`RaytuiApp` derives from it (the keys `p` toggle_peers, `a` add_peer, `P` start_proxy come with
it; `d`/`delete` remove_peer lives on the sidebar), calls `peers_start(host=...)` once its first
screen is composed, and `peers_stop()` when quitting. `peers_start` mounts the sidebar, hidden,
in `host` (raytui passes the cluster screen's `#body`, so the header keeps the full width), where
it docks right. The host has the class `-peers` while the sidebar shows, so raytui.tcss can adapt:
on a wide terminal the node list then stacks over the GPU panes. The 120-column breakpoint counts
the whole terminal, not what the sidebar leaves. If `RaytuiApp` ever defines `check_action`, it
must end with `return super().check_action(action, parameters)` (`a`/`P` depend on it).

Keys: `p` shows the sidebar and focuses it, again hides it (focus goes back where it was); while
it is shown, `a` opens the add-peer dialog and `P` starts the daemon when none answers
(`raytui proxy start`, detached); on the sidebar `d`/`delete` asks to remove the highlighted
peer (`y`/Enter yes, `n`/Esc no) and Enter shows the full peer ID, addresses and last error.
Under the daemon's own line the sidebar shows the overlay (address, connections, refusals, or why
it is off), the Ray node `raytui join` started, each forward (local port -> peer:service, active
connections or why it is down) and the services this daemon offers; `o` on the sidebar shows all
of it uncut. Each reading also becomes an `OverlayPathsChanged` message (when the paths changed)
for the node list's PATH column.

The add-peer dialog's "join its Ray cluster" choice (and any invite) goes: add (dial) -> join
(the daemon starts a Ray worker on the overlay) -> the outcome in the dialog; nothing typed is
lost when either step fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, TypeVar

from textual.app import App
from textual.binding import BindingType
from textual.widget import Widget

from raytui.model.node_path import OverlayPaths
from raytui.model.overlay import JoinState
from raytui.model.peers import LinkState, PeerHealth
from raytui.tui import keys
from raytui.tui.messages import OverlayPathsChanged
from raytui.tui.peer_rates import human_rtt
from raytui.tui.peers_poller import (
    POLL_INTERVAL,
    DaemonStartDone,
    PeerAddDone,
    PeerJoinDone,
    PeerRemoveDone,
    PeersPoller,
    PeersPollFinished,
    PeersStatusReady,
    Starter,
    start_daemon,
)
from raytui.tui.screens.peer_dialogs import AddPeerScreen, ConfirmRemoveScreen, join_summary
from raytui.tui.widgets.peers import PeersSidebar, peer_bindings, peer_key

ReturnType = TypeVar("ReturnType")

READONLY = "read-only mode: peers cannot be changed (started with --readonly)"


class PeersApp(App[ReturnType]):
    """An App with the peers sidebar. Call `peers_start()` from `on_mount`."""

    BINDINGS: ClassVar[list[BindingType]] = peer_bindings("toggle_peers", "add_peer", "start_proxy")

    peers_poller: PeersPoller | None = None
    peers_sidebar: PeersSidebar | None = None
    peers_readonly = False
    _peers_host: Widget | None = None
    _peers_focus_back: Widget | None = None
    _peers_toggle_early = False  # `p` pressed before the sidebar was mounted: act once it is
    _peers_select: str | None = None  # highlight this peer once it is listed
    _peers_paths: OverlayPaths | None = None  # last posted in OverlayPathsChanged
    _peers_join: AddPeerScreen.Submitted | None = None  # the add under way is to be joined

    def peers_start(
        self,
        *,
        socket: Path | None = None,
        interval: float = POLL_INTERVAL,
        starter: Starter = start_daemon,
        readonly: bool = False,
        keymap: Mapping[str, str] | None = None,
        host: Widget | None = None,
        show: bool = False,
    ) -> None:
        """Mount the sidebar in `host` (default: the first screen; it docks right) and start
        reading the daemon whose control socket is `socket` (default: this user's)."""
        current = dict(keymap or {})

        def key(binding_id: str) -> str:
            spec = peer_key(binding_id)
            return keys.display_keys(current.get(binding_id, spec.keys)).split(" ")[0]

        self.peers_readonly = readonly
        sidebar = PeersSidebar(
            start_key=key("start_proxy"),
            add_key=key("add_peer"),
            remove_key=key("remove_peer"),
            overlay_key=key("overlay_details"),
            id="peers",
        )
        self.peers_sidebar = sidebar
        self._peers_host = host or self.screen_stack[0]
        self._peers_host.mount(sidebar)
        self._peers_set_shown(show)
        self.peers_poller = PeersPoller(self, socket=socket, interval=interval, starter=starter)
        self.peers_poller.start()

    def peers_stop(self) -> None:
        if self.peers_poller is not None:
            self.peers_poller.stop()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """`a` and `P` act while the sidebar is shown (and `P` only when no daemon answers), so
        they neither clutter the footer nor fire by accident on the cluster view."""
        if action in ("add_peer", "start_proxy"):
            sidebar = self.peers_sidebar
            if sidebar is None or not sidebar.display:
                return False
            if action == "start_proxy":
                return not (self.peers_poller is not None and self.peers_poller.reachable)
            return True
        return super().check_action(action, parameters)

    # -- showing the sidebar ------------------------------------------------------------------

    def action_toggle_peers(self) -> None:
        """Hidden: show and focus. Shown but not focused: focus. Focused: hide."""
        sidebar = self.peers_sidebar
        if sidebar is None or not sidebar.is_mounted:
            # The app has just started (the sidebar mounts after the first refresh): not lost,
            # done once it is there (`on_peers_sidebar_ready`); pressed twice, nothing.
            self._peers_toggle_early = not self._peers_toggle_early
            return
        if not sidebar.display:
            self._peers_show(focus=True)
        elif not sidebar.has_focus_within:
            self._peers_focus_back = self.focused
            sidebar.focus_peers()
        else:
            self._peers_set_shown(False)
            back = self._peers_focus_back
            self._peers_focus_back = None
            if back is not None and back.is_mounted and back.screen is sidebar.screen:
                back.focus()
            else:
                sidebar.screen.focus_next()

    def on_peers_sidebar_ready(self, message: PeersSidebar.Ready) -> None:
        if self._peers_toggle_early:
            self._peers_toggle_early = False
            self.action_toggle_peers()

    def _peers_show(self, *, focus: bool) -> None:
        sidebar = self.peers_sidebar
        if sidebar is None:
            return
        if not sidebar.display:
            self._peers_set_shown(True)
            if focus:
                self._peers_focus_back = self.focused
        if focus:
            sidebar.focus_peers()

    def _peers_set_shown(self, shown: bool) -> None:
        """Also marks the host `-peers` while shown, for layouts that want to adapt."""
        if self.peers_sidebar is not None:
            self.peers_sidebar.display = shown
        if self._peers_host is not None:
            self._peers_host.set_class(shown, "-peers")
        self.refresh_bindings()

    # -- readings -----------------------------------------------------------------------------

    def on_peers_status_ready(self, message: PeersStatusReady) -> None:
        sidebar = self.peers_sidebar
        if sidebar is None:
            return
        sidebar.show(
            message.status,
            error=message.error,
            running=message.running,
            at=message.at,
            now=message.now,
        )
        self._peers_post_paths(message)
        select = self._peers_select
        if select is not None and message.status is not None:
            ids = [p.peer_id for p in message.status.peers]
            if select in ids:
                self._peers_select = None
                if sidebar.is_mounted:
                    sidebar.peer_list.highlighted = ids.index(select)

    def _peers_post_paths(self, message: PeersStatusReady) -> None:
        """The overlay's paths, for the node list: from each reading; None when no daemon runs;
        kept (stale) while a running daemon does not answer."""
        paths = self._peers_paths
        if message.status is not None:
            paths = OverlayPaths.from_status(message.status) or None
        elif not message.running:
            paths = None
        if paths != self._peers_paths:
            self._peers_paths = paths
            self.post_message(OverlayPathsChanged(paths))

    def on_peers_poll_finished(self, message: PeersPollFinished) -> None:
        poller = self.peers_poller
        if poller is not None:
            was = poller.reachable
            poller.poll_finished(message.error, message.running)
            if poller.reachable != was:
                self.refresh_bindings()

    # -- add ----------------------------------------------------------------------------------

    def action_add_peer(self) -> None:
        if self.peers_readonly:
            self.notify(READONLY, severity="warning")
            return
        if not any(isinstance(s, AddPeerScreen) for s in self.screen_stack):
            self.push_screen(AddPeerScreen(join_disabled=READONLY if self.peers_readonly else None))

    def on_add_peer_screen_submitted(self, message: AddPeerScreen.Submitted) -> None:
        poller = self.peers_poller
        if poller is None:
            return
        if self.peers_readonly:  # the dialog does not open in read-only consoles; never act
            message.dialog.add_failed(READONLY)
            return
        if message.invite:
            self._peers_join = None
            message.dialog.join_started(None)
            poller.join(None, "the invite's cluster", invite=message.multiaddr, gpus=message.gpus)
            return
        self._peers_join = message if message.join else None
        poller.add_peer(message.multiaddr, message.name)

    def on_peer_add_done(self, message: PeerAddDone) -> None:
        dialog = next(
            (s for s in self.screen_stack if isinstance(s, AddPeerScreen) and s.busy), None
        )
        peer = message.peer
        if self.peers_poller is not None:
            self.peers_poller.poll_now()
        if peer is not None:
            self._peers_select = peer.peer_id
            self._peers_show(focus=False)
        join, self._peers_join = self._peers_join, None
        if peer is not None and message.error is None:
            self.notify(_added(peer), title="Peers")
            if join is not None and self.peers_poller is not None:
                if dialog is not None:
                    dialog.join_started(peer)
                self.peers_poller.join(peer.peer_id, peer.label, gpus=join.gpus)
            elif dialog is not None:
                dialog.add_succeeded(message.multiaddr, message.name)
        elif dialog is not None:
            dialog.add_failed(message.error or "unknown error", peer=peer)
        else:  # the dialog was closed while the daemon dialled
            label = peer.label if peer is not None else message.multiaddr
            self.notify(
                f"{label}: {message.error}", title="Adding the peer failed", severity="error"
            )

    # -- join ---------------------------------------------------------------------------------

    def on_peer_join_done(self, message: PeerJoinDone) -> None:
        dialog = next(
            (s for s in self.screen_stack if isinstance(s, AddPeerScreen) and s.joining), None
        )
        if self.peers_poller is not None:
            self.peers_poller.poll_now()
        status = message.status
        if status is not None and status.state is JoinState.RUNNING:
            self.notify(join_summary(status), title=f"Joined {message.label}", timeout=12)
            if dialog is not None:
                address, name = dialog.addr_input.value.strip(), dialog.name_input.value.strip()
                dialog.join_succeeded(address, name or None, status)
            self._peers_show(focus=False)
        elif dialog is not None:
            dialog.join_failed(message.error, status)
        else:  # the dialog was closed while the daemon worked
            why = message.error
            if why is None and status is not None:
                why = f"not started yet ({status.state.value}): {status.last_error or 'no answer'}"
            self.notify(
                why or "no answer", title=f"Joining {message.label} failed", severity="error"
            )

    # -- remove -------------------------------------------------------------------------------

    def on_peers_sidebar_remove_peer_requested(
        self, message: PeersSidebar.RemovePeerRequested
    ) -> None:
        if self.peers_readonly:
            self.notify(READONLY, severity="warning")
            return
        peer = message.peer

        def answered(yes: bool | None) -> None:
            if yes and self.peers_poller is not None:
                self.peers_poller.remove_peer(peer.peer_id, peer.label)

        self.push_screen(ConfirmRemoveScreen(peer), answered)

    def on_peer_remove_done(self, message: PeerRemoveDone) -> None:
        if message.error is None:
            self.notify(f"removed {message.label}", title="Peers")
        else:
            self.notify(message.error, title=f"Could not remove {message.label}", severity="error")
        if self.peers_poller is not None:
            self.peers_poller.poll_now()

    # -- start the daemon ---------------------------------------------------------------------

    def action_start_proxy(self) -> None:
        poller, sidebar = self.peers_poller, self.peers_sidebar
        if poller is None or sidebar is None:
            return
        if self.peers_readonly:
            self.notify(READONLY, severity="warning")
            return
        if poller.reachable and sidebar.status is not None:
            self.notify(f"the proxy daemon is already running (pid {sidebar.status.pid})")
            return
        if poller.start_daemon():
            sidebar.set_starting(True)
            self._peers_show(focus=False)

    def on_daemon_start_done(self, message: DaemonStartDone) -> None:
        if self.peers_sidebar is not None:
            self.peers_sidebar.set_starting(False)
        if self.peers_poller is not None:
            self.peers_poller.start_finished()
        if message.error is not None:
            self.notify(message.error, title="Proxy daemon", severity="error", timeout=15)
        else:
            self.notify(message.text or "proxy daemon started", title="Proxy daemon")


def _added(peer: PeerHealth) -> str:
    if peer.state is LinkState.CONNECTED:
        rtt = "" if peer.rtt_ms is None else f", rtt {human_rtt(peer.rtt_ms)}"
        return f"added {peer.label}: connected{rtt}"
    return f"added {peer.label}: {peer.state.value}"
