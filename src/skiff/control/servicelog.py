"""skiff's own writes in the activity log: what no request of the tenant did.

Some writes are skiff's own work, not a request's: an NGroup's controller makes and
deletes its members, a standby pool's refill makes and retires its ready groups and
gives one to a claim, a Spot group is evicted for a Regular one and started again once
capacity is spare, a profile's ``timeToLive`` deletes a group. ARM's activity log
names a resource provider's own work by the provider (``caller`` and the claims'
``appid``: ``Microsoft.ContainerInstance``, ``Microsoft.StandbyPool``), and skiff
puts the resource it acted for (the NGroup, the pool) in the claims' object id, so
that a tenant reading its log sees who made each group, and why
(:attr:`~skiff.models.activity.RequestFacts.description`).

Each write is recorded as a request's is (:func:`skiff.models.activity.request_events`:
``BeginRequest``, ``EndRequest``, and the outcome of its operation when it has one),
in the subscription of the resource it wrote. A failure to record is logged, never
raised: the write itself is done.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from skiff.models.activity import RequestFacts, request_events, target_of
from skiff.store import Store

log = logging.getLogger(__name__)

#: The callers of skiff's own work, as ARM names a resource provider's.
CONTAINER_INSTANCE = "Microsoft.ContainerInstance"
STANDBY_POOL = "Microsoft.StandbyPool"
_GROUPS = f"{CONTAINER_INSTANCE}/containerGroups"
#: The actions skiff's own work records.
WRITE, DELETE = f"{_GROUPS}/write", f"{_GROUPS}/delete"
START, STOP = f"{_GROUPS}/start/action", f"{_GROUPS}/stop/action"
_METHODS = {WRITE: "PUT", DELETE: "DELETE"}


@dataclass
class ServiceLog:
    """Records skiff's own writes in the activity log of the node's tenant."""

    store: Store
    tenant_id: str
    clock: Callable[[], float] = field(default=time.time)

    def record(self, *, caller: str, action: str, resource_id: str, on_behalf_of: str = "",
               description: str = "", lro_id: str | None = None,
               began: float | None = None) -> None:
        """A write of ``caller`` (a provider's name) on ``resource_id``: ``action`` (one
        of this module's), for ``on_behalf_of`` (the ARM id of the NGroup or pool it
        served, '' for none), with the operation ``lro_id`` it started, if any."""
        now = self.clock()
        request_id = str(uuid.uuid4())
        facts = RequestFacts(
            caller=caller, object_id=on_behalf_of, tenant_id=self.tenant_id, action=action,
            scope=resource_id, method=_METHODS.get(action, "POST"),
            status_code=202 if lro_id else 200, request_id=request_id,
            correlation_id=request_id, client_request_id="", client_ip="",
            began=now if began is None else began, ended=now, lro_id=lro_id,
            description=description)
        try:
            self.store.record_events(target_of(resource_id).subscription,
                                     request_events(facts), lro_id)
        except Exception as exc:  # the write is done: the log's miss is logged
            log.error("the activity log missed %s on %s: %s", action, resource_id, exc)
