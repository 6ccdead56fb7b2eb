"""The fetch namespace's pure parts: allowed endpoints, its link, its rules, resolvers."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from skiff.engine.network.fetching import Endpoint, fetch_ruleset, nameservers, pick_link
from skiff.errors import InvalidInput, NetworkError


@pytest.mark.parametrize(("text", "host", "port"), [
    ("127.0.0.1:5000", "127.0.0.1", 5000),
    ("localhost:5000", "127.0.0.1", 5000),
    ("[::1]:443", "::1", 443),
    (" 192.0.2.2:80 ", "192.0.2.2", 80),
])
def test_endpoints_parse(text: str, host: str, port: int) -> None:
    """An endpoint is an IP address (or localhost) and a port."""
    assert Endpoint.parse(text) == Endpoint(host, port)


@pytest.mark.parametrize("text", ["127.0.0.1", "registry.local:5000", "127.0.0.1:0",
                                  "127.0.0.1:65536", ":5000", "127.0.0.1:http", "::1:5000"])
def test_endpoints_that_name_no_address_and_port_are_refused(text: str) -> None:
    """A name other than localhost is refused: skiff relays addresses, not names."""
    with pytest.raises(InvalidInput):
        Endpoint.parse(text)


def test_an_endpoint_prints_as_it_is_written() -> None:
    """IPv6 endpoints keep their brackets in messages."""
    assert str(Endpoint.parse("[::1]:5000")) == "[::1]:5000"
    assert str(Endpoint.parse("localhost:5000")) == "127.0.0.1:5000"


def test_the_link_is_link_local_and_avoids_the_hosts_routes() -> None:
    """The veth's /30 is the tag's, in 169.254.252.0/22, and moves aside for a route."""
    first = pick_link("0123abcd", [])
    assert first.prefixlen == 30
    assert first.subnet_of(ipaddress.IPv4Network("169.254.252.0/22"))
    assert pick_link("0123abcd", []) == first
    assert pick_link("0123abcd", [first]) != first
    with pytest.raises(NetworkError):
        pick_link("0123abcd", [ipaddress.IPv4Network("169.254.0.0/16")])


def test_the_rules_refuse_the_node_and_let_dns_through() -> None:
    """What comes in on the veth may reach DNS on the named resolvers, never the node's
    addresses, loopback, link-local, the groups' bridges or IPv6; replies are masqueraded."""
    rules = fetch_ruleset("skiff_fetch_t", "skft", "169.254.252.2", ["10.0.0.53"])
    assert 'iifname "skft" ip daddr { 10.0.0.53 } udp dport 53 accept' in rules
    assert 'fib daddr type { local, broadcast, anycast, multicast } jump refuse' in rules
    assert "127.0.0.0/8" in rules
    assert "169.254.0.0/16" in rules
    assert 'oifname "sk*" jump refuse' in rules
    assert 'oifname "sv*" jump refuse' in rules
    assert 'meta nfproto ipv6 jump refuse' in rules
    assert 'ip saddr 169.254.252.2 oifname != "skft" masquerade' in rules
    # Refused as a closed port is: a reset, never a silent drop.
    assert " drop" not in rules
    assert rules.index("dport 53 accept") < rules.index("jump refuse")


def test_the_rules_without_resolvers_let_nothing_through() -> None:
    """No resolver to reach on the host: no exception in the rules."""
    assert "accept\n" not in fetch_ruleset("t", "v", "169.254.252.2", []).split(
        "chain forward")[1].split("chain refuse")[0]


def test_nameservers_are_read_from_resolv_conf(tmp_path: Path) -> None:
    """Addresses only, comments and zone ids dropped; a missing file names none."""
    conf = tmp_path / "resolv.conf"
    conf.write_text("# a comment\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\n"
                    "nameserver not-an-ip\nsearch example.org\n")
    assert nameservers(conf) == ["127.0.0.53", "fe80::1"]
    assert nameservers(tmp_path / "missing") == []
