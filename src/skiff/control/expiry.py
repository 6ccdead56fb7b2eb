"""A profile's ``timeToLive``: groups made from it are deleted when their time is up.

A group made from a container group profile carries the profile's ``timeToLive``
(:mod:`skiff.control.profiles`). A duration counts from the moment the group's
containers have all ended (ACI's "post completion time to live": a group that runs for
ever never expires); a date-time is the moment the group goes, whatever it does then.
Every few seconds a round finds the groups that carry one, asks the engine when each
ended, and deletes those whose time is up through the path a DELETE takes: desired
``deleted``, an operation, the reconcile loop's teardown (which ends the meter's span),
and the delete's events in the activity log, under the resource provider's name, so
that the tenant sees who deleted the group and why.

Only groups made from a profile expire: a group PUT with its own ``timeToLive`` keeps it
as an unknown property, as ACI's groups have no such field.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from skiff.control.periodic import Periodic
from skiff.control.reconciler import Reconciler
from skiff.control.servicelog import CONTAINER_INSTANCE, DELETE, ServiceLog
from skiff.core.engine import Engine
from skiff.errors import GroupNotFound
from skiff.models.profile import Lifetime
from skiff.store import GroupRecord, Store

log = logging.getLogger(__name__)

#: Who the activity log says deleted an expired group (ARM's events of a resource
#: provider's own work name the provider).
EXPIRY_CALLER = CONTAINER_INSTANCE
#: Seconds between rounds: a group outlives its time by at most this.
INTERVAL_S = 5.0
#: The engine's states of a group whose containers have all ended.
ENDED_STATES = frozenset({"Succeeded", "Failed", "Stopped"})


def expired(lifetime: Lifetime, *, ended_at: float | None, now: float) -> bool:
    """Whether a group of ``lifetime`` whose containers ended at ``ended_at`` (None: they
    have not) is to be deleted at ``now``."""
    if lifetime.expires_at is not None and now >= lifetime.expires_at:
        return True
    return lifetime.ttl_s is not None and ended_at is not None \
        and now >= ended_at + lifetime.ttl_s


class Expiry(Periodic[list[str]]):
    """Deletes the expired groups made from profiles, a round every ``interval_s``."""

    thread_name = "skiff-expiry"
    doing = "a round of the profiles' time to live"

    def __init__(self, store: Store, engine: Engine, reconciler: Reconciler, *,
                 tenant_id: str, interval_s: float = INTERVAL_S,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(interval_s)
        self.store = store
        self.engine = engine
        self.reconciler = reconciler
        self.tenant_id = tenant_id
        self.clock = clock

    def _round(self) -> list[str]:
        """The ids of the groups deleted this round."""
        deleted = []
        for uid in self.store.groups_with_time_to_live():
            record = self.store.get_group_by_uid(uid)
            if record is None or record.desired == "deleted":
                continue
            lifetime = Lifetime.of(record.body.get("properties", {}))
            if expired(lifetime, ended_at=self.ended_at(record), now=self.clock()):
                self.delete(record)
                deleted.append(record.resource_id)
        return deleted

    def ended_at(self, record: GroupRecord) -> float | None:
        """When the group's containers had all ended (the last one's finish), or None."""
        try:
            view = self.engine.view(record.uid)
        except GroupNotFound:
            return None
        if view.state not in ENDED_STATES:
            return None
        finished = [c.current.finish_time for c in view.containers
                    if c.current.finish_time is not None]
        return max(finished) if finished else None

    def delete(self, record: GroupRecord) -> None:
        """Delete the group as a DELETE does, and say so in the activity log."""
        began = self.clock()
        changed = self.store.set_desired(record.subscription, record.resource_group,
                                         record.name, "deleted")
        if changed is None:
            return
        op = self.store.create_operation(record.subscription, record.location,
                                         record.resource_id, "delete",
                                         generation=changed.generation)
        ServiceLog(self.store, self.tenant_id, self.clock).record(
            caller=EXPIRY_CALLER, action=DELETE, resource_id=record.resource_id,
            description="Its container group profile's time to live is up.", lro_id=op.id,
            began=began)
        log.info("deleting %s: its profile's time to live is up", record.resource_id)
        self.reconciler.kick(record.uid)
