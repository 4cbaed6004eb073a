"""`raytui invite [--expires DURATION]`: one line that lets one machine allow-list itself on this
head and join its Ray cluster (`raytui join INVITE` there). The format and the security design
are in model/invite.py and proxy/invite.py; this command only asks the daemon.

stdout gets the line alone (for scripts and for copying); what to do with it, when it expires
and anything that would keep a join from working yet go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys

from raytui.model.invite import describe_expiry, parse_duration
from raytui.sources.proxy_control import ProxyControl


def run(args: argparse.Namespace) -> int:
    seconds = parse_duration(args.expires)
    issued = ProxyControl().invite(seconds)
    if args.json:
        print(json.dumps(issued.to_dict(), indent=2))
        return 0
    print(issued.line, flush=True)
    print(
        f"On the machine that should join, run: raytui join <the line above> [--gpus N]\n"
        f"It lets one machine in, once; it expires {describe_expiry(issued.expires)}.",
        file=sys.stderr,
    )
    for warning in issued.warnings:
        print(f"note: {warning}", file=sys.stderr)
    return 0
