"""The fetch namespace: where skopeo and git run for tenants, off the node's own services.

An image reference or a gitRepo URL is the tenant's to write, and skopeo and
git connect wherever it says, resolving names and following redirects
themselves: run on the host, they would reach the node's loopback services,
its cloud metadata (169.254.169.254) and the groups of other tenants, and
their errors would tell open ports from closed ones. Checking the text first
cannot stop a name that resolves to 127.0.0.1 or a redirect to it; so the
rule is enforced where connections are made. Every tenant fetch runs in one
network namespace per node (``sk-<tag>-fetch``, beside the groups'), through
``nsenter --net`` (≈ 2 ms per call: a cached image's pull, its manifest check
included, takes 18 ms instead of 16; bench/bench_images.py):

- ``lo`` is up and nothing of the host is on it: 127.0.0.1:PORT in there is
  the namespace's own loopback, where nothing listens but the relays below;
- a veth pair (``skf<tag>`` on the host, ``fetch0`` inside, a link-local /30,
  no IPv6) is its one way out, masqueraded to the internet;
- the host's table ``inet skiff_fetch_<tag>`` rejects, for what comes in on
  that veth, every address of the node (``fib daddr type local``), loopback,
  link-local, multicast, anything routed to a skiff bridge (groups, virtual
  networks) and all IPv6, except DNS to the host's resolvers. A rejected
  connection is refused as a closed port is, so no error tells the two apart;
- :mod:`~skiff.engine.network.relays` listen inside for each endpoint the
  operator allows (``NetworkSettings.allow_local_endpoints``) and for the
  host's loopback resolvers (systemd-resolved's 127.0.0.53), at the same
  address and port, and join each connection to the real one.

The namespace is made at the first fetch and removed by :meth:`FetchNamespace.close`
(the node's close); one left by a crash is replaced at the next start. Operator
fetches (``skiff image pull`` on the node) are not tenant fetches and run on the host.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from skiff.engine.network import firewall, netns
from skiff.engine.network.addressing import host_routes, root_tag
from skiff.engine.network.relays import TcpRelay, UdpRelay
from skiff.errors import InvalidInput, NetworkError
from skiff.settings import NetworkSettings

_NSENTER = "/usr/bin/nsenter"
_IP = "/usr/sbin/ip"
_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
_TIMEOUT_S = 10
#: The veth's end inside the namespace.
INSIDE = "fetch0"
#: Where the veth's /30 comes from: link-local, so never routed beyond the host, and
#: far from 169.254.169.0/24 (cloud metadata and resolvers).
_RANGE = ipaddress.IPv4Network("169.254.252.0/22")
#: What the namespace never reaches through the veth, whatever the routes say.
_NEVER_V4 = ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/3")


@dataclass(frozen=True)
class Endpoint:
    """A ``HOST:PORT`` an operator lets tenant fetches reach on the node."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """``127.0.0.1:5000``, ``[::1]:5000`` or ``localhost:5000`` (127.0.0.1)."""
        host, sep, port = text.strip().rpartition(":")
        if ":" in host:  # IPv6: only in brackets, so that the port is not ambiguous
            host = host[1:-1] if host.startswith("[") and host.endswith("]") else ""
        if host == "localhost":
            host = "127.0.0.1"
        try:
            address = ipaddress.ip_address(host)
            number = int(port)
        except ValueError:
            address, number = None, 0
        if not sep or address is None or not 1 <= number <= 65535:
            raise InvalidInput(f"{text!r} is not an endpoint HOST:PORT (an IP address, or "
                               "localhost, and a port)")
        return cls(str(address), number)

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def nameservers(resolv_conf: Path) -> list[str]:
    """The resolvers ``resolv_conf`` names (none if it cannot be read)."""
    try:
        text = resolv_conf.read_text()
    except OSError:
        return []
    found = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) >= 2 and words[0] == "nameserver":
            try:
                found.append(str(ipaddress.ip_address(words[1].split("%", 1)[0])))
            except ValueError:
                continue
    return found


def pick_link(tag: str, taken: Sequence[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    """The veth's /30: the tag's hash picks one in 169.254.252.0/22, the next free if a
    host route overlaps it."""
    links = list(_RANGE.subnets(new_prefix=30))
    start = int(hashlib.sha256(tag.encode()).hexdigest()[:8], 16) % len(links)
    for i in range(len(links)):
        link = links[(start + i) % len(links)]
        if not any(link.overlaps(route) for route in taken):
            return link
    raise NetworkError(f"no free /30 in {_RANGE} for the fetch namespace")


def fetch_ruleset(table: str, veth: str, inside: str, resolvers: Sequence[str]) -> str:
    """The nft script that (re)makes the host's rules for the fetch veth ``veth``, whose
    namespace end has the address ``inside``; ``resolvers`` (IPv4) stay reachable on
    port 53 (the host's, when they are not loopback ones)."""
    iif = f'iifname "{veth}"'
    dns = ""
    if resolvers:
        servers = "{ " + ", ".join(resolvers) + " }"
        dns = (f"\t\t{iif} ip daddr {servers} udp dport 53 accept\n"
               f"\t\t{iif} ip daddr {servers} tcp dport 53 accept\n")
    # A rejected connection is refused as a closed port is: no error tells them apart.
    reject = (f"\t\t{iif} meta l4proto tcp reject with tcp reset\n"
              f"\t\t{iif} reject\n")
    never = "{ " + ", ".join(_NEVER_V4) + " }"
    return (f"add table inet {table}\n"
            f"delete table inet {table}\n"
            f"table inet {table} {{\n"
            f"\tchain input {{\n"
            f"\t\ttype filter hook input priority filter; policy accept;\n"
            f"\t\t{iif} ct state established,related accept\n"
            f"{dns}{reject}"
            f"\t}}\n"
            f"\tchain forward {{\n"
            f"\t\ttype filter hook forward priority filter - 10; policy accept;\n"
            f"{dns}"
            f"\t\t{iif} meta nfproto ipv6 jump refuse\n"
            f"\t\t{iif} ip daddr {never} jump refuse\n"
            f"\t\t{iif} fib daddr type {{ local, broadcast, anycast, multicast }} jump refuse\n"
            # The bridges of groups (sk<tag>) and of virtual networks' subnets (sv...),
            # this node's and any other's on the host.
            f'\t\t{iif} oifname "sk*" jump refuse\n'
            f'\t\t{iif} oifname "sv*" jump refuse\n'
            f"\t}}\n"
            f"\tchain refuse {{\n"
            f"\t\tmeta l4proto tcp reject with tcp reset\n"
            f"\t\treject\n"
            f"\t}}\n"
            f"\tchain postrouting {{\n"
            f"\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
            f'\t\tip saddr {inside} oifname != "{veth}" masquerade\n'
            f"\t}}\n"
            f"}}\n")


def _run(argv: Sequence[str], what: str, *, script: str | None = None) -> None:
    try:
        done = subprocess.run(list(argv), input=script.encode() if script else None,
                              capture_output=True, timeout=_TIMEOUT_S, check=False, env=_ENV)
    except (OSError, subprocess.SubprocessError) as exc:
        raise NetworkError(f"cannot {what}: {exc}") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).decode(errors="replace").strip()[:300]
        raise NetworkError(f"cannot {what}: {detail}")


class FetchNamespace:
    """The network namespace a node's tenant fetches run in. Thread safe."""

    def __init__(self, data_root: Path, settings: NetworkSettings | None = None) -> None:
        self.settings = settings or NetworkSettings()
        tag = root_tag(data_root)
        self.path = self.settings.netns_dir / f"sk-{tag}-fetch"
        self.veth = f"skf{tag}"
        self.table = f"skiff_fetch_{tag}"
        self._tag = tag
        self._allowed = [Endpoint.parse(e) for e in self.settings.allow_local_endpoints]
        self._relays: dict[tuple[str, int, int], TcpRelay | UdpRelay] = {}
        self._lock = threading.Lock()
        self._ready = False

    # ---- what callers use ----------------------------------------------------------------

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` made to run in the fetch namespace (made now if it is not there yet)."""
        self.ensure()
        return [_NSENTER, f"--net={self.path}", "--", *argv]

    def allow(self, endpoint: str) -> None:
        """Let fetches reach ``endpoint`` (``HOST:PORT``) on the node from now on, as
        ``allow_local_endpoints`` does (a registry started after the node, in tests)."""
        parsed = Endpoint.parse(endpoint)
        with self._lock:
            if parsed not in self._allowed:
                self._allowed.append(parsed)
            if self._ready:
                self._relay(parsed)

    def ensure(self) -> None:
        """Make the namespace, its veth, rules and relays, unless they are there."""
        with self._lock:
            # Another node on this data root may have replaced it (and removed it since).
            if self._ready and self.path.exists():
                return
            self._remove()  # what a crashed node (or another on this data root) left
            try:
                self._make()
            except BaseException:
                self._remove()
                raise
            self._ready = True

    def close(self) -> None:
        """Stop the relays and remove the namespace, veth and rules, this node's or those a
        crashed one left on this data root. Idempotent."""
        with self._lock:
            if self._ready or self.path.exists():  # else there is nothing to remove
                self._ready = False
                self._remove()

    # ---- making and removing -------------------------------------------------------------

    def _make(self) -> None:
        netns.ensure_dir(self.settings.netns_dir)
        netns.create(self.path)
        link = pick_link(self._tag, [route for _, route in host_routes()])
        outside, inside = (str(link.network_address + 1), str(link.network_address + 2))
        _run([_IP, "link", "add", self.veth, "type", "veth", "peer", "name", INSIDE,
              "netns", str(self.path)], "create the fetch veth")
        # No IPv6 on either end (addrgenmode none: not even a link-local address).
        _run([_IP, "-batch", "-"], "set up the fetch veth", script=(
            f"link set {self.veth} addrgenmode none\n"
            f"addr add {outside}/30 dev {self.veth}\n"
            f"link set {self.veth} up\n"))
        inner = [f"link set {INSIDE} addrgenmode none\n",
                 f"addr add {inside}/30 dev {INSIDE}\n",
                 f"link set {INSIDE} up\n",
                 f"route add default via {outside}\n"]
        locals_ = {e.host for e in self._allowed}
        resolvers = nameservers(self.settings.resolv_conf)
        loopback_resolvers = [r for r in resolvers if ipaddress.ip_address(r).is_loopback]
        locals_.update(loopback_resolvers)
        for host in sorted(locals_):  # the relays' addresses, on the namespace's own lo
            address = ipaddress.ip_address(host)
            if not address.is_loopback:
                inner.append(f"addr add {host}/{address.max_prefixlen} dev lo\n")
        _run([_NSENTER, f"--net={self.path}", _IP, "-batch", "-"],
             "set up the fetch namespace", script="".join(inner))
        _forwarding_on()
        others = [r for r in resolvers
                  if ipaddress.ip_address(r).version == 4 and r not in loopback_resolvers]
        firewall.apply(fetch_ruleset(self.table, self.veth, inside, others))
        for endpoint in self._allowed:
            self._relay(endpoint)
        for resolver in loopback_resolvers:
            self._relay(Endpoint(resolver, 53), dns=True)

    def _relay(self, endpoint: Endpoint, *, dns: bool = False) -> None:
        """Relays for ``endpoint`` inside the namespace (TCP; UDP too for ``dns``)."""
        kinds = (socket.SOCK_STREAM, socket.SOCK_DGRAM) if dns else (socket.SOCK_STREAM,)
        for kind in kinds:
            key = (endpoint.host, endpoint.port, int(kind))
            if key in self._relays:
                continue
            if not ipaddress.ip_address(endpoint.host).is_loopback and self._ready:
                _run([_NSENTER, f"--net={self.path}", _IP, "addr", "replace",
                      f"{endpoint.host}/{ipaddress.ip_address(endpoint.host).max_prefixlen}",
                      "dev", "lo"], f"give the fetch namespace {endpoint.host}")
            sock = netns.socket_in(self.path, endpoint.family, kind)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((endpoint.host, endpoint.port))
            except OSError as exc:
                sock.close()
                raise NetworkError(f"cannot relay {endpoint} into the fetch namespace: "
                                   f"{exc.strerror}") from exc
            target = (endpoint.host, endpoint.port)
            relay = TcpRelay(sock, target) if kind == socket.SOCK_STREAM \
                else UdpRelay(sock, target)
            relay.start()
            self._relays[key] = relay

    def _remove(self) -> None:
        for relay in self._relays.values():
            relay.close()
        self._relays.clear()
        # Deleting one end of a veth deletes both; a missing link or table is no error.
        subprocess.run([_IP, "link", "del", self.veth], capture_output=True, check=False,
                       timeout=_TIMEOUT_S, env=_ENV)
        firewall.apply(f"add table inet {self.table}\ndelete table inet {self.table}\n")
        netns.delete(self.path)


def _forwarding_on() -> None:
    """Let the host forward IPv4 (the CNI bridge plugin turns it on for groups too)."""
    path = Path("/proc/sys/net/ipv4/ip_forward")
    try:
        if path.read_text().strip() != "1":
            path.write_text("1\n")
    except OSError as exc:
        raise NetworkError(f"cannot turn on IPv4 forwarding: {exc.strerror}") from exc
