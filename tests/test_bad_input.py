"""Bad input gives a one-line message and exit 2 (usage) or 1 (unreachable), never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from raytui.errors import UsageError
from raytui.sources.address import AddressKind, parse_address
from tests.support.raytui_cli import run_raytui


def _env(tmp_path: Path) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["HOME"] = str(tmp_path)
    return env


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["status", "--address", "nonsense"], 2, ["nonsense", "http://host:8265", "host:6379"]),
        (["status", "--address", "http://127.0.0.1:1"], 1, ["cannot reach", "127.0.0.1:1"]),
        (["status", "--address", "127.0.0.1:1"], 1, ["cannot reach", "127.0.0.1:1"]),
        (["--refresh", "-1"], 2, ["--refresh"]),
        (["--address", "nonsense", "status"], 2, ["nonsense"]),
        (
            ["submit", "--via", "home", "--backend", "ollama", "--model", "m", "hi"],
            1,
            ["proxy daemon not running", "raytui proxy start"],
        ),
        (
            ["submit", "--address", "ray://127.0.0.1:1", "--backend", "vllm", "--model", "m", "x"],
            2,
            ["cannot run over Ray Client", "host:6379"],
        ),
    ],
)
def test_bad_input_is_a_clear_message(
    tmp_path: Path, args: list[str], code: int, words: list[str]
) -> None:
    result = run_raytui(args, _env(tmp_path), timeout=60)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    for word in words:
        assert word in result.stderr


def test_bad_ray_address_env_is_usage_error(tmp_path: Path) -> None:
    env = _env(tmp_path)
    env["RAY_ADDRESS"] = "bogus address"
    result = run_raytui(["status", "--json"], env, timeout=60)
    assert result.returncode == 2
    assert "RAY_ADDRESS" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("text", "kind", "host", "port", "url"),
    [
        ("http://10.0.0.5:8265", AddressKind.DASHBOARD, "10.0.0.5", 8265, "http://10.0.0.5:8265"),
        (
            "https://ray.example.org/",
            AddressKind.DASHBOARD,
            "ray.example.org",
            None,
            "https://ray.example.org",
        ),
        ("http://[::1]:8265", AddressKind.DASHBOARD, "::1", 8265, "http://[::1]:8265"),
        ("10.0.0.5:6379", AddressKind.GCS, "10.0.0.5", 6379, None),
        ("head-1.lan:6379", AddressKind.GCS, "head-1.lan", 6379, None),
        ("[fe80::1]:6379", AddressKind.GCS, "fe80::1", 6379, None),
        ("ray://10.0.0.5:10001", AddressKind.CLIENT, "10.0.0.5", 10001, None),
        ("ray://head", AddressKind.CLIENT, "head", 10001, None),
        ("auto", AddressKind.AUTO, None, None, None),
        ("local", AddressKind.LOCAL, None, None, None),
    ],
)
def test_accepted_address_forms(
    text: str, kind: AddressKind, host: str | None, port: int | None, url: str | None
) -> None:
    address = parse_address(text)
    assert (address.kind, address.host, address.port, address.url) == (kind, host, port, url)


@pytest.mark.parametrize(
    "text",
    [
        "nonsense",
        "",
        "  ",
        "host:",
        "host:99999",
        "host:abc",
        "ftp://x:1",
        "http://",
        "::1:6379",
        "ray://h:1/path",
        "a b:6379",
        "http://h:8265?x=1",
        "999.1.2.3:6379",
    ],
)
def test_rejected_address_forms(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_address(text)
    assert "ray://host:10001" in str(info.value)
    assert info.value.exit_code == 2


def test_the_address_given_is_the_flag_else_ray_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """One reading of `--address` / `RAY_ADDRESS` for the TUI's attach and the commands' driver;
    an error names where the bad address came from."""
    from raytui.sources.address import given_address

    monkeypatch.setenv("RAY_ADDRESS", "  10.0.0.1:6379 ")
    flag = given_address("http://10.0.0.2:8265")
    assert flag is not None and (flag.kind, flag.host) == (AddressKind.DASHBOARD, "10.0.0.2")
    env = given_address(None)
    assert env is not None and (env.kind, env.hostport) == (AddressKind.GCS, "10.0.0.1:6379")
    monkeypatch.setenv("RAY_ADDRESS", "   ")
    assert given_address("") is None
    monkeypatch.setenv("RAY_ADDRESS", "nonsense")
    with pytest.raises(UsageError, match=r"^RAY_ADDRESS 'nonsense': "):
        given_address(None)
    with pytest.raises(UsageError, match=r"^--address 'junk': "):
        given_address("junk")
