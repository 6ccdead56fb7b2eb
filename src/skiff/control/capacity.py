"""Which groups still hold the node's capacity: the store learns the ends the engine saw.

A group holds its CPUs and memory while it should run (:mod:`skiff.store.admission`).
When its containers have all exited for good (``Succeeded``, or ``Failed`` under
restart policy ``Never``), or it was stopped, the engine's view says so, but nothing
tells the store: the reconcile loop acts on changes of desired state, not on exits.
Asking the engine about every group on every PUT would make admission cost grow with
the groups stored; so the store is told here, only when a request would not fit
otherwise (and before ``usages`` answers), and the request is admitted again.
"""

from __future__ import annotations

from collections.abc import Callable

from skiff.core.engine import Engine
from skiff.errors import GroupNotFound
from skiff.settings import Settings
from skiff.store import Store
from skiff.store.admission import Admission

#: The group states in which a group's containers hold nothing more.
ENDED = frozenset(("Stopped", "Succeeded", "Failed"))


def release_ended(store: Store, engine: Engine) -> bool:
    """Release every holding group whose containers have all ended; whether any was."""
    released = False
    for uid, generation in store.holding():
        try:
            state = engine.view(uid).state
        except GroupNotFound:  # not deployed yet (or being torn down): it may still run
            continue
        if state in ENDED and store.release(uid, generation):
            released = True
    return released


def node_admission(settings: Settings, engine: Engine) -> Callable[[str, str], Admission]:
    """What a group of a subscription must fit in, by (subscription, region): the node's
    CPUs and memory times the overcommit, its GPUs by SKU (never overcommitted), and the
    subscription's quotas (``region``: the location it named, for the refusals' words)."""

    def admission(subscription: str, region: str) -> Admission:
        ratio = settings.api.overcommit
        capacity = engine.capacity()
        return Admission(cpu=capacity.cpu_cores * ratio, memory_gb=capacity.memory_gb * ratio,
                         quotas=settings.quotas.limits(subscription), region=region,
                         gpus=dict(capacity.gpu_skus), site=capacity.site)

    return admission
