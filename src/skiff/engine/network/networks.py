"""Group networks: one network namespace per container group, one IP from a CNI bridge.

Every container of a group joins the group's network namespace, so they share
``localhost`` and one address, as in ACI. The address comes from CNI's
standard plugins, called directly with their JSON protocol (no libcni, no
daemon): ``bridge`` with ``host-local`` IPAM (a gateway on the host, outbound
NAT through ``ipMasq``) then ``firewall`` (ACCEPT rules in ``CNI-FORWARD``).
Each plugin's result is the next one's ``prevResult``, as libcni chains them;
DEL runs the chain backwards with the stored result, which lives under the
data root, so a restarted skiff removes exactly what an earlier one added.

Preparing a namespace costs ≈ 40 ms here (namespace and ``lo``: < 1 ms; the
two plugins: the rest), too much for the critical path of a group start. So a
warm pool keeps ``pool_size`` *slots* ready: a namespace with ``lo`` up and the
CNI chain added, holding its own IP. ``setup`` moves a slot from the pool to
the group (a rename) and a background thread refills the pool; with an empty
pool the slot is made inline. Slots are named by a random id, not by the
group, since a pooled slot has no group yet.

The pieces live beside: the CNI protocol and slot records in
:mod:`skiff.engine.network.cni`, namespaces in :mod:`skiff.engine.network.netns`, a group's
``hosts`` and ``resolv.conf`` in :mod:`skiff.engine.network.resolv`, virtual network
subnets in :mod:`skiff.engine.network.subnets`, port filters in
:mod:`skiff.engine.network.firewall`.

Layout under ``<data root>/network``::

    network.json          the subnet derived at first use, so it never moves
    state.lock            held (flock) while a slot is claimed, placed or retired
    ipam/<network>/       host-local's leases
    pool/<slot>.json      ready slots: namespace, CNI config and ADD result
    pools/<bridge>/       one ready slot per virtual network subnet in use
    work/<slot>.json      slots being made or destroyed, under locks/<slot>.lock;
                          one whose lock nobody holds was abandoned by a crash
                          and is destroyed by the next ``Networks``
    groups/<id>/          hosts, hostname, resolv.conf (bind-mounted into the
                          group's containers) and cni.json, the slot's record

A slot's record is in exactly one of those places at any time and moves by
``rename(2)``, so a crash never leaves a slot that nobody will clean up.

Names come from a hash of the data root, so two skiff instances on one host
never share a bridge, a network name, leases or namespaces: the bridge is
``sk<8 hex>``, the CNI network ``skiff-<8 hex>``, namespaces
``sk-<8 hex>-<12 hex slot id>`` in ``/run/netns`` (where ``ip netns`` looks).

The default subnet is a /23 (510 groups) in 10.89.0.0-10.95.255.255, which
steers clear of Podman's 10.88.0.0/16: that range holds 896 /23s, and the data
root's hash picks where to start looking; the first one that no host route
overlaps is taken and remembered in ``network.json``. ``NetworkSettings.subnet``
overrides it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import hashlib
import ipaddress
import json
import logging
import os
import re
import secrets
import shutil
import struct
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from skiff.core.spec import DnsConfig, Port, SubnetPlacement
from skiff.engine import mounts
from skiff.engine.locking import locked
from skiff.engine.network import firewall, netns, subnets
from skiff.engine.network.cni import (
    CNI_VERSION,
    CniRunner,
    Slot,
    read_slot,
    slot_address,
    write_atomic,
)
from skiff.engine.network.resolv import render_hosts, render_resolv_conf
from skiff.errors import InvalidInput, NetworkConflict, NetworkError, SkiffError
from skiff.settings import NetworkSettings

_log = logging.getLogger(__name__)

# 10.89.0.0/16 … 10.95.0.0/16 in /23s: 7 x 128 candidate subnets.
_RING_FIRST, _RING_LAST, _PREFIX = 89, 95, 23
_RING_SIZE = (_RING_LAST - _RING_FIRST + 1) * 2 ** (_PREFIX - 16)
# Where systemd-resolved lists the real upstream servers behind 127.0.0.53.
_RESOLVED_UPSTREAMS = Path("/run/systemd/resolve/resolv.conf")

_GROUP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,61}[A-Za-z0-9])?")




@dataclass(frozen=True)
class Attachment:
    """A group's place on the network: its namespace, address and the files to mount."""

    group_id: str
    netns_path: Path
    ip: str
    prefix_len: int
    gateway: str
    hosts_file: Path
    hostname_file: Path
    resolv_conf: Path
    #: The bridge the group hangs on (the public one, or its subnet's).
    bridge: str = ""


# ---- names, subnets, files: pure helpers ----------------------------------------------


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


def _host_routes() -> list[tuple[str, ipaddress.IPv4Network]]:
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


def _host_mtu() -> int | None:
    with open("/proc/net/route") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if cols[1] == "00000000" and cols[7] == "00000000":
                with contextlib.suppress(OSError, ValueError):
                    return int(Path(f"/sys/class/net/{cols[0]}/mtu").read_text())
    return None


def _check_names(group_id: str, hostname: str | None = None) -> None:
    if not _GROUP_ID.fullmatch(group_id) or ".." in group_id:
        raise InvalidInput(f"{group_id!r} is not a valid group id")
    if hostname is not None and not _HOSTNAME.fullmatch(hostname):
        raise InvalidInput(f"{hostname!r} is not a valid host name (letters, digits, '-', "
                           "'.', at most 63)")


# ---- the networks of one data root -----------------------------------------------------


class Networks:
    """The group networks of one data root. Thread safe; the on-disk state is
    shared safely with other processes on the same data root."""

    def __init__(self, data_root: Path, settings: NetworkSettings | None = None) -> None:
        self.data_root = data_root
        self.settings = settings or NetworkSettings()
        #: Set when skiff serves DNS to the groups: called with a network's gateway
        #: (idempotent) to listen on its port 53, which the groups' resolv.conf then
        #: names. None: the groups use the host's resolvers.
        self.serve_dns: Callable[[str], None] | None = None
        self._subnets: dict[SubnetPlacement, dict[str, Any]] = {}
        # Bridges whose host guard, and virtual networks whose isolation, are in place.
        self._guarded: set[str] = set()
        tag = root_tag(data_root)
        self.bridge = bridge_name(data_root)
        self.network_name = f"skiff-{tag}"
        self._ns_prefix = f"sk-{tag}-"
        self.root = data_root / "network"
        self._ipam = self.root / "ipam"
        self._pool = self.root / "pool"
        self._pools = self.root / "pools"  # <subnet bridge>/<slot>.json: subnets' pools
        self._work = self.root / "work"
        self._locks = self.root / "locks"
        self._groups = self.root / "groups"
        self._vnets = self.root / "vnets"  # <bridge prefix>: the virtual network's key
        self._state_lock = self.root / "state.lock"
        for d in (self._ipam, self._pool, self._pools, self._work, self._locks, self._groups,
                  self._vnets):
            d.mkdir(parents=True, exist_ok=True)
        self._plugins = CniRunner(self.settings.cni_path, self.settings.cni_timeout_s)
        self._lock = threading.Lock()  # the pool's bookkeeping below
        self._config_lock = threading.Lock()
        self._conf: dict[str, Any] | None = None
        self._netns_ready = False
        self._thread: threading.Thread | None = None
        self._creating = 0
        self._draining = 0
        self._closed = False
        self._filling: dict[str, threading.Thread] = {}  # subnet pools being filled
        # One thread finishes teardowns in order (CNI DELs take the iptables lock anyway).
        self._retirer = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="skiff-netns-retire")
        #: The last failure of the background refill, for diagnostics.
        self.pool_error: Exception | None = None
        self._reap()

    # ---- configuration -----------------------------------------------------

    @property
    def subnet(self) -> str:
        """The subnet the groups' addresses come from (fixed at first use)."""
        return str(self._config()["plugins"][0]["ipam"]["ranges"][0][0]["subnet"])

    def _pick_subnet(self) -> ipaddress.IPv4Network:
        # A routable pool lies inside its interface's own network, by design.
        mine = (self.bridge, self.settings.public_interface)
        taken = [net for dev, net in _host_routes()
                 if dev not in mine and not dev.startswith(subnets.BRIDGE_PREFIX)]
        if self.settings.subnet is not None:
            try:
                net = ipaddress.IPv4Network(self.settings.subnet)
            except ValueError as exc:
                raise InvalidInput(f"subnet {self.settings.subnet!r}: {exc}") from exc
            return self._unless_taken(net, taken)
        remembered = self.root / "network.json"
        if not remembered.exists():
            free = (n for n in subnet_candidates(self.data_root)
                    if not any(n.overlaps(t) for t in taken))
            first = next(free, None)
            if first is None:
                raise NetworkConflict("host routes overlap every subnet of 10.89.0.0-"
                                      "10.95.255.255; choose one in the network settings")
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".network.json.")
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

    def _config(self) -> dict[str, Any]:
        """The CNI network configuration list for new slots (computed once)."""
        with self._config_lock:
            if self._conf is None:
                subnet = self._pick_subnet()
                mtu = self.settings.mtu or _host_mtu()
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

    # ---- slots -------------------------------------------------------------

    @staticmethod
    def _netns_path(slot: Slot) -> Path:
        return Path(slot.path)

    def _lock_path(self, slot_id: str) -> Path:
        return self._locks / f"{slot_id}.lock"

    @contextlib.contextmanager
    def _fresh_slot(self, config: dict[str, Any] | None = None,
                    ) -> Iterator[tuple[Slot, Path]]:
        """A new ready slot and its record (in work/, under the slot's lock), on the
        public network or ``config``'s. The ``with`` body must move the record to
        the pool or a group; a slot left behind, or one whose making failed, is
        destroyed."""
        config = config or self._config()
        with self._lock:
            if not self._netns_ready:
                netns.ensure_dir(self.settings.netns_dir)
                self._netns_ready = True
        slot_id = secrets.token_hex(6)
        name = self._ns_prefix + slot_id
        slot = Slot(id=slot_id, netns=name, path=str(self.settings.netns_dir / name),
                     config=config)
        record, lock = self._work / f"{slot_id}.json", self._lock_path(slot_id)
        with locked(lock):
            try:
                write_atomic(record, slot.record())
                netns.create(self._netns_path(slot))
                result = None
                for plugin in config["plugins"]:
                    result = self._plugins.run("ADD", slot, plugin, result)
                    slot = replace(slot, result=result)
                    write_atomic(record, slot.record())  # DEL must know what ADD did
                yield slot, record
            finally:
                if record.exists():
                    try:
                        self._destroy(slot)
                        record.unlink()
                    except (SkiffError, OSError) as exc:
                        _log.warning("slot %s stays for the next clean-up: %s", slot_id, exc)
                lock.unlink(missing_ok=True)

    def _destroy(self, slot: Slot) -> None:
        """CNI DEL through the chain backwards, then remove the namespace."""
        first: SkiffError | None = None
        netns_gone = not mounts.is_mounted(self._netns_path(slot))
        for plugin in reversed(slot.config["plugins"]):
            try:
                self._plugins.run("DEL", slot, plugin, slot.result,
                                  netns="" if netns_gone else None)
            except SkiffError as exc:
                first = first or exc
        if netns_gone:
            self._plugins.unmasquerade(slot)
        netns.delete(self._netns_path(slot))
        if first is not None:
            raise first

    def _retire(self, path: Path, group_dir: Path | None = None) -> bool:
        """Destroy the slot recorded at ``path`` (pool or group; ``group_dir`` goes
        too); False if there is none. The record moves to work/ first, under the
        slot's lock, so a crash midway is finished by the next clean-up."""
        with contextlib.ExitStack() as stack:
            with locked(self._state_lock):
                slot = read_slot(path)
                if slot is None:
                    if group_dir is not None:
                        shutil.rmtree(group_dir, ignore_errors=True)
                    return False
                lock = self._lock_path(slot.id)
                stack.enter_context(locked(lock))
                record = self._work / f"{slot.id}.json"
                os.rename(path, record)
                if group_dir is not None:
                    shutil.rmtree(group_dir)
            self._destroy(slot)
            record.unlink()
            lock.unlink(missing_ok=True)
        return True

    def _reap(self) -> None:
        """Destroy the slots in work/ that nobody is working on: a crash left them."""
        for name in os.listdir(self._work):
            if not name.endswith(".json"):
                continue
            slot_id, record = name.removesuffix(".json"), self._work / name
            lock = self._lock_path(slot_id)
            with locked(lock, blocking=False) as mine:
                if not mine:
                    continue  # being made or destroyed right now
                try:
                    slot = read_slot(record)
                    if slot is not None:
                        self._destroy(slot)
                        record.unlink()
                except (SkiffError, OSError) as exc:
                    _log.warning("cannot clean up network slot %s yet: %s", slot_id, exc)
                    continue
                lock.unlink(missing_ok=True)

    def _usable(self, slot: Slot, config: dict[str, Any]) -> bool:
        """Whether a pooled slot is current: same config, namespace still there
        (a reboot empties /run/netns)."""
        return slot.config == config and mounts.is_mounted(self._netns_path(slot))

    # ---- groups ------------------------------------------------------------

    def _attach(self, slot: Slot, record: Path, group_id: str, hostname: str,
                resolv: str) -> Attachment:
        interface = slot_address(slot)[0]
        group_dir = self._groups / group_id
        group_dir.mkdir(exist_ok=True)
        write_atomic(group_dir / "hosts", render_hosts(str(interface.ip), hostname).encode())
        write_atomic(group_dir / "hostname", f"{hostname}\n".encode())
        write_atomic(group_dir / "resolv.conf", resolv.encode())
        os.rename(record, group_dir / "cni.json")
        return self._attachment(group_id, slot)

    def _attachment(self, group_id: str, slot: Slot) -> Attachment:
        interface, gateway = slot_address(slot)
        group_dir = self._groups / group_id
        return Attachment(group_id=group_id, netns_path=self._netns_path(slot),
                          ip=str(interface.ip), prefix_len=interface.network.prefixlen,
                          gateway=gateway, hosts_file=group_dir / "hosts",
                          hostname_file=group_dir / "hostname",
                          resolv_conf=group_dir / "resolv.conf",
                          bridge=str(slot.config["plugins"][0]["bridge"]))

    def gateway(self, subnet: SubnetPlacement | None = None) -> str:
        """The bridge's address, the groups' gateway: the first of the subnet."""
        prefix = self.subnet if subnet is None else subnet.prefix
        return str(ipaddress.IPv4Network(prefix).network_address + 1)

    def bridge_of(self, subnet: SubnetPlacement | None = None) -> str:
        """The bridge of the public network, or of a virtual network's subnet."""
        return self.bridge if subnet is None else subnets.bridge(self.data_root, subnet)

    def _subnet_config(self, subnet: SubnetPlacement) -> dict[str, Any]:
        """The CNI configuration list of a virtual network's subnet (checked once)."""
        with self._config_lock:
            conf = self._subnets.get(subnet)
        if conf is None:
            public = ipaddress.IPv4Network(self.subnet)
            conf = subnets.cni_config(self.data_root, subnet, ipam_dir=self._ipam,
                                      mtu=self.settings.mtu or _host_mtu(),
                                      taken=[*_host_routes(), (self.bridge, public)])
            with self._config_lock:
                self._subnets[subnet] = conf
        return conf

    def _resolv_conf(self, dns: DnsConfig | None, gateway: str | None = None) -> str:
        if self.serve_dns is not None:
            gateway = gateway or self.gateway()
            self.serve_dns(gateway)
            return render_resolv_conf(f"nameserver {gateway}\n", dns)
        texts = []
        for path in (self.settings.resolv_conf, _RESOLVED_UPSTREAMS):
            try:
                texts.append(path.read_text())
            except OSError:
                texts.append("")
        return render_resolv_conf(texts[0], dns, texts[1])

    def setup(self, group_id: str, hostname: str, dns: DnsConfig | None = None,
              subnet: SubnetPlacement | None = None) -> Attachment:
        """Give the group its namespace and address; a second call returns the same.

        A pooled slot makes this a rename and three small files (≈ 1 ms); with
        an empty pool the slot is made here (≈ 40 ms). The public network's pool
        holds ``pool_size`` slots; a virtual network's ``subnet`` gets a pool of
        one once a group was placed there (its first group pays the CNI ADD). A
        group already set up keeps its attachment and files as they are.
        """
        _check_names(group_id, hostname)
        try:
            config = self._config() if subnet is None else self._subnet_config(subnet)
            resolv = self._resolv_conf(dns, None if subnet is None else self.gateway(subnet))
            stale: list[Path] = []
            pool = self._pool if subnet is None else self._subnet_pool(subnet)
            with locked(self._state_lock):
                found = self.get(group_id)
                if found is None:
                    found = self._claim(group_id, hostname, resolv, config, stale, pool)
            for path in stale:  # outdated pool slots: their failure is not this group's
                try:
                    self._retire(path)
                except SkiffError as exc:
                    _log.warning("cannot retire the outdated slot %s: %s", path.name, exc)
            if found is None:
                with self._fresh_slot(config) as (slot, record), locked(self._state_lock):
                    found = self.get(group_id)
                    if found is None:
                        found = self._attach(slot, record, group_id, hostname, resolv)
                    else:  # set up meanwhile: the new slot joins the pool
                        os.rename(record, pool / record.name)
        except OSError as exc:
            raise NetworkError(f"cannot set up the network of group {group_id}: {exc}") from exc
        if subnet is None:
            self._kick()
        else:
            self._kick_subnet(subnet, config)
        return found

    def _claim(self, group_id: str, hostname: str, resolv: str, config: dict[str, Any],
               stale: list[Path], pool: Path) -> Attachment | None:
        """Attach a slot of ``pool`` to the group (under the state lock); None if the
        pool has no usable one. Outdated slots are added to ``stale``."""
        for name in sorted(os.listdir(pool) if pool.is_dir() else []):
            path = pool / name
            slot = read_slot(path) if name.endswith(".json") else None
            if slot is None:
                continue
            if not self._usable(slot, config):
                stale.append(path)
                continue
            return self._attach(slot, path, group_id, hostname, resolv)
        return None

    def get(self, group_id: str) -> Attachment | None:
        """The group's attachment, or None if it has no network."""
        _check_names(group_id)
        slot = read_slot(self._groups / group_id / "cni.json")
        return None if slot is None else self._attachment(group_id, slot)

    def check(self, group_id: str) -> None:
        """Ask the plugins (CNI CHECK) whether the group's network is still as added."""
        _check_names(group_id)
        slot = read_slot(self._groups / group_id / "cni.json")
        if slot is None:
            raise NetworkError(f"group {group_id} has no network")
        if not mounts.is_mounted(self._netns_path(slot)):
            raise NetworkError(f"the network namespace of group {group_id} is gone")
        for plugin in slot.config["plugins"]:
            self._plugins.run("CHECK", slot, plugin, slot.result)

    def teardown(self, group_id: str, *, wait: bool = True) -> None:
        """Remove the group's network: CNI DEL, namespace, files, lease. Idempotent.

        If a plugin's DEL fails, the error is raised and the slot stays in work/;
        the next teardown, ``drain_pool`` or ``Networks`` tries again.

        ``wait=False`` returns once the group has no network any more (its record
        moved to work/, ≈ 1 ms) and leaves the CNI DEL (≈ 100 ms here, most of it
        the plugins' iptables calls) to a background thread; a crash meanwhile
        leaves the record in work/, where the next ``Networks`` finishes it.
        :meth:`settle` waits for those.
        """
        _check_names(group_id)
        group_dir = self._groups / group_id
        try:
            if not wait:
                self._retire_later(group_dir)
                return
            self._retire(group_dir / "cni.json", group_dir=group_dir)
            if os.listdir(self._work):
                self._reap()  # what an earlier failed teardown left
        except OSError as exc:
            raise NetworkError(f"cannot tear down the network of group {group_id}: "
                               f"{exc}") from exc

    def _retire_later(self, group_dir: Path) -> None:
        with locked(self._state_lock):
            slot = read_slot(group_dir / "cni.json")
            if slot is None:
                shutil.rmtree(group_dir, ignore_errors=True)
                return
            # Locked here, unlocked by the retiring thread: flock belongs to the open
            # file, not the thread, so the lock is held across the hand-over.
            fd = os.open(self._lock_path(slot.id), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            record = self._work / f"{slot.id}.json"
            os.rename(group_dir / "cni.json", record)
            shutil.rmtree(group_dir)
        try:
            self._retirer.submit(self._finish_retire, slot, record, fd)
        except RuntimeError:  # closed: do it here
            self._finish_retire(slot, record, fd)

    def _finish_retire(self, slot: Slot, record: Path, fd: int) -> None:
        try:
            self._destroy(slot)
            record.unlink()
            self._lock_path(slot.id).unlink(missing_ok=True)
        except (SkiffError, OSError) as exc:
            _log.warning("slot %s stays for the next clean-up: %s", slot.id, exc)
        finally:
            os.close(fd)

    def settle(self) -> None:
        """Wait until the networks torn down with ``wait=False`` are gone."""
        with contextlib.suppress(RuntimeError):  # closed: close() waited for them
            self._retirer.submit(lambda: None).result()

    def protect(self, attachment: Attachment, ports: Sequence[Port],
                subnet: SubnetPlacement | None = None) -> None:
        """Filter the group's traffic (call before its containers run): only
        ``ports`` reach it from outside the group, the gateway (the node) excepted;
        the host is guarded from its bridge (once); a virtual network is isolated
        (once). Re-applied on every start, so adoption restores the group's filter."""
        with self._lock:
            todo = [name for name in (attachment.bridge, subnet and self._vnet_prefix(subnet))
                    if name and name not in self._guarded]
        for name in todo:
            if name == attachment.bridge:
                firewall.install_host_guard(attachment.bridge, attachment.gateway)
            else:
                assert subnet is not None  # remembered, so that remove_vnets finds it
                write_atomic(self._vnets / name, subnet.vnet.encode())
                subnets.install_isolation(name, self.bridge)
            with self._lock:
                self._guarded.add(name)
        firewall.apply_group_filter(attachment.netns_path, ports, trusted=attachment.gateway)

    def _vnet_prefix(self, subnet: SubnetPlacement) -> str:
        return subnets.vnet_prefix(self.data_root, subnet.vnet)

    def check_address_space(self, prefixes: Sequence[str]) -> None:
        """NetworkConflict if a virtual network's range overlaps a route of the host's
        (other than virtual networks' bridges) or the public network."""
        public = ipaddress.IPv4Network(self.subnet)
        taken = [(dev, net) for dev, net in _host_routes()
                 if not dev.startswith(subnets.BRIDGE_PREFIX)] + [(self.bridge, public)]
        for text in prefixes:
            net = ipaddress.IPv4Network(text, strict=False)
            for dev, other in taken:
                if net.overlaps(other):
                    what = ("skiff's public network" if dev == self.bridge
                            else f"the host's route on {dev}")
                    raise NetworkConflict(f"the address space {net} overlaps {other}, "
                                          f"{what}: choose another range")

    def gateways(self) -> list[str]:
        """The public network's gateway, then those of the subnets groups are in."""
        found = [self.gateway()]
        for group_id in self.list():
            attachment = self.get(group_id)
            if attachment is not None and attachment.gateway not in found:
                found.append(attachment.gateway)
        return found

    def remove_vnet(self, vnet: str) -> None:
        """Remove a virtual network's bridges, rules and leases from the host (no
        group may be in it any more). Idempotent."""
        prefix = subnets.vnet_prefix(self.data_root, vnet)
        self.settle()  # its groups' bridge ports go before the bridges
        self._drain_subnet_pools(prefix)
        with self._lock:
            self._guarded = {name for name in self._guarded if not name.startswith(prefix)}
        with locked(self._state_lock):
            subnets.remove(self.data_root, vnet)
            (self._vnets / prefix).unlink(missing_ok=True)
            for name in os.listdir(self._ipam):
                if name.startswith(f"skiff-{prefix}"):
                    shutil.rmtree(self._ipam / name, ignore_errors=True)
            with self._config_lock:
                for placement in [p for p in self._subnets if p.vnet == vnet]:
                    del self._subnets[placement]

    def vnets(self) -> list[str]:
        """The virtual networks this node has set up (their keys)."""
        return sorted({(self._vnets / name).read_text() for name in os.listdir(self._vnets)})

    def list(self) -> list[str]:
        """The ids of the groups with a network."""
        return sorted(name for name in os.listdir(self._groups)
                      if (self._groups / name / "cni.json").exists())

    # ---- the pool ----------------------------------------------------------

    def pooled(self) -> int:
        """How many slots are ready in the pool."""
        return sum(1 for name in os.listdir(self._pool) if name.endswith(".json"))

    def _reserve(self, *, thread: bool) -> bool:
        """Count one more slot in the making if the pool needs one."""
        with self._lock:
            wanted = self.settings.pool_size - self.pooled() - self._creating
            if wanted <= 0 or self._draining or (thread and self._closed):
                if thread:
                    self._thread = None
                return False
            self._creating += 1
            return True

    def _add_to_pool(self) -> None:
        try:
            with self._fresh_slot() as (_, record):
                os.rename(record, self._pool / record.name)
        finally:
            with self._lock:
                self._creating -= 1

    def _refill(self) -> None:
        try:
            while self._reserve(thread=True):
                self._add_to_pool()
        except Exception as exc:  # the thread must not die silently; the next setup retries
            _log.warning("the network pool cannot be refilled: %s", exc)
            self.pool_error = exc
            with self._lock:
                self._thread = None

    def _kick(self) -> None:
        if self.settings.pool_size <= 0:
            return
        with self._lock:
            if (self._closed or self._draining or self._thread is not None
                    or self.pooled() + self._creating >= self.settings.pool_size):
                return
            self._thread = threading.Thread(target=self._refill, name="skiff-netns-pool",
                                            daemon=True)
            self._thread.start()

    def _wait_refill(self) -> None:
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join()

    def prewarm(self, subnet: SubnetPlacement | None = None) -> None:
        """Fill the pool now, in this thread (at node start, say); with ``subnet``,
        that subnet's pool of one."""
        if subnet is not None:
            pool = self._subnet_pool(subnet)
            with self._lock:
                filling = self._filling.get(pool.name)
            if filling is not None:
                filling.join()
            if not (pool.is_dir() and any(n.endswith(".json") for n in os.listdir(pool))):
                self._fill_subnet_pool(pool, self._subnet_config(subnet))
            return
        config = self._config()
        for name in os.listdir(self._pool):
            slot = read_slot(self._pool / name) if name.endswith(".json") else None
            if slot is not None and not self._usable(slot, config):
                self._retire(self._pool / name)
        while self._reserve(thread=False):
            self._add_to_pool()

    # ---- subnets' pools: one slot each, for the subnets groups were placed in ----

    def _subnet_pool(self, subnet: SubnetPlacement) -> Path:
        return self._pools / self.bridge_of(subnet)

    def _kick_subnet(self, subnet: SubnetPlacement, config: dict[str, Any]) -> None:
        """Make the subnet's pooled slot in the background, unless it has one."""
        pool = self._subnet_pool(subnet)
        with self._lock:
            if (self.settings.pool_size <= 0 or self._closed or self._draining
                    or pool.name in self._filling
                    or (pool.is_dir() and any(n.endswith(".json") for n in os.listdir(pool)))):
                return
            thread = threading.Thread(target=self._fill_subnet_pool, args=(pool, config),
                                      name="skiff-netns-subnet-pool", daemon=True)
            self._filling[pool.name] = thread
            thread.start()

    def _fill_subnet_pool(self, pool: Path, config: dict[str, Any]) -> None:
        try:
            pool.mkdir(exist_ok=True)
            with self._fresh_slot(config) as (_, record):
                os.rename(record, pool / record.name)
        except Exception as exc:  # the thread must not die silently; the next setup retries
            _log.warning("the pool of %s cannot be filled: %s", pool.name, exc)
            self.pool_error = exc
        finally:
            with self._lock:
                self._filling.pop(pool.name, None)

    def _drain_subnet_pools(self, prefix: str = subnets.BRIDGE_PREFIX) -> None:
        """Destroy the pooled slots of the subnets whose bridge starts with ``prefix``."""
        with self._lock:
            threads = [t for name, t in self._filling.items() if name.startswith(prefix)]
        for thread in threads:
            thread.join()
        for pool in sorted(self._pools.iterdir()):
            if pool.name.startswith(prefix):
                for name in os.listdir(pool):
                    if name.endswith(".json"):
                        self._retire(pool / name)
                shutil.rmtree(pool, ignore_errors=True)

    def drain_pool(self) -> None:
        """Destroy every pooled slot, the subnets' too (the groups' slots stay)."""
        with self._lock:
            self._draining += 1
        try:
            self._wait_refill()
            self.settle()
            for name in os.listdir(self._pool):
                if name.endswith(".json"):
                    self._retire(self._pool / name)
            self._drain_subnet_pools()
            self._reap()
        finally:
            with self._lock:
                self._draining -= 1

    def close(self) -> None:
        """Stop refilling the pool (its slots stay for the next ``Networks``) and
        finish the teardowns under way."""
        with self._lock:
            self._closed = True
            filling = list(self._filling.values())
        self._wait_refill()
        for thread in filling:
            thread.join()
        self._retirer.shutdown(wait=True)
