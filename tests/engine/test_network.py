"""Group networks against the real CNI plugins, network namespaces and iptables.

Every test has its own data root, hence its own bridge, subnet and namespace
names; the ``networks`` fixture removes what the test made (pass or fail) and
fails the test if anything was left for it to remove. Traffic only flows
between namespaces the tests create.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from skiff.core.spec import DnsConfig
from skiff.engine.network.networks import Attachment, Networks, subnet_candidates
from skiff.engine.network.resolv import render_resolv_conf
from skiff.errors import CniError, InvalidInput, NetworkConflict, NetworkError
from skiff.settings import NetworkSettings
from skiff.testing.netcheck import (
    BUSYBOX,
    NETNS_DIR,
    in_netns,
    iptables_lines,
    listening,
    namespaces,
    remove_leftovers,
    sh,
    veths_on,
)
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root

MakeNetworks = Callable[..., Networks]


def exchange(server: Attachment, client: Attachment, address: str, port: int) -> str:
    """What ``server`` receives when ``client`` sends a line to ``address:port``."""
    listener = subprocess.Popen(["nsenter", f"--net={server.netns_path}", BUSYBOX, "nc",
                                 "-l", "-p", str(port)], stdout=subprocess.PIPE)
    try:
        eventually(lambda: listening(server, port), what=f"a listener on port {port}")
        in_netns(client, "timeout", "5", BUSYBOX, "nc", address, str(port),
                 input=b"hello from the other side\n")
        out, _ = listener.communicate(timeout=5)
        return out.decode()
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()


@pytest.fixture
def networks(tmp_path: Path) -> Iterator[MakeNetworks]:
    """Makes ``Networks`` on data roots under tmp_path; cleans the host after the test."""
    made: list[Networks] = []

    def make(root: str = "root", **options: Any) -> Networks:
        net = Networks(tmp_path / root, NetworkSettings(**options))
        made.append(net)
        return net

    yield make
    errors: list[str] = []
    for net in made:
        try:
            net.close()
            for group in net.list():
                net.teardown(group)
            net.drain_pool()
        except Exception as exc:
            errors.append(f"clean-up of {net.data_root}: {exc!r}")
    left: list[str] = []
    for net in made:
        try:
            left += remove_leftovers(net)
        except Exception as exc:
            errors.append(f"removing leftovers of {net.data_root}: {exc!r}")
    for bridge in {net.bridge for net in made}:
        sh("ip", "link", "del", bridge, check=False)
    if errors or left:
        pytest.fail("the test left things behind: " + "; ".join(errors + sorted(set(left))))


def test_setup_gives_an_address_in_the_subnet_a_route_and_loopback(
    networks: MakeNetworks,
) -> None:
    """A group's namespace has its IP in the subnet, a default route, and lo up and working."""
    net = networks(pool_size=0)
    att = net.setup("g1", "web")
    subnet = ipaddress.IPv4Network(net.subnet)
    assert ipaddress.IPv4Address(att.ip) in subnet
    assert att.prefix_len == subnet.prefixlen
    assert att.gateway == str(subnet.network_address + 1)
    assert att.netns_path.parent == NETNS_DIR
    assert att.netns_path.exists()
    addrs = {link["ifname"]: link for link in json.loads(in_netns(att, "ip", "-j", "addr"))}
    assert "UP" in addrs["lo"]["flags"]
    assert att.ip in [a["local"] for a in addrs["eth0"]["addr_info"]]
    assert f"default via {att.gateway} dev eth0" in in_netns(att, "ip", "route")
    assert exchange(att, att, "127.0.0.1", 8081) == "hello from the other side\n"


def test_two_groups_get_different_ips_and_reach_each_other(networks: MakeNetworks) -> None:
    """Two groups on one bridge have distinct addresses and talk TCP to each other."""
    net = networks(pool_size=0)
    a, b = net.setup("a", "alpha"), net.setup("b", "beta")
    assert a.ip != b.ip
    assert a.netns_path != b.netns_path
    assert exchange(a, b, a.ip, 8080) == "hello from the other side\n"
    assert exchange(b, a, b.ip, 8080) == "hello from the other side\n"
    assert net.list() == ["a", "b"]


def test_teardown_removes_netns_veth_lease_rules_and_files(networks: MakeNetworks) -> None:
    """After teardown nothing of the group is left: netns, veth, lease, iptables rules, files."""
    net = networks(pool_size=0)
    att = net.setup("g1", "web")
    lease = net.root / "ipam" / net.network_name / att.ip
    group_dir = att.hosts_file.parent
    assert att.netns_path.exists()
    assert len(veths_on(net.bridge)) == 1
    assert lease.exists()
    assert iptables_lines(f"{att.ip}/32")  # masquerade and forward rules name the IP
    net.check("g1")
    net.teardown("g1")
    assert not att.netns_path.exists()
    assert att.netns_path.name not in sh("ip", "netns", "list")
    assert veths_on(net.bridge) == []
    assert not lease.exists()
    assert iptables_lines(f"{att.ip}/32") == []
    assert not group_dir.exists()
    assert net.get("g1") is None
    assert net.list() == []


def test_setup_and_teardown_are_idempotent(networks: MakeNetworks) -> None:
    """A second setup returns the same attachment; teardown twice (or of nothing) is fine."""
    net = networks(pool_size=0)
    first = net.setup("g1", "web")
    assert net.setup("g1", "web") == first == net.get("g1")
    assert len(namespaces(net.data_root)) == 1
    net.teardown("g1")
    net.teardown("g1")
    net.teardown("never-set-up")
    assert namespaces(net.data_root) == set()


def test_pooled_setup_takes_a_ready_slot_and_refills(networks: MakeNetworks) -> None:
    """With a warm pool, setup takes a prepared namespace and the pool refills behind it."""
    net = networks(pool_size=2)
    net.prewarm()
    pooled = namespaces(net.data_root)
    assert net.pooled() == 2
    assert len(pooled) == 2
    att = net.setup("g1", "web")
    assert att.netns_path.name in pooled
    assert "UP" in in_netns(att, "ip", "link", "show", "lo").split(">")[0]
    assert f"{att.ip}\tweb\n" in att.hosts_file.read_text()
    eventually(lambda: net.pooled() == 2, what="the pool refilled to 2 slots")
    net.close()
    assert len(namespaces(net.data_root)) == 3
    other = net.setup("g2", "db")  # still served from the pool after close
    assert other.ip != att.ip
    assert net.pooled() == 1
    net.drain_pool()
    assert net.pooled() == 0
    assert namespaces(net.data_root) == {att.netns_path.name, other.netns_path.name}


def test_state_survives_a_restart(networks: MakeNetworks) -> None:
    """A new Networks on the same root knows the groups and the pool and cleans them all up."""
    first = networks(pool_size=2)
    first.prewarm()
    att = first.setup("g1", "web")
    eventually(lambda: first.pooled() == 2, what="the pool refilled to 2 slots")
    first.close()
    pooled = namespaces(first.data_root) - {att.netns_path.name}
    lease_dir = first.root / "ipam" / first.network_name

    second = networks(pool_size=2)  # skiff restarted
    assert second.get("g1") == att
    assert second.list() == ["g1"]
    assert second.pooled() == 2
    b = second.setup("g2", "db")
    assert b.netns_path.name in pooled
    second.close()
    second.teardown("g1")
    second.teardown("g2")
    second.drain_pool()
    assert namespaces(second.data_root) == set()
    assert [f for f in os.listdir(lease_dir) if f[0].isdigit()] == []
    assert iptables_lines(f"{att.ip}/32") == []
    assert iptables_lines(f"{b.ip}/32") == []


def test_a_pooled_slot_made_with_other_settings_is_retired(networks: MakeNetworks) -> None:
    """After a restart with other settings (here the MTU) old pooled slots are not handed out."""
    old = networks(pool_size=1, mtu=1400)
    old.prewarm()
    old.close()
    (stale,) = namespaces(old.data_root)
    new = networks(pool_size=0, mtu=1300)
    att = new.setup("g1", "web")
    assert att.netns_path.name != stale
    assert namespaces(new.data_root) == {att.netns_path.name}
    assert "mtu 1300" in in_netns(att, "ip", "link", "show", "eth0")
    assert new.pooled() == 0


def test_a_slot_abandoned_by_a_crash_is_destroyed_on_restart(networks: MakeNetworks) -> None:
    """A slot record left in work/ with no lock holder (a crash mid-teardown) is cleaned up."""
    net = networks(pool_size=1)
    net.prewarm()
    (record,) = (net.root / "pool").iterdir()
    slot = json.loads(record.read_text())
    ip = slot["result"]["ips"][0]["address"].split("/")[0]
    record.rename(net.root / "work" / record.name)  # as if a teardown died right here
    assert namespaces(net.data_root) == {slot["netns"]}
    networks(pool_size=1)  # restart
    assert namespaces(net.data_root) == set()
    assert not (net.root / "ipam" / net.network_name / ip).exists()
    assert iptables_lines(f"{ip}/32") == []
    assert os.listdir(net.root / "work") == []


def test_two_data_roots_never_collide(networks: MakeNetworks) -> None:
    """Different data roots get different bridges, networks, subnets and namespace names."""
    one, two = networks("one", pool_size=0), networks("two", pool_size=0)
    a, b = one.setup("g", "same"), two.setup("g", "same")
    assert one.bridge != two.bridge
    assert one.network_name != two.network_name
    assert len(one.bridge) <= 15
    assert len(a.netns_path.name) <= 40
    assert not ipaddress.IPv4Network(one.subnet).overlaps(ipaddress.IPv4Network(two.subnet))
    assert a.netns_path != b.netns_path
    assert exchange(a, a, "127.0.0.1", 8082) == "hello from the other side\n"
    # A third root told to use the first one's subnet is refused, not half set up.
    clash = networks("three", pool_size=0, subnet=one.subnet)
    with pytest.raises(NetworkConflict, match="overlaps"):
        clash.setup("g", "same")


def test_default_subnets_avoid_podman_and_settings_override(networks: MakeNetworks) -> None:
    """Default subnets are /23s in 10.89-10.95 (never Podman's 10.88/16); a setting overrides."""
    candidates = list(subnet_candidates(Path("/var/lib/skiff")))
    assert len(set(candidates)) == 896
    assert all(c.prefixlen == 23 and 89 <= c.network_address.packed[1] <= 95
               for c in candidates)
    net = networks(pool_size=0)
    assert ipaddress.IPv4Network(net.subnet) in candidates
    custom = networks("custom", pool_size=0, subnet="10.213.7.0/24")
    att = custom.setup("g", "web")
    assert ipaddress.IPv4Address(att.ip) in ipaddress.IPv4Network("10.213.7.0/24")
    assert att.prefix_len == 24
    with pytest.raises(InvalidInput):
        networks("bad", pool_size=0, subnet="10.213.7.1/24").setup("g", "web")


def test_exhausted_subnet_is_a_clear_cni_error_and_leaks_nothing(
    networks: MakeNetworks,
) -> None:
    """host-local's refusal (no address left) becomes a CniError; the failed slot is removed."""
    net = networks(pool_size=0, subnet="10.213.9.0/30")  # one address besides the gateway
    net.setup("g1", "web")
    with pytest.raises(CniError, match="no IP addresses available") as err:
        net.setup("g2", "db")
    assert err.value.plugin == "bridge"
    assert err.value.command == "ADD"
    assert err.value.code == "NetworkSetupFailed"
    assert len(namespaces(net.data_root)) == 1
    assert net.list() == ["g1"]
    assert os.listdir(net.root / "work") == []


def test_check_reports_a_namespace_deleted_behind_skiffs_back(networks: MakeNetworks) -> None:
    """CHECK passes on a healthy group, fails once its netns is gone; teardown still cleans."""
    net = networks(pool_size=0)
    att = net.setup("g1", "web")
    net.check("g1")
    sh("ip", "netns", "del", att.netns_path.name)
    with pytest.raises(NetworkError, match="gone"):
        net.check("g1")
    net.teardown("g1")
    assert iptables_lines(f"{att.ip}/32") == []
    assert not (net.root / "ipam" / net.network_name / att.ip).exists()


def test_group_files_hold_hostname_hosts_and_resolv_conf(
    networks: MakeNetworks, tmp_path: Path
) -> None:
    """hosts, hostname and resolv.conf: host servers minus loopback, or the DnsConfig's."""
    host = tmp_path / "resolv.conf"
    host.write_text("# host\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nnameserver 2001:db8::1\n"
                    "search example.test lan\noptions ndots:2 edns0\n")
    net = networks(pool_size=0, resolv_conf=host)
    att = net.setup("g1", "web-1")
    assert att.hostname_file.read_text() == "web-1\n"
    assert att.hosts_file.read_text().splitlines() == [
        "127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", f"{att.ip}\tweb-1"]
    assert att.resolv_conf.read_text().splitlines()[1:] == [
        "nameserver 192.0.2.53", "search example.test lan", "options ndots:2 edns0"]
    dns = DnsConfig(name_servers=("10.0.0.2", "10.0.0.3"), search_domains=("corp.test",),
                    options="timeout:1")
    other = net.setup("g2", "db", dns)
    assert other.resolv_conf.read_text().splitlines()[1:] == [
        "nameserver 10.0.0.2", "nameserver 10.0.0.3", "search corp.test", "options timeout:1"]
    # systemd-resolved's stub: its upstreams stand in for 127.0.0.53.
    assert "nameserver 198.51.100.1" in render_resolv_conf(
        "nameserver 127.0.0.53\n", None, "nameserver 198.51.100.1\n")
    with pytest.raises(InvalidInput):
        net.setup("g3", "x", DnsConfig(name_servers=("8.8.8.8\nnameserver 1.1.1.1",)))
    with pytest.raises(InvalidInput):
        net.setup("g3", "bad name\n10.0.0.1 evil")
    with pytest.raises(InvalidInput):
        net.setup("../escape", "web")
    assert net.list() == ["g1", "g2"]


def test_concurrent_setups_of_many_groups_and_of_one_group(networks: MakeNetworks) -> None:
    """Racing setups, through two Networks on one root (as two processes would), get
    distinct IPs for distinct groups and one attachment for one group."""
    nets = [networks(pool_size=2), networks(pool_size=2)]
    nets[0].prewarm()
    ids = [f"g{i}" for i in range(6)] + ["g0", "g0", "g0"]
    start = threading.Barrier(len(ids))

    def run(i: int) -> Attachment:
        start.wait()
        return nets[i % 2].setup(ids[i], ids[i])

    with ThreadPoolExecutor(len(ids)) as pool:
        results = list(pool.map(run, range(len(ids))))
    assert len({r.ip for r in results}) == 6
    assert results[0] == results[6] == results[7] == results[8]
    assert nets[1].list() == [f"g{i}" for i in range(6)]
    for net in nets:
        net.close()
    assert len(namespaces(nets[0].data_root)) == 6 + nets[0].pooled()
