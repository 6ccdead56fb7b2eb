"""Virtual networks on one node: a bridge per subnet, isolation per virtual network.

ACI places a group with ``subnetIds`` privately in a subnet of a virtual
network: it gets an address from the subnet's range, groups of the same
virtual network reach it (on its declared ports, which the group's own filter
enforces, as for public groups), and nothing else does.

skiff makes each subnet a CNI bridge of its own, named from a hash of the
data root, the virtual network and the subnet::

    sv<6 hex: the virtual network><5 hex: the subnet>     (13 characters)

so that every bridge of one virtual network shares the prefix ``sv<6 hex>``,
which nftables matches with a wildcard (``"sv1a2b3c*"``). One host table per
virtual network (``inet skiffvnet_<6 hex>``) then holds its whole isolation in
two rules:

- *forward*: a new connection forwarded onto one of its bridges from any
  interface that is not one of its bridges is dropped: other virtual networks,
  the public network and other machines cannot reach its groups; its subnets
  reach each other (routed by the host, bridge to bridge). The node itself
  does not forward what it sends, so it still reaches their declared ports.
- *postrouting*: what leaves the virtual network for anything but skiff's
  bridges is masqueraded, so private groups reach the internet through the
  host. CNI's own ``ipMasq`` is off for subnets: it would also masquerade
  traffic between subnets of one virtual network, and the receiving group
  would see it come from its gateway, the node, not from the group that sent it.

Addresses: Azure keeps the first four addresses of a subnet and its last; so
does skiff. The gateway (the bridge's address) is the first, groups get the
fifth on.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import subprocess
from pathlib import Path
from typing import Any

from skiff.core.spec import SubnetPlacement
from skiff.errors import InvalidInput, NetworkConflict, NetworkError

#: Every subnet bridge's name starts so; the public bridge's with ``sk``.
BRIDGE_PREFIX = "sv"
#: The smallest subnet Azure allows (/29: three addresses for groups).
MAX_PREFIX_LEN = 29
_CNI_VERSION = "1.0.0"
_NFT = "/usr/sbin/nft"
_IP = "/usr/sbin/ip"
_TIMEOUT_S = 10


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _tag(data_root: Path) -> str:
    return _digest(str(data_root.resolve()))[:8]


def vnet_prefix(data_root: Path, vnet: str) -> str:
    """The name prefix shared by the bridges of one virtual network."""
    return BRIDGE_PREFIX + _digest(_tag(data_root), vnet.lower())[:6]


def bridge(data_root: Path, subnet: SubnetPlacement) -> str:
    """The bridge of one subnet of a virtual network."""
    return vnet_prefix(data_root, subnet.vnet) + _digest(
        _tag(data_root), subnet.vnet.lower(), subnet.subnet.lower())[:5]


def parse_prefix(prefix: str) -> ipaddress.IPv4Network:
    """A subnet's range, as Azure accepts it: IPv4, no host bits, /29 or larger."""
    try:
        net = ipaddress.IPv4Network(prefix)
    except ValueError as exc:
        raise InvalidInput(f"{prefix!r} is not an IPv4 address prefix (CIDR): {exc}") from exc
    if net.prefixlen > MAX_PREFIX_LEN:
        raise InvalidInput(f"the subnet {net} is too small: a subnet is /{MAX_PREFIX_LEN} "
                           "or larger")
    return net


def cni_config(data_root: Path, subnet: SubnetPlacement, *, ipam_dir: Path, mtu: int | None,
               taken: list[tuple[str, ipaddress.IPv4Network]]) -> dict[str, Any]:
    """The CNI configuration list of ``subnet``. ``taken``: the host's routes
    (device, destination) and the public network's; NetworkConflict if the
    subnet overlaps one that is not its own bridge's or another subnet bridge's."""
    net = parse_prefix(subnet.prefix)
    name = bridge(data_root, subnet)
    for dev, other in taken:
        if dev == name or dev.startswith(BRIDGE_PREFIX):
            continue  # its own route, or another virtual network's (checked by the API)
        if net.overlaps(other):
            raise NetworkConflict(f"the subnet {net} overlaps the host's route to {other} "
                                  f"(on {dev}); choose another address prefix")
    first = net.network_address
    conf: dict[str, Any] = {
        "type": "bridge", "bridge": name, "isGateway": True, "ipMasq": False,
        "hairpinMode": True,
        "ipam": {"type": "host-local",
                 "ranges": [[{"subnet": str(net), "gateway": str(first + 1),
                              "rangeStart": str(first + 4),
                              "rangeEnd": str(net.broadcast_address - 1)}]],
                 "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(ipam_dir)}}
    if mtu:
        conf["mtu"] = mtu
    return {"cniVersion": _CNI_VERSION, "name": f"skiff-{name}",
            "plugins": [conf, {"type": "firewall", "backend": "iptables"}]}


# ---- isolation: one host table per virtual network ------------------------------------


def vnet_table(prefix: str) -> str:
    if not prefix.startswith(BRIDGE_PREFIX) or not prefix.isalnum() or len(prefix) > 12:
        raise InvalidInput(f"{prefix!r} is not a virtual network's bridge prefix")
    return "skiffvnet_" + prefix.removeprefix(BRIDGE_PREFIX)


def isolation_ruleset(prefix: str, public_bridge: str) -> str:
    """The nft script that (re)makes the isolation of the virtual network whose
    bridges are named ``prefix*``."""
    name = vnet_table(prefix)
    if not public_bridge.isalnum():
        raise InvalidInput(f"{public_bridge!r} is not a bridge name")
    mine = f'"{prefix}*"'
    return (f"add table inet {name}\n"
            f"delete table inet {name}\n"
            f"table inet {name} {{\n"
            f"\tchain forward {{\n"
            f"\t\ttype filter hook forward priority filter; policy accept;\n"
            f"\t\toifname {mine} iifname != {mine} ct state new drop\n"
            f"\t}}\n"
            f"\tchain postrouting {{\n"
            f"\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
            f'\t\tiifname {mine} oifname != "{BRIDGE_PREFIX}*" oifname != "{public_bridge}" '
            f"masquerade\n"
            f"\t}}\n"
            f"}}\n")


def _run(cmd: list[str], *, stdin: str | None = None) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(cmd, input=None if stdin is None else stdin.encode(),
                              capture_output=True, timeout=_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise NetworkError(f"{Path(cmd[0]).name} could not run: {exc}") from exc


def install_isolation(prefix: str, public_bridge: str) -> None:
    """Isolate the virtual network ``prefix*`` (atomically; idempotent)."""
    done = _run([_NFT, "-f", "-"], stdin=isolation_ruleset(prefix, public_bridge))
    if done.returncode != 0:
        raise NetworkError("nft refused the virtual network's rules: "
                           + done.stderr.decode(errors="replace").strip()[:400])


def isolation_installed(prefix: str) -> bool:
    return _run([_NFT, "list", "table", "inet", vnet_table(prefix)]).returncode == 0


def remove(data_root: Path, vnet: str) -> None:
    """Remove what a virtual network left on the host once no group uses it: its
    bridges and its table. Idempotent."""
    prefix = vnet_prefix(data_root, vnet)
    with contextlib.suppress(OSError):
        for dev in sorted(p.name for p in Path("/sys/class/net").iterdir()):
            if dev.startswith(prefix):
                _run([_IP, "link", "delete", dev])
    # Its table, and the host guards of its bridges (firewall.host_table's names).
    names = [vnet_table(prefix)] + [
        line.split()[-1] for line in _run([_NFT, "list", "tables", "inet"]).stdout.decode()
        .splitlines() if line.split()[-1:] and line.split()[-1].startswith(f"skiff_{prefix}")]
    script = "".join(f"add table inet {n}\ndelete table inet {n}\n" for n in names)
    done = _run([_NFT, "-f", "-"], stdin=script)
    if done.returncode != 0:
        raise NetworkError("nft cannot remove the virtual network's rules: "
                           + done.stderr.decode(errors="replace").strip()[:400])


def enable_proxy_arp(interface: str) -> None:
    """Answer ARP on ``interface`` for the addresses routed elsewhere (the groups'
    of a routable public pool), so other machines on its link reach them."""
    if not interface or "/" in interface or interface in (".", ".."):
        raise InvalidInput(f"{interface!r} is not an interface name")
    path = Path("/proc/sys/net/ipv4/conf") / interface / "proxy_arp"
    try:
        path.write_text("1\n")
        Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
    except FileNotFoundError as exc:
        raise NetworkError(f"the public interface {interface} does not exist") from exc
    except OSError as exc:
        raise NetworkError(f"cannot enable proxy ARP on {interface}: {exc.strerror}") from exc
