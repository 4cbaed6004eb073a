"""The debug log: where every error raytui reports or swallows lands with its traceback.

On with `raytui --log-file PATH ...`, or with `RAYTUI_DEBUG=1` (then at `debug.log` in the state
dir). The file is 0600 and appended to; a user can attach it to a bug report. Off, `report`
costs nothing and nothing is written anywhere (never to the terminal).

`report(message, exc)` is the one call for "this went wrong and was handled": the CLI's error
exit, a poller's failed fetch, a cleanup step that failed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from raytui import locations
from raytui.errors import UsageError

__all__ = [
    "current",
    "default_path",
    "divert_fd2",
    "report",
    "restore_fd2",
    "setup",
    "warnings_to_log",
]

log = logging.getLogger("raytui.debug")
_FORMAT = "%(asctime)s %(levelname)s %(process)d %(threadName)s %(name)s: %(message)s"

_state: dict[str, object] = {}


def default_path() -> Path:
    return locations.state_dir() / "debug.log"


def wanted() -> bool:
    return os.environ.get("RAYTUI_DEBUG", "").strip() not in ("", "0", "false", "no")


def setup(path: str | Path | None) -> Path | None:
    """Start the debug log at `path` (or the default one when RAYTUI_DEBUG is set); its path,
    or None when it stays off. A path that cannot be written is a UsageError."""
    if path is None and not wanted():
        return None
    target = Path(path).expanduser() if path is not None else default_path()
    if _state.get("path") == target:
        return target
    try:
        fd = locations.open_private(target, os.O_WRONLY | os.O_APPEND)
    except OSError as exc:
        raise UsageError(
            f"--log-file {str(target)!r}: cannot write it ({exc.strerror or exc})"
        ) from None
    stream = os.fdopen(fd, "a", encoding="utf-8", errors="backslashreplace", buffering=1)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.setLevel(logging.DEBUG)
    old = _state.get("handler")
    raytui_log = logging.getLogger("raytui")
    if isinstance(old, logging.Handler):
        raytui_log.removeHandler(old)
        old.close()
    raytui_log.addHandler(handler)
    raytui_log.setLevel(logging.DEBUG)
    _state.update(path=target, handler=handler)
    return target


def current() -> Path | None:
    """The debug log's path while it is on."""
    path = _state.get("path")
    return path if isinstance(path, Path) else None


def stop() -> None:
    """Close the debug log (tests; the CLI leaves it open until the process ends)."""
    handler = _state.pop("handler", None)
    _state.pop("path", None)
    if isinstance(handler, logging.Handler):
        raytui_log = logging.getLogger("raytui")
        raytui_log.removeHandler(handler)
        raytui_log.setLevel(logging.NOTSET)
        handler.close()


STDERR_NAME = "stderr.log"
STDERR_KEEP = 1 << 20  # bytes: a longer stderr.log starts over


def _sink() -> int:
    """Where file descriptor 2 goes while raytui owns the terminal: the debug log when it is on,
    else `stderr.log` in the state dir (started over once it passes STDERR_KEEP)."""
    path = current()
    if path is None:
        path = locations.state_dir() / STDERR_NAME
        fd = locations.open_private(path, os.O_WRONLY | os.O_APPEND)
        if os.fstat(fd).st_size > STDERR_KEEP:
            os.ftruncate(fd, 0)
        return fd
    return locations.open_private(path, os.O_WRONLY | os.O_APPEND)


def divert_fd2() -> TextIO | None:
    """Send file descriptor 2 (where Ray's C++ core and every child process write) to the
    debug log, and return a text stream on the terminal's stderr for raytui's own words.
    None (and nothing changed) when that is not possible."""
    stderr = sys.__stderr__
    if stderr is None:
        return None
    try:
        stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        return None
    try:
        sink = _sink()
        os.dup2(sink, 2)
        os.close(sink)
    except OSError:
        os.close(saved)
        return None
    encoding = getattr(stderr, "encoding", None) or "utf-8"
    return os.fdopen(saved, "w", encoding=encoding, errors="backslashreplace", buffering=1)


def restore_fd2(terminal: TextIO) -> None:
    """Undo `divert_fd2`: file descriptor 2 is the terminal again."""
    with contextlib.suppress(OSError, ValueError):
        terminal.flush()
        os.dup2(terminal.fileno(), 2)
        terminal.close()


def report(message: str, exc: BaseException | None = None) -> None:
    """Record a handled error with its traceback (the one being handled when `exc` is None)."""
    if current() is None:
        return
    if exc is not None:
        log.error(message, exc_info=(type(exc), exc, exc.__traceback__))
    else:
        log.error(message, exc_info=True)


def _log_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    if current() is not None:
        text = warnings.formatwarning(message, category, filename, lineno, line)
        log.warning("%s", text.rstrip())


@contextlib.contextmanager
def warnings_to_log() -> Iterator[None]:
    """While inside: Python warnings (platformdirs' `XDG_RUNTIME_DIR is not set`, a library's
    deprecation) go to the debug log when it is on, and nowhere when it is off: never to the
    user's terminal, where they read as raytui's own errors."""
    saved: Callable[..., Any] = warnings.showwarning
    warnings.showwarning = _log_warning
    try:
        yield
    finally:
        warnings.showwarning = saved
