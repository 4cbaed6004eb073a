"""The kernel side of the overlay: an address, a route and a NAT interception, undone on stop.

Plain synchronous code (the daemon calls it through `trio.to_thread`). What `apply` does:

1. the overlay address as a /32 on `lo` (pyroute2), so Ray can bind to it;
2. a route for the whole overlay prefix on `lo` (source: the overlay address), so `connect()` to
   another peer's overlay address finds a route instead of failing with ENETUNREACH;
3. an iptables nat chain of our own, jumped to from OUTPUT, with one rule:
   `-d PREFIX -p tcp -m addrtype ! --dst-type LOCAL -j REDIRECT --to-ports PORT`.
   Every outgoing TCP connection to another overlay address is handed to the daemon's listener on
   127.0.0.1:PORT, where `original_destination()` names the address and port it was meant for
   (sshuttle's design). Connections to this machine's own overlay address (LOCAL) are not touched.
   IPv4-mapped IPv6 sockets (`::ffff:100.64.x.y`, as Ray opens) are IPv4 on the wire: caught too.

Crash safety: `apply` writes the record (JSON, 0600) before it changes anything, listing what it
is about to add; `undo(record)` on the next start removes whatever of that is still there.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import os
import shutil
import socket
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from raytui.errors import RaytuiError, UsageError

OVERLAY_PREFIX_DEFAULT = "100.64.0.0/10"
CHAIN = "RAYTUI_OVERLAY"
DEVICE = "lo"
SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h; IP6T_SO_ORIGINAL_DST is 80 too (on SOL_IPV6)
CAP_NET_ADMIN = 12
RECORD_VERSION = 1
IPTABLES_TIMEOUT_S = 30.0

PRIVILEGE_MESSAGE = (
    "the overlay needs root or CAP_NET_ADMIN (it adds an address and a route on lo and iptables "
    "NAT rules). Run `sudo raytui proxy start --overlay`, or grant CAP_NET_ADMIN as an ambient "
    "capability so that iptables inherits it too (systemd: AmbientCapabilities=CAP_NET_ADMIN; "
    "or `sudo setpriv --reuid=$(id -u) --regid=$(id -g) --init-groups --inh-caps=+net_admin "
    "--ambient-caps=+net_admin raytui proxy start --overlay`). Without it everything else in the "
    "daemon keeps working."
)


class OverlayPrivilegeError(RaytuiError):
    """The overlay's kernel changes need root or CAP_NET_ADMIN; the message says what to run."""


@dataclass(frozen=True)
class KernelPlan:
    """What the kernel side sets up: this machine's overlay address inside the overlay prefix,
    and the local port (on 127.0.0.1) that intercepted connections are redirected to."""

    address: IPv4Address
    prefix: IPv4Network
    intercept_port: int

    def __post_init__(self) -> None:
        if not isinstance(self.address, IPv4Address) or not isinstance(self.prefix, IPv4Network):
            raise UsageError("the overlay address and prefix must be IPv4")
        if self.address not in self.prefix:
            raise UsageError(f"overlay address {self.address} is not inside {self.prefix}")
        if not 1 <= self.intercept_port <= 65535:
            raise UsageError(f"bad intercept port {self.intercept_port}")

    def rule(self) -> list[str]:
        """The REDIRECT rule inside CHAIN, as iptables arguments after `-A CHAIN`."""
        return [
            "-d", str(self.prefix), "-p", "tcp",
            "-m", "addrtype", "!", "--dst-type", "LOCAL",
            "-j", "REDIRECT", "--to-ports", str(self.intercept_port),
        ]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# privilege


def _capabilities(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1], 16)
    return None


def missing_privilege() -> str | None:
    """None when this process may apply the overlay, else a message saying what to run.

    Root with CAP_NET_ADMIN effective is enough. A non-root process needs CAP_NET_ADMIN both
    effective and ambient: iptables runs as a child process, and a capability that is not
    ambient is dropped when a non-root process execs a program.
    """
    effective = _capabilities("CapEff")
    if effective is None:  # no /proc: trust the user id
        return None if os.geteuid() == 0 else PRIVILEGE_MESSAGE
    if not effective >> CAP_NET_ADMIN & 1:
        return PRIVILEGE_MESSAGE
    if os.geteuid() != 0:
        ambient = _capabilities("CapAmb") or 0
        if not ambient >> CAP_NET_ADMIN & 1:
            return PRIVILEGE_MESSAGE
    return None


# ---------------------------------------------------------------------------------------------
# iptables (argument lists, never a shell)


def _iptables_binary() -> str:
    path = shutil.which("iptables")
    if path is None:
        raise RaytuiError(
            "the overlay needs the iptables command, which is not installed "
            "(Debian/Ubuntu: sudo apt-get install iptables)"
        )
    return path


def _iptables(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = [_iptables_binary(), "-w", "-t", "nat", *args]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=IPTABLES_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise RaytuiError(f"`{' '.join(argv)}` did not finish in {IPTABLES_TIMEOUT_S:g} s") from exc
    if check and done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()
        if "Permission denied" in detail or "you must be root" in detail:
            raise OverlayPrivilegeError(PRIVILEGE_MESSAGE)
        raise RaytuiError(f"`{' '.join(argv)}` failed (exit {done.returncode}): {detail}")
    return done


def _chain_rules(chain: str) -> list[str] | None:
    """The `-A` lines of a nat chain, or None when the chain does not exist."""
    done = _iptables("-S", chain, check=False)
    if done.returncode != 0:
        return None
    return [line for line in done.stdout.splitlines() if line.startswith("-A ")]


def _jump_present(chain: str) -> bool:
    return _iptables("-C", "OUTPUT", "-j", chain, check=False).returncode == 0


def _ensure_chain(plan: KernelPlan) -> None:
    rule = plan.rule()
    rules = _chain_rules(CHAIN)
    if rules is None:
        _iptables("-N", CHAIN)
        rules = []
    exact = len(rules) == 1 and _iptables("-C", CHAIN, *rule, check=False).returncode == 0
    if not exact:
        _iptables("-F", CHAIN)
        _iptables("-A", CHAIN, *rule)
    if not _jump_present(CHAIN):
        _iptables("-A", "OUTPUT", "-j", CHAIN)


def _remove_chain(chain: str, removed: list[str]) -> None:
    for _ in range(100):  # every jump (a crash between -C and -A can leave two)
        if not _jump_present(chain):
            break
        if _iptables("-D", "OUTPUT", "-j", chain, check=False).returncode == 0:
            removed.append(f"iptables -t nat OUTPUT -j {chain}")
    if _chain_rules(chain) is not None:
        _iptables("-F", chain)
        if _iptables("-X", chain, check=False).returncode == 0:
            removed.append(f"iptables -t nat chain {chain}")


# ---------------------------------------------------------------------------------------------
# addresses and routes (pyroute2, imported late: it is heavy and only needed with the overlay)


def _netlink_errno(exc: BaseException) -> int | None:
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) else None


def _ipr_call(what: str, call: Callable[[], object], *, tolerate: tuple[int, ...] = ()) -> bool:
    """Run one pyroute2 request; False when it failed with a tolerated errno."""
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        call()
    except NetlinkError as exc:
        code = _netlink_errno(exc)
        if code in tolerate:
            return False
        if code == errno.EPERM:
            raise OverlayPrivilegeError(PRIVILEGE_MESSAGE) from exc
        raise RaytuiError(f"could not {what}: {exc}") from exc
    return True


def _add_address_and_route(plan: KernelPlan) -> None:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        (index,) = ipr.link_lookup(ifname=DEVICE)
        _ipr_call(
            f"add {plan.address}/32 to {DEVICE}",
            lambda: ipr.addr("add", index=index, address=str(plan.address), prefixlen=32),
            tolerate=(errno.EEXIST,),
        )
        _ipr_call(
            f"add a route for {plan.prefix} on {DEVICE}",
            lambda: ipr.route(
                "replace",
                dst=str(plan.prefix.network_address),
                dst_len=plan.prefix.prefixlen,
                oif=index,
                prefsrc=str(plan.address),
                scope=253,  # link, as `ip route add PREFIX dev lo` makes it
            ),
        )


def _remove_address_and_route(address: str, prefix: str, removed: list[str]) -> None:
    from pyroute2 import IPRoute

    network = ipaddress.IPv4Network(prefix)
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=DEVICE)
        if not found:
            return
        index = found[0]
        if _ipr_call(
            f"remove the route for {prefix}",
            lambda: ipr.route(
                "del",
                dst=str(network.network_address),
                dst_len=network.prefixlen,
                oif=index,
                scope=255,  # RT_SCOPE_NOWHERE: any scope, as `ip route del` asks
            ),
            tolerate=(errno.ESRCH, errno.ENOENT),
        ):
            removed.append(f"route {prefix} dev {DEVICE}")
        if _ipr_call(
            f"remove {address}/32 from {DEVICE}",
            lambda: ipr.addr("del", index=index, address=address, prefixlen=32),
            tolerate=(errno.EADDRNOTAVAIL, errno.ENOENT, errno.ESRCH),
        ):
            removed.append(f"address {address}/32 dev {DEVICE}")


# ---------------------------------------------------------------------------------------------
# the record


def _record_data(plan: KernelPlan) -> dict[str, Any]:
    return {
        "version": RECORD_VERSION,
        "device": DEVICE,
        "address": str(plan.address),
        "prefix": str(plan.prefix),
        "intercept_port": plan.intercept_port,
        "chain": CHAIN,
        "rule": plan.rule(),
        "jump": ["OUTPUT", "-j", CHAIN],
    }


def _write_record(record: Path, data: dict[str, Any]) -> None:
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.with_name(record.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, record)


def _read_record(record: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # unreadable: clean what we can find (our chain) and replace it
    return data if isinstance(data, dict) else {}


# ---------------------------------------------------------------------------------------------
# public


def apply(plan: KernelPlan, record: Path) -> None:
    """Set up address, route and interception for `plan`; idempotent.

    An earlier record for a different plan (another address, prefix or port) is undone first.
    Raises OverlayPrivilegeError without root/CAP_NET_ADMIN, RaytuiError for anything else.
    """
    message = missing_privilege()
    if message is not None:
        raise OverlayPrivilegeError(message)
    _iptables_binary()
    wanted = _record_data(plan)
    previous = _read_record(record)
    if previous is not None and previous != wanted:
        undo(record)
    _write_record(record, wanted)
    _add_address_and_route(plan)
    _ensure_chain(plan)


def undo(record: Path) -> list[str]:
    """Remove everything `record` lists (each step tolerant of "already gone"), then the record.

    Also removes a leftover CHAIN (and its OUTPUT jump) when the record is missing. Returns what
    was removed, for the log.
    """
    data = _read_record(record)
    removed: list[str] = []
    if data is None and (missing_privilege() is not None or shutil.which("iptables") is None):
        return removed  # nothing recorded, and nothing we could have left behind or could clean
    if data is not None:
        message = missing_privilege()
        if message is not None:
            raise OverlayPrivilegeError(message)
    chain = data.get("chain", CHAIN) if data else CHAIN
    if shutil.which("iptables") is not None:
        _remove_chain(str(chain), removed)
        if chain != CHAIN:
            _remove_chain(CHAIN, removed)
    elif data:
        _iptables_binary()  # raises, saying what to install
    if data and isinstance(data.get("address"), str) and isinstance(data.get("prefix"), str):
        _remove_address_and_route(data["address"], data["prefix"], removed)
    with contextlib.suppress(FileNotFoundError):
        record.unlink()
    return removed


def original_destination(sock: socket.socket) -> tuple[str, int]:
    """The (address, port) a REDIRECTed connection was sent to (SO_ORIGINAL_DST).

    `sock` is the accepted socket. The kernel answers from the connection's conntrack entry, so
    for a connection that was not redirected it names the address the socket itself accepted on
    (it does not tell redirected from direct); OSError (ENOENT) when there is no entry at all.
    A dual-stack (AF_INET6) listener gets the IPv4 answer for IPv4 connections.
    """
    if sock.family == socket.AF_INET6:
        with contextlib.suppress(OSError):
            raw6 = sock.getsockopt(socket.IPPROTO_IPV6, SO_ORIGINAL_DST, 28)
            port6 = struct.unpack_from("!H", raw6, 2)[0]
            return socket.inet_ntop(socket.AF_INET6, raw6[8:24]), port6
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port = struct.unpack_from("!H", raw, 2)[0]
    return socket.inet_ntoa(raw[4:8]), port
