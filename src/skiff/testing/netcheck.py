"""Network checks for the engine's tests: commands in a group's namespace, listeners, a
line sent from one namespace (or the node) to another, a server on the host, and what a
``Networks`` left behind on the host. Traffic only flows between namespaces the tests
made, and to servers they started on the host.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shlex
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from skiff.engine.network import netns
from skiff.engine.network.networks import Attachment, Networks, root_tag
from skiff.testing.waiting import eventually

NETNS_DIR = Path("/run/netns")

BUSYBOX = "/bin/busybox"


def sh(*args: str, input: bytes | None = None, check: bool = True) -> str:
    return subprocess.run(args, input=input, capture_output=True, check=check,
                          timeout=30).stdout.decode()


def namespaces(root: Path) -> set[str]:
    prefix = f"sk-{root_tag(root)}-"
    return {n for n in os.listdir(NETNS_DIR) if n.startswith(prefix)} if NETNS_DIR.exists() \
        else set()


def veths_on(bridge: str) -> list[str]:
    out = sh("ip", "-j", "link", "show", "master", bridge, check=False)
    return [link["ifname"] for link in json.loads(out or "[]")]


def iptables_lines(needle: str) -> list[str]:
    return [line for line in sh("iptables-save").splitlines()
            if line.startswith("-A") and needle in line]


def in_netns(att: Attachment, *cmd: str, input: bytes | None = None) -> str:
    return sh("nsenter", f"--net={att.netns_path}", *cmd, input=input)


def listening(att: Attachment, port: int) -> bool:
    """Whether a socket listens on ``port`` in the group's namespace (IPv4 or IPv6)."""
    tcp = in_netns(att, "cat", "/proc/net/tcp", "/proc/net/tcp6")
    return re.search(rf":{port:04X} [0:]+ 0A ", tcp) is not None


def _subnet_of(net: Networks) -> ipaddress.IPv4Network | None:
    with contextlib.suppress(OSError, ValueError, KeyError):
        if net.settings.subnet:
            return ipaddress.IPv4Network(net.settings.subnet, strict=False)
        return ipaddress.IPv4Network(
            json.loads((net.root / "network.json").read_bytes())["subnet"])
    return None


def remove_leftovers(net: Networks) -> list[str]:
    """Remove whatever of ``net``'s root is still on the host; name what was found."""
    found: list[str] = []
    for name in namespaces(net.data_root):
        found.append(f"netns {name}")
        sh("ip", "netns", "del", name, check=False)
    for veth in veths_on(net.bridge):
        found.append(f"veth {veth}")
        sh("ip", "link", "del", veth, check=False)
    chains = set()
    for line in iptables_lines(net.network_name):  # ipMasq rules name the network
        found.append(f"nat rule {line}")
        args = shlex.split(line)
        if args[1] == "POSTROUTING":
            chains.add(args[-1])
            sh("iptables", "-t", "nat", "-D", *args[1:], check=False)
    for chain in chains:
        sh("iptables", "-t", "nat", "-F", chain, check=False)
        sh("iptables", "-t", "nat", "-X", chain, check=False)
    subnet = _subnet_of(net)
    for line in iptables_lines("-A CNI-FORWARD"):
        args = shlex.split(line)
        addresses = [args[i + 1] for i, a in enumerate(args) if a in ("-s", "-d")]
        if subnet and any(ipaddress.IPv4Network(a).overlaps(subnet) for a in addresses):
            found.append(f"filter rule {line}")
            sh("iptables", "-D", *args[1:], check=False)
    return found


def nsenter(att: Attachment | None) -> list[str]:
    return [] if att is None else ["nsenter", f"--net={att.netns_path}"]


def tcp_received(server: Attachment, client: Attachment, address: str, port: int) -> str:
    """What a busybox nc server in ``server`` receives when ``client`` sends a line
    to ``address:port`` (empty if the connection does not get through in 2 s)."""
    listener = subprocess.Popen([*nsenter(server), BUSYBOX, "nc", "-l", "-p", str(port)],
                                stdout=subprocess.PIPE)
    try:
        eventually(lambda: listening(server, port), what=f"a listener on port {port}")
        subprocess.run([*nsenter(client), "timeout", "2", BUSYBOX, "nc", address, str(port)],
                       input=b"knock knock\n", capture_output=True, timeout=10, check=False)
        if listener.poll() is None:
            time.sleep(0.1)
        if listener.poll() is None:
            return ""
        return listener.communicate(timeout=5)[0].decode()
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()


def from_the_node(server: Attachment, port: int, *, inside: bool = False) -> bytes:
    """What a busybox nc server in ``server`` receives when the node (this process)
    connects to its address and sends a line (empty if the connection does not get
    through in 2 s); ``inside``: through a socket made in the server's namespace, as
    the HTTP probes connect."""
    listener = subprocess.Popen([*nsenter(server), BUSYBOX, "nc", "-l", "-p", str(port)],
                                stdout=subprocess.PIPE)
    try:
        eventually(lambda: listening(server, port), what=f"a listener on port {port}")
        conn = netns.socket_in(server.netns_path) if inside else socket.socket()
        with conn:
            conn.settimeout(2)
            try:
                conn.connect((server.ip, port))
            except OSError:
                return b""
            conn.sendall(b"probe\n")
        return listener.communicate(timeout=5)[0]
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()


@contextlib.contextmanager
def host_server(kind: socket.SocketKind, address: str, port: int) -> Iterator[list[bytes]]:
    """A server on the host at ``address:port``; yields what it received so far."""
    received: list[bytes] = []
    sock = socket.socket(socket.AF_INET, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    sock.settimeout(0.1)
    if kind == socket.SOCK_STREAM:
        sock.listen()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                if kind == socket.SOCK_STREAM:
                    conn, _ = sock.accept()
                    with conn:
                        conn.settimeout(1)
                        received.append(conn.recv(100))
                else:
                    received.append(sock.recvfrom(100)[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        stop.set()
        thread.join()
        sock.close()
