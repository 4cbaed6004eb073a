"""The peers sidebar: the proxy daemon's own state and every peer's link, live.

Attributes down, messages up: the app hands it each `DaemonStatus` reading (`show`), and it
updates in place (one option per peer, prompts replaced, the highlighted peer kept). It never
talks to the daemon: `d` posts `RemovePeerRequested` for the app to confirm and carry out; the
app's own keys (`a` add, `P` start the daemon, `p` show/hide) act from anywhere.

Under the daemon's line: the overlay (its address and connections, or why it is off, shortened:
`o` shows every detail uncut) and the Ray node `raytui join` started (role, state, node ID,
restarts, last error). Each peer with an overlay route shows its overlay address and path
(`direct` or `via NAME`); a peer reached only through a hub gets a row of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.message_pump import MessagePump
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from raytui.model.overlay import JoinState, JoinStatus, OverlayRoute, RouteState
from raytui.model.peers import DaemonStatus, LinkState, PeerHealth, short_peer_id
from raytui.tui import format as fmt
from raytui.tui import keys
from raytui.tui.format import Palette
from raytui.tui.keys import KeySpec
from raytui.tui.peer_rates import NO_RATE, Rate, byte_rates, human_rate, human_rtt
from raytui.tui.widgets.common import palette


def peer_key(binding_id: str) -> KeySpec:
    return keys.BY_ID[binding_id]


def peer_bindings(*ids: str) -> list[BindingType]:
    return [peer_key(i).binding() for i in ids]


STATE_MARK = {LinkState.CONNECTED: "●", LinkState.CONNECTING: "◌", LinkState.DOWN: "○"}
JOIN_MARK = {
    JoinState.RUNNING: "●",
    JoinState.STARTING: "◌",
    JoinState.RESTARTING: "↻",
    JoinState.FAILED: "✗",
}
ROUTE_PREFIX = "route:"  # option id of a peer reached only through a hub


def _state_style(state: LinkState, p: Palette) -> Style:
    if state is LinkState.CONNECTED:
        return p.ok
    if state is LinkState.CONNECTING:
        return p.mid
    return p.bad


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _names(status: DaemonStatus) -> dict[str, str]:
    return {peer.peer_id: peer.label for peer in status.peers}


def _name(names: dict[str, str], peer_id: str) -> str:
    return names.get(peer_id) or short_peer_id(peer_id)


def short_reason(error: str) -> str:
    """The gist of why the overlay is off, for one sidebar line: its first clause, without
    "the overlay" ("the overlay needs root or CAP_NET_ADMIN (it adds…" -> "needs root or
    CAP_NET_ADMIN"). `o` shows the full text."""
    text = " ".join(error.split())
    for stop in (" (", ". ", "; "):
        cut = text.find(stop)
        if cut > 0:
            text = text[:cut]
    return text.removeprefix("the overlay ").rstrip(".")


def path_text(route: OverlayRoute, names: dict[str, str]) -> str:
    return "direct" if route.via is None else f"via {_name(names, route.via)}"


def route_line(route: OverlayRoute, names: dict[str, str], p: Palette) -> Text:
    """`  ⇢ 100.64.3.9 · via lab`, with ` · down` in red while the link it uses is down."""
    up = route.state is RouteState.UP
    line = Text.assemble(("  ⇢ ", p.dim), route.address, (" · ", p.dim))
    line.append(path_text(route, names), style=Style() if up else p.bad)
    if not up:
        line.append(" · down", style=p.bad)
    return line


def overlay_lines(status: DaemonStatus, p: Palette, overlay_key: str = "o") -> list[Text]:
    """The overlay: address, connections open and carried, refusals; or why it is off."""
    ov = status.overlay
    if ov.address is not None:
        head = Text.assemble(("◆ ", p.ok), ("overlay ", p.dim), (ov.address, p.label))
        counts = Text.assemble("  ", f"{ov.active} open", (" · ", p.dim), f"{ov.carried} carried")
        lines = [head, counts]
        refused = {why: n for why, n in sorted(ov.refused.items()) if n}
        if refused:
            parts = " · ".join(f"{n} {why}" for why, n in refused.items())
            lines.append(Text(f"  refused {parts}", style=p.mid))
        return lines
    if not ov.enabled:
        return [Text("○ overlay off", style=p.dim)]
    if ov.error is None:
        return [Text.assemble(("◌ ", p.mid), "overlay starting…")]
    return [
        Text.assemble(("✗ ", p.bad), ("overlay off", p.bad), (f" · {overlay_key} for why", p.dim)),
        Text(f"  {short_reason(ov.error)}", style=p.bad),
    ]


def join_lines(
    join: JoinStatus, names: dict[str, str], p: Palette, now: float | None
) -> list[Text]:
    """The Ray node `raytui join` started: role and state, node ID and restarts, last error."""
    style = {JoinState.RUNNING: p.ok, JoinState.FAILED: p.bad}.get(join.state, p.mid)
    if join.role == "head":
        role = "head"
    else:
        role = f"worker of {_name(names, join.peer_id) if join.peer_id else join.head_address}"
    head = Text.assemble((f"{JOIN_MARK[join.state]} ", style), ("ray ", p.dim), (role, p.label))
    head.append(f" {join.state.value}", style=style)
    if join.state is JoinState.RUNNING and now is not None and join.since:
        head.append(f" {fmt.span(now - join.since)}", style=p.dim)
    node = Text.assemble(("  node ", p.dim), join.node_id[:8] if join.node_id else "-")
    node.append(" · ", style=p.dim)
    node.append(_plural(join.restarts, "restart"), style=p.mid if join.restarts else p.dim)
    lines = [head, node]
    if join.last_error:
        err_style = p.dim if join.state is JoinState.RUNNING else p.bad
        lines.append(Text(f"  ✗ {' '.join(join.last_error.split())}", style=err_style))
    return lines


def overlay_details(status: DaemonStatus, now: float | None = None) -> str:
    """Everything about the overlay and the joined node, uncut (for `o`)."""
    ov = status.overlay
    names = _names(status)
    if ov.address is not None:
        lines = [f"overlay {ov.address} in {ov.prefix}"]
    elif not ov.enabled:
        lines = ["overlay off: start the daemon with `raytui proxy start --overlay` (as root)"]
    else:
        lines = [f"overlay off: {ov.error or 'starting'}"]
    lines.append(f"connections: {ov.active} open, {ov.carried} carried")
    if any(ov.refused.values()):
        refused = ", ".join(f"{n} {why}" for why, n in sorted(ov.refused.items()) if n)
        lines.append(f"refused: {refused}")
    for route in ov.routes:
        lines.append(
            f"  {_name(names, route.peer_id)} {route.address} {path_text(route, names)}"
            f" {route.state.value}"
        )
    join = status.join
    if join is None:
        lines.append("Ray node: none started here (`raytui join PEER`)")
    else:
        role = "head" if join.role == "head" else f"worker of {join.head_address}"
        lines.append(f"Ray node: {role} on {join.node_ip}: {join.state.value}")
        if join.node_id:
            lines.append(f"  node ID {join.node_id}")
        if join.since and now is not None:
            lines.append(f"  since {fmt.span(now - join.since)} · {join.restarts} restarts")
        if join.last_error:
            lines.append(f"  last error: {join.last_error}")
    return "\n".join(lines)


def peer_lines(
    peer: PeerHealth,
    rate: Rate,
    p: Palette,
    now: float | None = None,
    route: Text | None = None,
) -> list[Text]:
    """Three to five lines: label and state, traffic, streams and reconnects, the overlay route
    (`route_line`) when there is one, last error."""
    style = _state_style(peer.state, p)
    label = fmt.cell(peer.label).plain
    head = Text.assemble((f"{STATE_MARK[peer.state]} ", style), (label, p.label), "  ")
    head.append(peer.state.value, style=style)
    if peer.state is LinkState.CONNECTED:
        head.append(" · ", style=p.dim)
        head.append(f"rtt {human_rtt(peer.rtt_ms)}")
    elif peer.since is not None and now is not None:
        head.append(f" {fmt.span(now - peer.since)}", style=p.dim)
    traffic = Text.assemble(
        ("  ↓ ", p.dim), human_rate(rate.inbound), ("  ↑ ", p.dim), human_rate(rate.outbound)
    )
    counts = Text.assemble(
        "  ",
        _plural(peer.active_streams, "stream"),
        (" · ", p.dim),
        (_plural(peer.reconnects, "reconnect"), p.mid if peer.reconnects else Style()),
    )
    lines = [head, traffic, counts]
    if route is not None:
        lines.append(route)
    if peer.last_error:
        # An error on a link that is up again is history: dim, not alarming.
        err_style = p.dim if peer.state is LinkState.CONNECTED else p.bad
        lines.append(Text(f"  ✗ {' '.join(peer.last_error.split())}", style=err_style))
    return lines


def tunnel_lines(status: DaemonStatus, p: Palette) -> list[Text]:
    """One line per forward (local port -> peer:service, active connections or why it is
    down), then the services this daemon offers to its peers."""
    names = {peer.peer_id: fmt.cell(peer.label).plain for peer in status.peers}
    lines = []
    for f in status.forwards:
        target = f"{names.get(f.peer_id, short_peer_id(f.peer_id))}:{f.service}"
        bind = f.bind.removeprefix("127.0.0.1")  # ":8265" is this machine's loopback
        if f.error:
            line = Text.assemble(("✗ ", p.bad), f"{bind} → {target}  ", (f.error, p.bad))
        else:
            line = Text.assemble(("⇄ ", p.ok), f"{bind} → {target}", (" · ", p.dim))
            line.append(f"{f.active} active", style=p.label if f.active else p.dim)
        lines.append(line)
    if status.services:
        offered = ", ".join(service.name for service in status.services)
        line = Text.assemble(("offers ", p.dim), offered)
        if status.share_token:
            line.append(" + Ray token", style=p.mid)
        lines.append(line)
    return lines


def peer_prompt(
    peer: PeerHealth,
    rate: Rate,
    p: Palette,
    now: float | None = None,
    width: int = 0,
    route: Text | None = None,
) -> Text:
    """`peer_lines` joined, each cut to `width` cells (0: as long as they are)."""
    return _joined(peer_lines(peer, rate, p, now, route), width)


def hub_only_prompt(route: OverlayRoute, names: dict[str, str], p: Palette, width: int = 0) -> Text:
    """A peer this daemon reaches only through a hub (not on its own allow-list, or never
    dialled directly): its ID, whether the way there is up, its address and hub."""
    up = route.state is RouteState.UP
    style = p.ok if up else p.bad
    head = Text.assemble(
        ("◇ ", style), (_name(names, route.peer_id), p.label), "  ", ("up" if up else "down", style)
    )
    return _joined([head, route_line(route, names, p)], width)


def _joined(lines: list[Text], width: int) -> Text:
    if width > 0:
        for line in lines:
            line.truncate(width, overflow="ellipsis")
    return Text("\n").join(lines)


class PeersSidebar(Vertical):
    """Own daemon on top, one multi-line entry per peer below. Focus is on the peer list."""

    DEFAULT_CSS = """
    PeersSidebar {
        dock: right;
        width: 42;
        max-width: 45%;
        height: 1fr;
        border: round $primary 40%;
        border-title-color: $text;
        border-title-style: bold;
        border-subtitle-color: $text-muted;
        padding: 0 1;
    }
    PeersSidebar:focus-within { border: round $primary; }
    PeersSidebar.-stale { border: round $error 70%; border-subtitle-color: $error; }
    PeersSidebar > #peers-daemon { height: auto; margin-bottom: 1; }
    PeersSidebar > #peers-empty { height: auto; color: $text-muted; text-style: italic; }
    PeersSidebar > OptionList {
        height: 1fr;
        border: none;
        padding: 0;
        background: transparent;
        scrollbar-size-vertical: 1;
    }
    PeersSidebar > OptionList:focus { border: none; background-tint: transparent; }
    """
    BINDINGS: ClassVar[list[BindingType]] = peer_bindings("remove_peer", "overlay_details")

    class RemovePeerRequested(Message):
        """The user wants `peer` removed (the controller asks for confirmation first)."""

        def __init__(self, peer: PeerHealth) -> None:
            super().__init__()
            self.peer = peer

    def __init__(
        self,
        *,
        start_key: str = "P",
        add_key: str = "a",
        remove_key: str = "d",
        overlay_key: str = "o",
        listener: MessagePump | None = None,
        id: str | None = None,
    ) -> None:
        """`listener`: who gets `RemovePeerRequested` (default: it bubbles from here)."""
        super().__init__(id=id)
        self.listener = listener
        self.start_key = start_key
        self.add_key = add_key
        self.remove_key = remove_key
        self.overlay_key = overlay_key
        self.status: DaemonStatus | None = None
        self.error: str | None = None
        self.running: bool | None = None  # None: not asked yet
        self.starting = False
        self.rates: dict[str, Rate] = {}
        self._at = 0.0
        self._now: float | None = None
        self._order: list[str] = []
        self._daemon_text = Text()
        self._empty_text = ""
        self._width = 0

    def compose(self) -> ComposeResult:
        yield Static("", id="peers-daemon", markup=False)
        yield Static("", id="peers-empty", markup=False)
        yield OptionList(id="peers-list")

    def on_mount(self) -> None:
        self.border_title = "Peers"
        self._show_daemon()
        self._show_peers()

    # -- data ---------------------------------------------------------------------------------

    def show(
        self,
        status: DaemonStatus | None,
        *,
        error: str | None = None,
        running: bool = True,
        at: float = 0.0,
        now: float | None = None,
    ) -> None:
        """A reading of the daemon: `status`, or None with `error` (`running=False`: no daemon
        listens). `at` is the reading's monotonic time (for bytes/s), `now` the wall clock."""
        if status is not None:
            self.rates = byte_rates(self.status, self._at, status, at)
            self.status, self._at = status, at
            self.running = True
        else:
            self.running = running
            if not running:
                self.status, self.rates = None, {}
        self.error = error
        self._now = now
        self.set_class(status is None and running and self.status is not None, "-stale")
        if self.is_mounted:
            self._show_daemon()
            self._show_peers()

    def on_resize(self) -> None:
        # Entries are cut to the list's width; it is known once the children are laid out.
        self.call_after_refresh(self._refit)

    def _refit(self) -> None:
        if self.peer_list.scrollable_content_region.width != self._width:
            self._show_peers()

    def set_starting(self, starting: bool) -> None:
        if starting != self.starting:
            self.starting = starting
            if self.is_mounted:
                self._show_daemon()

    @property
    def peer_list(self) -> OptionList:
        return self.query_one("#peers-list", OptionList)

    @property
    def peers(self) -> Sequence[PeerHealth]:
        return () if self.status is None else self.status.peers

    @property
    def highlighted_peer(self) -> PeerHealth | None:
        option = self.peer_list.highlighted_option
        if option is None or self.status is None or option.id is None:
            return None
        return self.status.peer(option.id)

    def focus_peers(self) -> None:
        self.peer_list.focus()

    # -- drawing ------------------------------------------------------------------------------

    def _show_daemon(self) -> None:
        p = palette(self.app)
        text = Text()
        status = self.status
        if self.starting and (status is None or not self.running):
            text.append("◌ ", style=p.mid)
            text.append("starting the proxy daemon…")
        elif self.running is None:
            text.append("asking the proxy daemon…", style=p.dim)
        elif not self.running:
            text.append("○ ", style=p.bad)
            text.append("proxy daemon not running", style=p.label)
            text.append(" — press ", style=p.dim)
            text.append(self.start_key, style=p.label)
            text.append(" to start it", style=p.dim)
        elif status is not None:
            if self.error:
                text.append("● ", style=p.bad)
                text.append("proxy daemon unreachable\n", style=p.bad)
                text.append(" ".join(self.error.split()), style=p.bad)
                text.append("\nlast reading:\n", style=p.dim)
            else:
                text.append("● ", style=p.ok)
                text.append("proxy running", style=p.label)
                text.append(f" {fmt.span(status.uptime_s)} · pid {status.pid}\n", style=p.dim)
            text.append("me ", style=p.dim)
            text.append(short_peer_id(status.peer_id), style=p.label)
            text.append(" · ", style=p.dim)
            text.append(_plural(len(status.addrs), "addr"))
            if status.refused:
                text.append(" · ", style=p.dim)
                text.append(f"{status.refused} refused", style=p.mid)
            lines = overlay_lines(status, p, self.overlay_key)
            if status.join is not None:
                lines += join_lines(status.join, _names(status), p, self._now)
            for line in lines + tunnel_lines(status, p):
                if self._width > 0:
                    line.truncate(self._width, overflow="ellipsis")
                text.append("\n")
                text.append_text(line)
        else:
            text.append("● ", style=p.bad)
            text.append("proxy daemon unreachable\n", style=p.bad)
            text.append(" ".join((self.error or "unknown error").split()), style=p.bad)
        self._daemon_text = text
        self.query_one("#peers-daemon", Static).update(text)
        if self.has_class("-stale"):
            self.border_subtitle = "stale"
        elif status is not None and self.running:
            self.border_subtitle = f"{self.add_key} add · {self.remove_key} remove · ⏎ details"
        else:
            self.border_subtitle = ""

    def _show_peers(self) -> None:
        p = palette(self.app)
        peers = self.peers
        self.border_title = f"Peers [{len(peers)}]" if self.status is not None else "Peers"
        empty = self.query_one("#peers-empty", Static)
        self._empty_text = ""
        if self.status is not None and not peers:
            self._empty_text = f"no peers yet — press {self.add_key} to add one"
        empty.update(self._empty_text)
        empty.display = bool(self._empty_text)
        olist = self.peer_list
        width = olist.scrollable_content_region.width or olist.size.width
        self._width = width
        routes = {} if self.status is None else {r.peer_id: r for r in self.status.overlay.routes}
        names = {} if self.status is None else _names(self.status)
        ids = [peer.peer_id for peer in peers]
        prompts = []
        for x in peers:
            route = routes.pop(x.peer_id, None)
            line = None if route is None else route_line(route, names, p)
            rate = self.rates.get(x.peer_id, NO_RATE)
            prompts.append(peer_prompt(x, rate, p, self._now, width, line))
        for route in routes.values():  # reached only through a hub
            ids.append(ROUTE_PREFIX + route.peer_id)
            prompts.append(hub_only_prompt(route, names, p, width))
        if ids == self._order:
            for peer_id, prompt in zip(ids, prompts, strict=True):
                olist.replace_option_prompt(peer_id, prompt)
            return
        option = olist.highlighted_option
        keep = None if option is None else option.id
        options: list[Option | None] = []
        for peer_id, prompt in zip(ids, prompts, strict=True):
            options += [Option(prompt, id=peer_id), None]  # None: a rule between peers
        olist.set_options(options[:-1])
        self._order = ids
        if ids:
            olist.highlighted = ids.index(keep) if keep in ids else 0

    def text(self) -> str:
        """Everything the sidebar shows, as plain text (for tests)."""
        lines = [self._daemon_text.plain]
        if self._empty_text:
            lines.append(self._empty_text)
        for option in self.peer_list.options:
            prompt = option.prompt
            lines.append(prompt.plain if isinstance(prompt, Text) else str(prompt))
        return "\n".join(lines)

    def peer_text(self, peer_id: str) -> str:
        prompt = self.peer_list.get_option(peer_id).prompt
        return prompt.plain if isinstance(prompt, Text) else str(prompt)

    # -- keys ---------------------------------------------------------------------------------

    def action_remove_peer(self) -> None:
        peer = self.highlighted_peer
        if peer is None:
            self.app.bell()
            return
        (self.listener or self).post_message(self.RemovePeerRequested(peer))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """Enter on a peer: everything about it, including what the list cuts short."""
        event.stop()
        status = self.status
        if status is None:
            return
        names = _names(status)
        peer = self.highlighted_peer
        option_id = event.option.id or ""
        peer_id = peer.peer_id if peer is not None else option_id.removeprefix(ROUTE_PREFIX)
        route = next((r for r in status.overlay.routes if r.peer_id == peer_id), None)
        lines = []
        if peer is not None:
            lines = [peer.peer_id, f"state: {peer.state.value}", *peer.addrs]
        elif route is not None:
            lines = [route.peer_id, "not dialled directly: reached through a hub"]
        if route is not None:
            lines.append(f"overlay {route.address}, {path_text(route, names)}, {route.state.value}")
        if peer is not None and peer.last_error:
            lines.append(f"last error: {peer.last_error}")
        if lines:
            self.notify("\n".join(lines), title=f"peer {_name(names, peer_id)}", timeout=15)

    def action_overlay_details(self) -> None:
        """`o`: the overlay and the joined Ray node, uncut (errors included)."""
        if self.status is None:
            self.app.bell()
            return
        self.notify(overlay_details(self.status, self._now), title="Overlay", timeout=20)
