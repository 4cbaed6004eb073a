"""The peers sidebar's controller: `PeersController`, a hidden widget the app holds.

It owns the sidebar (`widgets/peers.py`, mounted beside it in the same host) and the peers poller
(`peers_poller.py`, mounted inside it, so the poller's messages bubble here first), and opens
the peer dialogs. The app composes it: it mounts it in a host (raytui passes the cluster
screen's `#body`, so the header keeps the full width; the sidebar docks right there), binds
`BINDINGS`, and is decorated with `serve_keys`, which routes the keys `p` toggle_peers, `a`
add_peer, `P` start_proxy to `toggle`, `add_peer`, `start_proxy`, asking `allows(action)` from
its `check_action` (`d`/`delete` remove_peer and `o` live on the sidebar). The host has the
class `-peers` while the sidebar shows, so raytui.tcss can adapt: on a wide terminal the node
list then stacks over the GPU panes. The 120-column breakpoint counts the whole terminal, not
what the sidebar leaves.

Keys: `p` shows the sidebar and focuses it, again hides it (focus goes back where it was); while
it is shown, `a` opens the add-peer dialog and `P` starts the daemon when none answers
(`raytui proxy start`, detached); on the sidebar `d`/`delete` asks to remove the highlighted
peer (`y`/Enter yes, `n`/Esc no) and Enter shows the full peer ID, addresses and last error.
Under the daemon's own line the sidebar shows the overlay (address, connections, refusals, or why
it is off), the Ray node `raytui join` started, each forward (local port -> peer:service, active
connections or why it is down) and the services this daemon offers; `o` on the sidebar shows all
of it uncut. Each reading also becomes an `OverlayPathsChanged` message (when the paths changed)
that bubbles to the app, for the node list's PATH column.

A daemon that goes away gives one notification, not one per reading; a daemon that was never
running gives none (the sidebar offers to start it).

The add-peer dialog's "join its Ray cluster" choice (and any invite) goes: add (dial) -> join
(the daemon starts a Ray worker on the overlay) -> the outcome in the dialog; nothing typed is
lost when either step fails.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from textual.app import App
from textual.widget import Widget

from raytui.model.node_path import OverlayPaths
from raytui.model.overlay import JoinState
from raytui.model.peers import LinkState, PeerHealth
from raytui.tui import keys
from raytui.tui.messages import (
    DaemonStartDone,
    OverlayPathsChanged,
    PeerAddDone,
    PeerJoinDone,
    PeerRemoveDone,
    PeersStatusReady,
)
from raytui.tui.peer_rates import human_rtt
from raytui.tui.peers_poller import POLL_INTERVAL, PeersPoller, Starter, start_daemon
from raytui.tui.screens.peer_dialogs import AddPeerScreen, ConfirmRemoveScreen, join_summary
from raytui.tui.widgets.peers import PeersSidebar, peer_bindings, peer_key

READONLY = "read-only mode: peers cannot be changed (started with --readonly)"

ACTIONS = ("toggle_peers", "add_peer", "start_proxy")
"""The app-wide keys the controller serves; `BINDINGS` binds them for the app."""

BINDINGS = peer_bindings(*ACTIONS)

_A = TypeVar("_A", bound=type[App[Any]])


def serve_keys(app: _A) -> _A:
    """Class decorator for an App that holds its controller as `self.peers` (and binds
    `BINDINGS`): each of ACTIONS calls the controller, and `check_action` asks `allows` first.
    A decorator, not a base class, because the app composes the controller; RaytuiApp and the
    tests' stand-in host both use it."""
    asked = app.check_action

    def check_action(self: Any, action: str, parameters: tuple[object, ...]) -> bool | None:
        allowed = self.peers.allows(action)
        return asked(self, action, parameters) if allowed is None else allowed

    def calls(method: str) -> Callable[[Any], None]:
        def action(self: Any) -> None:
            getattr(self.peers, method)()

        return action

    setattr(app, "check_action", check_action)  # noqa: B010 (mypy refuses assigning a method)
    for action, method in zip(ACTIONS, ("toggle", "add_peer", "start_proxy"), strict=True):
        setattr(app, f"action_{action}", calls(method))
    return app


class PeersController(Widget):
    """Mount it in the sidebar's host; it mounts the sidebar there and starts reading the
    daemon whose control socket is `socket` (default: this user's)."""

    DEFAULT_CSS = "PeersController { display: none; }"

    def __init__(
        self,
        *,
        socket: Path | None = None,
        interval: float = POLL_INTERVAL,
        starter: Starter = start_daemon,
        readonly: bool = False,
        keymap: Mapping[str, str] | None = None,
        show: bool = False,
    ) -> None:
        super().__init__(id="peers-controller")
        current = dict(keymap or {})

        def key(binding_id: str) -> str:
            spec = peer_key(binding_id)
            return keys.display_keys(current.get(binding_id, spec.keys)).split(" ")[0]

        self.readonly = readonly
        self.poller = PeersPoller(socket=socket, interval=interval, starter=starter)
        self.sidebar = PeersSidebar(
            start_key=key("start_proxy"),
            add_key=key("add_peer"),
            remove_key=key("remove_peer"),
            overlay_key=key("overlay_details"),
            listener=self,
            id="peers",
        )
        self.reachable: bool | None = None  # None until the first reading
        self._show_at_start = show
        self._alerted = False  # the user was told the daemon is unreachable
        self._focus_back: Widget | None = None
        self._toggle_early = False  # `p` pressed before the sidebar was mounted: act once it is
        self._select: str | None = None  # highlight this peer once it is listed
        self._paths: OverlayPaths | None = None  # last posted in OverlayPathsChanged
        self._join: AddPeerScreen.Submitted | None = None  # the add under way is to be joined

    @property
    def host(self) -> Widget:
        parent = self.parent
        assert isinstance(parent, Widget)
        return parent

    async def on_mount(self) -> None:
        await self.host.mount(self.sidebar)
        self._set_shown(self._show_at_start)
        await self.mount(self.poller)
        if self._toggle_early:
            self._toggle_early = False
            self.toggle()

    def stop(self) -> None:
        self.poller.stop()

    def allows(self, action: str) -> bool | None:
        """For the app's `check_action`: `a` and `P` act while the sidebar is shown (and `P` only
        when no daemon answers), so they neither clutter the footer nor fire by accident on the
        cluster view. None: not one of the controller's actions."""
        if action not in ("add_peer", "start_proxy"):
            return None
        if not self.sidebar.is_mounted or not self.sidebar.display:
            return False
        if action == "start_proxy":
            return not self.reachable
        return True

    # -- showing the sidebar ------------------------------------------------------------------

    def toggle(self) -> None:
        """Hidden: show and focus. Shown but not focused: focus. Focused: hide."""
        sidebar = self.sidebar
        if not sidebar.is_mounted:
            # The app has just started (the sidebar mounts after the first refresh): not lost,
            # done once it is there (`on_mount`); pressed twice, nothing.
            self._toggle_early = not self._toggle_early
            return
        if not sidebar.display:
            self._show(focus=True)
        elif not sidebar.has_focus_within:
            self._focus_back = self.app.focused
            sidebar.focus_peers()
        else:
            self._set_shown(False)
            back = self._focus_back
            self._focus_back = None
            if back is not None and back.is_mounted and back.screen is sidebar.screen:
                back.focus()
            else:
                sidebar.screen.focus_next()

    def _show(self, *, focus: bool) -> None:
        sidebar = self.sidebar
        if not sidebar.display:
            self._set_shown(True)
            if focus:
                self._focus_back = self.app.focused
        if focus:
            sidebar.focus_peers()

    def _set_shown(self, shown: bool) -> None:
        """Also marks the host `-peers` while shown, for layouts that want to adapt."""
        self.sidebar.display = shown
        self.host.set_class(shown, "-peers")
        self.app.refresh_bindings()

    # -- readings -----------------------------------------------------------------------------

    def on_peers_status_ready(self, message: PeersStatusReady) -> None:
        self._tell_user(message)
        sidebar = self.sidebar
        sidebar.show(
            message.status,
            error=message.error,
            running=message.running,
            at=message.at,
            now=message.now,
        )
        self._post_paths(message)
        select = self._select
        if select is not None and message.status is not None:
            ids = [p.peer_id for p in message.status.peers]
            if select in ids:
                self._select = None
                if sidebar.is_mounted:
                    sidebar.peer_list.highlighted = ids.index(select)

    def _tell_user(self, message: PeersStatusReady) -> None:
        """One notice when the daemon goes away or comes back, and the keys it changes."""
        error, running = message.error, message.running
        was = self.reachable
        self.reachable = error is None
        if error is None:
            if self._alerted:
                self._alerted = False
                self.notify("The proxy daemon answers again", title="Peers")
        elif was is not False and (was is True or running) and not self._alerted:
            # It went away, or it is there but broken. Never running at all is not news.
            self._alerted = True
            headline = "Proxy daemon stopped" if not running else "Proxy daemon unreachable"
            self.notify(error, title=headline, severity="warning", timeout=8)
        if self.reachable != was:
            self.app.refresh_bindings()

    def _post_paths(self, message: PeersStatusReady) -> None:
        """The overlay's paths, for the node list: from each reading; None when no daemon runs;
        kept (stale) while a running daemon does not answer."""
        paths = self._paths
        if message.status is not None:
            paths = OverlayPaths.from_status(message.status) or None
        elif not message.running:
            paths = None
        if paths != self._paths:
            self._paths = paths
            self.post_message(OverlayPathsChanged(paths))

    # -- add ----------------------------------------------------------------------------------

    def add_peer(self) -> None:
        if self.readonly:
            self.notify(READONLY, severity="warning")
            return
        if not any(isinstance(s, AddPeerScreen) for s in self.app.screen_stack):
            self.app.push_screen(
                AddPeerScreen(join_disabled=READONLY if self.readonly else None, listener=self)
            )

    def on_add_peer_screen_submitted(self, message: AddPeerScreen.Submitted) -> None:
        poller = self.poller
        if self.readonly:  # the dialog does not open in read-only consoles; never act
            message.dialog.add_failed(READONLY)
            return
        if message.invite:
            self._join = None
            message.dialog.join_started(None)
            poller.join(None, "the invite's cluster", invite=message.multiaddr, gpus=message.gpus)
            return
        self._join = message if message.join else None
        poller.add_peer(message.multiaddr, message.name)

    def on_peer_add_done(self, message: PeerAddDone) -> None:
        dialog = next(
            (s for s in self.app.screen_stack if isinstance(s, AddPeerScreen) and s.busy), None
        )
        peer = message.peer
        self.poller.poll_now()
        if peer is not None:
            self._select = peer.peer_id
            self._show(focus=False)
        join, self._join = self._join, None
        if peer is not None and message.error is None:
            self.notify(_added(peer), title="Peers")
            if join is not None:
                if dialog is not None:
                    dialog.join_started(peer)
                self.poller.join(peer.peer_id, peer.label, gpus=join.gpus)
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
            (s for s in self.app.screen_stack if isinstance(s, AddPeerScreen) and s.joining), None
        )
        self.poller.poll_now()
        status = message.status
        if status is not None and status.state is JoinState.RUNNING:
            self.notify(join_summary(status), title=f"Joined {message.label}", timeout=12)
            if dialog is not None:
                address, name = dialog.addr_input.value.strip(), dialog.name_input.value.strip()
                dialog.join_succeeded(address, name or None, status)
            self._show(focus=False)
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
        if self.readonly:
            self.notify(READONLY, severity="warning")
            return
        peer = message.peer

        def answered(yes: bool | None) -> None:
            if yes:
                self.poller.remove_peer(peer.peer_id, peer.label)

        self.app.push_screen(ConfirmRemoveScreen(peer), answered)

    def on_peer_remove_done(self, message: PeerRemoveDone) -> None:
        if message.error is None:
            self.notify(f"removed {message.label}", title="Peers")
        else:
            self.notify(message.error, title=f"Could not remove {message.label}", severity="error")
        self.poller.poll_now()

    # -- start the daemon ---------------------------------------------------------------------

    def start_proxy(self) -> None:
        poller, sidebar = self.poller, self.sidebar
        if self.readonly:
            self.notify(READONLY, severity="warning")
            return
        if self.reachable and sidebar.status is not None:
            self.notify(f"the proxy daemon is already running (pid {sidebar.status.pid})")
            return
        if poller.start_daemon():
            sidebar.set_starting(True)
            self._show(focus=False)

    def on_daemon_start_done(self, message: DaemonStartDone) -> None:
        self.sidebar.set_starting(False)
        self.poller.start_finished()
        if message.error is not None:
            self.notify(message.error, title="Proxy daemon", severity="error", timeout=15)
        else:
            self.notify(message.text or "proxy daemon started", title="Proxy daemon")


def _added(peer: PeerHealth) -> str:
    if peer.state is LinkState.CONNECTED:
        rtt = "" if peer.rtt_ms is None else f", rtt {human_rtt(peer.rtt_ms)}"
        return f"added {peer.label}: connected{rtt}"
    return f"added {peer.label}: {peer.state.value}"
