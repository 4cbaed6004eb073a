"""What the workbench's clients share: auth headers, bounded calls and one-line errors.

Ray's own HTTP clients (`JobSubmissionClient`, `StateApiClient`) use `requests` without a timeout
and raise multi-line messages; every call here runs through `bounded`, which gives up after a
deadline (the call's thread is left to finish on its own) and turns Ray's exceptions into
raytui's one-line errors.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from raytui.errors import AuthenticationFailed, ClusterUnreachable, RaytuiError, describe
from raytui.sources.dashboard_client import token_hint
from raytui.sources.ray_driver import call_within

T = TypeVar("T")


def auth_headers(token: str | None) -> dict[str, str]:
    """The headers the console's dashboard client sends: `Authorization: Bearer <token>`.

    With no token Ray's clients add the one Ray finds itself (RAY_AUTH_TOKEN, …), never less."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def bounded(url: str, what: str, fn: Callable[[], T], timeout: float) -> T:
    """fn() within `timeout` s; Ray's and the network's failures become RaytuiErrors."""
    try:
        return call_within(fn, timeout)
    except TimeoutError:
        raise ClusterUnreachable(
            f"cannot {what}: the Ray dashboard at {url} gave no answer within {timeout:g} s"
        ) from None
    except RaytuiError:
        raise
    except Exception as exc:
        raise translate(url, what, exc) from None


_UNREACHABLE = frozenset(
    {
        "ServerUnavailable",
        "ConnectionError",
        "ConnectTimeout",
        "ReadTimeout",
        "Timeout",
        "ClientConnectorError",
        "ServerDisconnectedError",
    }
)


def translate(url: str, what: str, exc: BaseException) -> RaytuiError:
    """One Ray/HTTP exception as one line the user can act on."""
    name = type(exc).__name__
    module = type(exc).__module__
    text = describe(exc, "line")
    if name == "AuthenticationError" or " 401" in text or " 403" in text:
        return AuthenticationFailed(
            f"cannot {what}: the Ray dashboard at {url} refused the auth token: {token_hint()}"
        )
    if name in _UNREACHABLE or type(exc) in (ConnectionError, ConnectionRefusedError):
        return ClusterUnreachable(f"cannot {what}: the Ray dashboard at {url} is unreachable")
    if module.startswith(("requests", "urllib3", "aiohttp")) or isinstance(exc, OSError):
        return ClusterUnreachable(f"cannot {what}: the Ray dashboard at {url}: {text}")
    return RaytuiError(f"cannot {what}: {text}")


def drain(
    chunks: queue.Queue[tuple[str, Any]], cancel: threading.Event | None, poll: float
) -> Iterator[Any]:
    """What a reader thread hands over: `("data", x)` yields x, `("error", exc)` raises exc,
    `("end", None)` ends. Ends too, within `poll` s, when `cancel` is set."""
    while cancel is None or not cancel.is_set():
        try:
            kind, value = chunks.get(timeout=poll)
        except queue.Empty:
            continue
        if kind == "end":
            return
        if kind == "error":
            raise value
        yield value
