"""Network namespaces with a real NAT, for tests that need hosts that cannot dial each other.

    with Topology() as topo:
        head = topo.public("head")        # on the shared "internet", reachable by everyone
        box = topo.behind_nat("box")      # behind its own NAT router: dials out, nobody dials in
        lab = topo.public("lab", hostname="gpu-lab")  # its commands see their own host name
        proc = box.popen(["raytui", "proxy", "run", ...])
        topo.cut(box, seconds=5)          # the box's site loses its uplink for 5 s

Layout (every name starts with `rtui`; nothing is created in the machine's own namespace: each
veth is created directly inside the namespaces it joins, so deleting our namespaces removes
every link, bridge and iptables rule with them):

    rtui-<tag>-net        the "internet": bridge br0, 10.231.0.1/24 (a default gateway that
                          forwards nothing, so a lookup like "route to 8.8.8.8" still works)
    rtui-<tag>-<name>     a public host: eth0 10.231.0.N/24 on br0
    rtui-<tag>-<name>-nat a NAT router: wan 10.231.0.N/24 on br0, bridge `lan` 10.231.K.1/24;
                          MASQUERADE out of wan; FORWARD drops everything from wan to lan that
                          is not part of a connection opened from inside; INPUT drops new
                          connections arriving on wan
    rtui-<tag>-<name>     a host behind it: eth0 10.231.K.M/24, default via 10.231.K.1

Only private test addresses (10.231.0.0/16) are used, and only inside these namespaces.
A crashed run is cleaned at the next start: each namespace has an owner marker in
/run/rtui-netns/ (pid and start time); namespaces named `rtui*` whose owner is gone (or with no
marker) are removed, after killing every process still inside them.

A process started in a namespace keeps it alive even after `ip netns del`, so `close()` kills
every process inside each namespace (`ip netns pids`) before deleting it, including processes
that were not started through `popen` (Ray daemonizes its raylet and workers).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

PREFIX = "rtui"
MARKER_DIR = Path("/run/rtui-netns")
INTERNET = "10.231.0"  # /24: public hosts and NAT routers' wan sides
GATEWAY = f"{INTERNET}.1"
IFNAMSIZ = 15
KILL_WAIT_S = 5.0


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require_netns() -> None:
    """Call at the start of a netns test: skip when not root outside CI, fail in CI.

    Missing tools fail everywhere (scripts/test installs iproute2 and iptables).
    """
    if os.geteuid() != 0:
        message = "network-namespace tests need root (namespaces, veth, iptables)"
        if in_ci():
            pytest.fail(f"{message}; CI must run them as root", pytrace=False)
        pytest.skip(f"{message}; run them as root (CI does)")
    missing = [tool for tool in ("ip", "iptables", "bridge") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"network-namespace tests need {', '.join(missing)}: apt-get install iproute2 "
            "iptables (scripts/test installs them)",
            pytrace=False,
        )


def _sh(argv: Sequence[str], *, check: bool = True, timeout: float = 30.0) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(argv)}` failed (exit {done.returncode}): "
            f"{(done.stderr or done.stdout).strip()}"
        )
    return done.stdout


def _process_start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the comm field


def _owner_mark() -> str:
    return f"{os.getpid()} {_process_start_time(os.getpid())}\n"


def _owner_alive(marker: Path) -> bool:
    try:
        pid_text, start = marker.read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return False
    return _process_start_time(pid) == start


def namespaces(prefix: str = PREFIX) -> list[str]:
    """Named network namespaces whose name starts with `prefix`."""
    out = _sh(["ip", "netns", "list"], check=False)
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [name for name in names if name.startswith(prefix)]


def root_links(prefix: str = PREFIX) -> list[str]:
    """Links in this (the machine's own) namespace whose name starts with `prefix`."""
    out = _sh(["ip", "-o", "link", "show"], check=False)
    found = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            name = parts[1].strip().split("@", 1)[0]
            if name.startswith(prefix):
                found.append(name)
    return found


def _pids_in(ns: str) -> list[int]:
    out = _sh(["ip", "netns", "pids", ns], check=False)
    return [int(word) for word in out.split() if word.isdigit()]


def _kill_everything_in(ns: str) -> None:
    for pid in _pids_in(ns):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + KILL_WAIT_S
    while _pids_in(ns) and time.monotonic() < deadline:
        time.sleep(0.05)


def _delete_namespace(ns: str) -> None:
    _kill_everything_in(ns)
    _sh(["ip", "netns", "del", ns], check=False)
    with contextlib.suppress(FileNotFoundError):
        (MARKER_DIR / ns).unlink()


def remove_stale(prefix: str = PREFIX) -> list[str]:
    """Delete `prefix*` namespaces whose owner process is gone; returns their names."""
    removed = []
    for ns in namespaces(prefix):
        if not _owner_alive(MARKER_DIR / ns):
            _delete_namespace(ns)
            removed.append(ns)
    if MARKER_DIR.is_dir():
        live = set(namespaces(prefix))
        for marker in MARKER_DIR.iterdir():
            if marker.name not in live and not _owner_alive(marker):
                with contextlib.suppress(FileNotFoundError):
                    marker.unlink()
    return removed


_DIAL = """
import socket, sys
address, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
try:
    socket.create_connection((address, port), timeout=timeout).close()
    print("connected")
except TimeoutError:
    print("timeout")
except ConnectionRefusedError:
    print("refused")
except OSError as exc:
    print(f"error: {exc}")
"""

_SET_HOSTNAME = (
    "import os, socket, sys; socket.sethostname(sys.argv[1]); os.execvp(sys.argv[2], sys.argv[2:])"
)

_ECHO = """
import socket, sys, threading
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], int(sys.argv[2])))
server.listen(64)
print("listening", flush=True)
def echo(conn):
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)
while True:
    conn, peer = server.accept()
    print(f"{peer[0]} {peer[1]}", flush=True)
    threading.Thread(target=echo, args=(conn,), daemon=True).start()
"""


class TcpServer:
    """An echo server started by `Host.listen`; `peers` collects (address, port) it accepted."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.peers: list[tuple[str, int]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            address, _, port = line.strip().partition(" ")
            if port.isdigit():
                self.peers.append((address, int(port)))

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@dataclass(eq=False)
class Router:
    """A NAT router namespace; hosts behind it share its LAN and its public address."""

    name: str
    ns: str
    address: str  # public (wan) address, what the internet sees as the source of its hosts
    lan_prefix: str  # "10.231.K"
    uplink: str  # its port on the internet bridge (in the internet namespace)
    hosts: int = 0


@dataclass(eq=False)
class Host:
    """A machine: its own network namespace with one address."""

    topology: Topology
    name: str
    ns: str
    address: str
    router: Router | None = None  # the NAT it sits behind; None for a public host
    uplink: str = ""  # the internet-bridge port that `cut` takes down for this host
    hostname: str | None = None  # its commands' host name (a UTS namespace); None: the machine's

    def argv(self, argv: Sequence[str]) -> list[str]:
        """`argv` wrapped to run inside this host's namespace (and, with `hostname`, in a UTS
        namespace of its own with that host name; `unshare` and Python exec, so the pid is
        still the command's)."""
        words = [str(a) for a in argv]
        if self.hostname is not None:
            words = ["unshare", "--uts", sys.executable, "-c", _SET_HOSTNAME, self.hostname, *words]
        return ["ip", "netns", "exec", self.ns, *words]

    def popen(
        self, argv: Sequence[str], env: Mapping[str, str] | None = None, **kwargs: Any
    ) -> subprocess.Popen[Any]:
        """Start `argv` inside the namespace (`ip netns exec` execs it: the pid is the
        command's). Killed on close() if still running."""
        proc = subprocess.Popen(
            self.argv(argv), env=dict(env) if env is not None else None, **kwargs
        )
        self.topology._processes.append(proc)
        return proc

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        check: bool = False,
        timeout: float = 60.0,
        **kwargs: Any,
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside the namespace to completion (output captured as text)."""
        kwargs.setdefault("capture_output", True)
        return subprocess.run(
            self.argv(argv),
            env=dict(env) if env is not None else None,
            check=check,
            timeout=timeout,
            text=True,
            **kwargs,
        )

    def python(self, code: str, *, timeout: float = 60.0, **kwargs: Any) -> str:
        """Run a Python snippet (this test's interpreter) inside the namespace; fail the test
        with its output unless it exits 0; return its stdout."""
        done = self.run([sys.executable, "-c", code], timeout=timeout, **kwargs)
        if done.returncode != 0:
            pytest.fail(
                f"snippet in {self.ns} exited {done.returncode}\n--- stdout\n{done.stdout}"
                f"\n--- stderr\n{done.stderr}",
                pytrace=False,
            )
        return done.stdout

    def dial(self, address: str, port: int, timeout: float = 2.0) -> str:
        """Try one TCP connection from inside the namespace: "connected", "timeout",
        "refused" or "error: ..." (e.g. no route)."""
        done = self.run([sys.executable, "-c", _DIAL, address, str(port), str(timeout)],
                        timeout=timeout + 30)  # fmt: skip
        return done.stdout.strip() or f"error: {done.stderr.strip()}"

    def listen(self, port: int, bind: str = "0.0.0.0") -> TcpServer:
        """A TCP echo server inside the namespace (killed on close()); it reports the peer
        address of each connection it accepts (`TcpServer.peers`)."""
        proc = self.popen(
            [sys.executable, "-u", "-c", _ECHO, bind, str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        if first != "listening":
            proc.kill()
            raise RuntimeError(f"echo server in {self.ns} did not start: {first!r}")
        return TcpServer(proc)

    def __repr__(self) -> str:
        return f"Host({self.name!r}, ns={self.ns!r}, address={self.address!r})"


@dataclass(eq=False)
class Topology:
    """Builds namespaces on a shared internet, public or behind NAT; removes all of it on exit
    (also when the test fails)."""

    tag: str = field(default_factory=lambda: secrets.token_hex(2))
    internet: str = ""
    hosts: dict[str, Host] = field(default_factory=dict)
    routers: list[Router] = field(default_factory=list)
    _created: list[str] = field(default_factory=list)
    _processes: list[subprocess.Popen[Any]] = field(default_factory=list)
    _timers: dict[str, threading.Timer] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next_public: int = 10
    _next_lan: int = 1
    _next_port: int = 0

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Topology:
        remove_stale()
        try:
            self.internet = self._namespace("net")
            self._ip(self.internet, "link", "add", "br0", "type", "bridge")
            self._ip(self.internet, "addr", "add", f"{GATEWAY}/24", "dev", "br0")
            self._ip(self.internet, "link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop timers and processes, then delete every namespace (hosts before routers before
        the internet, so nothing is ever attached to a missing bridge)."""
        with self._lock:
            timers = list(self._timers.values())
            self._timers.clear()
        for timer in timers:
            timer.cancel()
        for proc in self._processes:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
        deadline = time.monotonic() + 3.0
        for proc in self._processes:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for ns in reversed(self._created):
            _delete_namespace(ns)
        self._created.clear()

    # --- building ----------------------------------------------------------------------------

    def public(self, name: str, *, hostname: str | None = None) -> Host:
        """A host on the internet bridge with a public address; everybody can reach it.

        `hostname`: what its commands see as the host name (default: the machine's, shared by
        every host of the topology)."""
        ns = self._namespace(name)
        address = self._public_address()
        port = self._veth_to_internet(ns, "eth0")
        self._ip(ns, "addr", "add", f"{address}/24", "dev", "eth0")
        self._ip(ns, "link", "set", "eth0", "up")
        self._ip(ns, "route", "add", "default", "via", GATEWAY)
        host = Host(self, name, ns, address, uplink=port, hostname=hostname)
        self.hosts[name] = host
        return host

    def behind_nat(
        self, name: str, *, nat: Router | None = None, hostname: str | None = None
    ) -> Host:
        """A host behind a NAT router: it can dial public hosts; nobody can dial it.

        Each call makes a new router unless `nat` names an existing one (then the hosts share
        a LAN and reach each other directly, like machines in one home). `hostname`: as for
        `public`."""
        router = nat if nat is not None else self._router(f"{name}-nat")
        ns = self._namespace(name)
        router.hosts += 1
        address = f"{router.lan_prefix}.{router.hosts + 1}"
        port = f"h{router.hosts}"
        self._ip(
            ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", router.ns
        )
        self._ip(router.ns, "link", "set", port, "master", "lan", "up")
        self._ip(ns, "addr", "add", f"{address}/24", "dev", "eth0")
        self._ip(ns, "link", "set", "eth0", "up")
        self._ip(ns, "route", "add", "default", "via", f"{router.lan_prefix}.1")
        host = Host(self, name, ns, address, router=router, uplink=router.uplink, hostname=hostname)
        self.hosts[name] = host
        return host

    # --- link loss ---------------------------------------------------------------------------

    def cut(self, host: Host, seconds: float | None = None) -> None:
        """Cut the host's uplink (for a host behind NAT: its router's, so every host behind
        that router is cut): packets vanish silently, both ends keep carrier, addresses,
        routes and NAT state. With `seconds`, restore() runs by itself after that long."""
        self._port_state(host.uplink, "disabled")
        if seconds is not None:
            timer = threading.Timer(seconds, self._restore_from_timer, args=(host,))
            timer.daemon = True
            with self._lock:
                old = self._timers.pop(host.uplink, None)
                self._timers[host.uplink] = timer
            if old is not None:
                old.cancel()
            timer.start()

    def restore(self, host: Host) -> None:
        """Undo cut(): the host's uplink forwards again."""
        with self._lock:
            timer = self._timers.pop(host.uplink, None)
        if timer is not None:
            timer.cancel()
        self._port_state(host.uplink, "forwarding")

    def is_cut(self, host: Host) -> bool:
        out = _sh(["bridge", "-n", self.internet, "-d", "link", "show", "dev", host.uplink])
        return "state disabled" in out

    def _restore_from_timer(self, host: Host) -> None:
        with self._lock:
            if self._timers.get(host.uplink) is not threading.current_thread():
                return  # replaced or cancelled meanwhile
            del self._timers[host.uplink]
        with contextlib.suppress(RuntimeError):  # the topology may be closing
            self._port_state(host.uplink, "forwarding")

    def _port_state(self, port: str, state: str) -> None:
        # The bridge port's STP state (STP is off, so only we change it): "disabled" drops
        # every frame in both directions without touching the carrier of either veth end.
        # (Setting a link down would flush its routes on the host and, on a NAT router's wan,
        # delete its MASQUERADE conntrack entries, so connections could not survive the cut.)
        code = {"disabled": "0", "forwarding": "3"}[state]
        _sh(["bridge", "-n", self.internet, "link", "set", "dev", port, "state", code])

    # --- helpers -----------------------------------------------------------------------------

    def _namespace(self, name: str) -> str:
        ns = f"{PREFIX}-{self.tag}-{name}"
        if ns in self._created:
            raise ValueError(f"{name!r} already exists in this topology")
        MARKER_DIR.mkdir(parents=True, exist_ok=True)
        (MARKER_DIR / ns).write_text(_owner_mark())  # before creating it: a crash is cleanable
        self._created.append(ns)
        _sh(["ip", "netns", "add", ns])
        self._ip(ns, "link", "set", "lo", "up")
        return ns

    def _ip(self, ns: str, *args: str) -> None:
        _sh(["ip", "-n", ns, *args])

    def _sysctl(self, ns: str, key: str, value: str) -> None:
        # /proc/sys/net shows the namespace of the process that opens it (no `sysctl` binary
        # needed: procps is not in minimal images).
        path = "/proc/sys/" + key.replace(".", "/")
        write = f"open({path!r}, 'w').write({value!r})"
        _sh(["ip", "netns", "exec", ns, sys.executable, "-c", write])

    def _iptables(self, ns: str, *args: str) -> None:
        _sh(["ip", "netns", "exec", ns, "iptables", "-w", *args])

    def _public_address(self) -> str:
        if self._next_public > 250:
            raise RuntimeError("out of public test addresses")
        address = f"{INTERNET}.{self._next_public}"
        self._next_public += 1
        return address

    def _veth_to_internet(self, ns: str, inner: str) -> str:
        """A veth pair: `inner` in `ns`, the other end a port of the internet bridge."""
        self._next_port += 1
        port = f"{PREFIX}{self._next_port}"
        assert len(port) <= IFNAMSIZ and len(inner) <= IFNAMSIZ
        self._ip(ns, "link", "add", inner, "type", "veth", "peer", "name", port, "netns",
                 self.internet)  # fmt: skip
        self._ip(self.internet, "link", "set", port, "master", "br0", "up")
        return port

    def _router(self, name: str) -> Router:
        if self._next_lan > 250:
            raise RuntimeError("out of LAN test subnets")
        ns = self._namespace(name)
        lan_prefix = f"10.231.{self._next_lan}"
        self._next_lan += 1
        address = self._public_address()
        port = self._veth_to_internet(ns, "wan")
        self._ip(ns, "addr", "add", f"{address}/24", "dev", "wan")
        self._ip(ns, "link", "set", "wan", "up")
        self._ip(ns, "route", "add", "default", "via", GATEWAY)
        self._ip(ns, "link", "add", "lan", "type", "bridge")
        self._ip(ns, "addr", "add", f"{lan_prefix}.1/24", "dev", "lan")
        self._ip(ns, "link", "set", "lan", "up")
        self._sysctl(ns, "net.ipv4.ip_forward", "1")
        self._iptables(ns, "-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE")
        self._iptables(ns, "-P", "FORWARD", "DROP")
        self._iptables(ns, "-A", "FORWARD", "-i", "lan", "-o", "wan", "-j", "ACCEPT")
        # br_netfilter (built in here) passes frames bridged between two LAN hosts through
        # FORWARD too: without this, hosts sharing a NAT could not reach each other.
        self._iptables(ns, "-A", "FORWARD", "-i", "lan", "-o", "lan", "-j", "ACCEPT")
        self._iptables(ns, "-A", "FORWARD", "-i", "wan", "-o", "lan", "-m", "conntrack",
                       "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")  # fmt: skip
        self._iptables(ns, "-A", "INPUT", "-i", "wan", "-m", "conntrack",
                       "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")  # fmt: skip
        self._iptables(ns, "-A", "INPUT", "-i", "wan", "-j", "DROP")
        router = Router(name, ns, address, lan_prefix, port)
        self.routers.append(router)
        return router
