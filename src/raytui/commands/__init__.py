"""One module per subcommand, each with `run(args) -> exit code`."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TextIO


@contextlib.contextmanager
def reserved_stdout() -> Iterator[TextIO]:
    """Yield the real stdout for the command's own output; route everyone else's to stderr.

    A Ray driver prints cluster events ("(raylet) The node ... has been marked dead") to
    `sys.stdout` from a background thread; on a `--json` stream that breaks every consumer.
    """
    out = sys.stdout
    sys.stdout = sys.stderr
    try:
        yield out
    finally:
        sys.stdout = out
