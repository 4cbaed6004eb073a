"""`raytui join PEER|INVITE | --head` and `raytui leave`: a Ray node on this machine's overlay
address.

The work happens in the peer daemon (it owns the overlay and must keep the node running after
the SSH session ends); these commands only ask it over the control socket. An argument that
looks like an invite (`raytui1:…`, model/invite.py) is read as one: checked here first (a
garbled line is a usage error, exit 2), then the daemon proves it to the head, both allow-list
each other, and the node joins that head; a refused invite (wrong, used, expired) exits 1 with
the head's reason on one line.
"""

from __future__ import annotations

import argparse
import json
import time

from raytui.errors import RaytuiError, UsageError
from raytui.model.invite import looks_like_invite, parse_invite
from raytui.model.overlay import JoinState, JoinStatus
from raytui.model.peers import short_peer_id
from raytui.sources.proxy_control import ProxyControl

JOIN_TIMEOUT = 150.0  # the daemon waits up to 90 s for `ray start`, plus asking the head


def run(args: argparse.Namespace) -> int:
    control = ProxyControl(timeout=JOIN_TIMEOUT)
    if args.command == "leave":
        stopped = control.leave()
        if stopped is None:
            print("no Ray node started by `raytui join` runs here")
        else:
            print(f"left: stopped the Ray {stopped.role} node on {stopped.node_ip}")
        return 0
    if args.head == (args.peer is not None):
        raise UsageError(
            "join needs a PEER (peer ID or name of the head's daemon), an INVITE, or --head"
        )
    if args.peer is not None and looks_like_invite(args.peer):
        parse_invite(args.peer)
        status = control.join(None, invite=args.peer, gpus=args.gpus, cpus=args.cpus)
    else:
        status = control.join(args.peer, head=args.head, gpus=args.gpus, cpus=args.cpus)
    if args.json:
        print(json.dumps(status.to_dict(), indent=2))
    else:
        print(describe(status))
    if status.state == JoinState.RUNNING:
        return 0
    raise RaytuiError(
        f"the Ray node did not start yet ({status.state.value}): "
        f"{status.last_error or 'no answer'}; the daemon keeps trying (`raytui proxy status`)"
    )


def describe(status: JoinStatus, now: float | None = None) -> str:
    """One line per fact, for `join` and `proxy status`."""
    now = time.time() if now is None else now
    role = "head" if status.role == "head" else f"worker of {status.head_address}"
    if status.peer_id:
        role += f" (peer {short_peer_id(status.peer_id)})"
    lines = [f"Ray node: {role}, on {status.node_ip}: {status.state.value}"]
    if status.node_id:
        lines.append(f"  node ID {status.node_id}, up {now - status.since:.0f}s")
    if status.restarts:
        lines.append(f"  restarted {status.restarts} times")
    if status.last_error:
        lines.append(f"  last error: {status.last_error}")
    return "\n".join(lines)
