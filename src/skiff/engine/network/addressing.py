"""Where a data root's groups sit on the host: names, subnets and CNI configurations.

Names come from a hash of the data root, so two skiff instances on one host
never share a bridge, a network name, leases or namespaces: the bridge is
``sk<8 hex>``, the CNI network ``skiff-<8 hex>``, namespaces
``sk-<8 hex>-<12 hex slot id>`` in ``/run/netns`` (where ``ip netns`` looks).

The default subnet is a /23 (510 groups) in 10.89.0.0-10.95.255.255, which
steers clear of Podman's 10.88.0.0/16: that range holds 896 /23s, and the data
root's hash picks where to start looking; the first one that no host route
overlaps is taken and remembered in ``network.json``. ``NetworkSettings.subnet``
overrides it.

:class:`Addressing` turns that into the CNI configuration lists slots are made
with: the public network's (computed once) and each virtual network subnet's
(checked once against the host's routes and the public network).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import struct
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from skiff.core.spec import SubnetPlacement
from skiff.engine.network import subnets
from skiff.engine.network.cni import CNI_VERSION
from skiff.errors import InvalidInput, NetworkConflict, NetworkError
from skiff.settings import NetworkSettings

# 10.89.0.0/16 … 10.95.0.0/16 in /23s: 7 x 128 candidate subnets.
_RING_FIRST, _RING_LAST, _PREFIX = 89, 95, 23
_RING_SIZE = (_RING_LAST - _RING_FIRST + 1) * 2 ** (_PREFIX - 16)


def root_tag(data_root: Path) -> str:
    """8 hex digits naming a data root in the host's shared namespaces."""
    return hashlib.sha256(str(data_root.resolve()).encode()).hexdigest()[:8]


def bridge_name(data_root: Path) -> str:
    return f"sk{root_tag(data_root)}"  # 10 characters: interface names stop at 15


def subnet_candidates(data_root: Path) -> Iterator[ipaddress.IPv4Network]:
    """Every /23 of the default range, starting where the data root's hash points."""
    digest = hashlib.sha256(str(data_root.resolve()).encode()).digest()
    start = int.from_bytes(digest[8:16], "big") % _RING_SIZE
    per16 = 2 ** (_PREFIX - 16)
    for i in range(_RING_SIZE):
        n = (start + i) % _RING_SIZE
        second, third = _RING_FIRST + n // per16, (n % per16) * 2 ** (24 - _PREFIX)
        yield ipaddress.IPv4Network(f"10.{second}.{third}.0/{_PREFIX}")


def host_routes() -> list[tuple[str, ipaddress.IPv4Network]]:
    """(interface, destination) of the host's IPv4 routes, the default route left out."""
    routes = []
    with open("/proc/net/route") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            dest = ipaddress.IPv4Address(struct.pack("<I", int(cols[1], 16)))
            mask = ipaddress.IPv4Address(struct.pack("<I", int(cols[7], 16)))
            if int(mask):
                routes.append((cols[0], ipaddress.IPv4Network(f"{dest}/{mask}", strict=False)))
    return routes


def host_mtu() -> int | None:
    """The MTU of the interface the default route leaves through, if any."""
    with open("/proc/net/route") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if cols[1] == "00000000" and cols[7] == "00000000":
                with contextlib.suppress(OSError, ValueError):
                    return int(Path(f"/sys/class/net/{cols[0]}/mtu").read_text())
    return None


class Addressing:
    """The names, subnets and CNI configurations of one data root's networks.
    Thread safe; each configuration is computed once per process."""

    def __init__(self, data_root: Path, settings: NetworkSettings, *, root: Path,
                 ipam: Path) -> None:
        self.data_root = data_root
        self.settings = settings
        tag = root_tag(data_root)
        self.bridge = bridge_name(data_root)
        self.network_name = f"skiff-{tag}"
        self.netns_prefix = f"sk-{tag}-"
        self._root = root  # where network.json remembers the subnet
        self._ipam = ipam
        self._lock = threading.Lock()
        self._conf: dict[str, Any] | None = None
        self._subnets: dict[SubnetPlacement, dict[str, Any]] = {}

    @property
    def subnet(self) -> str:
        """The subnet the public groups' addresses come from (fixed at first use)."""
        return str(self.public()["plugins"][0]["ipam"]["ranges"][0][0]["subnet"])

    def _pick_subnet(self) -> ipaddress.IPv4Network:
        # A routable pool lies inside its interface's own network, by design.
        mine = (self.bridge, self.settings.public_interface)
        taken = [net for dev, net in host_routes()
                 if dev not in mine and not dev.startswith(subnets.BRIDGE_PREFIX)]
        if self.settings.subnet is not None:
            try:
                net = ipaddress.IPv4Network(self.settings.subnet)
            except ValueError as exc:
                raise InvalidInput(f"subnet {self.settings.subnet!r}: {exc}") from exc
            return self._unless_taken(net, taken)
        remembered = self._root / "network.json"
        if not remembered.exists():
            free = (n for n in subnet_candidates(self.data_root)
                    if not any(n.overlaps(t) for t in taken))
            first = next(free, None)
            if first is None:
                raise NetworkConflict("host routes overlap every subnet of 10.89.0.0-"
                                      "10.95.255.255; choose one in the network settings")
            fd, tmp = tempfile.mkstemp(dir=self._root, prefix=".network.json.")
            with os.fdopen(fd, "wb") as f:
                f.write(json.dumps({"subnet": str(first)}).encode())
            with contextlib.suppress(FileExistsError):  # the first writer's choice stands
                os.link(tmp, remembered)
            os.unlink(tmp)
        try:
            net = ipaddress.IPv4Network(json.loads(remembered.read_bytes())["subnet"])
        except (ValueError, KeyError, TypeError) as exc:
            raise NetworkError(f"{remembered} names no subnet: {exc}") from exc
        return self._unless_taken(net, taken)

    @staticmethod
    def _unless_taken(net: ipaddress.IPv4Network,
                      taken: list[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
        clash = next((t for t in taken if net.overlaps(t)), None)
        if clash is not None:
            raise NetworkConflict(f"the group subnet {net} overlaps the host's route to {clash}; "
                                  "choose another subnet in the network settings")
        return net

    def public(self) -> dict[str, Any]:
        """The CNI network configuration list of the public network (computed once)."""
        with self._lock:
            if self._conf is None:
                subnet = self._pick_subnet()
                mtu = self.settings.mtu or host_mtu()
                routable = self.settings.public_interface is not None
                if routable:
                    subnets.enable_proxy_arp(str(self.settings.public_interface))
                bridge: dict[str, Any] = {
                    "type": "bridge", "bridge": self.bridge, "isGateway": True,
                    "ipMasq": not routable, "hairpinMode": True,
                    "ipam": {"type": "host-local", "ranges": [[{"subnet": str(subnet)}]],
                             "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(self._ipam)}}
                if mtu:
                    bridge["mtu"] = mtu
                self._conf = {"cniVersion": CNI_VERSION, "name": self.network_name,
                              "plugins": [bridge, {"type": "firewall", "backend": "iptables"}]}
            return self._conf

    def of(self, subnet: SubnetPlacement | None) -> dict[str, Any]:
        """The CNI configuration list of the public network (None) or of ``subnet``."""
        return self.public() if subnet is None else self.of_subnet(subnet)

    def of_subnet(self, subnet: SubnetPlacement) -> dict[str, Any]:
        """The CNI configuration list of a virtual network's subnet (checked once)."""
        with self._lock:
            conf = self._subnets.get(subnet)
        if conf is None:
            public = ipaddress.IPv4Network(self.subnet)
            conf = subnets.cni_config(self.data_root, subnet, ipam_dir=self._ipam,
                                      mtu=self.settings.mtu or host_mtu(),
                                      taken=[*host_routes(), (self.bridge, public)])
            with self._lock:
                self._subnets[subnet] = conf
        return conf

    def forget(self, vnet: str) -> None:
        """Drop the configurations of the virtual network's subnets (it is removed)."""
        with self._lock:
            for placement in [p for p in self._subnets if p.vnet == vnet]:
                del self._subnets[placement]

    def gateway(self, subnet: SubnetPlacement | None = None) -> str:
        """The bridge's address, the groups' gateway: the first of the subnet."""
        prefix = self.subnet if subnet is None else subnet.prefix
        return str(ipaddress.IPv4Network(prefix).network_address + 1)

    def bridge_of(self, subnet: SubnetPlacement | None = None) -> str:
        """The bridge of the public network, or of a virtual network's subnet."""
        return self.bridge if subnet is None else subnets.bridge(self.data_root, subnet)

    def vnet_prefix(self, vnet: str) -> str:
        """The prefix every bridge of the virtual network's subnets starts with."""
        return subnets.vnet_prefix(self.data_root, vnet)

    def check_address_space(self, prefixes: Sequence[str]) -> None:
        """NetworkConflict if a virtual network's range overlaps a route of the host's
        (other than virtual networks' bridges) or the public network."""
        public = ipaddress.IPv4Network(self.subnet)
        taken = [(dev, net) for dev, net in host_routes()
                 if not dev.startswith(subnets.BRIDGE_PREFIX)] + [(self.bridge, public)]
        for text in prefixes:
            net = ipaddress.IPv4Network(text, strict=False)
            for dev, other in taken:
                if net.overlaps(other):
                    what = ("skiff's public network" if dev == self.bridge
                            else f"the host's route on {dev}")
                    raise NetworkConflict(f"the address space {net} overlaps {other}, "
                                          f"{what}: choose another range")
