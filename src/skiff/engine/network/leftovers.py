"""What a node's networks left on the host, found by name and removed: a reset's sweep.

A node tears its networks down through their records (CNI DEL with the stored
ADD result, :mod:`~skiff.engine.network.teardown`), which is exact as long as the
records are. ``skiff node reset`` does that first; this sweep then finds by
name whatever no record names any more (a record lost with an older data root,
a namespace whose DEL failed, rules a plugin left behind) and removes it:

- network namespaces ``sk-<tag>-*`` in ``/run/netns`` (their veths go with them);
- links: the public bridge ``sk<tag>``, the bridges of its virtual networks'
  subnets (``sv…``, known from the data root's records) and any port still on them;
- nftables tables: the bridges' host guards (``inet skiff_<tag>``,
  ``inet skiff_sv…``) and the virtual networks' isolation (``inet skiffvnet_…``);
- iptables rules of the CNI plugins: the ``bridge`` plugin's masquerading
  (``nat``: rules commented ``name: "skiff-<tag>"`` and their ``CNI-…`` chains)
  and the ``firewall`` plugin's ACCEPT rules for the node's addresses (``filter``:
  ``CNI-FORWARD``); once nothing else is in them, the plugin's shared chains
  ``CNI-FORWARD`` and ``CNI-ADMIN`` and the jump to them go too (the plugin makes
  them again at its next ADD, for whoever uses it then).

Finding is pure where it can be (:func:`nat_leftovers`, :func:`filter_leftovers`
read ``iptables-save``'s text), so the rules' selection is tested without root.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shlex
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skiff.engine.network import netns, subnets
from skiff.engine.network.addressing import bridge_name, root_tag
from skiff.engine.network.firewall import host_table
from skiff.errors import NetworkError, SkiffError

_NFT = "/usr/sbin/nft"
_IP = "/usr/sbin/ip"
_ENV = {"PATH": "/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
_TIMEOUT_S = 30
#: The firewall plugin's chains, shared by every CNI network of the host.
FORWARD_CHAIN, ADMIN_CHAIN = "CNI-FORWARD", "CNI-ADMIN"
_BUILTIN = frozenset({"INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"})


@dataclass(frozen=True)
class NodeNetwork:
    """The names a data root's networks have on the host."""

    tag: str
    #: The public bridge, then the subnet bridges the records name.
    bridges: tuple[str, ...]
    #: The virtual networks' bridge prefixes (``sv<6 hex>``).
    vnet_prefixes: tuple[str, ...] = ()
    #: The ranges the node's groups had addresses from.
    subnets: tuple[ipaddress.IPv4Network, ...] = ()

    @property
    def netns_prefix(self) -> str:
        return f"sk-{self.tag}-"

    @property
    def network_names(self) -> tuple[str, ...]:
        """The CNI networks' names (the public one, then one per subnet bridge)."""
        return (f"skiff-{self.tag}", *(f"skiff-{b}" for b in self.bridges[1:]))


def _records(root: Path) -> Iterator[dict[str, Any]]:
    """Every slot record under ``<data root>/network``, wherever it is."""
    for pattern in ("pool/*.json", "pools/*/*.json", "work/*.json", "groups/*/cni.json"):
        for path in sorted(root.glob(pattern)):
            with contextlib.suppress(OSError, ValueError):
                doc = json.loads(path.read_bytes())
                if isinstance(doc, dict):
                    yield doc


def node_network(data_root: Path) -> NodeNetwork:
    """The names of ``data_root``'s networks: its tag's, and those its records hold
    (a data root that does not exist, or was purged, has its tag's alone)."""
    root = data_root / "network"
    bridges = [bridge_name(data_root)]
    prefixes: set[str] = set()
    ranges: set[ipaddress.IPv4Network] = set()
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        ranges.add(ipaddress.IPv4Network(json.loads((root / "network.json").read_bytes())
                                         ["subnet"]))
    for doc in _records(root):
        with contextlib.suppress(KeyError, IndexError, TypeError, ValueError):
            plugin = doc["config"]["plugins"][0]
            bridge = str(plugin["bridge"])
            if bridge not in bridges:
                bridges.append(bridge)
            ranges.add(ipaddress.IPv4Network(plugin["ipam"]["ranges"][0][0]["subnet"]))
    with contextlib.suppress(OSError):
        prefixes.update(p.name for p in (root / "vnets").iterdir())
    prefixes.update(b[:8] for b in bridges[1:] if b.startswith(subnets.BRIDGE_PREFIX))
    with contextlib.suppress(OSError):
        prefixes.update(p.name[:8] for p in (root / "pools").iterdir()
                        if p.name.startswith(subnets.BRIDGE_PREFIX))
    return NodeNetwork(tag=root_tag(data_root), bridges=tuple(bridges),
                       vnet_prefixes=tuple(sorted(prefixes)),
                       subnets=tuple(sorted(ranges)))


# ---- iptables: which rules are the node's -----------------------------------------------


@dataclass(frozen=True)
class TableLeftovers:
    """Rules (as ``iptables-save`` writes them, ``-A CHAIN ...``) and chains to remove
    from one iptables table."""

    rules: tuple[str, ...] = ()
    chains: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.rules or self.chains)

    def script(self, table: str) -> str:
        """The ``iptables-restore --noflush`` input that removes them."""
        lines = [f"*{table}", *("-D" + rule[2:] for rule in self.rules)]
        lines += [f"-F {chain}" for chain in self.chains]
        lines += [f"-X {chain}" for chain in self.chains]
        return "\n".join([*lines, "COMMIT", ""])


def _rules(save: str) -> list[tuple[str, list[str]]]:
    """(line, its words) of each rule of an ``iptables-save`` table."""
    found = []
    for line in save.splitlines():
        if line.startswith("-A "):
            with contextlib.suppress(ValueError):
                found.append((line, shlex.split(line)))
    return found


def _option(words: list[str], name: str) -> str | None:
    with contextlib.suppress(ValueError, IndexError):
        return words[words.index(name) + 1]
    return None


def nat_leftovers(save: str, network_names: Iterable[str]) -> TableLeftovers:
    """The bridge plugin's masquerading of the networks ``network_names``: every rule
    whose comment names one (``name: "skiff-<tag>" id: "..."``), and the ``CNI-``
    chains those rules jump to or sit in."""
    marks = tuple(f'name: "{name}" ' for name in network_names)
    rules, chains = [], []
    for line, words in _rules(save):
        comment = _option(words, "--comment") or ""
        if not comment.startswith(marks):
            continue
        chain, target = words[1], _option(words, "-j") or ""
        if chain not in _BUILTIN:
            if chain not in chains:
                chains.append(chain)
            continue  # flushed with its chain
        rules.append(line)
        if target.startswith("CNI-") and target not in chains:
            chains.append(target)
    return TableLeftovers(tuple(rules), tuple(chains))


def _address_in(words: list[str], ranges: tuple[ipaddress.IPv4Network, ...]) -> bool:
    for flag in ("-s", "-d"):
        value = _option(words, flag)
        if value is not None:
            with contextlib.suppress(ValueError):
                address = ipaddress.IPv4Network(value, strict=False)
                if address.prefixlen == 32 and any(address.subnet_of(r) for r in ranges):
                    return True
    return False


def filter_leftovers(save: str, ranges: tuple[ipaddress.IPv4Network, ...]) -> TableLeftovers:
    """The firewall plugin's ACCEPT rules for addresses of ``ranges`` (in
    ``CNI-FORWARD``); and, if nothing else would be left in them, its shared chains
    and every jump to them."""
    rules = _rules(save)
    mine = [line for line, words in rules
            if words[1] == FORWARD_CHAIN and _address_in(words, ranges)]
    others = [(line, words) for line, words in rules if line not in mine]
    shared = (FORWARD_CHAIN, ADMIN_CHAIN)
    chains_there = {line.split()[0][1:] for line in save.splitlines() if line.startswith(":")}
    left_inside = [line for line, words in others if words[1] in shared
                   and not (words[1] == FORWARD_CHAIN and _option(words, "-j") == ADMIN_CHAIN)]
    if left_inside or FORWARD_CHAIN not in chains_there:
        return TableLeftovers(tuple(mine))
    jumps = [line for line, words in others
             if words[1] not in shared and _option(words, "-j") in shared]
    return TableLeftovers(tuple(mine + jumps),
                          tuple(c for c in shared if c in chains_there))


def _iptables_save(table: str) -> str:
    try:
        done = subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True,
                              timeout=_TIMEOUT_S, check=False, env=_ENV)
    except (OSError, subprocess.SubprocessError) as exc:
        raise NetworkError(f"iptables-save could not run: {exc}") from exc
    return done.stdout if done.returncode == 0 else ""


# ---- the sweep ------------------------------------------------------------------------


@dataclass(frozen=True)
class Leftovers:
    """What of a node's networks is on the host now."""

    namespaces: tuple[Path, ...] = ()
    links: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    iptables: dict[str, TableLeftovers] = field(default_factory=dict)

    def describe(self) -> list[str]:
        """One line per thing, as the reset reports it."""
        lines = [f"network namespace {p.name}" for p in self.namespaces]
        lines += [f"network interface {name}" for name in self.links]
        lines += [f"nftables table inet {name}" for name in self.tables]
        for table, found in self.iptables.items():
            lines += [f"iptables -t {table} rule: {rule[3:]}" for rule in found.rules]
            lines += [f"iptables -t {table} chain {chain}" for chain in found.chains]
        return lines


def _links(node: NodeNetwork) -> list[str]:
    try:
        present = sorted(p.name for p in Path("/sys/class/net").iterdir())
    except OSError:
        return []
    bridges = [name for name in present if name in node.bridges
               or any(name.startswith(prefix) for prefix in node.vnet_prefixes)]
    ports = [port.name for bridge in bridges
             for port in sorted(Path(f"/sys/class/net/{bridge}/brif").glob("*"))]
    return ports + bridges


def _nft_tables(node: NodeNetwork) -> list[str]:
    wanted: set[str] = set()
    for name in node.bridges:
        with contextlib.suppress(SkiffError):  # a damaged record's name: no table has it
            wanted.add(host_table(name))
    for prefix in node.vnet_prefixes:
        with contextlib.suppress(SkiffError):
            wanted.add(subnets.vnet_table(prefix))
    guards = tuple(f"skiff_{prefix}" for prefix in node.vnet_prefixes)
    try:
        done = subprocess.run([_NFT, "list", "tables", "inet"], capture_output=True,
                              text=True, timeout=_TIMEOUT_S, check=False, env=_ENV)
    except (OSError, subprocess.SubprocessError) as exc:
        raise NetworkError(f"nft could not run: {exc}") from exc
    names = [line.split()[-1] for line in done.stdout.splitlines() if line.split()]
    return sorted(n for n in names if n in wanted or (guards and n.startswith(guards)))


def find(node: NodeNetwork, netns_dir: Path) -> Leftovers:
    """What of ``node``'s networks is on the host now."""
    try:
        spaces = tuple(sorted(netns_dir / n for n in os.listdir(netns_dir)
                              if n.startswith(node.netns_prefix)))
    except FileNotFoundError:
        spaces = ()
    found = {"nat": nat_leftovers(_iptables_save("nat"), node.network_names),
             "filter": filter_leftovers(_iptables_save("filter"), node.subnets)}
    return Leftovers(namespaces=spaces, links=tuple(_links(node)),
                     tables=tuple(_nft_tables(node)),
                     iptables={table: rules for table, rules in found.items() if rules})


def remove(found: Leftovers) -> list[str]:
    """Remove ``found``: namespaces first (their veths go with them), then the links,
    tables and rules. Returns what could not be removed, one line each."""
    failed: list[str] = []
    for path in found.namespaces:
        try:
            netns.delete(path)
        except SkiffError as exc:
            failed.append(exc.message)
    for name in found.links:
        done = _run([_IP, "link", "delete", name])
        if done.returncode != 0 and Path(f"/sys/class/net/{name}").exists():
            failed.append(f"cannot remove the interface {name}: {done.stderr.strip()}")
    if found.tables:
        script = "".join(f"add table inet {n}\ndelete table inet {n}\n" for n in found.tables)
        done = _run([_NFT, "-f", "-"], stdin=script)
        if done.returncode != 0:
            failed.append(f"nft cannot remove {', '.join(found.tables)}: "
                          f"{done.stderr.strip()[:300]}")
    for table, rules in found.iptables.items():
        done = _run(["iptables-restore", "-w", "--noflush"], stdin=rules.script(table))
        if done.returncode != 0:
            failed.append(f"iptables cannot remove the rules of table {table}: "
                          f"{done.stderr.strip()[:300]}")
    return failed


def _run(cmd: list[str], *, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, input=stdin, capture_output=True, text=True,
                              timeout=_TIMEOUT_S, check=False, env=_ENV)
    except (OSError, subprocess.SubprocessError) as exc:
        return subprocess.CompletedProcess(cmd, 127, "", str(exc))
