"""The add-peer dialog and the remove-peer confirmation, keyboard only.

`AddPeerScreen` validates the multiaddr as it is typed (`multiaddr_error`, the same check the CLI
and the daemon run), submits on Enter only when it is valid, and does not close by itself: it
posts `Submitted` and waits for the app to report the daemon's answer (`add_succeeded` /
`add_failed`). On failure it shows the daemon's error and keeps everything typed, so a typo costs
one edit, not a retyped 80-character address.

The field also takes an invite line (`raytui invite` on the head): an invite allow-lists both
machines and joins the head's Ray cluster in one request, so with an invite the join choice is
always on. With a multiaddr, "join its Ray cluster with this machine's GPUs" (and an optional GPU
count) makes the app join once the peer is added and connected (`join_started`, then
`join_succeeded` / `join_failed`); a failed join keeps the dialog open with the daemon's message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.message_pump import MessagePump
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Input, Label, Static

from raytui.model.invite import invite_error, looks_like_invite, parse_invite
from raytui.model.overlay import JoinState, JoinStatus
from raytui.model.peers import PeerHealth, multiaddr_error, parse_peer_multiaddr, short_peer_id
from raytui.tui import keys
from raytui.tui.screens.confirm import DIALOG_CSS, ConfirmScreen
from raytui.tui.widgets.common import palette

EXAMPLE = "/ip4/203.0.113.7/tcp/4701/p2p/12D3KooW…"
HINT = (
    "paste an address that `raytui proxy status` prints on the other machine, "
    "or an invite line from `raytui invite`"
)
JOIN_LABEL = "join its Ray cluster with this machine's GPUs"

AddResult = tuple[str, str | None]
"""(normalised multiaddr or invite, name or None)."""


class AddPeerScreen(ModalScreen[AddResult | None]):
    DEFAULT_CSS = f"""
    AddPeerScreen {{ {DIALOG_CSS} }}
    AddPeerScreen Label {{ margin-top: 1; color: $text-muted; }}
    AddPeerScreen #addr-label {{ margin-top: 0; }}
    AddPeerScreen Input {{ width: 100%; }}
    AddPeerScreen Input.-invalid {{ border: tall $error 60%; }}
    AddPeerScreen Input.-invalid:focus {{ border: tall $error; }}
    AddPeerScreen #addr-check {{ height: auto; padding: 0 1; }}
    AddPeerScreen #add-outcome {{ height: auto; padding: 0 1; margin-top: 1; }}
    AddPeerScreen #join-row {{ height: 1; margin-top: 1; }}
    AddPeerScreen #join-row Checkbox {{ width: auto; }}
    AddPeerScreen #join-row Label {{ margin: 0 1 0 3; width: auto; }}
    AddPeerScreen #join-gpus {{ width: 12; }}
    AddPeerScreen #join-gpus.-invalid {{ color: $error; }}
    """
    BINDINGS: ClassVar[list[BindingType]] = keys.bindings("back")

    class Submitted(Message):
        """Add this peer (`invite` False: `multiaddr` is a normalised multiaddr) or accept this
        invite (`invite` True: `multiaddr` is the invite line); `join`: then join its Ray
        cluster, with `gpus` GPUs (None: all this machine has). The app answers with
        `add_succeeded` / `add_failed`, and for a join `join_started`, then `join_succeeded` /
        `join_failed`."""

        def __init__(
            self,
            dialog: AddPeerScreen,
            multiaddr: str,
            name: str | None,
            *,
            join: bool = False,
            gpus: int | None = None,
            invite: bool = False,
        ) -> None:
            super().__init__()
            self.dialog = dialog
            self.multiaddr = multiaddr
            self.name = name
            self.join = join
            self.gpus = gpus
            self.invite = invite

    def __init__(
        self,
        multiaddr: str = "",
        name: str = "",
        *,
        join_disabled: str | None = None,
        is_invite: Callable[[str], bool] = looks_like_invite,
        listener: MessagePump | None = None,
    ) -> None:
        """`join_disabled`: why this console may not join (e.g. --readonly); None: it may.
        `listener`: who gets `Submitted` (default: it bubbles to the app)."""
        super().__init__(id="add-peer")
        self.listener = listener
        self._initial = (multiaddr, name)
        self.join_disabled = join_disabled
        self.is_invite = is_invite
        self.busy = False
        self.joining = False  # the add is done; the join request is under way
        self.outcome = ""  # the daemon's last answer, as shown
        self._check_text = Text()
        self._join_choice = False  # what the user chose, restored when an invite is cleared
        self._invite_shown = False

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Add a peer"
            box.border_subtitle = "⏎ add · tab next field · esc cancel"
            yield Label("Address or invite", id="addr-label")
            yield Input(
                self._initial[0],
                placeholder=EXAMPLE,
                select_on_focus=False,
                id="peer-addr",
            )
            yield Static("", id="addr-check", markup=False)
            yield Label("Name (optional)", id="name-label")
            yield Input(
                self._initial[1],
                placeholder="e.g. lab, home-4090",
                select_on_focus=False,
                id="peer-name",
            )
            with Horizontal(id="join-row"):
                yield Checkbox(
                    JOIN_LABEL, compact=True, disabled=self.join_disabled is not None, id="join"
                )
                yield Label("GPUs", id="gpus-label")
                yield Input(
                    placeholder="all",
                    type="integer",
                    compact=True,
                    disabled=True,
                    select_on_focus=False,
                    id="join-gpus",
                )
            yield Static("", id="add-outcome", markup=False)

    def on_mount(self) -> None:
        if self.join_disabled is not None:
            self.join_checkbox.tooltip = self.join_disabled
        self._check()
        self.addr_input.focus()

    @property
    def addr_input(self) -> Input:
        return self.query_one("#peer-addr", Input)

    @property
    def name_input(self) -> Input:
        return self.query_one("#peer-name", Input)

    @property
    def join_checkbox(self) -> Checkbox:
        return self.query_one("#join", Checkbox)

    @property
    def gpus_input(self) -> Input:
        return self.query_one("#join-gpus", Input)

    @property
    def invite(self) -> bool:
        """Whether the field holds an invite line rather than a multiaddr."""
        value = self.addr_input.value.strip()
        return bool(value) and self.is_invite(value)

    @property
    def check_text(self) -> str:
        """What the line under the address says now (for tests)."""
        return self._check_text.plain

    # -- validate as you type -----------------------------------------------------------------

    def _check(self, *, insist: bool = False) -> str | None:
        """Show whether the address is usable; returns the error. An empty field gets a hint,
        not an error, unless `insist` (Enter was pressed)."""
        p = palette(self.app)
        value = self.addr_input.value
        invite = self.invite
        error = invite_error(value) if invite else multiaddr_error(value)
        text = Text()
        if invite and error is None:
            head = parse_invite(value)
            text.append("✓ ", style=p.ok)
            text.append(f"invite from {short_peer_id(head.peer_id)}", style=p.label)
            text.append(": allow-lists both machines and joins the head's Ray cluster", style=p.dim)
        elif error is None:
            address = parse_peer_multiaddr(value)
            text.append("✓ ", style=p.ok)
            text.append(f"peer {short_peer_id(address.peer_id)}", style=p.label)
            text.append(f" at {address.transport}", style=p.dim)
        elif not value.strip() and not insist:
            text.append(HINT, style=p.dim)
        else:
            text.append("✗ ", style=p.bad)
            text.append(error, style=p.bad)
        self._check_text = text
        self.query_one("#addr-check", Static).update(text)
        self.addr_input.set_class(error is not None and bool(value.strip() or insist), "-invalid")
        self._show_join_choice(invite)
        return error

    def _show_join_choice(self, invite: bool) -> None:
        """An invite always joins: the box shows checked and locked while one is in the field,
        and the user's own choice comes back when it is gone."""
        box = self.join_checkbox
        if invite != self._invite_shown:
            self._invite_shown = invite
            with box.prevent(Checkbox.Changed):
                box.value = True if invite else self._join_choice
        box.disabled = invite or self.busy or self.join_disabled is not None
        self.gpus_input.disabled = self.busy or not box.value or self.join_disabled is not None

    def _gpus(self) -> tuple[int | None, str | None]:
        """The GPU count typed (None: all of them), or why it is not one."""
        text = self.gpus_input.value.strip()
        if not text:
            return None, None
        if not text.isdigit():
            return None, f"GPUs: {text!r} is not a whole number (leave it empty for all)"
        return int(text), None

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        if event.checkbox.id == "join":
            if not self._invite_shown:
                self._join_choice = event.value
            self._show_join_choice(self.invite)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if event.input.id == "peer-addr":
            self._check()
        elif event.input.id == "join-gpus":
            self.gpus_input.set_class(self._gpus()[1] is not None, "-invalid")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.busy:
            self.app.bell()
            return
        if self._check(insist=True) is not None:
            self.app.bell()
            self.addr_input.focus()
            return
        invite = self.invite
        join = self.join_checkbox.value and self.join_disabled is None
        gpus, gpus_error = self._gpus() if join else (None, None)
        if gpus_error is not None:
            self.app.bell()
            self._show_outcome(Text.assemble(("✗ ", palette(self.app).bad), gpus_error))
            self.gpus_input.focus()
            return
        value = self.addr_input.value.strip()
        address = value if invite else parse_peer_multiaddr(value).multiaddr
        name = self.name_input.value.strip() or None
        self._set_busy(True)
        doing = (
            "accepting the invite and joining its Ray cluster… (up to 2 min)"
            if invite
            else "dialing the peer… (up to 10 s)"
        )
        self._show_outcome(Text.assemble(("◌ ", palette(self.app).mid), doing))
        (self.listener or self).post_message(
            self.Submitted(self, address, name, join=join or invite, gpus=gpus, invite=invite)
        )

    # -- the daemon's answer ------------------------------------------------------------------

    def add_succeeded(self, multiaddr: str, name: str | None) -> None:
        self.dismiss((multiaddr, name))

    def join_started(self, peer: PeerHealth | None) -> None:
        """The peer is added and connected (None: an invite); the join request is on its way."""
        p = palette(self.app)
        self.joining = True
        text = Text()
        if peer is not None:
            text.append("✓ ", style=p.ok)
            text.append(f"{peer.label} added and connected\n")
        text.append("◌ ", style=p.mid)
        text.append("asking for its Ray head, starting a Ray worker here… (up to 2 min)")
        self._show_outcome(text)

    def join_succeeded(self, address: str, name: str | None, status: JoinStatus) -> None:
        self.joining = False
        self._show_outcome(Text(join_summary(status)))
        self.dismiss((address, name))

    def join_failed(self, error: str | None, status: JoinStatus | None = None) -> None:
        """`error`: the daemon refused (nothing started); else `status` is a node that did not
        start yet (the daemon keeps trying)."""
        p = palette(self.app)
        self.joining = False
        self._set_busy(False)
        text = Text()
        if error is not None or status is None:
            text.append("✗ joining failed: ", style=p.bad)
            text.append(error or "no answer", style=p.bad)
            text.append("\nfix what it says and press ⏎ to try again, or esc.", style=p.dim)
        else:
            text.append(f"! the Ray node did not start yet ({status.state.value})", style=p.mid)
            if status.last_error:
                text.append(f": {status.last_error}", style=p.bad)
            text.append(
                "\nthe daemon keeps trying; the peers sidebar shows the node's state. "
                "esc to close.",
                style=p.dim,
            )
        self._show_outcome(text)
        self.addr_input.focus()

    def add_failed(self, error: str, *, peer: PeerHealth | None = None) -> None:
        """`peer` is set when the daemon allow-listed the peer but could not reach it yet."""
        p = palette(self.app)
        self._set_busy(False)
        text = Text()
        if peer is None:
            text.append("✗ ", style=p.bad)
            text.append(error, style=p.bad)
        else:
            text.append("! ", style=p.mid)
            text.append(f"{peer.label} is on the allow-list but not reachable yet:\n", style=p.mid)
            text.append(error, style=p.bad)
            text.append(
                "\nthe daemon keeps retrying. Fix the address and press ⏎ to update it, "
                "or esc to keep it as it is.",
                style=p.dim,
            )
        self._show_outcome(text)
        self.addr_input.focus()

    def _show_outcome(self, text: Text) -> None:
        self.outcome = text.plain
        self.query_one("#add-outcome", Static).update(text)

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        self.addr_input.disabled = busy
        self.name_input.disabled = busy
        self._show_join_choice(self.invite)

    def action_back(self) -> None:
        self.dismiss(None)


def join_summary(status: JoinStatus) -> str:
    """One line for a node `join` started: role, node ID, address, state."""
    role = "head" if status.role == "head" else "worker"
    node = status.node_id or "(no node ID yet)"
    line = f"joined: Ray {role} node {node} on {status.node_ip}"
    if status.state is not JoinState.RUNNING:
        line += f" ({status.state.value})"
    return line


class ConfirmRemoveScreen(ConfirmScreen):
    """`y`/Enter removes, `n`/Esc keeps."""

    def __init__(self, peer: PeerHealth) -> None:
        question = Text.assemble(
            "Remove peer ",
            (peer.label, "bold"),
            "?\n",
            (peer.peer_id, "dim"),
            "\n\nIt leaves the allow-list: its link and tunnels close and it can no longer "
            "connect to this machine.",
        )
        super().__init__("Remove peer", question, "remove", "keep", id="confirm-remove")
        self.peer = peer
