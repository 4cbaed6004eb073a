"""The command-line contract of DESIGN.md: names, flags and where they route."""

from __future__ import annotations

import pytest

from raytui import cli


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        ([], None),
        (["--address", "http://h:8265", "--refresh", "1"], None),
        (["status", "--json"], "status"),
        (["proxy", "status"], "proxy"),
        (["peers", "list"], "peers"),
        (["invite", "--expires", "30m"], "invite"),
        (["join", "raytui1:abc", "--gpus", "1"], "join"),
    ],
)
def test_commands_route(argv: list[str], command: str | None) -> None:
    args = cli.build_parser().parse_args(argv)
    assert args.command == command
    assert cli._HANDLERS[args.command or "tui"].startswith("raytui.commands.")


def test_top_level_address_reaches_subcommand() -> None:
    args = cli.build_parser().parse_args(["--address", "h:6379", "status"])
    assert args.address == "h:6379"
    args = cli.build_parser().parse_args(["status", "--address", "h:6379"])
    assert args.address == "h:6379"


@pytest.mark.parametrize("bad", ["-1", "0", "soon"])
def test_refresh_must_be_positive(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--refresh", bad])
    assert exc.value.code == 2
    assert "--refresh" in capsys.readouterr().err


def test_address_and_via_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--address", "local", "--via", "home"])
    assert exc.value.code == 2
    assert "exclusive" in capsys.readouterr().err


def test_reserved_stdout_sends_other_threads_prints_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Ray's driver prints cluster events to sys.stdout from a thread; --json must stay JSON."""
    import threading

    from raytui.commands import reserved_stdout

    with reserved_stdout() as out:
        noise = threading.Thread(target=print, args=("(raylet) The node ... marked dead",))
        noise.start()
        noise.join()
        out.write('{"event": "chunk"}\n')
    captured = capsys.readouterr()
    assert captured.out == '{"event": "chunk"}\n'
    assert "(raylet)" in captured.err


@pytest.mark.parametrize(
    "argv",
    [
        ["--address", ""],
        ["--via", ""],
        ["--address", "  "],
        ["status", "--address", ""],
        ["status", "--via="],
        ["submit", "--address", "", "--backend", "ollama", "--model", "m", "hi"],
        ["engines", "list", "--address", ""],
    ],
)
def test_empty_address_or_via_is_a_usage_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty value used to count as "not given" and attach to some other cluster."""
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]
    flag = "--via" if any(a.startswith("--via") for a in argv) else "--address"
    assert f"argument {flag}: must not be empty" in last, last
