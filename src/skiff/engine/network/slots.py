"""Slots on disk: where their records live, how one is made, destroyed or judged.

A *slot* is a network namespace with ``lo`` up and the CNI chain added,
holding its own IP (:class:`~skiff.engine.network.cni.Slot`). Its record is in
exactly one place of the layout below at any time and moves by ``rename(2)``,
so a crash never leaves a slot that nobody will clean up.

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
    vnets/<prefix>        the virtual networks whose isolation is installed

A slot is made in work/ (:meth:`Slots.fresh`), then renamed into a pool or a
group; it goes back to work/ to be destroyed
(:mod:`skiff.engine.network.teardown`).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from skiff.engine import mounts
from skiff.engine.locking import locked
from skiff.engine.network import netns
from skiff.engine.network.cni import CniRunner, Slot, write_atomic
from skiff.errors import SkiffError
from skiff.settings import NetworkSettings

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Layout:
    """The directories and locks of ``<data root>/network`` (see the module's docstring)."""

    root: Path
    ipam: Path
    pool: Path
    pools: Path  # <subnet bridge>/<slot>.json: subnets' pools
    work: Path
    locks: Path
    groups: Path
    vnets: Path  # <bridge prefix>: the virtual network's key
    state_lock: Path

    @classmethod
    def under(cls, data_root: Path) -> Layout:
        """The layout of a data root, its directories made."""
        root = data_root / "network"
        layout = cls(root=root, ipam=root / "ipam", pool=root / "pool", pools=root / "pools",
                     work=root / "work", locks=root / "locks", groups=root / "groups",
                     vnets=root / "vnets", state_lock=root / "state.lock")
        for d in (layout.ipam, layout.pool, layout.pools, layout.work, layout.locks,
                  layout.groups, layout.vnets):
            d.mkdir(parents=True, exist_ok=True)
        return layout

    def lock_path(self, slot_id: str) -> Path:
        """The slot's own lock, held while its record is in work/ on purpose."""
        return self.locks / f"{slot_id}.lock"

    def in_work(self, slot_id: str) -> Path:
        """Where the slot's record is while it is made or destroyed."""
        return self.work / f"{slot_id}.json"


def netns_path(slot: Slot) -> Path:
    """Where the slot's namespace is mounted."""
    return Path(slot.path)


class Slots:
    """Makes and destroys the slots of one data root. Thread safe."""

    def __init__(self, layout: Layout, settings: NetworkSettings, plugins: CniRunner,
                 netns_prefix: str) -> None:
        self.layout = layout
        self.plugins = plugins
        self._netns_dir = settings.netns_dir
        self._netns_prefix = netns_prefix
        self._lock = threading.Lock()
        self._netns_ready = False

    @contextlib.contextmanager
    def fresh(self, config: dict[str, Any]) -> Iterator[tuple[Slot, Path]]:
        """A new ready slot on ``config``'s network and its record (in work/, under
        the slot's lock). The ``with`` body must move the record to the pool or a
        group; a slot left behind, or one whose making failed, is destroyed."""
        with self._lock:
            if not self._netns_ready:
                netns.ensure_dir(self._netns_dir)
                self._netns_ready = True
        slot_id = secrets.token_hex(6)
        name = self._netns_prefix + slot_id
        slot = Slot(id=slot_id, netns=name, path=str(self._netns_dir / name), config=config)
        record, lock = self.layout.in_work(slot_id), self.layout.lock_path(slot_id)
        with locked(lock):
            try:
                write_atomic(record, slot.record())
                netns.create(netns_path(slot))
                result = None
                for plugin in config["plugins"]:
                    result = self.plugins.run("ADD", slot, plugin, result)
                    slot = replace(slot, result=result)
                    write_atomic(record, slot.record())  # DEL must know what ADD did
                yield slot, record
            finally:
                if record.exists():
                    try:
                        self.destroy(slot)
                        record.unlink()
                    except (SkiffError, OSError) as exc:
                        _log.warning("slot %s stays for the next clean-up: %s", slot_id, exc)
                lock.unlink(missing_ok=True)

    def destroy(self, slot: Slot) -> None:
        """CNI DEL through the chain backwards, then remove the namespace. The
        caller holds the slot's lock, its record in work/."""
        first: SkiffError | None = None
        netns_gone = not mounts.is_mounted(netns_path(slot))
        for plugin in reversed(slot.config["plugins"]):
            try:
                self.plugins.run("DEL", slot, plugin, slot.result,
                                 netns="" if netns_gone else None)
            except SkiffError as exc:
                first = first or exc
        if netns_gone:
            self.plugins.unmasquerade(slot)
        netns.delete(netns_path(slot))
        if first is not None:
            raise first

    @staticmethod
    def usable(slot: Slot, config: dict[str, Any]) -> bool:
        """Whether a pooled slot is current: same config, namespace still there
        (a reboot empties /run/netns)."""
        return slot.config == config and mounts.is_mounted(netns_path(slot))
