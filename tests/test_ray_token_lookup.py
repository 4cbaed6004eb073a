"""The console and the peer daemon find the Ray token the same way Ray does, through one lookup
(`locations.ray_token_files`): RAY_AUTH_TOKEN, the file RAY_AUTH_TOKEN_PATH names, then
~/.ray/auth_token."""

from __future__ import annotations

from pathlib import Path

import pytest

from raytui.proxy.core import read_ray_token
from raytui.sources.auth_token import find_token


def test_a_token_path_with_a_tilde_is_found_by_console_and_daemon_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    (tmp_path / "tok").write_text("from-the-named-file\n")
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("from-dot-ray\n")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", " ~/tok ")
    assert find_token() == ("from-the-named-file", f"RAY_AUTH_TOKEN_PATH ({tmp_path / 'tok'})")
    assert read_ray_token() == "from-the-named-file"
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH")
    assert find_token()[0] == read_ray_token() == "from-dot-ray"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-the-variable")
    assert find_token()[0] == read_ray_token() == "from-the-variable"
