"""The debug log (issue 8): `--log-file PATH` or RAYTUI_DEBUG=1; every error raytui reports
(or swallows) lands there with its traceback, and a bug is one line on the terminal."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from raytui import debuglog
from tests.support.inprocess import assert_one_line, run_main


@pytest.fixture(autouse=True)
def _stop_log() -> Iterator[None]:
    yield
    debuglog.stop()


def test_reported_error_lands_with_traceback(raytui_home: Path, tmp_path: Path) -> None:
    (raytui_home / "data").mkdir(exist_ok=True)
    (raytui_home / "data" / "history.sqlite3").write_bytes(b"not a database" * 100)
    log = tmp_path / "debug.log"
    result = run_main(["--log-file", str(log), "history"])
    assert_one_line(result, codes=(1,))
    text = log.read_text()
    assert "exit 1:" in text and "Traceback" in text and "HistoryError" in text
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_raytui_debug_uses_the_state_dir(
    raytui_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAYTUI_DEBUG", "1")
    result = run_main(["peers", "remove", "x"])  # no daemon: exit 1
    assert_one_line(result, codes=(1,))
    assert "not running" in (raytui_home / "state" / "debug.log").read_text()


def test_a_bug_is_one_line_and_its_traceback_is_in_the_log(
    raytui_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from raytui.commands import history

    def broken(_args: object) -> int:
        raise KeyError("this is a bug")

    monkeypatch.setattr(history, "run", broken)
    result = run_main(["history"])
    assert result.code == 1 and len(result.err.splitlines()) == 1
    assert "internal error" in result.err and "RAYTUI_DEBUG=1" in result.err
    log = tmp_path / "d.log"
    result = run_main(["--log-file", str(log), "history"])
    assert str(log) in result.err
    assert "KeyError: 'this is a bug'" in log.read_text()


def test_unwritable_log_file_is_a_usage_error(tmp_path: Path) -> None:
    result = run_main(["--log-file", str(tmp_path / "no" / "such" / "dir" / "x.log"), "history"])
    assert_one_line(result, codes=(2,))
    assert "--log-file" in result.err
