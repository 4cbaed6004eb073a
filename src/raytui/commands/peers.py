"""`raytui peers list|add|remove`. `add` also takes an invite line (model/invite.py): both daemons
then allow-list each other, without joining Ray (`raytui join INVITE` does both)."""

from __future__ import annotations

import argparse
import json
import sys

from raytui.commands.proxy import format_peer
from raytui.errors import UsageError
from raytui.model.invite import looks_like_invite, parse_invite
from raytui.model.peers import check_peer_name, parse_peer_multiaddr
from raytui.sources.proxy_control import ProxyControl


def run(args: argparse.Namespace) -> int:
    action = args.peers_command
    invite = action == "add" and looks_like_invite(args.multiaddr)
    if invite:
        parse_invite(args.multiaddr)
        if args.name:
            raise UsageError("--name applies to a MULTIADDR; an invite names the head itself")
    elif action == "add":
        # Validate here too so a typo gets a clear message even with no daemon running.
        parse_peer_multiaddr(args.multiaddr)
        if args.name is not None:
            check_peer_name(args.name)
    control = ProxyControl()
    if invite:
        redeemed = control.redeem_invite(args.multiaddr)
        print(
            f"added {redeemed.head_name} ({redeemed.peer_id}); "
            f"it allow-listed this machine as {redeemed.name}"
        )
        return 0
    if action == "list":
        peers = control.peers()
        if args.json:
            print(json.dumps([p.to_dict() for p in peers], indent=2))
        elif not peers:
            print("no peers (add one: raytui peers add MULTIADDR --name NAME)")
        else:
            for p in peers:
                print(format_peer(p))
        return 0
    if action == "add":
        health, error = control.add_peer(args.multiaddr, args.name)
        if error is None:
            rtt = f", rtt {health.rtt_ms:.1f} ms" if health.rtt_ms is not None else ""
            print(f"added {health.label} ({health.peer_id}): connected{rtt}")
            return 0
        # Not reachable yet is the normal first half of a mutual add: the peer is on the list
        # and the daemon keeps dialling (the peer may also dial in). Success, with a note.
        print(f"added {health.label} ({health.peer_id}) to the allow-list")
        print(
            f"raytui: not connected yet: {error} (the daemon keeps retrying; the peer may also "
            "dial in once it has added this machine)",
            file=sys.stderr,
        )
        return 0
    if action == "remove":
        peer_id = control.remove_peer(args.peer)
        print(f"removed {peer_id}")
        return 0
    raise UsageError(f"unknown peers action {action!r}")
