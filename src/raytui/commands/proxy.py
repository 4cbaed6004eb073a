"""`raytui proxy run|start|stop|status|expose|unexpose|forward|unforward`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from raytui.errors import RaytuiError, UsageError
from raytui.model.peers import (
    RAY_CLIENT,
    RAY_DASHBOARD,
    RAY_GCS,
    RAY_HEAD_PORTS,
    DaemonStatus,
    PeerHealth,
    check_target,
    short_peer_id,
)
from raytui.ray_local import find_local_head, join_hostport
from raytui.sources.machine import is_this_machine
from raytui.sources.proxy_control import ProxyControl


def run(args: argparse.Namespace) -> int:
    action = args.proxy_command
    if action == "run":
        from raytui.proxy import daemon

        log_file = Path(args.daemon_log) if args.daemon_log else None
        return daemon.run(args.listen, args.overlay, args.overlay_prefix, log_file)
    if action == "start":
        from raytui.proxy import daemon

        pid, started = daemon.start(args.listen, args.overlay, args.overlay_prefix)
        if started:
            print(f"proxy daemon started (pid {pid}); log: {daemon.log_path()}")
        else:
            print(f"proxy daemon already running (pid {pid})")
        status = ProxyControl().status()
        _print_addrs(status)
        if not started and args.overlay is not None and status.overlay.enabled != args.overlay:
            flag = "--overlay" if args.overlay else "--no-overlay"
            print(
                "raytui: the running daemon was started "
                f"{'without' if args.overlay else 'with'} the overlay; to change that, "
                f"`raytui proxy stop`, then `raytui proxy start {flag}`",
                file=sys.stderr,
            )
        elif status.overlay.enabled and status.overlay.error:
            print(f"raytui: overlay off: {status.overlay.error}", file=sys.stderr)
        return 0
    if action == "stop":
        from raytui.proxy import daemon

        stopped = daemon.stop()
        if stopped.pid is not None:
            print(f"proxy daemon stopped (pid {stopped.pid})")
        elif stopped.stale is not None:
            print(
                f"proxy daemon not running; removed the stale pid file {daemon.pid_path()}"
                f" ({stopped.stale}; nothing was signalled)"
            )
        else:
            print("proxy daemon not running")
        return 0
    control = ProxyControl()
    if action == "status":
        status = control.status()
        if args.json:
            print(json.dumps(status.to_dict(), indent=2))
        else:
            print(format_status(status))
        return 0
    if action == "expose":
        return _expose(control, args)
    if action == "forward":
        fwd = control.forward(args.peer, args.name, args.bind)
        print(f"forwarding {fwd.bind} -> {args.peer}:{fwd.service}")
        return 0
    if action == "unexpose":
        return _unexpose(control, args)
    if action == "unforward":
        fwd = control.unforward(args.bind)
        print(f"closed forward {fwd.bind} -> {short_peer_id(fwd.peer_id)}:{fwd.service}")
        return 0
    raise UsageError(f"unknown proxy action {action!r}")


def _expose(control: ProxyControl, args: argparse.Namespace) -> int:
    if args.ray_head:
        if args.name or args.target:
            raise UsageError("--ray-head takes no NAME or HOST:PORT")
        targets, notes = ray_head_targets(control, args.address)
        for service in control.expose_ray_head(share_token=args.share_token, targets=targets):
            print(f"exposed {service.name} -> {service.target}")
        for note in notes:
            print(f"raytui: {note}", file=sys.stderr)
        if args.share_token:
            print("the Ray auth token is handed to allowed peers on request")
        return 0
    if args.address is not None:
        raise UsageError("--address goes with --ray-head (the head's GCS, HOST:PORT)")
    if not args.name or not args.target:
        if args.share_token and not args.name and not args.target:
            control.set_share_token(True)
            print("the Ray auth token is handed to allowed peers on request")
            return 0
        raise UsageError("expose needs NAME HOST:PORT (or --ray-head)")
    before = {s.name: s.target for s in control.status().services}
    service = control.expose(args.name, args.target)
    if args.share_token:
        control.set_share_token(True)
    old = before.get(service.name)
    if old is not None and old != service.target:
        print(f"exposed {service.name} -> {service.target} (replaces {old})")
    elif old is not None:
        print(f"exposed {service.name} -> {service.target} (unchanged)")
    else:
        print(f"exposed {service.name} -> {service.target}")
    return 0


def ray_head_targets(
    control: ProxyControl, address: str | None
) -> tuple[dict[str, str] | None, list[str]]:
    """Where the Ray head to expose listens: (service -> HOST:PORT, notes for the user).
    None when the daemon runs the head itself (it knows its overlay address). A head on this
    machine is read from its processes (the newest, or the one whose GCS is `address`); a GCS
    elsewhere is asked for its dashboard. RaytuiError (exit 1) when no head is found."""
    gcs_port = None
    if address is not None:
        if not address.strip():
            raise UsageError("--address is empty: give the head's GCS as HOST:PORT")
        gcs_host, gcs_port = check_target(address.strip())
        if not is_this_machine(gcs_host):
            return _remote_head_targets(gcs_host, gcs_port)
        head = find_local_head(gcs_port)
    else:
        status = control.status()
        if status.join is not None and status.join.role == "head":
            return None, []
        head = find_local_head()
        overlay = status.overlay.address
        if overlay is not None and (head is None or head.gcs.rpartition(":")[0] != overlay):
            # With the overlay on, the head meant is the one `raytui join --head` runs on it.
            note = (
                f"exposed the Ray head that `raytui join --head` runs on the overlay ({overlay});"
                " for another head give its GCS with --address HOST:PORT"
            )
            return None, [note]
    if head is None:
        where = f"with its GCS on port {gcs_port}" if gcs_port else "on this machine"
        raise RaytuiError(
            f"no Ray head runs {where} (start one with `ray start --head`, or give its GCS "
            "with --address HOST:PORT)"
        )
    targets = {RAY_GCS: head.gcs}
    notes = []
    if head.dashboard is not None:
        targets[RAY_DASHBOARD] = head.dashboard
    else:
        notes.append("this head runs no dashboard: ray-dashboard is not exposed")
    if head.client is not None:
        targets[RAY_CLIENT] = head.client
    else:
        notes.append("this head runs no Ray Client server: ray-client is not exposed")
    return targets, notes


def _remote_head_targets(host: str, port: int) -> tuple[dict[str, str], list[str]]:
    """A head on another machine: its GCS as given, its dashboard as the GCS records it."""
    from raytui.sources.address import Address, AddressKind
    from raytui.sources.gcs import dashboard_url_from_gcs

    gcs = join_hostport(host, port)
    url = dashboard_url_from_gcs(Address(AddressKind.GCS, gcs, host, port))
    dashboard = url.removeprefix("http://").removeprefix("https://").rstrip("/")
    return {RAY_GCS: gcs, RAY_DASHBOARD: dashboard}, [
        "the head is not on this machine: its Ray Client port is unknown, ray-client is not exposed"
    ]


def _unexpose(control: ProxyControl, args: argparse.Namespace) -> int:
    names = [args.name] if args.name else []
    if args.ray_head:
        names += [s.name for s in control.status().services if s.name in RAY_HEAD_PORTS]
    if not names and not args.share_token:
        raise UsageError("unexpose needs NAME, --ray-head or --share-token")
    for name in names:
        service = control.unexpose(name)
        print(f"no longer exposed: {service.name} -> {service.target}")
    if args.share_token:
        control.set_share_token(False)
        print("the Ray auth token is no longer handed to peers")
    return 0


def _print_addrs(status: DaemonStatus) -> None:
    print(f"peer ID: {status.peer_id}")
    print("addresses (paste one on the other machine: raytui peers add ADDRESS):")
    for addr in status.addrs:
        print(f"  {addr}")


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def format_peer(p: PeerHealth, now: float | None = None) -> str:
    now = time.time() if now is None else now
    rtt = f"{p.rtt_ms:.1f} ms" if p.rtt_ms is not None else "-"
    since = f"{now - p.since:.0f}s" if p.since else "-"
    line = (
        f"  {p.label:<16} {p.state.value:<10} rtt {rtt:<9} streams {p.active_streams:<3} "
        f"in {_bytes(p.bytes_in):<10} out {_bytes(p.bytes_out):<10} "
        f"reconnects {p.reconnects} (for {since})"
    )
    if p.name:
        line += f"\n    id {p.peer_id}"
    if p.last_error:
        line += f"\n    last error: {p.last_error}"
    return line


def format_status(status: DaemonStatus) -> str:
    lines = [f"proxy daemon pid {status.pid}, up {status.uptime_s:.0f}s"]
    lines.append(f"peer ID: {status.peer_id}")
    lines.append("addresses (paste one on the other machine: raytui peers add ADDRESS):")
    lines += [f"  {a}" for a in status.addrs]
    lines.append(f"peers ({len(status.peers)}):" if status.peers else "peers: none")
    lines += [format_peer(p) for p in status.peers]
    if status.services:
        lines.append("exposed services:")
        lines += [f"  {s.name} -> {s.target}" for s in status.services]
    if status.share_token:
        lines.append("Ray token: shared with allowed peers")
    if status.forwards:
        lines.append("forwards:")
        names = {p.peer_id: p.label for p in status.peers}
        for f in status.forwards:
            peer = names.get(f.peer_id, short_peer_id(f.peer_id))
            extra = f"  ERROR: {f.error}" if f.error else f"  active {f.active}"
            lines.append(f"  {f.bind} -> {peer}:{f.service}{extra}")
    if status.refused:
        lines.append(f"refused connections from peers not on the allow-list: {status.refused}")
    lines += _overlay_lines(status) + _invite_lines(status)
    if status.join is not None:
        from raytui.commands.join import describe

        lines.append(describe(status.join))
    return "\n".join(lines)


def _invite_lines(status: DaemonStatus) -> list[str]:
    invites = status.invites
    if not (invites.active or invites.accepted or invites.refused or invites.door_open):
        return []
    line = f"invites: {invites.active} open, {invites.accepted} accepted"
    if invites.door_open:
        line += f"; unknown peers may open the invite protocol only ({invites.probation} now)"
    lines = [line]
    if invites.refused:
        counts = ", ".join(f"{why}: {n}" for why, n in sorted(invites.refused.items()))
        lines.append(f"  refused: {counts}")
    return lines


def _overlay_lines(status: DaemonStatus) -> list[str]:
    overlay = status.overlay
    if not overlay.enabled:
        return []
    if overlay.address is None:
        return [f"overlay: DOWN: {overlay.error or 'starting'}"]
    lines = [
        f"overlay: {overlay.address} in {overlay.prefix}, "
        f"{overlay.active} connections open, {overlay.carried} carried"
    ]
    names = {p.peer_id: p.label for p in status.peers}
    for route in overlay.routes:
        peer = names.get(route.peer_id, short_peer_id(route.peer_id))
        path = "direct" if route.via is None else f"via {names.get(route.via, route.via)}"
        lines.append(f"  {route.address:<15} {peer:<16} {path:<16} {route.state.value}")
    if overlay.refused:
        counts = ", ".join(f"{why}: {n}" for why, n in sorted(overlay.refused.items()))
        lines.append(f"  refused: {counts}")
    return lines
