"""Ray processes running on this machine, found without importing Ray.

Shared by the console's attach (`sources/attach.py`: which cluster runs here) and
`raytui proxy expose --ray-head` (where the head's GCS, dashboard and Ray Client server really
listen: `ray start --head --node-ip-address=IP --dashboard-host=IP --port=P ...` moves all of
them off 127.0.0.1 and the default ports). Everything is read from what `ray start` records
(`<tmp>/ray/ray_current_cluster`) and from the processes' command lines, which name their
addresses explicitly (`gcs_server --gcs_server_port --node-ip-address`, `dashboard.py --host
--port --gcs-address`, `ray.util.client.server --host --port --address`).
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

WILDCARDS = frozenset({"0.0.0.0", "::", ""})


def split_hostport(text: str) -> tuple[str, int | None]:
    """'host:port', '[v6]:port', 'host' -> (host, port or None). Raises ValueError."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError("unclosed [")
        if rest and not rest.startswith(":"):
            raise ValueError("junk after ]")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    elif ":" in text:
        raise ValueError("an IPv6 address needs brackets: [addr]:port")
    else:
        host, port_text = text, None
    if port_text is None:
        return host, None
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad port {port_text!r}: a number from 1 to 65535")
    return host, int(port_text)


def join_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def ray_temp_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("RAY_TMPDIR"):
        dirs.append(Path(os.environ["RAY_TMPDIR"]) / "ray")
    if sys.platform.startswith("linux") and os.environ.get("TMPDIR"):
        dirs.append(Path(os.environ["TMPDIR"]) / "ray")
    dirs.append(Path("/tmp/ray"))
    return list(dict.fromkeys(dirs))


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def find_local_cluster() -> str | None:
    """GCS address of a cluster running on this machine that answers, or None.

    First the address `ray start` records (`<tmp>/ray/ray_current_cluster`), then the newest
    running `gcs_server` process, then the GCS a `raylet` here reports to.
    """
    for folder in ray_temp_dirs():
        try:
            text = (folder / "ray_current_cluster").read_text(encoding="utf-8").strip()
        except OSError:
            continue
        try:
            host, port = split_hostport(text.splitlines()[0] if text else "")
        except ValueError:
            continue
        if host and port and port_open(host, port):
            return f"{host}:{port}"
    return _find_gcs_process()


@dataclass(frozen=True)
class _RayProcess:
    kind: str  # "gcs", "raylet", "dashboard", "client"
    started: float
    flags: dict[str, str]


def _ray_processes() -> list[_RayProcess]:
    """This user's Ray processes that name their addresses on their command line."""
    import psutil

    found: list[_RayProcess] = []
    for proc in psutil.process_iter(["name", "cmdline", "create_time"]):
        try:
            name = proc.info["name"] or ""
            args = list(proc.info["cmdline"] or [])
        except psutil.Error:
            continue
        if name == "gcs_server":
            kind = "gcs"
        elif name == "raylet":
            kind = "raylet"
        elif any(
            a.endswith(("/ray/dashboard/dashboard.py", "\\dashboard\\dashboard.py")) for a in args
        ):
            kind = "dashboard"
        elif "ray.util.client.server" in args:
            kind = "client"
        else:
            continue
        flags = dict(a.split("=", 1) for a in args if a.startswith("--") and "=" in a)
        found.append(_RayProcess(kind, float(proc.info["create_time"] or 0), flags))
    return found


def _find_gcs_process() -> str | None:
    """The newest running `gcs_server` (a head here), else the GCS a `raylet` here reports to
    (a worker node here, e.g. one that `raytui join` started)."""
    found: list[tuple[int, float, str]] = []
    for proc in _ray_processes():
        if proc.kind == "raylet" and proc.flags.get("--gcs-address"):
            found.append((0, proc.started, proc.flags["--gcs-address"]))
        elif proc.kind == "gcs":
            ip = proc.flags.get("--node-ip-address")
            address = _connectable(ip or "", proc.flags.get("--gcs_server_port"))
            if ip and address:
                found.append((1, proc.started, address))
    for _, _, address in sorted(found, reverse=True):
        try:
            host, port = split_hostport(address)
        except ValueError:
            continue
        if port and port_open(host, port):
            return address
    return None


@dataclass(frozen=True)
class LocalHead:
    """Where a Ray head on this machine listens, each as a connectable `host:port` (a wildcard
    bind is given as 127.0.0.1); None for a part that does not run (`--include-dashboard=false`,
    `--ray-client-server-port` unset)."""

    gcs: str
    dashboard: str | None
    client: str | None


def _connectable(host: str, port: str | None) -> str | None:
    if not port or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        return None
    if host in WILDCARDS or host == "localhost":
        host = "127.0.0.1"
    return join_hostport(host, int(port))


def find_local_head(gcs_port: int | None = None) -> LocalHead | None:
    """The Ray head running on this machine (the newest, or the one whose GCS listens on
    `gcs_port`), with its dashboard and Ray Client server; None when no head runs here (a worker
    node's raylet is not a head). Blocking: scans processes and checks the GCS port answers."""
    procs = _ray_processes()
    heads = sorted((p for p in procs if p.kind == "gcs"), key=lambda p: p.started, reverse=True)
    for head in heads:
        ip, port_text = head.flags.get("--node-ip-address", ""), head.flags.get("--gcs_server_port")
        gcs = _connectable(ip, port_text)
        if gcs is None or (gcs_port is not None and port_text != str(gcs_port)):
            continue
        host, gport = split_hostport(gcs)
        if gport is None or not port_open(host, gport):
            continue
        # The GCS as its dashboard and client server name it (the node IP, as ray start wrote).
        names = {gcs, join_hostport(ip, int(gport))}
        dashboard = client = None
        for proc in procs:
            if proc.kind == "dashboard" and proc.flags.get("--gcs-address") in names:
                dashboard = _connectable(proc.flags.get("--host", ""), proc.flags.get("--port"))
            elif (
                proc.kind == "client"
                and proc.flags.get("--address") in names
                and proc.flags.get("--mode", "proxy") == "proxy"  # not a per-client server
            ):
                client = _connectable(proc.flags.get("--host", ""), proc.flags.get("--port"))
        return LocalHead(gcs, dashboard, client)
    return None
