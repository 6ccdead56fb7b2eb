"""Standby pools kept full: the refill loop behind ``Microsoft.StandbyPool``.

ACI's standby pools keep ``maxReadyCapacity`` container groups of a profile created
and started ahead of demand, so that a group PUT naming the pool is answered with one
of them, Running, instead of waiting out a pull and a start. Here a pool's members are
ordinary groups of the store (:mod:`skiff.store.standby`) that the reconcile loop runs
as any other; this module only decides how many there should be: after every claim,
pool write or failure it tops each pool up to its capacity (refill policy ``always``,
the only one Azure has), replaces the members that failed and retires those beyond a
lowered capacity. A round that cannot make a member (the profile is gone, the
subscription's quota is used up) says why in the pool's runtime view and tries again
at the next round. A member is claimable once it serves, its declared ports answering
(:mod:`skiff.control.readiness`, told when the reconcile loop is done with a member);
until then the pool counts it ``Creating``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from skiff.control.periodic import Periodic
from skiff.control.readiness import Readiness
from skiff.control.reconciler import Reconciler
from skiff.control.servicelog import DELETE, STANDBY_POOL, WRITE, ServiceLog
from skiff.core.engine import Engine
from skiff.errors import SkiffError
from skiff.store import Store
from skiff.store.admission import Admission
from skiff.store.standby import PoolRecord

log = logging.getLogger(__name__)

#: A pool's member body: the stored ARM body of a group of the pool's profile
#: (``{"location", "properties"}``, validated); raises a SkiffError (an ArmError) when
#: it cannot be made.
MemberBody = Callable[[PoolRecord], dict[str, Any]]
#: What a group of a subscription must fit in (quotas, the node), for a region.
AdmissionOf = Callable[[str, str], Admission]
#: Seconds between the rounds that catch what no kick told of (a member that failed).
REFILL_INTERVAL_S = 2.0


class StandbyPools(Periodic[int]):
    """Keeps every pool of the store at its ``maxReadyCapacity``."""

    thread_name = "skiff-standby"
    doing = "refilling standby pools"

    def __init__(self, store: Store, reconciler: Reconciler, *, member_body: MemberBody,
                 admission: AdmissionOf | None = None,
                 interval_s: float = REFILL_INTERVAL_S,
                 service_log: ServiceLog | None = None,
                 engine: Engine | None = None) -> None:
        super().__init__(interval_s)
        self.store = store
        self.reconciler = reconciler
        #: Marks the members ready once they serve (asking ``engine``, by default the
        #: reconcile loop's, under the ids the loop runs them as: their uids).
        self.readiness = Readiness(store, engine or reconciler.engine)
        self.member_body = member_body
        self.admission = admission
        #: Where the members made, retired and claimed are recorded (None: not recorded).
        self.service_log = service_log
        #: Why the last round could not fill a pool (by pool key): its runtime view's
        #: status says so.
        self.problems: dict[str, str] = {}

    def _round(self) -> int:
        made = 0
        for pool in self.store.list_pools(None):
            made += self.refill(pool)
        self.readiness.wake()  # members the loop finished without telling (a restart)
        return made

    def refill(self, pool: PoolRecord) -> int:
        """Bring ``pool`` to its capacity now; how many members were made."""
        members = self.store.pool_members(pool.key)
        live = [m for m in members if m.state in ("Running", "Creating")]
        failed = [m.uid for m in members if m.state == "Failed"]
        # Beyond a lowered capacity, those not ready yet go first, then the newest.
        ordered = sorted(live, key=lambda m: (m.state == "Running", -m.created_at),
                         reverse=True)
        extra = [m.uid for m in ordered[pool.max_ready:]]
        for uid in self.store.retire_members(pool.key, failed + extra):
            self.reconciler.kick(uid)
            retired = self.store.get_group_by_uid(uid)
            if retired is not None:
                self.record(pool, DELETE, retired.resource_id, "failed" if uid in failed
                            else "beyond the pool's capacity")
        missing = pool.max_ready - min(len(live), pool.max_ready)
        made = 0
        try:
            body = self.member_body(pool) if missing > 0 else {}
            for _ in range(missing):
                admission = (None if self.admission is None
                             else self.admission(pool.subscription, pool.location))
                record = self.store.add_pool_member(pool, body, admission=admission)
                self.reconciler.kick(record.uid)
                # Started (or failed) once the loop is done with it: is it serving?
                self.reconciler.when_idle(record.uid, self.readiness.wake)
                self.record(pool, WRITE, record.resource_id, "made ready")
                made += 1
        except SkiffError as exc:
            message = exc.message
            self.problems[pool.key] = message
            log.warning("standby pool %s: %d of %d members missing: %s", pool.resource_id,
                        missing - made, pool.max_ready, message)
        else:
            if failed:  # replaced, but a profile that cannot run fails again: say so
                self.problems[pool.key] = (f"{len(failed)} of the pool's container groups "
                                           f"failed to deploy and were replaced.")
            else:
                self.problems.pop(pool.key, None)
        return made

    def record(self, pool: PoolRecord, action: str, resource_id: str, why: str) -> None:
        """A write of the pool's on one of its groups, in the activity log."""
        if self.service_log is not None:
            self.service_log.record(caller=STANDBY_POOL, action=action,
                                    resource_id=resource_id, on_behalf_of=pool.resource_id,
                                    description=f"A container group of the standby pool "
                                                f"'{pool.name}': {why}.")

    def kick(self) -> None:
        """A round soon, in a thread of its own (after a claim: its response path does no
        more than this)."""
        threading.Thread(target=self._kicked, name=self.thread_name, daemon=True).start()

    def stop(self) -> None:
        """Stop the rounds, waiting for one in flight (a kicked one too), and the
        readiness checks."""
        super().stop()
        with self._round_lock:
            pass
        self.readiness.stop()

    def _kicked(self) -> None:
        if self._stop.is_set():
            return
        try:
            self.run_round()
        except Exception:  # a background round must not die silently
            log.exception("%s failed", self.doing)
