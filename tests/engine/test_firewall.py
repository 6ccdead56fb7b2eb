"""Port filtering against real namespaces, real nftables rules and real traffic.

Each test has its own data root, hence its own bridge, subnet and namespaces;
the ``net`` fixture tears down the groups, removes the host's guard and the
bridge, and fails the test if anything was left behind. Traffic flows only
between namespaces the tests create and the address of their bridge.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff.core.spec import Port
from skiff.engine.network import firewall, netns
from skiff.engine.network.networks import Attachment, Networks
from skiff.errors import InvalidInput, NetworkError
from skiff.settings import NetworkSettings
from skiff.testing.netcheck import (
    BUSYBOX,
    from_the_node,
    host_server,
    nsenter,
    remove_leftovers,
    sh,
    tcp_received,
)
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root

_UDP_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
s.settimeout(float(sys.argv[2]))
try:
    print(s.recvfrom(100)[0].decode(), flush=True)
except TimeoutError:
    pass
"""
_UDP_CLIENT = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(5):
    s.sendto(b"datagram", (sys.argv[1], int(sys.argv[2])))
    time.sleep(0.05)
"""


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Networks]:
    """A ``Networks`` without pool; its groups, guard, bridge and leftovers go after."""
    networks = Networks(tmp_path / "root", NetworkSettings(pool_size=0))
    errors: list[str] = []
    try:
        yield networks
    finally:
        with contextlib.ExitStack() as cleanup:
            cleanup.callback(sh, "ip", "link", "del", networks.bridge, check=False)
            cleanup.callback(firewall.remove_host_guard, networks.bridge)
            cleanup.callback(lambda: errors.extend(remove_leftovers(networks)))
            for group in networks.list():
                cleanup.callback(networks.teardown, group)
        if errors:
            pytest.fail("the test left things behind: " + "; ".join(errors))


def udp_received(server: Attachment, client: Attachment, address: str, port: int) -> str:
    """What a UDP server in ``server`` receives when ``client`` sends datagrams to
    ``address:port`` (empty if none arrives within 1.5 s)."""
    listener = subprocess.Popen([*nsenter(server), "python3", "-c", _UDP_SERVER, str(port),
                                 "1.5"], stdout=subprocess.PIPE)
    try:
        assert listener.stdout is not None
        assert listener.stdout.readline() == b"ready\n"
        sh(*nsenter(client), "python3", "-c", _UDP_CLIENT, address, str(port))
        return listener.communicate(timeout=10)[0].decode().strip()
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()


def group_rules(att: Attachment) -> str:
    return sh(*nsenter(att), "nft", "list", "ruleset")


def test_only_declared_tcp_ports_are_reachable_from_another_group(net: Networks) -> None:
    """Another group reaches a declared TCP port; an undeclared one is filtered."""
    a, b = net.setup("a", "alpha"), net.setup("b", "beta")
    assert tcp_received(a, b, a.ip, 8081) == "knock knock\n"  # open before the filter
    firewall.apply_group_filter(a.netns_path, [Port(8080), Port(5353, "UDP")])
    assert tcp_received(a, b, a.ip, 8080) == "knock knock\n"
    assert tcp_received(a, b, a.ip, 8081) == ""
    assert tcp_received(a, b, a.ip, 5353) == ""  # declared for UDP only
    assert tcp_received(b, a, b.ip, 8081) == "knock knock\n"  # a's replies and b's ports pass


def test_only_declared_udp_ports_are_reachable(net: Networks) -> None:
    """Another group's datagrams reach a declared UDP port, not an undeclared one."""
    a, b = net.setup("a", "alpha"), net.setup("b", "beta")
    firewall.apply_group_filter(a.netns_path, [Port(5353, "UDP"), Port(8080)])
    assert udp_received(a, b, a.ip, 5353) == "datagram"
    assert udp_received(a, b, a.ip, 5354) == ""
    assert udp_received(a, b, a.ip, 8080) == ""  # declared for TCP only


def test_a_group_without_ports_is_unreachable_but_localhost_works(net: Networks) -> None:
    """No declared port: nothing gets in from outside; localhost reaches any port."""
    a, b = net.setup("a", "alpha"), net.setup("b", "beta")
    firewall.apply_group_filter(a.netns_path, [])
    assert tcp_received(a, b, a.ip, 8080) == ""
    assert udp_received(a, b, a.ip, 8080) == ""
    assert tcp_received(a, a, "127.0.0.1", 8080) == "knock knock\n"
    assert tcp_received(a, a, "127.0.0.1", 31337) == "knock knock\n"
    assert udp_received(a, a, "127.0.0.1", 9999) == "datagram"
    ping = subprocess.run([*nsenter(b), BUSYBOX, "ping", "-c", "1", "-W", "2", a.ip],
                          capture_output=True, timeout=10, check=False)
    assert ping.returncode == 0, ping.stdout


def test_the_node_reaches_declared_ports_only(net: Networks) -> None:
    """The node itself (this process, the bridge gateway) reaches a group's declared
    port but not an undeclared one; a socket it makes in the group's namespace (as
    the HTTP probes do) reaches any port."""
    a = net.setup("a", "alpha")
    firewall.apply_group_filter(a.netns_path, [Port(8080)])
    assert from_the_node(a, 8080) == b"probe\n"
    assert from_the_node(a, 8081) == b""
    assert from_the_node(a, 8081, inside=True) == b"probe\n"


def test_a_socket_in_a_missing_namespace_is_refused(tmp_path: Path) -> None:
    """Opening a socket in a namespace that does not exist fails with a NetworkError."""
    with pytest.raises(NetworkError, match="cannot open"):
        netns.socket_in(tmp_path / "gone")


def test_applying_again_replaces_the_rules(net: Networks) -> None:
    """A second application replaces the first one's ports; nothing is duplicated."""
    a, b = net.setup("a", "alpha"), net.setup("b", "beta")
    firewall.apply_group_filter(a.netns_path, [Port(8080)])
    firewall.apply_group_filter(a.netns_path, [Port(9090), Port(9090)])
    rules = group_rules(a)
    assert rules.count("table inet skiff") == 1
    assert "9090" in rules
    assert "8080" not in rules
    assert tcp_received(a, b, a.ip, 8080) == ""
    assert tcp_received(a, b, a.ip, 9090) == "knock knock\n"


def test_the_rules_live_and_die_with_the_namespace(net: Networks) -> None:
    """The filter is in the group's namespace, not the host's, and goes with it."""
    a = net.setup("a", "alpha")
    firewall.apply_group_filter(a.netns_path, [Port(8080)])
    assert "tcp dport 8080 accept" in group_rules(a)
    assert "table inet skiff {" not in sh("nft", "list", "ruleset")
    net.teardown("a")
    assert not a.netns_path.exists()
    assert "table inet skiff {" not in sh("nft", "list", "ruleset")


def test_bad_ports_are_refused() -> None:
    """Port numbers out of range and unknown protocols are refused before nft runs."""
    with pytest.raises(InvalidInput):
        firewall.group_ruleset([Port(0)])
    with pytest.raises(InvalidInput):
        firewall.group_ruleset([Port(80, "SCTP")])
    assert "udp dport { 53 } accept" in firewall.group_ruleset([Port(53, "udp")])


def test_the_host_guard_blocks_the_host_but_dns_on_the_gateway(net: Networks) -> None:
    """With the guard, a group cannot reach a host service on the gateway; DNS
    (port 53 on the gateway) stays allowed by the rules."""
    a = net.setup("a", "alpha")
    with host_server(socket.SOCK_STREAM, a.gateway, 18080) as received:
        client = [*nsenter(a), "timeout", "2", BUSYBOX, "nc", a.gateway, "18080"]
        subprocess.run(client, input=b"before\n", capture_output=True, timeout=10)
        eventually(lambda: received == [b"before\n"],  # reachable without the guard
                   what="the host server got the line sent before the guard")
        firewall.install_host_guard(net.bridge, a.gateway)
        subprocess.run(client, input=b"after\n", capture_output=True, timeout=10)
        time.sleep(0.2)
        assert received == [b"before\n"]
    rules = sh("nft", "list", "table", "inet", firewall.host_table(net.bridge))
    assert f'iifname "{net.bridge}" ip daddr {a.gateway} udp dport 53 accept' in rules
    assert f'iifname "{net.bridge}" ip daddr {a.gateway} tcp dport 53 accept' in rules
    assert f'iifname "{net.bridge}" drop' in rules
    # A UDP responder on the gateway's port 53, when the host does not use it.
    try:
        dns = host_server(socket.SOCK_DGRAM, a.gateway, 53)
        received_dns = dns.__enter__()
    except OSError as exc:  # the host serves port 53 on every address: not ours to take
        pytest.skip(f"the guard's DNS exception is unchecked: port 53 on {a.gateway} is "
                    f"taken on this host ({exc})")
    try:
        sh(*nsenter(a), "python3", "-c", _UDP_CLIENT, a.gateway, "53")
        eventually(lambda: b"datagram" in received_dns, what="a datagram on the gateway's port 53")
    finally:
        dns.__exit__(None, None, None)
    with host_server(socket.SOCK_DGRAM, a.gateway, 5353) as other:
        sh(*nsenter(a), "python3", "-c", _UDP_CLIENT, a.gateway, "5353")
        time.sleep(0.2)
        assert other == []


def test_the_host_guard_is_idempotent_and_removable(net: Networks) -> None:
    """Installing twice leaves one table; remove_host_guard removes it, twice is fine."""
    assert not firewall.host_guard_installed(net.bridge)
    firewall.install_host_guard(net.bridge, "10.89.0.1")
    firewall.install_host_guard(net.bridge, "10.89.0.1")
    table = firewall.host_table(net.bridge)
    assert sh("nft", "list", "tables").count(f"table inet {table}\n") == 1
    assert firewall.host_guard_installed(net.bridge)
    firewall.remove_host_guard(net.bridge)
    assert not firewall.host_guard_installed(net.bridge)
    firewall.remove_host_guard(net.bridge)
    with pytest.raises(InvalidInput):
        firewall.install_host_guard('x" drop; #', "10.89.0.1")

