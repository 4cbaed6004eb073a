"""Command-line entry points. The contract (names, flags, exit codes) is in DESIGN.md.

Each subcommand's work lives in `raytui.commands.<name>`; this module only parses and dispatches,
and turns `RaytuiError` into a one-line message and its exit code (never a traceback).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from raytui import __version__
from raytui.errors import RaytuiError


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 <= value <= 4096:
        raise argparse.ArgumentTypeError(f"must be from 0 to 4096, got {text}")
    return value


def _not_empty(text: str) -> str:
    """An empty value would read as "not given" and attach to some other cluster."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _add_address(p: argparse.ArgumentParser, top: bool = False) -> None:
    # Subcommands repeat the flags with SUPPRESS so `raytui --address X status` keeps X.
    default = None if top else argparse.SUPPRESS
    p.add_argument(
        "--address",
        metavar="ADDR",
        type=_not_empty,
        default=default,
        help="dashboard URL (http://host:8265), GCS host:6379, ray://host:10001, "
        "'auto' (a cluster running here) or 'local' (start an embedded one)",
    )
    p.add_argument(
        "--via",
        metavar="PEER",
        type=_not_empty,
        default=default,
        help="reach the head through this peer's tunnels",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raytui", description="Terminal console for a Ray GPU cluster."
    )
    parser.add_argument("--version", action="version", version=f"raytui {__version__}")
    _add_address(parser, top=True)
    parser.add_argument(
        "--refresh",
        type=_positive_seconds,
        metavar="SECONDS",
        help="seconds between polls (default 2, or the config file's)",
    )
    parser.add_argument(
        "--readonly", action="store_true", help="disable actions that change the cluster"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    status = sub.add_parser("status", help="print one cluster snapshot")
    _add_address(status)
    status.add_argument("--json", action="store_true", help="one JSON document")

    submit = sub.add_parser("submit", help="send prompts to the cluster's GPUs, stream answers")
    _add_address(submit)
    submit.add_argument("--backend", choices=["ollama", "vllm", "openai"], required=True)
    submit.add_argument("--model", required=True)
    submit.add_argument("--endpoint", metavar="URL", help="model server URL as the node sees it")
    submit.add_argument("--node", metavar="NODE", help="node id (prefix), IP or hostname")
    submit.add_argument("--gpus", type=_positive_int, default=None, metavar="N")
    submit.add_argument("--system", metavar="TEXT", help="system prompt")
    submit.add_argument("--temperature", type=float, default=None)
    submit.add_argument("--max-tokens", type=_positive_int, default=None)
    submit.add_argument("--json", action="store_true", help="one JSON event per line")
    submit.add_argument("prompts", nargs="+", metavar="PROMPT", help="'-': one per stdin line")

    history = sub.add_parser("history", help="past prompts and answers")
    history.add_argument("--json", action="store_true")
    history.add_argument("--limit", type=_positive_int, default=20, metavar="N")
    history.add_argument("--search", metavar="TEXT", help="only runs whose prompt or answer match")

    proxy = sub.add_parser("proxy", help="the libp2p peer daemon")
    psub = proxy.add_subparsers(dest="proxy_command", metavar="ACTION", required=True)
    for name, help_text in (("run", "run in the foreground"), ("start", "start detached")):
        p = psub.add_parser(name, help=help_text)
        p.add_argument("--listen", action="append", metavar="MULTIADDR", default=None)
        p.add_argument(
            "--overlay",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="carry Ray's traffic between peers (needs root or CAP_NET_ADMIN; remembered)",
        )
        p.add_argument(
            "--overlay-prefix",
            metavar="CIDR",
            default=None,
            help="the overlay's IPv4 prefix (default 100.64.0.0/10; same on every peer)",
        )
    psub.add_parser("stop", help="stop the detached daemon")
    pstatus = psub.add_parser("status", help="peer ID, addresses, peers, tunnels, health")
    pstatus.add_argument("--json", action="store_true")
    expose = psub.add_parser("expose", help="offer a local service to allowed peers")
    expose.add_argument("name", nargs="?", metavar="NAME")
    expose.add_argument("target", nargs="?", metavar="HOST:PORT")
    expose.add_argument(
        "--ray-head", action="store_true", help="expose this machine's Ray head ports"
    )
    expose.add_argument("--share-token", action="store_true", help="hand the Ray token to peers")
    forward = psub.add_parser("forward", help="reach a peer's service through a local port")
    forward.add_argument("peer", metavar="PEER")
    forward.add_argument("name", metavar="NAME")
    forward.add_argument("--bind", metavar="HOST:PORT", default=None)
    unexpose = psub.add_parser("unexpose", help="stop offering a service to peers")
    unexpose.add_argument("name", nargs="?", metavar="NAME")
    unexpose.add_argument(
        "--ray-head", action="store_true", help="stop offering this machine's Ray head ports"
    )
    unexpose.add_argument(
        "--share-token", action="store_true", help="stop handing the Ray token to peers"
    )
    unforward = psub.add_parser("unforward", help="close a local forward port")
    unforward.add_argument("bind", metavar="HOST:PORT|PORT")

    engines = sub.add_parser("engines", help="the vLLM engines (loaded models) on the cluster")
    _add_address(engines)
    esub = engines.add_subparsers(dest="engines_command", metavar="ACTION", required=True)
    elist = esub.add_parser("list", help="every raytui vLLM engine, its model, node and GPUs")
    elist.add_argument("--json", action="store_true")
    estop = esub.add_parser("stop", help="stop engines and free their GPUs")
    estop.add_argument("names", nargs="*", metavar="NAME")
    estop.add_argument("--all", action="store_true", help="every raytui engine")
    for p in (elist, estop):
        _add_address(p)

    join = sub.add_parser(
        "join", help="this machine joins a peer's Ray cluster over the overlay (or starts a head)"
    )
    join.add_argument(
        "peer",
        nargs="?",
        metavar="PEER|INVITE",
        help="peer ID or name of the head's daemon, or a line `raytui invite` printed there",
    )
    join.add_argument("--head", action="store_true", help="start a Ray head on the overlay")
    join.add_argument("--gpus", type=_count, default=None, metavar="N", help="GPUs to offer")
    join.add_argument("--cpus", type=_count, default=None, metavar="N", help="CPUs to offer")
    join.add_argument("--json", action="store_true", help="the node's state as JSON")
    sub.add_parser("leave", help="stop the Ray node that join started")
    invite = sub.add_parser(
        "invite", help="one line that lets one machine allow-list itself here and join"
    )
    invite.add_argument(
        "--expires",
        default="1h",
        metavar="DURATION",
        help="how long it stays valid: 30m, 2h, 1d ... (default 1h)",
    )
    invite.add_argument("--json", action="store_true", help="the line and its expiry as JSON")

    peers = sub.add_parser("peers", help="the peer allow-list")
    pesub = peers.add_subparsers(dest="peers_command", metavar="ACTION", required=True)
    plist = pesub.add_parser("list", help="list peers and their health")
    plist.add_argument("--json", action="store_true")
    padd = pesub.add_parser("add", help="allow-list and dial a peer")
    padd.add_argument("multiaddr", metavar="MULTIADDR|INVITE")
    padd.add_argument("--name", metavar="NAME")
    premove = pesub.add_parser("remove", help="remove a peer from the allow-list")
    premove.add_argument("peer", metavar="PEER_ID|NAME")
    return parser


_HANDLERS = {
    "tui": "raytui.commands.tui",
    "status": "raytui.commands.status",
    "submit": "raytui.commands.submit",
    "history": "raytui.commands.history",
    "proxy": "raytui.commands.proxy",
    "engines": "raytui.commands.engines",
    "peers": "raytui.commands.peers",
    "join": "raytui.commands.join",
    "leave": "raytui.commands.join",
    "invite": "raytui.commands.invite",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "via", None) and getattr(args, "address", None):
        parser.error("--address and --via are exclusive")
    module = importlib.import_module(_HANDLERS[args.command or "tui"])
    try:
        code: int = module.run(args)
    except RaytuiError as exc:
        print(f"raytui: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return code
