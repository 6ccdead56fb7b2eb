"""Port filtering for groups, and the host's protection from them.

ACI makes only the ports of a group's ``ipAddress.ports`` reachable from
outside the group. CNI's ``firewall`` plugin only adds ACCEPT rules and the
host's FORWARD policy is ACCEPT, so the filtering is ours. It lives in two
places, both nftables tables written by one atomic ``nft -f -`` each:

- **Inside each group's network namespace** (``inet skiff``, an input hook,
  policy drop): loopback, replies to the group's own connections, ICMP echo
  and the declared TCP/UDP ports are accepted; every other new connection is
  dropped. The identity endpoint's address (169.254.169.254, on the
  namespace's ``lo``) is reached from inside the group only: what comes for
  it through any other interface is dropped, whatever ports the group
  declares; its port 80 is redirected (a nat output hook) to the port the
  endpoint listens on, so that port 80 stays the containers'. The table
  lives and dies with the namespace, so a torn-down group leaves no rule on
  the host, and re-applying it (on every start, adoption included) restores
  it. Containers of the group share the namespace, so
  they reach each other through ``lo`` on any port. Nothing else is
  trusted, the node itself (the bridge gateway) included: its HTTP probes
  run from inside the namespace, through ``lo``
  (:mod:`skiff.engine.group.probes`).
- **On the host, per bridge** (``inet skiff_<tag>``, an input hook): what
  comes in on the bridge for the host's own addresses is dropped, except
  DNS (UDP and TCP 53) to the gateway, where skiff's resolver for the groups
  listens, the API's port on the gateway when the operator lets the groups
  reach the API (``skiff serve --api-for-groups``, :mod:`skiff.gateway`), and
  replies to connections the host opened. Traffic the
  host forwards (to other groups, out through NAT) does not pass the input
  hook and is not affected.

Applying a group's filter is one ``nsenter --net=… nft -f -`` (≈ 3 ms here),
so it costs little on a group's start path.
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Sequence
from pathlib import Path

from skiff.core.identity import METADATA_ADDRESS, METADATA_LISTEN_PORT, METADATA_PORT
from skiff.core.spec import Port
from skiff.errors import InvalidInput, NetworkError

#: The table in each group's namespace.
GROUP_TABLE = "skiff"
_NFT = "/usr/sbin/nft"
_NSENTER = "/usr/bin/nsenter"
_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}  # nft's messages are matched
_TIMEOUT_S = 10  # nft answers in milliseconds; a hang is a broken kernel or binary


def _ports(ports: Sequence[Port]) -> tuple[list[int], list[int]]:
    """The TCP and UDP port numbers, checked, sorted and without duplicates."""
    tcp: set[int] = set()
    udp: set[int] = set()
    for p in ports:
        if not 1 <= p.port <= 65535:
            raise InvalidInput(f"port {p.port} is not between 1 and 65535")
        protocol = p.protocol.upper()
        if protocol == "TCP":
            tcp.add(p.port)
        elif protocol == "UDP":
            udp.add(p.port)
        else:
            raise InvalidInput(f"port {p.port}: protocol {p.protocol!r} is neither TCP nor UDP")
    return sorted(tcp), sorted(udp)


def _ipv4(address: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(address)
    except ValueError as exc:
        raise InvalidInput(f"{address!r} is not an IPv4 address") from exc


def group_ruleset(ports: Sequence[Port], *, replace: bool = True) -> str:
    """The nft script that makes a group's inbound filter: it replaces any
    earlier one, or with ``replace=False`` fails if there is one."""
    tcp, udp = _ports(ports)
    rules = ['iif "lo" accept',
             # The identity endpoint answers the group alone, never a neighbour that sends
             # to its address through the group's veth.
             f"ip daddr {METADATA_ADDRESS} drop",
             "ct state established,related accept",
             "icmp type echo-request accept"]
    if tcp:
        rules.append("tcp dport { " + ", ".join(map(str, tcp)) + " } accept")
    if udp:
        rules.append("udp dport { " + ", ".join(map(str, udp)) + " } accept")
    body = "".join(f"\t\t{rule}\n" for rule in rules)
    # "create" fails if the table exists, and nft applies a script as one
    # transaction: so a fresh namespace gets the table at once, and a second
    # application fails as a whole and leaves the table as it was.
    head = (f"add table inet {GROUP_TABLE}\ndelete table inet {GROUP_TABLE}\n" if replace
            else f"create table inet {GROUP_TABLE}\n")
    return (head +
            f"table inet {GROUP_TABLE} {{\n"
            f"\tchain input {{\n"
            f"\t\ttype filter hook input priority filter; policy drop;\n"
            f"{body}"
            f"\t}}\n"
            # The identity endpoint listens on another port of its address (see
            # METADATA_LISTEN_PORT): what the group sends to port 80 there goes to it.
            f"\tchain metadata {{\n"
            f"\t\ttype nat hook output priority -100; policy accept;\n"
            f"\t\tip daddr {METADATA_ADDRESS} tcp dport {METADATA_PORT} "
            f"dnat ip to {METADATA_ADDRESS}:{METADATA_LISTEN_PORT}\n"
            f"\t}}\n"
            f"}}\n")


class _Exists(NetworkError):
    """nft refused to create what exists already."""


def _nft(script: str, *, netns_path: Path | None = None) -> None:
    cmd = [_NFT, "-f", "-"]
    if netns_path is not None:
        cmd = [_NSENTER, f"--net={netns_path}", *cmd]
    try:
        done = subprocess.run(cmd, input=script.encode(), capture_output=True,
                              timeout=_TIMEOUT_S, check=False, env=_ENV)
    except (OSError, subprocess.SubprocessError) as exc:
        raise NetworkError(f"nft could not run: {exc}") from exc
    if done.returncode != 0:
        if b"File exists" in done.stderr:
            raise _Exists(f"nft: {done.stderr.decode(errors='replace').strip()[:200]}")
        where = f" in {netns_path}" if netns_path is not None else ""
        detail = (done.stderr or done.stdout).decode(errors="replace").strip()[:500]
        raise NetworkError(f"nft refused the rules{where}: {detail}")


def apply_group_filter(netns_path: Path, ports: Sequence[Port]) -> None:
    """Let only ``ports`` (and ``lo``, replies, ping) into the group's
    namespace. Idempotent: the table is replaced as a whole, atomically.

    Deleting a table that hooks packets costs ≈ 20 ms here (the kernel waits
    for readers to finish), so the table is first created as new (≈ 3 ms, the
    case on a group's first start) and only replaced when that fails because
    it exists (after a restart of skiff, say)."""
    try:
        _nft(group_ruleset(ports, replace=False), netns_path=netns_path)
    except _Exists:
        _nft(group_ruleset(ports), netns_path=netns_path)


# ---- the host side ---------------------------------------------------------------------


def host_table(bridge: str) -> str:
    """The host's table guarding ``bridge`` (``sk<tag>`` → ``skiff_<tag>``)."""
    if not bridge.isascii() or not bridge.replace("-", "").isalnum() or len(bridge) > 15:
        raise InvalidInput(f"{bridge!r} is not an interface name")
    return "skiff_" + bridge.removeprefix("sk")


def host_guard_ruleset(bridge: str, gateway: str, api_port: int | None = None) -> str:
    """The nft script that (re)makes the host's guard for ``bridge``; ``api_port``: the
    TCP port on the gateway where the groups reach the API (None: closed)."""
    gw = _ipv4(gateway)
    name = host_table(bridge)
    iif = f'iifname "{bridge}"'
    api = ""
    if api_port is not None:
        if not 1 <= api_port <= 65535:
            raise InvalidInput(f"port {api_port} is not between 1 and 65535")
        api = f"\t\t{iif} ip daddr {gw} tcp dport {api_port} accept\n"
    return (f"add table inet {name}\n"
            f"delete table inet {name}\n"
            f"table inet {name} {{\n"
            f"\tchain input {{\n"
            f"\t\ttype filter hook input priority filter; policy accept;\n"
            f"\t\t{iif} ct state established,related accept\n"
            f"\t\t{iif} ip daddr {gw} udp dport 53 accept\n"
            f"\t\t{iif} ip daddr {gw} tcp dport 53 accept\n"
            f"{api}"
            f"\t\t{iif} drop\n"
            f"\t}}\n"
            f"}}\n")


def install_host_guard(bridge: str, gateway: str, api_port: int | None = None) -> None:
    """Drop what the groups on ``bridge`` send to the host itself, but DNS to
    ``gateway`` (and TCP ``api_port`` there, when given). Idempotent: the table is
    replaced as a whole, atomically."""
    _nft(host_guard_ruleset(bridge, gateway, api_port))


def remove_host_guard(bridge: str) -> None:
    """Remove the host's guard for ``bridge``; nothing happens if there is none."""
    name = host_table(bridge)
    _nft(f"add table inet {name}\ndelete table inet {name}\n")


def host_guard_installed(bridge: str) -> bool:
    """Whether the host has a guard for ``bridge``."""
    try:
        done = subprocess.run([_NFT, "list", "table", "inet", host_table(bridge)],
                              capture_output=True, timeout=_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise NetworkError(f"nft could not run: {exc}") from exc
    return done.returncode == 0


def apply(script: str) -> None:
    """Apply an nft ``script`` on the host, as one transaction (the fetch namespace's rules,
    :mod:`~skiff.engine.network.fetching`)."""
    _nft(script)
