"""Exceptions with messages meant for the user (the CLI maps them to exit codes), and
`describe(exc)`: the one way any exception becomes the text a user reads."""

from __future__ import annotations

import re
from typing import Literal


class RaytuiError(Exception):
    """A failure the user can act on; str(exc) is shown as is. Exit code 1."""

    exit_code = 1


class UsageError(RaytuiError):
    """Bad input: a malformed address, multiaddr or option. Exit code 2."""

    exit_code = 2


class ClusterUnreachable(RaytuiError):
    """The Ray cluster (dashboard, GCS or client server) could not be reached."""


class AuthenticationFailed(RaytuiError):
    """The cluster answered 401/403: the Ray auth token is missing or wrong."""


Form = Literal["user", "typed", "line", "chain"]


def describe(exc: BaseException, form: Form = "user") -> str:
    """The one text raytui shows for `exc`, whoever caught it. `form`:

    - "user" (a pane, a notice): a RaytuiError's own text; anything else is a bug and says so,
      "unexpected error: Type: text".
    - "typed" (a run's failure): "Type: first line".
    - "line" (a reason inside a longer message): the first line, or the type's name when there is
      no text; httpx's refused connection reads "connection refused".
    - "chain" (the proxy's dial errors, which libp2p wraps several deep): the most specific
      message in the chain, with the multiaddr it was about; a muxer failure after the
      handshake is explained as a missing allow-list entry.
    """
    if form == "user":
        if isinstance(exc, RaytuiError):
            return str(exc) or type(exc).__name__
        return f"unexpected error: {type(exc).__name__}: {exc}"
    if form == "typed":
        line = _first_line(exc)
        return f"{type(exc).__name__}: {line}" if line else type(exc).__name__
    if form == "chain":
        return _chain(exc)
    text = str(exc).strip()
    if _is_a(exc, "httpx", "ConnectError") and ("refused" in text.lower() or "111" in text):
        return "connection refused"
    return _first_line(exc) or type(exc).__name__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _is_a(exc: BaseException, package: str, name: str) -> bool:
    """By name, so that this module imports neither httpx nor trio (the TUI loads it first)."""
    return any(
        cls.__name__ == name and cls.__module__.split(".")[0] == package
        for cls in type(exc).__mro__
    )


def _chain(exc: BaseException) -> str:
    messages: list[str] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        text = str(cur).strip()
        if isinstance(cur, ConnectionRefusedError):
            text = "connection refused"
        elif _is_a(cur, "trio", "TooSlowError"):
            text = "timed out"
        if text:
            messages.append(text)
        nested = getattr(cur, "errors", None) or getattr(cur, "exceptions", None)
        if isinstance(nested, list | tuple) and nested and isinstance(nested[0], BaseException):
            cur = nested[0]
        else:
            cur = cur.__cause__ or cur.__context__
    if not messages:
        return type(exc).__name__
    if any("upgrade mux" in m or "muxer" in m for m in messages):
        return (
            "the peer hung up after the handshake: this machine is probably not on its "
            "allow-list (on the peer, run `raytui peers add` with this machine's address)"
        )
    final = messages[-1]
    for m in messages:
        where = re.search(r" to (/ip[46]/[^\s:]+|/dns[46]?/[^\s:]+)", m)
        if where and where.group(1) not in final:
            final = f"{final} ({where.group(1)})"
            break
    return final[:300]
