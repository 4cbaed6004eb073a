"""`raytui ...` in this process: cli.main with captured stdio, and the checks every bad input
must pass (an exit code of 0/1/2, at most one line on stderr, never a traceback or an
"internal error")."""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from raytui import cli


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


class _Stdout(io.StringIO):
    def isatty(self) -> bool:
        return False


def run_main(argv: Sequence[str], stdin: str = "") -> Result:
    """cli.main(argv) with stdin/stdout/stderr captured; SystemExit is its code."""
    saved = sys.stdin, sys.stdout, sys.stderr
    out, err = _Stdout(), _Stdout()
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(stdin), out, err
    try:
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
    return Result(code, out.getvalue(), err.getvalue())


def assert_one_line(result: Result, codes: Sequence[int] = (0, 1, 2)) -> None:
    """The contract for any input: a known exit code, one line on stderr at most, no traceback."""
    assert result.code in codes, result
    lines = result.err.splitlines()
    assert len(lines) <= 1, result.err
    assert "Traceback" not in result.err, result.err
    assert "internal error" not in result.err, result.err
