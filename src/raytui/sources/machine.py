"""This machine: its addresses, and whether a host or a Ray node is this machine."""

from __future__ import annotations

import ipaddress
import socket


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def local_addresses() -> frozenset[str]:
    """Every IP address of this machine's interfaces (empty when they cannot be read)."""
    try:
        import psutil

        return frozenset(
            a.address.split("%")[0] for addrs in psutil.net_if_addrs().values() for a in addrs
        )
    except Exception:  # unknown: nothing counts as local but loopback
        return frozenset()


def is_this_machine(host: str) -> bool:
    """True when `host` (a name or an address) resolves to this machine. Blocking (DNS)."""
    if is_loopback(host):
        return True
    try:
        resolved = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(resolved & local_addresses())


def is_this_node(hostname: str, ip: str, my_hostname: str, my_addresses: frozenset[str]) -> bool:
    """Whether a Ray node (its hostname and IP) runs on this machine. The hostname alone is not
    enough: machines set up alike often share one ("ubuntu"), and reading NVML here for a node
    elsewhere would show the wrong GPUs."""
    return bool(hostname) and hostname == my_hostname and (ip in my_addresses or is_loopback(ip))
