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
pool the slot is made inline. A slot's record is in exactly one place under
``<data root>/network`` at any time (a pool, work/ or a group's directory)
and moves by ``rename(2)`` under the state lock, so a crash never leaves a
slot that nobody will clean up.

:class:`Networks` is the one entry point (the supervisor's, the server's,
the tests'); it composes the parts, one concern each:

- :mod:`~skiff.engine.network.addressing`: names from the data root's hash, the
  public subnet (picked once, remembered), CNI configurations, gateways;
- :mod:`~skiff.engine.network.slots`: the on-disk layout, making and destroying
  one slot;
- :mod:`~skiff.engine.network.pool`: the warm pools and their refill threads;
- :mod:`~skiff.engine.network.teardown`: retiring slots through work/, in the
  background for deleted groups, and the reaper of what a crash left;
- :mod:`~skiff.engine.network.groups`: a group's directory, files and attachment;
- :mod:`~skiff.engine.network.vnets`: host guards, virtual network isolation and
  removal.

Below them: the CNI protocol and slot records in :mod:`skiff.engine.network.cni`,
namespaces in :mod:`skiff.engine.network.netns`, a group's ``hosts`` and
``resolv.conf`` in :mod:`skiff.engine.network.resolv`, virtual network subnets in
:mod:`skiff.engine.network.subnets`, port filters in
:mod:`skiff.engine.network.firewall`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from skiff.core.identity import METADATA_ADDRESS, METADATA_LISTEN_PORT
from skiff.core.spec import DnsConfig, Port, SubnetPlacement
from skiff.engine import mounts
from skiff.engine.locking import locked
from skiff.engine.network import netns
from skiff.engine.network.addressing import Addressing, bridge_name, root_tag, subnet_candidates
from skiff.engine.network.cni import CniRunner
from skiff.engine.network.groups import Attachment, Groups, check_names, resolv_conf
from skiff.engine.network.pool import WarmPool
from skiff.engine.network.slots import Layout, Slots
from skiff.engine.network.teardown import Teardown
from skiff.engine.network.vnets import VirtualNetworks
from skiff.errors import NetworkError, SkiffError
from skiff.settings import NetworkSettings

__all__ = ["Attachment", "Networks", "bridge_name", "root_tag", "subnet_candidates"]

_log = logging.getLogger(__name__)


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
        #: Set when skiff serves the identity endpoint in the groups: called with a
        #: group's id and a socket listening on 169.254.169.254:80 inside its namespace
        #: (made when its filter is applied, so on every start and adoption), to serve
        #: from then on; ``withdraw_metadata`` with the id when the group's network goes.
        self.serve_metadata: Callable[[str, socket.socket], None] | None = None
        #: Set when skiff serves its API to the groups (``ApiSettings.for_groups``):
        #: called with a network's gateway (idempotent) before the first group there
        #: starts, to listen on ``api_port`` of it, which the host guard then opens;
        #: false if it could not (the port stays closed).
        self.serve_api: Callable[[str], bool] | None = None
        self.api_port: int | None = None
        #: Called with a virtual network's gateway when the network is removed, to stop
        #: serving DNS and the API there (nothing if they were not served); each returns
        #: once its listening sockets are closed.
        self.withdraw_dns: Callable[[str], object] | None = None
        self.withdraw_api: Callable[[str], object] | None = None
        self.withdraw_metadata: Callable[[str], None] | None = None
        # The gateways of each virtual network's subnets handed out in this process.
        self._vnet_gateways: dict[str, set[str]] = {}
        self._gateways_lock = threading.Lock()
        self._metadata: set[str] = set()  # the groups whose socket is being served
        self._metadata_lock = threading.Lock()
        self._layout = layout = Layout.under(data_root)
        self.root = layout.root
        self._addressing = Addressing(data_root, self.settings, root=layout.root,
                                      ipam=layout.ipam)
        self.bridge = self._addressing.bridge
        self.network_name = self._addressing.network_name
        plugins = CniRunner(self.settings.cni_path, self.settings.cni_timeout_s)
        self._slots = Slots(layout, self.settings, plugins, self._addressing.netns_prefix)
        self._teardown = Teardown(self._slots)
        self._pool = WarmPool(self.settings, self._addressing, self._slots, self._teardown)
        self._vnets = VirtualNetworks(layout, self._addressing, self._pool, self._teardown)
        self._groups = Groups(layout, plugins)
        self._teardown.reap()

    @property
    def pool_error(self) -> Exception | None:
        """The last failure of a background refill, for diagnostics."""
        return self._pool.error

    # ---- addresses -------------------------------------------------------------------

    @property
    def subnet(self) -> str:
        """The subnet the groups' addresses come from (fixed at first use)."""
        return self._addressing.subnet

    def gateway(self, subnet: SubnetPlacement | None = None) -> str:
        """The bridge's address, the groups' gateway: the first of the subnet."""
        return self._addressing.gateway(subnet)

    def bridge_of(self, subnet: SubnetPlacement | None = None) -> str:
        """The bridge of the public network, or of a virtual network's subnet."""
        return self._addressing.bridge_of(subnet)

    def check_address_space(self, prefixes: Sequence[str]) -> None:
        """NetworkConflict if a virtual network's range overlaps a route of the host's
        (other than virtual networks' bridges) or the public network."""
        self._addressing.check_address_space(prefixes)

    def gateways(self) -> list[str]:
        """The public network's gateway, then those of the subnets groups are in."""
        found = [self.gateway()]
        for group_id in self.list():
            attachment = self.get(group_id)
            if attachment is not None and attachment.gateway not in found:
                found.append(attachment.gateway)
        return found

    # ---- groups ----------------------------------------------------------------------

    def _note_gateway(self, subnet: SubnetPlacement | None, gateway: str) -> None:
        if subnet is not None:
            with self._gateways_lock:
                self._vnet_gateways.setdefault(subnet.vnet, set()).add(gateway)

    def _resolv_conf(self, dns: DnsConfig | None, gateway: str | None = None) -> str:
        nameserver = None
        if self.serve_dns is not None:
            nameserver = gateway or self.gateway()
            self.serve_dns(nameserver)
        return resolv_conf(self.settings, dns, nameserver)

    def setup(self, group_id: str, hostname: str, dns: DnsConfig | None = None,
              subnet: SubnetPlacement | None = None) -> Attachment:
        """Give the group its namespace and address; a second call returns the same.

        A pooled slot makes this a rename and three small files (≈ 1 ms); with
        an empty pool the slot is made here (≈ 40 ms). The public network's pool
        holds ``pool_size`` slots; a virtual network's ``subnet`` gets a pool of
        one once a group was placed there (its first group pays the CNI ADD). A
        group already set up keeps its attachment and files as they are.
        """
        check_names(group_id, hostname)
        groups = self._groups
        try:
            config = self._addressing.of(subnet)
            gateway = None
            if subnet is not None:
                gateway = self.gateway(subnet)
                self._note_gateway(subnet, gateway)  # before DNS listens there
            resolv = self._resolv_conf(dns, gateway)
            stale: list[Path] = []
            pool = self._pool.dir_of(subnet)
            with locked(self._layout.state_lock):
                found = groups.get(group_id)
                if found is None:
                    taken = self._pool.take(pool, config, stale)
                    if taken is not None:
                        found = groups.attach(*taken, group_id, hostname, resolv)
            for path in stale:  # outdated pool slots: their failure is not this group's
                try:
                    self._teardown.retire(path)
                except SkiffError as exc:
                    _log.warning("cannot retire the outdated slot %s: %s", path.name, exc)
            if found is None:
                with (self._slots.fresh(config) as (slot, record),
                      locked(self._layout.state_lock)):
                    found = groups.get(group_id)
                    if found is None:
                        found = groups.attach(slot, record, group_id, hostname, resolv)
                    else:  # set up meanwhile: the new slot joins the pool
                        os.rename(record, pool / record.name)
        except OSError as exc:
            raise NetworkError(f"cannot set up the network of group {group_id}: {exc}") from exc
        self._pool.kick(subnet, config)
        return found

    def get(self, group_id: str) -> Attachment | None:
        """The group's attachment, or None if it has no network."""
        check_names(group_id)
        return self._groups.get(group_id)

    def lost(self, group_id: str) -> Attachment | None:
        """The group's attachment if its namespace is gone (``ip netns delete``; a reboot
        empties /run/netns), else None: the group needs a new one (:meth:`teardown`,
        then :meth:`setup`)."""
        attachment = self.get(group_id)
        if attachment is None or mounts.is_mounted(attachment.netns_path):
            return None
        return attachment

    def remount(self, attachment: Attachment, pid: int) -> None:
        """Mount the group's namespace at its path again, from process ``pid`` in it (its
        mount was removed while its processes live on): runsc and CNI DEL find it there,
        so the group's containers and network are torn down as usual."""
        netns.remount(attachment.netns_path, pid)

    def check(self, group_id: str) -> None:
        """Ask the plugins (CNI CHECK) whether the group's network is still as added."""
        check_names(group_id)
        self._groups.check(group_id)

    def protect(self, attachment: Attachment, ports: Sequence[Port],
                subnet: SubnetPlacement | None = None) -> None:
        """Filter the group's traffic (call before its containers run): only
        ``ports`` reach it from outside the group, the node itself included;
        the host is guarded from its bridge (once); a virtual network is isolated
        (once). Re-applied on every start, so adoption restores the group's filter.
        The identity endpoint is opened inside the group then (once per network), and
        the API at its gateway when it is served to the groups (:attr:`serve_api`)."""
        self._note_gateway(subnet, attachment.gateway)  # an adopted group's too
        api_port = None
        if self.serve_api is not None and self.api_port is not None \
                and self.serve_api(attachment.gateway):
            api_port = self.api_port
        self._vnets.protect(attachment, ports, subnet, api_port=api_port)
        self._open_metadata(attachment)

    def _open_metadata(self, attachment: Attachment) -> None:
        serve = self.serve_metadata
        if serve is None:
            return
        with self._metadata_lock:
            if attachment.group_id in self._metadata:
                return
            sock = netns.listener_in(attachment.netns_path, METADATA_ADDRESS,
                                     METADATA_LISTEN_PORT)
            try:
                serve(attachment.group_id, sock)
            except BaseException:
                sock.close()
                raise
            self._metadata.add(attachment.group_id)

    def _close_metadata(self, group_id: str) -> None:
        with self._metadata_lock:
            self._metadata.discard(group_id)
            if self.withdraw_metadata is not None:
                self.withdraw_metadata(group_id)  # nothing if it was not served

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
        check_names(group_id)
        self._close_metadata(group_id)  # before the namespace goes
        group_dir = self._groups.dir_of(group_id)
        try:
            if not wait:
                self._teardown.retire_later(group_dir)
                return
            self._teardown.retire(group_dir / "cni.json", group_dir=group_dir)
            if os.listdir(self._layout.work):
                self._teardown.reap()  # what an earlier failed teardown left
        except OSError as exc:
            raise NetworkError(f"cannot tear down the network of group {group_id}: "
                               f"{exc}") from exc

    def settle(self) -> None:
        """Wait until the networks torn down with ``wait=False`` are gone."""
        self._teardown.settle()

    # ---- virtual networks ------------------------------------------------------------

    def remove_vnet(self, vnet: str) -> None:
        """Remove a virtual network's bridges, rules and leases from the host (no
        group may be in it any more), and the DNS and API listeners on its gateways.
        Idempotent."""
        with self._gateways_lock:
            gateways = self._vnet_gateways.pop(vnet, set())
            for others in self._vnet_gateways.values():
                gateways -= others  # still another network's (never, as the API checks)
        for gateway in sorted(gateways):
            for withdraw in (self.withdraw_api, self.withdraw_dns):
                if withdraw is None:
                    continue
                try:
                    withdraw(gateway)
                except (SkiffError, OSError, RuntimeError) as exc:
                    _log.warning("cannot stop listening on the gateway %s: %s", gateway, exc)
        self._vnets.remove(vnet)

    def vnets(self) -> list[str]:
        """The virtual networks this node has set up (their keys)."""
        return self._vnets.names()

    # ---- the pool --------------------------------------------------------------------

    def pooled(self) -> int:
        """How many slots are ready in the pool."""
        return self._pool.pooled()

    def prewarm(self, subnet: SubnetPlacement | None = None) -> None:
        """Fill the pool now, in this thread (at node start, say); with ``subnet``,
        that subnet's pool of one."""
        self._pool.prewarm(subnet)

    def drain_pool(self) -> None:
        """Destroy every pooled slot, the subnets' too (the groups' slots stay)."""
        self._pool.drain()

    def close(self) -> None:
        """Stop refilling the pool (its slots stay for the next ``Networks``) and
        finish the teardowns under way."""
        self._pool.close()
        self._teardown.close()

    # Last in the class: below it, ``list`` in an annotation would mean this method.
    def list(self) -> list[str]:
        """The ids of the groups with a network."""
        return self._groups.list()
