"""Making this process a Ray driver without waiting forever: bounded calls and their messages.

`ray.init` retries an address it cannot use for minutes and cannot be interrupted, so every wait
on it is bounded: `check_tcp` (the port accepts a connection within TCP_TIMEOUT),
`init_driver_within` (ray.init on a daemon thread, given up after `driver_timeout()`), and
`call_within` for any other blocking Ray call. Used by the console's connection
(`ray_connection.py`) and the CLI commands' driver (`commands/driver.py`).
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from raytui.errors import ClusterUnreachable
from raytui.sources.address import AddressKind, parse_address

_T = TypeVar("_T")


def call_within(fn: Callable[[], _T], timeout: float) -> _T:
    """fn() on a daemon thread; its result or exception, or TimeoutError after `timeout` s
    (the thread is left to finish on its own: Ray's blocking calls cannot be interrupted)."""
    box: list[tuple[bool, Any]] = []

    def work() -> None:
        try:
            box.append((True, fn()))
        except BaseException as exc:
            box.append((False, exc))

    thread = threading.Thread(target=work, name="raytui-bounded-call", daemon=True)
    thread.start()
    thread.join(timeout)
    if not box:
        raise TimeoutError
    ok, value = box[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


DRIVER_TIMEOUT = 30.0  # seconds for ray.init to attach to a running cluster
TCP_TIMEOUT = 3.0  # seconds for the GCS port to accept a TCP connection
JOIN_TIMEOUT = 120.0  # seconds for `--via` over the overlay to make this machine a node


def driver_timeout() -> float:
    """DRIVER_TIMEOUT, or RAYTUI_DRIVER_TIMEOUT seconds (slow links; tests)."""
    try:
        value = float(os.environ.get("RAYTUI_DRIVER_TIMEOUT", ""))
    except ValueError:
        return DRIVER_TIMEOUT
    return value if 0 < value < 3600 else DRIVER_TIMEOUT


def check_tcp(addr: str) -> None:
    """ClusterUnreachable unless `addr` (a GCS or Ray Client address) accepts a TCP connection
    within TCP_TIMEOUT: a closed port fails at once instead of in ray.init's retries."""
    parsed = parse_address(addr, "the address")
    if parsed.host is None or parsed.port is None:
        return
    try:
        with socket.create_connection((parsed.host, parsed.port), timeout=TCP_TIMEOUT):
            pass
    except OSError as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        what = "Ray Client server" if parsed.kind is AddressKind.CLIENT else "Ray GCS"
        raise ClusterUnreachable(
            f"cannot reach the {what} at {parsed.hostport}: {why} "
            f"(waited up to {TCP_TIMEOUT:g} s for a TCP connection)"
        ) from None


def gave_up_on_driver(addr: str, timeout: float) -> ClusterUnreachable:
    """The error for a ray.init that did not attach within `timeout` seconds."""
    return ClusterUnreachable(
        f"gave up after {timeout:g} s waiting for Ray at {addr} to accept this process as a "
        "driver (ray.init): the port answers on TCP but Ray could not attach (is it a Ray "
        "GCS? a head started with --node-ip-address must be reached at that address)"
    )


class _NotFromMainThread(logging.Filter):
    """Ray warns that it sets no SIGTERM handler off the main thread: expected here, noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


def quiet_init_off_main_thread() -> None:
    worker_log = logging.getLogger("ray._private.worker")
    if not any(isinstance(f, _NotFromMainThread) for f in worker_log.filters):
        worker_log.addFilter(_NotFromMainThread())


def init_driver_within(init: Callable[[], object], addr: str, timeout: float) -> None:
    """ray.init on a daemon thread, waited for at most `timeout` seconds; ClusterUnreachable
    saying what was waited for when it does not attach."""
    quiet_init_off_main_thread()
    try:
        call_within(init, timeout)
    except TimeoutError:
        raise gave_up_on_driver(addr, timeout) from None
    except ConnectionError as exc:
        raise ClusterUnreachable(f"cannot attach to Ray at {addr}: {exc}") from exc


def prepare_ray_import() -> None:
    """Ray calls faulthandler.enable() on init; under Textual sys.stderr has no fileno."""
    with contextlib.suppress(Exception):
        if sys.__stderr__ is not None:
            faulthandler.enable(file=sys.__stderr__)
