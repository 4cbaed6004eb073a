"""Command-line entry points. The contract (names, flags, exit codes) is in DESIGN.md.

Each subcommand's work lives in `raytui.commands.<name>`; this module only parses and dispatches,
and turns `RaytuiError` into a one-line message and its exit code (never a traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO

from raytui import __version__, debuglog
from raytui.errors import RaytuiError, UsageError
from raytui.text import EscapingWriter, one_line

MAX_SECONDS = 86_400.0  # --refresh: a day between polls is already no polling


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {_shown(text)}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {_shown(text)}")
    return value


def _positive_seconds(text: str) -> float:
    value = _number(text)
    if not 0 < value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"must be more than 0 and at most {MAX_SECONDS:g} seconds, got {_shown(text)}"
        )
    return value


def _whole(text: str, low: int, high: int) -> int:
    stripped = text.strip()
    digits = stripped.removeprefix("-").removeprefix("+")
    if not (digits.isascii() and digits.isdigit()):
        raise argparse.ArgumentTypeError(f"not a whole number: {_shown(text)}")
    value = int(stripped) if len(digits) <= 20 else high + 1  # int() of 5000 digits raises
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"must be from {low} to {high}, got {_shown(text)}")
    return value


def _bounded(low: int, high: int) -> Callable[[str], int]:
    def check(text: str) -> int:
        return _whole(text, low, high)

    check.__name__ = "whole number"  # argparse names the type in some messages
    return check


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:40]) + "…"


def _not_empty(text: str) -> str:
    """An empty value would read as "not given" and attach to some other cluster."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _address(text: str) -> str:
    """Checked here, at parse time, so every command gets one of the accepted forms."""
    _not_empty(text)
    from raytui.sources.address import parse_address

    try:
        parse_address(text, "")
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).strip()) from None
    return text


def _float(text: str) -> float:
    return _number(text)


def _actions(parser: argparse.ArgumentParser, dest: str) -> Any:
    """The required ACTION of a command with several (`proxy`, `peers`, `engines`)."""
    return parser.add_subparsers(dest=dest, metavar="ACTION", required=True, help="one of:")


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (the usage text is one `--help` away), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def _add_address(p: argparse.ArgumentParser, top: bool = False) -> None:
    # Subcommands repeat the flags with SUPPRESS so `raytui --address X status` keeps X.
    default = None if top else argparse.SUPPRESS
    p.add_argument(
        "--address",
        metavar="ADDR",
        type=_address,
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
    parser = _Parser(
        prog="raytui",
        description="Terminal console for a Ray GPU cluster. Without a command: the TUI.",
    )
    parser.add_argument(
        "--version", action="version", version=f"raytui {__version__}", help="print the version"
    )
    _add_address(parser, top=True)
    parser.add_argument(
        "--log-file",
        metavar="PATH",
        default=None,
        help="debug log: every error with its traceback (RAYTUI_DEBUG=1: one in the state dir)",
    )
    parser.add_argument(
        "--refresh",
        type=_positive_seconds,
        metavar="SECONDS",
        help="seconds between polls (default 2, or the config file's)",
    )
    parser.add_argument(
        "--readonly", action="store_true", help="disable actions that change the cluster"
    )
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", title="commands", help="(none: the TUI)"
    )

    status = sub.add_parser("status", help="print one cluster snapshot")
    _add_address(status)
    status.add_argument("--json", action="store_true", help="print one JSON document")

    submit = sub.add_parser("submit", help="send prompts to the cluster's GPUs, stream answers")
    _add_address(submit)
    submit.add_argument(
        "--backend",
        choices=["ollama", "vllm", "openai"],
        required=True,
        help="which model server runs the prompt",
    )
    submit.add_argument("--model", required=True, help="model name, as the backend knows it")
    submit.add_argument("--endpoint", metavar="URL", help="model server URL as the node sees it")
    submit.add_argument("--node", metavar="NODE", help="node id (prefix), IP or hostname")
    submit.add_argument(
        "--gpus", type=_bounded(1, 4096), default=None, metavar="N", help="GPUs per prompt"
    )
    submit.add_argument("--system", metavar="TEXT", help="system prompt")
    submit.add_argument(
        "--temperature", type=_float, default=None, help="sampling temperature (model default)"
    )
    submit.add_argument(
        "--max-tokens",
        type=_bounded(1, 10_000_000),
        default=None,
        metavar="N",
        help="stop the answer after N tokens",
    )
    submit.add_argument("--json", action="store_true", help="one JSON event per line")
    submit.add_argument(
        "prompts", nargs="+", metavar="PROMPT", help="the prompts; '-': one per stdin line"
    )

    history = sub.add_parser("history", help="past prompts and answers")
    history.add_argument("--json", action="store_true", help="print one JSON document")
    history.add_argument(
        "--limit",
        type=_bounded(1, 1_000_000),
        default=20,
        metavar="N",
        help="the N latest runs (default 20)",
    )
    history.add_argument("--search", metavar="TEXT", help="only runs whose prompt or answer match")

    proxy = sub.add_parser("proxy", help="the libp2p peer daemon")
    psub = _actions(proxy, "proxy_command")
    for name, help_text in (("run", "run in the foreground"), ("start", "start detached")):
        p = psub.add_parser(name, help=help_text)
        p.add_argument(
            "--listen",
            action="append",
            metavar="MULTIADDR",
            default=None,
            help="listen on this multiaddr (repeatable; default /ip4/0.0.0.0/tcp/4701)",
        )
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
        if name == "run":  # `proxy start` runs the daemon with its own rotated log
            p.add_argument("--daemon-log", metavar="PATH", default=None, help=argparse.SUPPRESS)
    psub.add_parser("stop", help="stop the detached daemon")
    pstatus = psub.add_parser("status", help="peer ID, addresses, peers, tunnels, health")
    pstatus.add_argument("--json", action="store_true", help="print one JSON document")
    expose = psub.add_parser("expose", help="offer a local service to allowed peers")
    expose.add_argument("name", nargs="?", metavar="NAME", help="the service's name for peers")
    expose.add_argument(
        "target", nargs="?", metavar="HOST:PORT", help="where its connections go on this machine"
    )
    expose.add_argument(
        "--ray-head", action="store_true", help="expose this machine's Ray head ports"
    )
    expose.add_argument("--share-token", action="store_true", help="hand the Ray token to peers")
    expose.add_argument(
        "--address",
        metavar="HOST:PORT",
        default=None,
        help="with --ray-head: the head's GCS (default: the head running here)",
    )
    forward = psub.add_parser("forward", help="reach a peer's service through a local port")
    forward.add_argument("peer", metavar="PEER", help="peer ID or name")
    forward.add_argument("name", metavar="NAME", help="the service the peer exposes")
    forward.add_argument(
        "--bind",
        metavar="HOST:PORT",
        default=None,
        help="local address to listen on (default: a free port on 127.0.0.1)",
    )
    unexpose = psub.add_parser("unexpose", help="stop offering a service to peers")
    unexpose.add_argument("name", nargs="?", metavar="NAME", help="the service to withdraw")
    unexpose.add_argument(
        "--ray-head", action="store_true", help="stop offering this machine's Ray head ports"
    )
    unexpose.add_argument(
        "--share-token", action="store_true", help="stop handing the Ray token to peers"
    )
    unforward = psub.add_parser("unforward", help="close a local forward port")
    unforward.add_argument(
        "bind", metavar="HOST:PORT|PORT", help="the local address or port of the forward"
    )

    engines = sub.add_parser("engines", help="the vLLM engines (loaded models) on the cluster")
    _add_address(engines)
    esub = _actions(engines, "engines_command")
    elist = esub.add_parser("list", help="every raytui vLLM engine, its model, node and GPUs")
    elist.add_argument("--json", action="store_true", help="print one JSON document")
    estop = esub.add_parser("stop", help="stop engines and free their GPUs")
    estop.add_argument("names", nargs="*", metavar="NAME", help="engines to stop")
    estop.add_argument("--all", action="store_true", help="every raytui engine")
    for p in (elist, estop):
        _add_address(p)

    join = sub.add_parser("join", help="join a peer's cluster over the overlay, or start a head")
    join.add_argument(
        "peer",
        nargs="?",
        metavar="PEER|INVITE",
        help="peer ID or name of the head's daemon, or a line `raytui invite` printed there",
    )
    join.add_argument("--head", action="store_true", help="start a Ray head on the overlay")
    join.add_argument(
        "--gpus", type=_bounded(0, 4096), default=None, metavar="N", help="GPUs to offer"
    )
    join.add_argument(
        "--cpus", type=_bounded(0, 4096), default=None, metavar="N", help="CPUs to offer"
    )
    join.add_argument("--json", action="store_true", help="the node's state as JSON")
    sub.add_parser("leave", help="stop the Ray node that join started")
    invite = sub.add_parser(
        "invite", help="one line that lets a machine allow-list itself and join"
    )
    invite.add_argument(
        "--expires",
        default="1h",
        metavar="DURATION",
        help="how long it stays valid: 30m, 2h, 1d ... (default 1h)",
    )
    invite.add_argument("--json", action="store_true", help="the line and its expiry as JSON")

    peers = sub.add_parser("peers", help="the peer allow-list")
    pesub = _actions(peers, "peers_command")
    plist = pesub.add_parser("list", help="list peers and their health")
    plist.add_argument("--json", action="store_true", help="print one JSON document")
    padd = pesub.add_parser("add", help="allow-list and dial a peer")
    padd.add_argument(
        "multiaddr",
        metavar="MULTIADDR|INVITE",
        help="the peer's multiaddr ending in /p2p/PEER_ID, or a line `raytui invite` printed",
    )
    padd.add_argument("--name", metavar="NAME", help="a short name to use instead of its ID")
    premove = pesub.add_parser("remove", help="remove a peer from the allow-list")
    premove.add_argument("peer", metavar="PEER_ID|NAME", help="the peer to remove")
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
    """Parse, dispatch, and end in one of the three exit codes with at most one line on stderr.

    Every way a command can end is decided here, once: a `RaytuiError` is its message and exit
    code; a reader that went away (`raytui status | head -1`) ends the command quietly; any
    other exception is a bug, reported in one line (its traceback goes to the debug log). A
    library's Python warning goes to the debug log too, never to the terminal. Every command
    but the TUI writes through `EscapingWriter`, so text from outside (names, errors,
    answers) cannot drive the terminal.
    """
    out, err = sys.stdout, sys.stderr
    try:
        with debuglog.warnings_to_log():
            return _main(argv, out, err)
    finally:
        sys.stdout, sys.stderr = out, err


def _main(argv: Sequence[str] | None, out: TextIO, err: TextIO) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if getattr(args, "via", None) and getattr(args, "address", None):
            parser.error("--address and --via are exclusive")
        command = args.command or "tui"
        debuglog.setup(args.log_file)
        if command == "tui":  # Textual draws the screen itself (and commands.tui diverts fd 2)
            _keep_trio_out()
        else:
            # A command leaves fd 2 alone: when Ray's C++ core ends the process (a failed
            # RAY_CHECK exits at once), what it wrote there is the only explanation the user gets.
            sys.stdout, sys.stderr = EscapingWriter(out), EscapingWriter(err)
        module = importlib.import_module(_HANDLERS[command])
        code: int = module.run(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except RaytuiError as exc:
        debuglog.report(f"exit {exc.exit_code}: {exc}", exc)
        _say(f"raytui: {one_line(str(exc))}")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader stopped reading (`| head -1`): what it wanted it has; not a failure.
        _discard_stdout(out)
        return 0
    except Exception as exc:
        debuglog.report("internal error", exc)
        where = debuglog.current()
        hint = f"traceback in {where}" if where else "RAYTUI_DEBUG=1 logs the traceback"
        _say(f"raytui: internal error, a bug: {type(exc).__name__}: {_first_line(exc)} ({hint})")
        return 1


def _keep_trio_out() -> None:
    """The TUI runs on asyncio alone, but httpcore (under httpx) imports trio whenever it is
    installed, to choose its locks: mark trio absent so the console's process holds no trio
    code (and starts ~90 ms sooner). A process that already loaded trio keeps it."""
    if "trio" not in sys.modules:
        sys.modules["trio"] = None  # type: ignore[assignment]


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return one_line(lines[0][:300]) if lines else ""


def _say(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # stderr may be gone too
        print(line, file=sys.stderr, flush=True)


def _discard_stdout(out: TextIO) -> None:
    """Point stdout at /dev/null so what is still buffered cannot fail again at exit."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)
