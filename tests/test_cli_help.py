"""Every command, positional and option of the CLI says what it is for in `--help`."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

import pytest

from raytui import cli


def walk(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.Action]]:
    """(where, action) for every action of `parser` and of every subcommand below it."""
    for action in parser._actions:
        yield path, action
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                yield f"{path} {choice.dest}", choice
            for name, child in action.choices.items():
                yield from walk(child, f"{path} {name}")


def test_every_action_has_help() -> None:
    missing = [
        f"{where}: {action.option_strings or action.dest}"
        for where, action in walk(cli.build_parser(), "raytui")
        if action.help is not argparse.SUPPRESS and not (action.help or "").strip()
    ]
    assert missing == []


def test_every_subcommand_is_reachable_from_the_walk() -> None:
    """The walk above really descends: it sees nested actions such as `proxy forward --bind`."""
    seen = {(where, tuple(a.option_strings)) for where, a in walk(cli.build_parser(), "raytui")}
    assert ("raytui proxy forward", ("--bind",)) in seen
    assert ("raytui peers add", ("--name",)) in seen


def test_top_level_help_lists_each_subcommand_with_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On an 80-column terminal, each subcommand's help stays on its own line."""
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) >= {"status", "submit", "history", "proxy", "peers", "join"}
    for choice in sub._choices_actions:
        line = re.search(rf"^\s+{choice.dest}\s+(.*)$", out, re.MULTILINE)
        assert line is not None, f"{choice.dest} missing from raytui --help"
        assert line.group(1).strip() == choice.help
