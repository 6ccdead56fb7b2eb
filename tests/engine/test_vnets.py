"""Public and private groups on real namespaces, bridges, nftables and traffic.

One node with a routable public pool (198.51.100.128/27 behind proxy ARP on an
"uplink" veth) and two virtual networks (A: two subnets, B: one). Another
"machine" is a namespace on the uplink's other end (198.51.100.2). The
reachability matrix is asserted in both directions. Everything the tests make
(namespaces, veths, bridges, tables) goes after them, even on failure.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import secrets
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from skiff.core.spec import Port, SubnetPlacement
from skiff.engine.network import firewall, subnets
from skiff.engine.network.networks import Attachment, Networks
from skiff.errors import InvalidInput, NetworkConflict
from skiff.settings import NetworkSettings
from skiff.testing.netcheck import (
    BUSYBOX,
    from_the_node,
    host_server,
    listening,
    remove_leftovers,
    sh,
    tcp_received,
)
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root

PUBLIC_POOL = "198.51.100.128/27"
A1 = SubnetPlacement("vnet-a", "s1", "10.201.1.0/24")
A2 = SubnetPlacement("vnet-a", "s2", "10.201.2.0/24")
B1 = SubnetPlacement("vnet-b", "s1", "10.202.1.0/24")
HTTP = [Port(80)]


@dataclass
class Outside:
    """Another machine on the uplink's link: a namespace at 198.51.100.2."""

    netns: str
    uplink: str

    def run(self, *cmd: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["ip", "netns", "exec", self.netns, *cmd], input=input,
                              capture_output=True, timeout=20, check=False)


@pytest.fixture
def outside() -> Iterator[Outside]:
    """A veth "uplink" (198.51.100.1/24) whose peer is in a namespace of its own."""
    tag = secrets.token_hex(3)
    machine = Outside(netns=f"skt-out-{tag}", uplink=f"sktu{tag}")
    try:
        sh("ip", "netns", "add", machine.netns)
        sh("ip", "link", "add", machine.uplink, "type", "veth", "peer", "name", "eth9",
           "netns", machine.netns)
        sh("ip", "addr", "add", "198.51.100.1/24", "dev", machine.uplink)
        sh("ip", "link", "set", machine.uplink, "up")
        for cmd in (["ip", "addr", "add", "198.51.100.2/24", "dev", "eth9"],
                    ["ip", "link", "set", "eth9", "up"], ["ip", "link", "set", "lo", "up"],
                    # It may try the private ranges: the node's forwarding must refuse.
                    ["ip", "route", "add", "10.201.0.0/16", "via", "198.51.100.1"],
                    ["ip", "route", "add", "10.202.0.0/16", "via", "198.51.100.1"]):
            assert machine.run(*cmd).returncode == 0, cmd
        yield machine
    finally:
        sh("ip", "link", "del", machine.uplink, check=False)
        sh("ip", "netns", "del", machine.netns, check=False)


@pytest.fixture
def node(tmp_path: Path, outside: Outside) -> Iterator[Networks]:
    """Networks with a routable public pool on the uplink; all of it goes after."""
    net = Networks(tmp_path / "root", NetworkSettings(
        pool_size=0, subnet=PUBLIC_POOL, public_interface=outside.uplink))
    errors: list[str] = []
    try:
        yield net
    finally:
        with contextlib.ExitStack() as cleanup:
            cleanup.callback(sh, "ip", "link", "del", net.bridge, check=False)
            cleanup.callback(firewall.remove_host_guard, net.bridge)
            cleanup.callback(lambda: errors.extend(remove_leftovers(net)))
            for vnet in ("vnet-a", "vnet-b"):
                cleanup.callback(net.remove_vnet, vnet)
            for group in net.list():
                cleanup.callback(net.teardown, group)
        bridges = [d.name for d in Path("/sys/class/net").iterdir()
                   if d.name.startswith((subnets.vnet_prefix(net.data_root, "vnet-a"),
                                         subnets.vnet_prefix(net.data_root, "vnet-b")))]
        tables = [line for line in sh("nft", "list", "tables").splitlines()
                  if any(name in line for v in ("vnet-a", "vnet-b")
                         for prefix in [subnets.vnet_prefix(net.data_root, v)]
                         for name in (f"skiff_{prefix}", subnets.vnet_table(prefix)))]
        if bridges or errors or tables:
            pytest.fail(f"the test left things behind: {errors} {bridges} {tables}")


def place(net: Networks, group: str, subnet: SubnetPlacement | None = None,
          ports: list[Port] = HTTP) -> Attachment:
    """A group's network as the supervisor makes it: set up, then protected."""
    att = net.setup(group, group, subnet=subnet)
    net.protect(att, ports, subnet)
    return att


def from_outside(outside: Outside, server: Attachment, port: int) -> str:
    """What a server in ``server`` gets when the outside machine connects to its IP."""
    listener = subprocess.Popen(["nsenter", f"--net={server.netns_path}", BUSYBOX, "nc", "-l",
                                 "-p", str(port)], stdout=subprocess.PIPE)
    try:
        eventually(lambda: listening(server, port), what=f"a listener on port {port}")
        outside.run("timeout", "2", BUSYBOX, "nc", server.ip, str(port), input=b"hi\n")
        with contextlib.suppress(subprocess.TimeoutExpired):
            return listener.communicate(timeout=0.5)[0].decode()
        return ""
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()


def test_private_groups_get_addresses_from_their_subnet(node: Networks) -> None:
    """A subnet's groups get its 5th address on, its first as gateway, on a bridge
    of their own whose name shares the virtual network's prefix."""
    a1, a1b, a2 = place(node, "a1", A1), place(node, "a1b", A1), place(node, "a2", A2)
    assert {a1.ip, a1b.ip} == {"10.201.1.4", "10.201.1.5"}
    assert a2.ip == "10.201.2.4"
    assert a2.gateway == "10.201.2.1"
    assert a1.bridge == a1b.bridge != a2.bridge
    prefix = subnets.vnet_prefix(node.data_root, "vnet-a")
    assert a1.bridge.startswith(prefix)
    assert a2.bridge.startswith(prefix)
    assert not node.bridge_of(B1).startswith(prefix)
    pub = place(node, "pub")
    assert ipaddress.IPv4Address(pub.ip) in ipaddress.IPv4Network(PUBLIC_POOL)


def test_reachability_matrix(node: Networks, outside: Outside) -> None:
    """Who reaches whom, both ways: same subnet, same virtual network, another
    virtual network, public groups, the outside machine, undeclared ports."""
    a1, a1b, a2 = place(node, "a1", A1), place(node, "a1b", A1), place(node, "a2", A2)
    b1, pub = place(node, "b1", B1), place(node, "pub")
    ok = "knock knock\n"
    # One virtual network: its groups reach each other's declared ports, across subnets.
    assert tcp_received(a1, a1b, a1.ip, 80) == ok
    assert tcp_received(a1b, a1, a1b.ip, 80) == ok
    assert tcp_received(a1, a2, a1.ip, 80) == ok
    assert tcp_received(a2, a1, a2.ip, 80) == ok
    # ... and not the undeclared ones (cross-subnet traffic is not NATed to the gateway).
    assert tcp_received(a1, a1b, a1.ip, 81) == ""
    assert tcp_received(a1, a2, a1.ip, 81) == ""
    # Another virtual network: nothing, either way.
    assert tcp_received(a1, b1, a1.ip, 80) == ""
    assert tcp_received(b1, a1, b1.ip, 80) == ""
    # A public group cannot reach a private one; private groups reach public ones.
    assert tcp_received(a1, pub, a1.ip, 80) == ""
    assert tcp_received(pub, a1, pub.ip, 80) == ok
    assert tcp_received(pub, b1, pub.ip, 81) == ""
    # Another machine reaches public groups directly (no NAT, proxy ARP) on their
    # declared ports only, and no private group.
    assert from_outside(outside, pub, 80) == "hi\n"
    assert from_outside(outside, pub, 81) == ""
    assert from_outside(outside, a1, 80) == ""
    assert from_outside(outside, b1, 80) == ""


def test_outbound_traffic_leaves_through_the_host(node: Networks, outside: Outside) -> None:
    """Private groups reach other machines, NATed to the host's address; public
    groups of a routable pool keep their own address."""
    a1, pub = place(node, "a1", A1), place(node, "pub")
    for group, source in ((a1, "198.51.100.1"), (pub, pub.ip)):
        server = subprocess.Popen(["ip", "netns", "exec", outside.netns, "python3", "-c",
                                   _PEER_SERVER], stdout=subprocess.PIPE)
        try:
            assert server.stdout is not None
            assert server.stdout.readline() == b"ready\n"
            sh("nsenter", f"--net={group.netns_path}", "timeout", "3", BUSYBOX, "nc",
               "198.51.100.2", "8099", input=b"x\n", check=False)
            assert server.communicate(timeout=5)[0].decode().strip() == source
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()


_PEER_SERVER = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.51.100.2", 8099)); s.listen(); s.settimeout(4)
print("ready", flush=True)
try:
    c, peer = s.accept(); print(peer[0], flush=True)
except TimeoutError:
    pass
"""


def test_private_groups_cannot_reach_host_services(node: Networks) -> None:
    """A private group reaches neither a host service on its gateway nor one on the
    host's other addresses."""
    a1 = place(node, "a1", A1)
    with host_server(socket.SOCK_STREAM, "0.0.0.0", 18081) as received:  # noqa: S104
        for target in (a1.gateway, "198.51.100.1"):
            subprocess.run(["nsenter", f"--net={a1.netns_path}", "timeout", "2", BUSYBOX, "nc",
                            target, "18081"], input=b"in\n", capture_output=True, timeout=10)
        with socket.create_connection(("127.0.0.1", 18081), timeout=2) as conn:
            conn.sendall(b"local\n")  # the server works
        eventually(lambda: b"local\n" in received, what="the host server got the local line")
        assert received == [b"local\n"]


def test_the_node_reaches_declared_ports_of_private_groups_only(node: Networks) -> None:
    """The node itself (the gateway) reaches a private group's declared port, not
    an undeclared one; from inside the group's namespace (probes) it reaches both."""
    a1 = place(node, "a1", A1)
    assert from_the_node(a1, 80) == b"probe\n"
    assert from_the_node(a1, 8080) == b""
    assert from_the_node(a1, 8080, inside=True) == b"probe\n"


def test_resolv_conf_names_the_subnet_gateway_when_dns_is_served(node: Networks) -> None:
    """With DNS served, a private group's resolver is its own subnet's gateway,
    and the server is asked to listen there."""
    asked: list[str] = []
    node.serve_dns = asked.append
    a2 = place(node, "a2", A2)
    assert "nameserver 10.201.2.1\n" in a2.resolv_conf.read_text()
    assert asked == ["10.201.2.1"]
    assert "10.201.2.1" in node.gateways()


def test_removing_a_virtual_network_leaves_nothing(node: Networks) -> None:
    """Once its groups are gone, a virtual network's bridges and tables go too."""
    a1, a2 = place(node, "a1", A1), place(node, "a2", A2)
    assert node.vnets() == ["vnet-a"]
    assert f"skiff_{a1.bridge}" in sh("nft", "list", "tables")
    prefix = subnets.vnet_prefix(node.data_root, "vnet-a")
    assert subnets.isolation_installed(prefix)
    node.teardown("a1")
    node.teardown("a2")
    node.remove_vnet("vnet-a")
    assert not subnets.isolation_installed(prefix)
    assert f"skiff_{prefix}" not in sh("nft", "list", "tables")  # the bridges' host guards
    assert node.vnets() == []
    assert not any(d.name.startswith(prefix) for d in Path("/sys/class/net").iterdir())
    assert not Path(a1.netns_path).exists()
    assert not Path(a2.netns_path).exists()
    node.remove_vnet("vnet-a")  # idempotent


def test_bad_or_clashing_subnets_are_refused(node: Networks) -> None:
    """A subnet that is no CIDR, too small, or overlapping a host route is refused
    before anything is made."""
    with pytest.raises(InvalidInput):
        node.setup("x1", "x1", subnet=SubnetPlacement("v", "s", "10.203.0.0/30"))
    with pytest.raises(InvalidInput):
        node.setup("x2", "x2", subnet=SubnetPlacement("v", "s", "nope"))
    with pytest.raises(NetworkConflict):  # the uplink's own link
        node.setup("x3", "x3", subnet=SubnetPlacement("v", "s", "198.51.100.0/25"))
    assert node.list() == []


def test_a_subnet_in_use_keeps_one_slot_ready(tmp_path: Path) -> None:
    """After a subnet's first group, the next one takes a pooled slot of that subnet;
    removing the virtual network removes the pooled slot too."""
    net = Networks(tmp_path / "pooled", NetworkSettings(pool_size=1))
    try:
        first = place(net, "p1", A1)
        net.prewarm(A1)  # waits for the background fill
        pooled = list((net.root / "pools" / first.bridge).glob("*.json"))
        assert len(pooled) == 1
        pooled_netns = json.loads(pooled[0].read_bytes())["path"]
        second = place(net, "p2", A1)
        assert str(second.netns_path) == pooled_netns
        assert second.ip == "10.201.1.5"
        net.teardown("p1")
        net.teardown("p2")
        net.prewarm(A1)
        net.remove_vnet("vnet-a")
        assert not (net.root / "pools" / first.bridge).exists()
        assert remove_leftovers(net) == []
    finally:
        with contextlib.ExitStack() as cleanup:
            cleanup.callback(sh, "ip", "link", "del", net.bridge, check=False)
            cleanup.callback(net.close)
            cleanup.callback(net.remove_vnet, "vnet-a")
            for group in net.list():
                cleanup.callback(net.teardown, group)
