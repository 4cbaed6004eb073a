"""The daemon's stored state (proxy.json) is read with types checked key by key: a wrong type is a
clear error naming the file and the key, never a coerced value, and the file is left as it was."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from raytui.errors import RaytuiError
from raytui.proxy import store

PEER = "12D3KooWA73AbUA2dz1hWm1PToPN21piJoqKKoKioTHyCHR5m8jD"


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        ({"share_token": "false"}, "share_token"),
        ({"share_token": 1}, "share_token"),
        ({"share_token": None}, "share_token"),
        ({"listen": "/ip4/0.0.0.0/tcp/4701"}, "listen"),
        ({"listen": [4701]}, "listen[0]"),
        ({"services": ["web"]}, "services"),
        ({"services": {"web": 8080}}, "services.web"),
        ({"peers": {"a": 1}}, "peers"),
        ({"peers": [{"name": "x"}]}, "peers[0].peer_id"),
        ({"peers": [{"peer_id": PEER, "addrs": "/ip4/1.2.3.4/tcp/1"}]}, "peers[0].addrs"),
        ({"peers": [{"peer_id": PEER, "name": 5}]}, "peers[0].name"),
        ({"forwards": [{"peer_id": PEER, "service": "web", "bind": 80}]}, "forwards[0].bind"),
        ({"invites": [{"invite_id": "a"}]}, "invites[0].salt"),
        (
            {"invites": [{"invite_id": "a", "salt": "", "digest": "", "expires": "soon"}]},
            "invites[0].expires",
        ),
        ([], "top level"),
    ],
)
def test_a_wrong_type_names_the_file_and_key_and_keeps_the_file(
    tmp_path: Path, doc: object, key: str
) -> None:
    file = tmp_path / "proxy.json"
    text = json.dumps(doc)
    file.write_text(text)
    with pytest.raises(RaytuiError) as exc:
        store.load(file)
    message = str(exc.value)
    assert str(file) in message and key in message, message
    assert "\n" not in message
    assert file.read_text() == text


def test_good_state_loads_and_unknown_keys_are_ignored(tmp_path: Path) -> None:
    file = tmp_path / "proxy.json"
    doc = {
        "version": 1,
        "peers": [{"peer_id": PEER, "name": None, "addrs": ["/ip4/1.2.3.4/tcp/4701"]}],
        "services": {"web": "127.0.0.1:8080"},
        "forwards": [{"peer_id": PEER, "service": "web", "bind": "127.0.0.1:9000"}],
        "listen": ["/ip4/0.0.0.0/tcp/4701"],
        "share_token": False,
        "from_a_newer_version": {"anything": [1, 2]},
    }
    file.write_text(json.dumps(doc))
    state = store.load(file)
    assert state.share_token is False
    assert state.peers[PEER].addrs == ["/ip4/1.2.3.4/tcp/4701"]
    assert state.services == {"web": "127.0.0.1:8080"}
    assert state.forwards[0].bind == "127.0.0.1:9000"
    assert state.listen == ["/ip4/0.0.0.0/tcp/4701"]
    again = tmp_path / "again.json"
    store.save(state, again)
    assert store.load(again) == state
    assert store.load(tmp_path / "missing.json") == store.StoredState()


def test_the_daemon_refuses_to_start_on_a_string_boolean(raytui_home: Path) -> None:
    """`"share_token": "false"` used to turn token sharing ON."""
    (raytui_home / "config").mkdir(exist_ok=True)
    file = raytui_home / "config" / "proxy.json"
    text = json.dumps({"share_token": "false"})
    file.write_text(text)
    out = subprocess.run(
        [sys.executable, "-m", "raytui", "proxy", "run", "--listen", "/ip4/127.0.0.1/tcp/0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert out.stderr.startswith(f"raytui: {file}: bad proxy settings, share_token: expected")
    assert "Traceback" not in out.stderr
    assert file.read_text() == text
