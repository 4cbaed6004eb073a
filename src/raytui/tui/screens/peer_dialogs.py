"""The add-peer dialog and the remove-peer confirmation, keyboard only.

`AddPeerScreen` validates the multiaddr as it is typed (`multiaddr_error`, the same check the CLI
and the daemon run), submits on Enter only when it is valid, and does not close by itself: it
posts `Submitted` and waits for the app to report the daemon's answer (`add_succeeded` /
`add_failed`). On failure it shows the daemon's error and keeps everything typed, so a typo costs
one edit, not a retyped 80-character address.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from raytui.model.peers import PeerHealth, multiaddr_error, parse_peer_multiaddr, short_peer_id
from raytui.tui import keys
from raytui.tui.screens.confirm import DIALOG_CSS, ConfirmScreen
from raytui.tui.widgets.common import palette

EXAMPLE = "/ip4/203.0.113.7/tcp/4701/p2p/12D3KooW…"
HINT = "paste an address that `raytui proxy status` prints on the other machine"

AddResult = tuple[str, str | None]
"""(normalised multiaddr, name or None)."""


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
    """
    BINDINGS: ClassVar[list[BindingType]] = keys.bindings("back")

    class Submitted(Message):
        """Add this peer; the app answers with `add_succeeded` or `add_failed`."""

        def __init__(self, dialog: AddPeerScreen, multiaddr: str, name: str | None) -> None:
            super().__init__()
            self.dialog = dialog
            self.multiaddr = multiaddr
            self.name = name

    def __init__(self, multiaddr: str = "", name: str = "") -> None:
        super().__init__(id="add-peer")
        self._initial = (multiaddr, name)
        self.busy = False
        self.outcome = ""  # the daemon's last answer, as shown
        self._check_text = Text()

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Add a peer"
            box.border_subtitle = "⏎ add · tab next field · esc cancel"
            yield Label("Address", id="addr-label")
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
            yield Static("", id="add-outcome", markup=False)

    def on_mount(self) -> None:
        self._check()
        self.addr_input.focus()

    @property
    def addr_input(self) -> Input:
        return self.query_one("#peer-addr", Input)

    @property
    def name_input(self) -> Input:
        return self.query_one("#peer-name", Input)

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
        error = multiaddr_error(value)
        text = Text()
        if error is None:
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
        return error

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if event.input.id == "peer-addr":
            self._check()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.busy:
            self.app.bell()
            return
        if self._check(insist=True) is not None:
            self.app.bell()
            self.addr_input.focus()
            return
        multiaddr = parse_peer_multiaddr(self.addr_input.value).multiaddr
        name = self.name_input.value.strip() or None
        self._set_busy(True)
        self._show_outcome(
            Text.assemble(("◌ ", palette(self.app).mid), "dialing the peer… (up to 10 s)")
        )
        self.post_message(self.Submitted(self, multiaddr, name))

    # -- the daemon's answer ------------------------------------------------------------------

    def add_succeeded(self, multiaddr: str, name: str | None) -> None:
        self.dismiss((multiaddr, name))

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

    def action_back(self) -> None:
        self.dismiss(None)


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
