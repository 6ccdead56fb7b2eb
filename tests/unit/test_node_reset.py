"""`skiff node reset` without root: which rules are the node's, its names, the locks, purges."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from skiff.cli.main import main
from skiff.engine.locking import claim_node, hold_serving
from skiff.engine.network.addressing import root_tag
from skiff.engine.network.leftovers import (
    TableLeftovers,
    filter_leftovers,
    nat_leftovers,
    node_network,
)
from skiff.engine.reset import Monitor, check_purgeable, forget_slots
from skiff.errors import InvalidInput, NodeBusy

NAT = """\
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-aaaa - [0:0]
:CNI-bbbb - [0:0]
-A POSTROUTING -s 10.90.4.2/32 -m comment --comment "name: \\"skiff-1234abcd\\" id: \\"sk-1234abcd-0001\\"" -j CNI-aaaa
-A POSTROUTING -s 10.91.0.2/32 -m comment --comment "name: \\"skiff-99999999\\" id: \\"sk-99999999-0001\\"" -j CNI-bbbb
-A CNI-aaaa -d 10.90.4.0/23 -m comment --comment "name: \\"skiff-1234abcd\\" id: \\"sk-1234abcd-0001\\"" -j ACCEPT
-A CNI-aaaa ! -d 224.0.0.0/4 -m comment --comment "name: \\"skiff-1234abcd\\" id: \\"sk-1234abcd-0001\\"" -j MASQUERADE
-A CNI-bbbb ! -d 224.0.0.0/4 -m comment --comment "name: \\"skiff-99999999\\" id: \\"sk-99999999-0001\\"" -j MASQUERADE
COMMIT
"""  # noqa: E501 -- iptables-save's lines as they are

FILTER_HEAD = """\
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:CNI-ADMIN - [0:0]
:CNI-FORWARD - [0:0]
-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN
-A CNI-FORWARD -d 10.90.4.2/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A CNI-FORWARD -s 10.90.4.2/32 -j ACCEPT
"""
OTHERS = """\
-A CNI-FORWARD -d 10.95.20.5/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A CNI-FORWARD -s 10.95.20.5/32 -j ACCEPT
"""
MINE = (ipaddress.IPv4Network("10.90.4.0/23"),)


def test_nat_leftovers_are_the_rules_and_chains_that_name_the_nodes_networks() -> None:
    """The POSTROUTING jump commented with the node's network goes, and its chain is
    flushed and deleted; another skiff's masquerading stays."""
    found = nat_leftovers(NAT, ["skiff-1234abcd"])
    assert [r.split()[3] for r in found.rules] == ["10.90.4.2/32"]
    assert found.chains == ("CNI-aaaa",)
    script = found.script("nat").splitlines()
    assert script[0] == "*nat"
    assert script[-1] == "COMMIT"
    assert script[1].startswith("-D POSTROUTING -s 10.90.4.2/32")
    assert script[2:4] == ["-F CNI-aaaa", "-X CNI-aaaa"]
    assert not nat_leftovers(NAT, ["skiff-00000000"])


def test_filter_leftovers_keep_the_shared_chains_while_others_use_them() -> None:
    """The firewall plugin's ACCEPT rules for the node's addresses go; CNI-FORWARD and
    CNI-ADMIN stay while another network's rules are in them."""
    found = filter_leftovers(FILTER_HEAD + OTHERS + "COMMIT\n", MINE)
    assert len(found.rules) == 2
    assert all("10.90.4.2/32" in rule for rule in found.rules)
    assert found.chains == ()


def test_filter_leftovers_take_the_shared_chains_once_nothing_else_is_in_them() -> None:
    """With only the node's rules and the admin jump in CNI-FORWARD, the chains and the
    FORWARD jump to them go too (the plugin makes them again when it next needs them)."""
    found = filter_leftovers(FILTER_HEAD + "COMMIT\n", MINE)
    assert found.chains == ("CNI-FORWARD", "CNI-ADMIN")
    assert any(rule.startswith("-A FORWARD ") for rule in found.rules)
    admin = FILTER_HEAD + '-A CNI-ADMIN -s 192.0.2.1/32 -j DROP\nCOMMIT\n'
    assert filter_leftovers(admin, MINE).chains == ()  # an operator's override stays
    assert not filter_leftovers("*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n", MINE)


def test_table_leftovers_delete_rules_before_their_chains() -> None:
    """The restore script deletes each rule (-D), then flushes and deletes the chains."""
    script = TableLeftovers(("-A FORWARD -j CNI-FORWARD",), ("CNI-FORWARD",)).script("filter")
    assert script == "*filter\n-D FORWARD -j CNI-FORWARD\n-F CNI-FORWARD\n-X CNI-FORWARD\n" \
                     "COMMIT\n"


def _record(path: Path, bridge: str, subnet: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"slot": "x", "netns": "n", "path": "p", "result": None,
                                "config": {"plugins": [{"bridge": bridge, "ipam": {
                                    "ranges": [[{"subnet": subnet}]]}}]}}))


def test_node_network_names_come_from_the_tag_and_the_records(tmp_path: Path) -> None:
    """The public bridge from the data root's tag; subnet bridges, virtual network prefixes
    and address ranges from the slot records wherever they lie."""
    root = tmp_path / "root"
    tag = root_tag(root)
    (root / "network" / "vnets").mkdir(parents=True)
    (root / "network" / "vnets" / "sv0a0b0c").write_text("vnet-a")
    (root / "network" / "network.json").write_text('{"subnet": "10.90.4.0/23"}')
    _record(root / "network" / "pool" / "a.json", f"sk{tag}", "10.90.4.0/23")
    _record(root / "network" / "groups" / "g1" / "cni.json", "sv0a0b0c12345", "10.1.0.0/24")
    _record(root / "network" / "pools" / "sv0d0e0f00000" / "b.json", "sv0d0e0f00000",
            "10.2.0.0/24")
    node = node_network(root)
    assert node.bridges[0] == f"sk{tag}"
    assert set(node.bridges[1:]) == {"sv0a0b0c12345", "sv0d0e0f00000"}
    assert node.vnet_prefixes == ("sv0a0b0c", "sv0d0e0f")
    assert {str(s) for s in node.subnets} == {"10.90.4.0/23", "10.1.0.0/24", "10.2.0.0/24"}
    assert node.network_names[0] == f"skiff-{tag}"
    assert node.netns_prefix == f"sk-{tag}-"
    bare = node_network(tmp_path / "never-made")
    assert bare.bridges == (f"sk{root_tag(tmp_path / 'never-made')}",)
    assert not bare.subnets


def test_forget_slots_keeps_the_remembered_subnet(tmp_path: Path) -> None:
    """After a reset the records of slots and leases go; network.json stays."""
    root = tmp_path / "network"
    _record(root / "groups" / "g1" / "cni.json", "skx", "10.0.0.0/24")
    (root / "ipam" / "skiff-x").mkdir(parents=True)
    (root / "ipam" / "skiff-x" / "10.0.0.2").write_text("sk-x")
    (root / "network.json").write_text("{}")
    forget_slots(root)
    assert not list((root / "groups").iterdir())
    assert not list((root / "ipam").iterdir())
    assert (root / "network.json").exists()


def test_a_reset_and_a_server_exclude_each_other(tmp_path: Path) -> None:
    """A server's lock refuses a reset; a reset's lock refuses a server; servers share."""
    first = hold_serving(tmp_path)
    second = hold_serving(tmp_path)  # two servers: not this lock's business
    try:
        with pytest.raises(NodeBusy, match="skiff serve runs"), claim_node(tmp_path):
            pass
    finally:
        os.close(first)
        os.close(second)
    with claim_node(tmp_path), pytest.raises(NodeBusy, match="reset is under way"):
        hold_serving(tmp_path)
    with claim_node(tmp_path / "missing"):
        assert not (tmp_path / "missing").exists()  # a reset creates no data root


def test_reset_refuses_while_the_server_runs(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """`skiff node reset` on a served data root exits 1 with one clear line, touching
    nothing."""
    monkeypatch.setattr(os, "geteuid", lambda: 0)  # the lock refuses before root matters
    (tmp_path / "skiff.db").write_text("")
    fd = hold_serving(tmp_path)
    try:
        result = CliRunner().invoke(main, ["node", "reset", "--data-root", str(tmp_path),
                                           "--force", "--purge"])
    finally:
        os.close(fd)
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines() == [
        f"error: NodeBusy: skiff serve runs on {tmp_path}: stop it first (SIGTERM; its "
        "containers keep running)"]
    assert (tmp_path / "skiff.db").exists()


def test_purge_refuses_a_directory_that_holds_no_skiff_data(tmp_path: Path) -> None:
    """A mistyped --data-root with someone's files in it is never deleted; an empty
    one, a missing one or skiff's own is."""
    (tmp_path / "thesis.tex").write_text("years of work")
    with pytest.raises(InvalidInput, match="holds no skiff data"):
        check_purgeable(tmp_path)
    with pytest.raises(InvalidInput):
        check_purgeable(Path("/"))
    check_purgeable(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    check_purgeable(tmp_path / "empty")
    (tmp_path / "skiff.db").write_text("")
    check_purgeable(tmp_path)


def test_a_monitor_names_its_group() -> None:
    """conmon's -n is <group>_<container>: the group is all before the last '_'."""
    assert Monitor(1, "c1", "my_group_web").group == "my_group"
    assert Monitor(1, "c1", "plain").group == "plain"


def test_node_reset_help_says_how_to_uninstall() -> None:
    """`skiff node reset --help` names its options and the uninstall steps."""
    result = CliRunner().invoke(main, ["node", "reset", "--help"])
    assert result.exit_code == 0
    for text in ("--data-root", "--force", "--purge", "--grace", "pip uninstall skiff"):
        assert text in result.output
