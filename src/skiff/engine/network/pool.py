"""The warm pools: slots made ahead of time, so a group start is a rename.

Preparing a slot costs ≈ 40 ms here (namespace and ``lo``: < 1 ms; the two
CNI plugins: the rest), too much for the critical path of a group start. So
the public network keeps ``pool_size`` ready slots in ``pool/``, refilled by a
background thread after each group takes one; each virtual network subnet a
group was placed in keeps a pool of one in ``pools/<bridge>/``, filled in the
background too (its first group pays the CNI ADD). A slot is made in work/
and renamed into its pool; a group takes it by another rename (under the
state lock, see :meth:`WarmPool.take`). Slots are named by a random id, not by
a group, since a pooled slot has no group yet.

Pooled slots survive a restart: a new ``Networks`` hands them out if their
configuration is still current and their namespace still mounted, and retires
them otherwise.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from skiff.core.spec import SubnetPlacement
from skiff.engine.network import subnets
from skiff.engine.network.addressing import Addressing
from skiff.engine.network.cni import Slot, read_slot
from skiff.engine.network.slots import Slots
from skiff.engine.network.teardown import Teardown
from skiff.settings import NetworkSettings

_log = logging.getLogger(__name__)


class WarmPool:
    """The public network's pool and the subnets' pools of one. Thread safe."""

    def __init__(self, settings: NetworkSettings, addressing: Addressing, slots: Slots,
                 teardown: Teardown) -> None:
        self.settings = settings
        self._addressing = addressing
        self._slots = slots
        self._teardown = teardown
        self._dir = slots.layout.pool
        self._pools = slots.layout.pools
        self._lock = threading.Lock()  # the bookkeeping below
        self._thread: threading.Thread | None = None
        self._creating = 0
        self._draining = 0
        self._closed = False
        self._filling: dict[str, threading.Thread] = {}  # subnet pools being filled
        #: The last failure of a background refill, for diagnostics.
        self.error: Exception | None = None

    def dir_of(self, subnet: SubnetPlacement | None) -> Path:
        """The pool of the public network (None) or of a virtual network's subnet."""
        return self._dir if subnet is None else self._pools / self._addressing.bridge_of(subnet)

    def take(self, pool: Path, config: dict[str, Any],
             stale: list[Path]) -> tuple[Slot, Path] | None:
        """A usable slot of ``pool`` and its record, or None if it has none; the
        caller holds the state lock and renames the record away. Outdated slots
        are added to ``stale``."""
        for name in sorted(os.listdir(pool) if pool.is_dir() else []):
            path = pool / name
            slot = read_slot(path) if name.endswith(".json") else None
            if slot is None:
                continue
            if not self._slots.usable(slot, config):
                stale.append(path)
                continue
            return slot, path
        return None

    def kick(self, subnet: SubnetPlacement | None, config: dict[str, Any]) -> None:
        """Refill the pool a group just took from (or made a slot without), in the
        background."""
        if subnet is None:
            self._kick()
        else:
            self._kick_subnet(subnet, config)

    # ---- the public network's pool ---------------------------------------------------

    def pooled(self) -> int:
        """How many slots are ready in the public network's pool."""
        return sum(1 for name in os.listdir(self._dir) if name.endswith(".json"))

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
            with self._slots.fresh(self._addressing.public()) as (_, record):
                os.rename(record, self._dir / record.name)
        finally:
            with self._lock:
                self._creating -= 1

    def _refill(self) -> None:
        try:
            while self._reserve(thread=True):
                self._add_to_pool()
        except Exception as exc:  # the thread must not die silently; the next setup retries
            _log.warning("the network pool cannot be refilled: %s", exc)
            self.error = exc
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
        """Fill the pool now, in this thread; with ``subnet``, that subnet's pool of one."""
        if subnet is not None:
            pool = self.dir_of(subnet)
            with self._lock:
                filling = self._filling.get(pool.name)
            if filling is not None:
                filling.join()
            if not (pool.is_dir() and any(n.endswith(".json") for n in os.listdir(pool))):
                self._fill_subnet_pool(pool, self._addressing.of_subnet(subnet))
            return
        config = self._addressing.public()
        for name in os.listdir(self._dir):
            slot = read_slot(self._dir / name) if name.endswith(".json") else None
            if slot is not None and not self._slots.usable(slot, config):
                self._teardown.retire(self._dir / name)
        while self._reserve(thread=False):
            self._add_to_pool()

    # ---- subnets' pools: one slot each, for the subnets groups were placed in ----

    def _kick_subnet(self, subnet: SubnetPlacement, config: dict[str, Any]) -> None:
        """Make the subnet's pooled slot in the background, unless it has one."""
        pool = self.dir_of(subnet)
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
            with self._slots.fresh(config) as (_, record):
                os.rename(record, pool / record.name)
        except Exception as exc:  # the thread must not die silently; the next setup retries
            _log.warning("the pool of %s cannot be filled: %s", pool.name, exc)
            self.error = exc
        finally:
            with self._lock:
                self._filling.pop(pool.name, None)

    def drain_subnets(self, prefix: str = subnets.BRIDGE_PREFIX) -> None:
        """Destroy the pooled slots of the subnets whose bridge starts with ``prefix``."""
        with self._lock:
            threads = [t for name, t in self._filling.items() if name.startswith(prefix)]
        for thread in threads:
            thread.join()
        for pool in sorted(self._pools.iterdir()):
            if pool.name.startswith(prefix):
                for name in os.listdir(pool):
                    if name.endswith(".json"):
                        self._teardown.retire(pool / name)
                shutil.rmtree(pool, ignore_errors=True)

    # ---- both ------------------------------------------------------------------------

    def drain(self) -> None:
        """Destroy every pooled slot, the subnets' too (the groups' slots stay)."""
        with self._lock:
            self._draining += 1
        try:
            self._wait_refill()
            self._teardown.settle()
            for name in os.listdir(self._dir):
                if name.endswith(".json"):
                    self._teardown.retire(self._dir / name)
            self.drain_subnets()
            self._teardown.reap()
        finally:
            with self._lock:
                self._draining -= 1

    def close(self) -> None:
        """Stop refilling (the pooled slots stay for the next ``Networks``) and wait
        for the refills under way."""
        with self._lock:
            self._closed = True
            filling = list(self._filling.values())
        self._wait_refill()
        for thread in filling:
            thread.join()
