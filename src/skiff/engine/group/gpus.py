"""Which group's container holds which of the node's GPUs.

Admission (:mod:`skiff.store.admission`) decides that a group's GPUs fit; this picks
the GPUs themselves, each to one container alone, and keeps the choice:

- all of a group's GPUs are picked at once, before anything of the group is created,
  or none (:class:`GpusUnavailable`): a GPU group never half-starts;
- a group keeps its GPUs while it runs, its containers' restarts included, and across
  a restart of skiff (the choice is in ``<data root>/gpus.json``, rewritten by
  ``rename(2)`` so a crash leaves the old file or the new one); its stop, redeploy or
  delete frees them (:meth:`GpuAllocator.release`);
- the lowest free indexes are taken first, so a node's choices are predictable.

The engine trusts no caller: a group given more GPUs than are free (a body stored
before a node lost a GPU, a standby pool that skipped admission) fails here with the
reason in its instance view, rather than sharing a GPU.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from skiff.core.gpus import describe
from skiff.core.spec import GroupSpec
from skiff.engine.gpus import Gpu
from skiff.errors import SkiffError


class GpusUnavailable(SkiffError):
    """The group asks for GPUs the node does not have free."""


def wanted(spec: GroupSpec) -> dict[str, tuple[int, str]]:
    """Container name → (count, SKU) of each container of ``spec`` that asks for GPUs."""
    return {c.name: (c.resources.gpu_count, c.resources.gpu_sku)
            for c in spec.containers if c.resources.gpu_count}


class GpuAllocator:
    """The node's GPUs and who holds each (a group id and one of its containers)."""

    def __init__(self, gpus: Sequence[Gpu], state: Path) -> None:
        self.gpus = tuple(sorted(gpus, key=lambda g: g.index))
        self._state = state
        self._lock = threading.Lock()
        #: GPU UUID → (group id, container name).
        self._held: dict[str, tuple[str, str]] = {}
        try:
            saved = json.loads(state.read_text())
        except (OSError, ValueError):
            saved = {}
        known = {g.uuid for g in self.gpus}
        if isinstance(saved, dict):
            self._held = {uuid: (str(held[0]), str(held[1])) for uuid, held in saved.items()
                          if uuid in known and isinstance(held, list) and len(held) == 2}

    def counts(self) -> dict[str, int]:
        """The node's GPUs by SKU."""
        found: dict[str, int] = {}
        for gpu in self.gpus:
            found[gpu.sku] = found.get(gpu.sku, 0) + 1
        return found

    def held(self, group_id: str) -> dict[str, tuple[Gpu, ...]]:
        """Container name → the GPUs it holds, of group ``group_id``."""
        with self._lock:
            return self._of(group_id)

    def _of(self, group_id: str) -> dict[str, tuple[Gpu, ...]]:
        found: dict[str, list[Gpu]] = {}
        for gpu in self.gpus:
            holder = self._held.get(gpu.uuid)
            if holder is not None and holder[0] == group_id:
                found.setdefault(holder[1], []).append(gpu)
        return {name: tuple(gpus) for name, gpus in found.items()}

    def allocate(self, group_id: str,
                 wants: Mapping[str, tuple[int, str]]) -> dict[str, tuple[Gpu, ...]]:
        """The GPUs of each container of the group that asks for some (``wants``: name →
        (count, SKU)): those it holds when they still match, else newly picked, all or
        none (GpusUnavailable naming what the node has)."""
        with self._lock:
            have = self._of(group_id)
            if {n: (len(g), g[0].sku) for n, g in have.items()} == dict(wants):
                return have
            others = {u: h for u, h in self._held.items() if h[0] != group_id}
            chosen: dict[str, tuple[Gpu, ...]] = {}
            taken = set(others)
            for name, (count, sku) in sorted(wants.items()):
                free = [g for g in self.gpus if g.sku == sku and g.uuid not in taken]
                if len(free) < count:
                    raise GpusUnavailable(
                        f"container {name} asks for {count} {sku} GPU(s); {len(free)} of "
                        f"this node's are free (it has {describe(self.counts())})")
                chosen[name] = tuple(free[:count])
                taken.update(g.uuid for g in chosen[name])
            held = dict(others)
            for name, gpus in chosen.items():
                held.update({g.uuid: (group_id, name) for g in gpus})
            self._save(held)
            self._held = held
            return chosen

    def holders(self) -> set[str]:
        """The ids of the groups that hold GPUs."""
        with self._lock:
            return {h[0] for h in self._held.values()}

    def release(self, group_id: str) -> None:
        """Free every GPU the group holds."""
        with self._lock:
            if not any(h[0] == group_id for h in self._held.values()):
                return
            held = {u: h for u, h in self._held.items() if h[0] != group_id}
            self._save(held)
            self._held = held

    def _save(self, held: Mapping[str, tuple[str, str]]) -> None:
        self._state.parent.mkdir(parents=True, exist_ok=True)
        scratch = self._state.with_name(self._state.name + ".tmp")
        scratch.write_text(json.dumps({u: list(h) for u, h in sorted(held.items())}))
        os.replace(scratch, self._state)
