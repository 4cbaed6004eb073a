"""Invites without a network: the line format (model/invite.py), the head's book of hashed,
single-use, expiring invites and the door's admission limits (proxy/invite.py), with a clock the
test moves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID

from raytui.errors import UsageError
from raytui.model.invite import (
    GARBLED,
    Invite,
    InviteRefusal,
    looks_like_invite,
    parse_duration,
    parse_invite,
    sanitize_name,
    unique_name,
)
from raytui.proxy import store
from raytui.proxy.invite import (
    DOOR_GRACE,
    MAX_ADMITS_PER_MINUTE,
    MAX_PROBATION,
    RETAIN,
    InviteBook,
    InviteDoor,
)
from raytui.proxy.peers import PeerManager

HEAD = "12D3KooWA73AbUA2dz1hWm1PToPN21piJoqKKoKioTHyCHR5m8jD"
OTHER = "12D3KooWRsrM2xUJGSoYA3451EH553NnE5KLtAHsN1V7imkXoUm4"
SECRET = "0123456789abcdef." + "k" * 43


def _invite(**changes: object) -> Invite:
    fields: dict[str, object] = {
        "peer_id": HEAD,
        "addrs": (f"/ip4/203.0.113.7/tcp/4701/p2p/{HEAD}", f"/ip4/127.0.0.1/tcp/4701/p2p/{HEAD}"),
        "secret": SECRET,
        "expires": 1767225600,
    }
    fields.update(changes)
    return Invite(**fields)  # type: ignore[arg-type]


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- the line ------------------------------------------------------------------------------------


def test_a_line_reads_back_as_the_same_invite() -> None:
    invite = _invite()
    line = invite.line()
    assert line.startswith("raytui1:")
    assert all(ch.isalnum() or ch in "-_:" for ch in line), line
    assert parse_invite(line) == invite
    assert invite.invite_id == "0123456789abcdef"
    assert invite.transports() == ["/ip4/203.0.113.7/tcp/4701", "/ip4/127.0.0.1/tcp/4701"]


def test_a_wrapped_or_quoted_paste_still_reads() -> None:
    line = _invite().line()
    wrapped = "\n".join(line[i : i + 70] for i in range(0, len(line), 70))
    assert parse_invite(f"  '{wrapped}'\n") == _invite()
    assert parse_invite(f"<{line}>") == _invite()


@pytest.mark.parametrize(
    "text",
    ["raytui1:abc", "raytui1:", "raytui1:***", "RAYTUI1:eyJ9", "raytui:xyz"],
)
def test_garbage_after_the_prefix_is_a_clear_usage_error(text: str) -> None:
    assert looks_like_invite(text) or text.startswith("raytui:")
    with pytest.raises(UsageError) as exc:
        parse_invite(text)
    assert str(exc.value) == GARBLED


@pytest.mark.parametrize("cut", [10, 40, 100, -30, -3])
def test_a_truncated_line_is_refused_whole(cut: int) -> None:
    line = _invite().line()
    with pytest.raises(UsageError) as exc:
        parse_invite(line[:cut])
    assert str(exc.value) == GARBLED
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "changes",
    [
        {"addrs": ()},
        {"addrs": (f"/ip4/203.0.113.7/tcp/4701/p2p/{OTHER}",)},  # someone else's address
        {"addrs": ("/ip4/203.0.113.7/tcp/4701",)},  # no /p2p/
        {"secret": "short"},
        {"peer_id": "12D3KooWnotapeerid"},
    ],
)
def test_fields_that_do_not_hold_together_are_garbled(changes: dict[str, object]) -> None:
    with pytest.raises(UsageError, match="garbled"):
        parse_invite(_invite(**changes).line())


def test_a_newer_format_says_update_raytui() -> None:
    line = _invite().line().replace("raytui1:", "raytui2:", 1)
    with pytest.raises(UsageError, match="update raytui on this machine"):
        parse_invite(line)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("raytui1:eyJ9", True),
        ("  'raytui1:x", True),
        ("raytui7:x", True),
        ("head", False),
        (HEAD, False),
        (f"/ip4/1.2.3.4/tcp/1/p2p/{HEAD}", False),
        ("raytui-box", False),
    ],
)
def test_looks_like_invite(text: str, expected: bool) -> None:
    assert looks_like_invite(text) is expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("2h", 7200), ("1d", 86400), ("90s", 90), ("1h30m", 5400), ("45", 45)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "5x", "0s", "100d", "-1h", "1h 30m extra"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(UsageError, match="bad duration"):
        parse_duration(text)


def test_names_sent_by_the_other_side_are_sanitized_and_unique() -> None:
    assert sanitize_name("gpu box #1", "box") == "gpu-box-1"
    assert sanitize_name("\x1b[31mred\x1b[0m", "box") == "31mred-0m"
    assert sanitize_name("../..", "box") == "box"
    assert sanitize_name(None, "box") == "box"
    assert len(sanitize_name("x" * 500, "box")) == 32
    assert unique_name("box", {"box", "box-2"}) == "box-3"
    assert unique_name("box", set()) == "box"


# --- the head's book ----------------------------------------------------------------------------


def _book(clock: Clock) -> tuple[InviteBook, store.StoredState, list[int]]:
    state = store.StoredState()
    saves: list[int] = []
    return InviteBook(state.invites, lambda: saves.append(1), clock), state, saves


def test_the_book_stores_a_salted_hash_never_the_secret(tmp_path: Path) -> None:
    clock = Clock()
    book, state, saves = _book(clock)
    secret, entry = book.mint(3600)
    book.mint(3600)
    invite_id, _, key = secret.partition(".")
    assert entry.invite_id == invite_id and len(key) == 43
    assert saves
    file = tmp_path / "proxy.json"
    store.save(state, file)
    text = file.read_text()
    assert key not in text and secret not in text
    stored = json.loads(text)["invites"]
    assert len({i["salt"] for i in stored}) == 2 and len({i["digest"] for i in stored}) == 2
    assert store.load(file).invites == state.invites


def test_an_invite_is_single_use_and_expires() -> None:
    clock = Clock()
    book, _, _ = _book(clock)
    secret, entry = book.mint(600)
    late, _ = book.mint(600)
    assert book.active() == 2
    assert book.redeem(secret, OTHER) is None
    assert entry.used_by == OTHER
    assert book.redeem(secret, HEAD) is InviteRefusal.USED
    assert book.active() == 1
    clock.now += 600
    assert book.redeem(late, OTHER) is InviteRefusal.EXPIRED
    assert book.active() == 0


def test_forged_secrets_are_wrong_or_unknown() -> None:
    clock = Clock()
    book, _, _ = _book(clock)
    secret, _ = book.mint(600)
    invite_id, _, key = secret.partition(".")
    flipped = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert book.redeem(f"{invite_id}.{flipped}", OTHER) is InviteRefusal.WRONG
    assert book.redeem(f"fedcba9876543210.{key}", OTHER) is InviteRefusal.UNKNOWN
    assert book.redeem(invite_id, OTHER) is InviteRefusal.UNKNOWN
    # A wrong key is refused before "used" or "expired" says anything about the invite.
    assert book.redeem(secret, OTHER) is None
    clock.now += 10_000
    assert book.redeem(f"{invite_id}.{flipped}", OTHER) is InviteRefusal.WRONG


def test_the_door_is_open_while_an_invite_is_active_and_a_grace_after() -> None:
    clock = Clock()
    book, _, _ = _book(clock)
    assert not book.door_open()
    secret, _ = book.mint(600)
    assert book.door_open()
    clock.now += 100
    book.redeem(secret, OTHER)
    clock.now += DOOR_GRACE - 1
    assert book.door_open()
    clock.now += 2
    assert not book.door_open()
    book.mint(60)
    clock.now += 60 + DOOR_GRACE
    assert not book.door_open()


def test_old_records_are_pruned() -> None:
    clock = Clock()
    book, state, _ = _book(clock)
    book.mint(60)
    clock.now += 60 + RETAIN + 1
    book.mint(60)
    assert len(state.invites) == 1


# --- the door's admission -----------------------------------------------------------------------


def _door() -> tuple[InviteDoor, InviteBook, Clock]:
    clock = Clock()
    state = store.StoredState()
    book = InviteBook(state.invites, lambda: None, clock)
    return InviteDoor(book, PeerManager(state, lambda: None), clock), book, clock


def _stranger() -> ID:
    return ID.from_pubkey(create_new_key_pair().public_key)


def test_unknown_peers_get_in_only_while_the_door_is_open() -> None:
    door, book, _ = _door()
    assert not door.admit(_stranger(), "inbound")
    book.mint(60)
    assert door.admit(_stranger(), "inbound")
    assert door.status().probation == 1
    # Outbound, only the head whose invite this daemon is presenting.
    head = _stranger()
    assert not door.admit(head, "outbound")
    door.dialing.add(str(head))
    assert door.admit(head, "outbound")


def test_the_door_limits_unknown_peers_at_once_and_per_minute() -> None:
    door, book, clock = _door()
    book.mint(3600)
    admitted = sum(door.admit(_stranger(), "inbound") for _ in range(MAX_PROBATION + 5))
    assert admitted == MAX_PROBATION
    assert door.refused[InviteRefusal.RATE] == 5
    door._probation.clear()  # as if they had all left
    admitted = sum(door.admit(_stranger(), "inbound") for _ in range(MAX_ADMITS_PER_MINUTE))
    assert admitted == MAX_ADMITS_PER_MINUTE - MAX_PROBATION
    clock.now += 61
    door._probation.clear()
    assert door.admit(_stranger(), "inbound")


def test_only_protocols_beyond_identify_count_as_refused() -> None:
    door, book, _ = _door()
    book.mint(60)
    peer = _stranger()
    door.admit(peer, "inbound")
    door.stream_refused(peer, ("/ipfs/id/1.0.0",))
    assert door.refused == {}
    door.stream_refused(peer, ("/raytui/tcp/1.0.0",))
    assert door.refused == {InviteRefusal.PROTOCOL: 1}
    assert door.status().probation == 0
