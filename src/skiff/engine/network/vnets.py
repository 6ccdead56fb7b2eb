"""The host side of a group's filters: guards per bridge, isolation per virtual network.

A group's own filter (:func:`~skiff.engine.network.firewall.apply_group_filter`)
lives in its namespace and is applied on every start. Two more pieces live on
the host and are installed once per bridge or virtual network, the first time
a group there starts in this process (re-installing is idempotent, so a
restarted skiff restores them as it adopts its groups):

- the *host guard* of a bridge (:func:`~skiff.engine.network.firewall.install_host_guard`):
  groups reach the node only on its DNS port (and the API's, when it is served to them);
- the *isolation* of a virtual network (:func:`~skiff.engine.network.subnets.install_isolation`):
  nothing outside it reaches its subnets' bridges. Its key is remembered in
  ``vnets/<prefix>``, so :meth:`VirtualNetworks.remove` and a later skiff
  find it.

Removing a virtual network (once no group is in it) takes its background
teardowns, pooled slots, bridges, tables, leases and configurations away.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Sequence

from skiff.core.spec import Port, SubnetPlacement
from skiff.engine.locking import locked
from skiff.engine.network import firewall, subnets
from skiff.engine.network.addressing import Addressing
from skiff.engine.network.cni import write_atomic
from skiff.engine.network.groups import Attachment
from skiff.engine.network.pool import WarmPool
from skiff.engine.network.slots import Layout
from skiff.engine.network.teardown import Teardown


class VirtualNetworks:
    """The guards and virtual networks of one data root on this host. Thread safe."""

    def __init__(self, layout: Layout, addressing: Addressing, pool: WarmPool,
                 teardown: Teardown) -> None:
        self._layout = layout
        self._addressing = addressing
        self._pool = pool
        self._teardown = teardown
        self._lock = threading.Lock()
        # Bridges whose host guard, and virtual networks whose isolation, are in place.
        self._guarded: set[str] = set()

    def protect(self, attachment: Attachment, ports: Sequence[Port],
                subnet: SubnetPlacement | None = None, *, api_port: int | None = None) -> None:
        """Guard the host from the group's bridge and isolate its virtual network
        (each once), then filter the group's traffic: only ``ports`` reach it from
        outside the group, the node itself (the gateway) included. ``api_port``: the
        port the guard opens on the gateway for the API (None: none)."""
        with self._lock:
            todo = [name for name in (attachment.bridge,
                                      subnet and self._addressing.vnet_prefix(subnet.vnet))
                    if name and name not in self._guarded]
        for name in todo:
            if name == attachment.bridge:
                firewall.install_host_guard(attachment.bridge, attachment.gateway, api_port)
            else:
                assert subnet is not None  # remembered, so that remove finds it
                write_atomic(self._layout.vnets / name, subnet.vnet.encode())
                subnets.install_isolation(name, self._addressing.bridge)
            with self._lock:
                self._guarded.add(name)
        firewall.apply_group_filter(attachment.netns_path, ports)

    def remove(self, vnet: str) -> None:
        """Remove a virtual network's bridges, rules and leases from the host (no
        group may be in it any more). Idempotent."""
        prefix = self._addressing.vnet_prefix(vnet)
        self._teardown.settle()  # its groups' bridge ports go before the bridges
        self._pool.drain_subnets(prefix)
        with self._lock:
            self._guarded = {name for name in self._guarded if not name.startswith(prefix)}
        with locked(self._layout.state_lock):
            subnets.remove(self._addressing.data_root, vnet)
            (self._layout.vnets / prefix).unlink(missing_ok=True)
            ipam = self._layout.ipam
            for name in os.listdir(ipam):
                if name.startswith(f"skiff-{prefix}"):
                    shutil.rmtree(ipam / name, ignore_errors=True)
            self._addressing.forget(vnet)

    def names(self) -> list[str]:
        """The virtual networks this node has set up (their keys)."""
        vnets = self._layout.vnets
        return sorted({(vnets / name).read_text() for name in os.listdir(vnets)})
