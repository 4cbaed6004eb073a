"""Cluster addresses as a user types them: `--address`, `RAY_ADDRESS`, what `ray start` records.

`parse_address(text, source)` accepts a dashboard URL (`http://host:8265`), a GCS address
(`host:6379`), a Ray Client address (`ray://host:10001`), `auto` or `local`, and raises a one-line
`UsageError` (exit 2) for anything else. It only checks the form; nothing is contacted.
`given_address(address)` is what the user gave: `--address`, else `RAY_ADDRESS`, parsed.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from raytui.errors import UsageError
from raytui.ray_local import split_hostport

DASHBOARD_PORT = 8265
CLIENT_PORT = 10001
GCS_PORT = 6379

ACCEPTED_FORMS = (
    "a dashboard URL (http://host:8265), a GCS address (host:6379), "
    "a Ray Client address (ray://host:10001), 'auto' (a cluster running here) "
    "or 'local' (start an embedded one)"
)

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")


class AddressKind(StrEnum):
    DASHBOARD = "dashboard"
    GCS = "gcs"
    CLIENT = "client"
    AUTO = "auto"
    LOCAL = "local"


@dataclass(frozen=True, slots=True)
class Address:
    """A validated address. `host`/`port` are set for GCS and client forms, `url` for dashboards."""

    kind: AddressKind
    text: str
    host: str | None = None
    port: int | None = None
    url: str | None = None

    @property
    def hostport(self) -> str:
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{host}:{self.port}"


def _valid_host(host: str) -> bool:
    if not host:
        return False
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    return bool(_HOSTNAME.match(host)) and not host.replace(".", "").isdigit()


def parse_address(text: str, source: str = "--address") -> Address:
    """Validate an address in one of the accepted forms. Raises UsageError (exit 2) otherwise."""
    raw = text.strip()

    def bad(why: str) -> UsageError:
        return UsageError(f"{source} {text!r}: {why}; expected {ACCEPTED_FORMS}")

    if raw in ("local", "auto"):
        return Address(AddressKind(raw), raw)
    if not raw:
        raise bad("empty")
    if not raw.isprintable():
        raise bad("it contains control characters")
    if "://" in raw:
        try:
            parts = urlsplit(raw)
        except ValueError as exc:  # "Invalid IPv6 URL", characters that NFKC turns into '/'
            raise bad(f"not a URL ({exc})") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https", "ray"):
            raise bad(f"unknown scheme {scheme!r}")
        if "@" in parts.netloc:
            raise bad(
                "a user name or password in the address is not supported (the Ray token comes "
                "from RAY_AUTH_TOKEN or ~/.ray/auth_token)"
            )
        try:
            host, port = split_hostport(parts.netloc)
        except ValueError as exc:
            raise bad(str(exc)) from None
        if not _valid_host(host):
            raise bad(f"bad host {host!r}")
        if scheme in ("http", "https"):
            if parts.query or parts.fragment:
                raise bad("a dashboard URL has no query or fragment")
            url = f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}"
            return Address(AddressKind.DASHBOARD, raw, host, port, url)
        if parts.path.strip("/") or parts.query:  # ray://
            raise bad("a Ray Client address is ray://host:port")
        return Address(AddressKind.CLIENT, raw, host, port or CLIENT_PORT)
    try:
        host, port = split_hostport(raw)
    except ValueError as exc:
        raise bad(str(exc)) from None
    if port is None:
        raise bad("not a known word and no port given")
    if not _valid_host(host):
        raise bad(f"bad host {host!r}")
    return Address(AddressKind.GCS, raw, host, port)


def given_address(address: str | None) -> Address | None:
    """`--address` (when given), else `RAY_ADDRESS` (when set), parsed and named by where it came
    from in errors; None when neither."""
    if address:
        return parse_address(address, "--address")
    env = os.environ.get("RAY_ADDRESS", "").strip()
    return parse_address(env, "RAY_ADDRESS") if env else None
