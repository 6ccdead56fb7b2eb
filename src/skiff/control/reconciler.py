"""The reconcile loop: moves the engine toward the desired state in the store.

HTTP handlers only commit desired state and answer; every action on
containers happens here, from what the store says, so a skiff killed at any
moment and started again picks up exactly where it was: at start-up every
group is reconciled (running containers are adopted by the engine, not
restarted), and a periodic resync catches anything missed.

Groups' DNS names follow what each converge ends in (:mod:`skiff.control.names`):
published when the group reaches Succeeded with an address, withdrawn when it
is deleted, stopped or failed.

Each group is handled by one worker at a time; a generation number guards
against writing the result of an old definition over a newer one.

Stops and deletes wait for their containers' grace period (SIGTERM, up to
``stop_grace_s``, SIGKILL), so they run in a lane of their own: a worker that
picks a group to stop or delete hands it to the teardown threads (the group
stays busy until it is torn down) and takes the next one, so creates are never
queued behind a slow stop. :meth:`Reconciler.stop` (SIGTERM) stops taking
work and gives what is in flight up to :data:`STOP_TIMEOUT_S` to finish; what
does not stays recorded in the store (desired ``deleted`` or ``stopped``) and
the next start finishes it.

Node-level effects of a decision go the same way. Deleting a virtual network
(alone or with its resource group) records its teardown in the store, in the
transaction that deletes it; the loop's :data:`VNET_TEARDOWNS` work item then
removes each such network from the node once no group is in it, and clears
the record. At start-up that item also sweeps: a network the engine has that
the store neither knows nor places a group in is removed (a record lost to an
older skiff, a teardown that failed for good).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from skiff.control.metering import Meter
from skiff.control.names import Names
from skiff.control.scrubbing import describe_failure, group_secrets
from skiff.control.servicelog import CONTAINER_INSTANCE, START, STOP, ServiceLog
from skiff.control.telemetry import Telemetry
from skiff.core.engine import Engine
from skiff.core.secrets import scrub, secrets_of
from skiff.core.spec import GroupSpec, SubnetPlacement
from skiff.core.view import GroupView
from skiff.errors import GroupNotFound, InvalidGroupSpec, SkiffError
from skiff.models import ContainerGroupBody, to_engine_spec
from skiff.store import GroupRecord, Store
from skiff.store.admission import Admission
from skiff.store.records import EVICTING

log = logging.getLogger(__name__)

def subnet_placement(store: Store, record: GroupRecord) -> SubnetPlacement | None:
    """The subnet a private group is in, as the engine names it (None: not private)."""
    if record.subnet_key is None:
        return None
    found = store.subnet_placement(record.subnet_key)
    if found is None:
        raise InvalidGroupSpec(f"the subnet {record.subnet_key} no longer exists")
    vnet, subnet, prefix = found
    return SubnetPlacement(vnet=vnet.resource_id.lower(), subnet=subnet.lower(),
                           prefix=prefix)


#: The work item that removes deleted virtual networks from the node (a group's uid is
#: hex, so no group has this one). Kick it, and wait for it, as a group's.
VNET_TEARDOWNS = ":vnet-teardowns"

#: How long a Regular group's deployment waits for the Spot groups evicted for it to stop
#: (their grace period, 10 s by default) before it runs anyway.
EVICTION_WAIT_S = 30.0

#: How long :meth:`Reconciler.stop` waits for the work in flight (a delete waits for its
#: containers' grace, 10 s by default) before it hands the rest over to the next start.
STOP_TIMEOUT_S = 15.0


class Reconciler:
    """Worker threads converging each group of the store on the engine."""

    def __init__(self, store: Store, engine: Engine, *, workers: int = 4,
                 teardown_workers: int = 32, resync_s: float = 30.0,
                 names: Names | None = None, telemetry: Telemetry | None = None,
                 meter: Meter | None = None,
                 admission: Callable[[str, str], Admission] | None = None) -> None:
        self.store = store
        #: What an evicted Spot group must fit in to run again, by (subscription,
        #: location) (None: evicted groups are not started again by the loop).
        self.admission = admission
        self.engine = engine
        self.names = names
        #: Told when groups begin and end being billed (None: usage is not metered).
        self.meter = meter
        #: Counts starts and their latency for the Prometheus endpoint (None: not counted).
        self.telemetry = telemetry
        #: Where Spot evictions and restarts are recorded (None: not recorded).
        self.service_log: ServiceLog | None = None
        self._workers = workers
        self._teardown_workers = teardown_workers
        self._resync_s = resync_s
        self._queued: list[str] = []
        self._teardowns: list[str] = []  # busy groups handed to the teardown lane
        self._busy: set[str] = set()
        self._idle_callbacks: dict[str, list[Callable[[], object]]] = {}
        self._done = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sweep = False  # the next teardown also sweeps the node's networks

    # ---- running ----------------------------------------------------------

    def start(self) -> None:
        records = self.store.pending_work()
        try:  # before any group runs: what a crash left that the store does not know goes
            self.engine.sweep({record.uid for record in records})
        except SkiffError as exc:
            log.warning("cannot sweep the node of what an earlier run left: %s", exc.message)
        if self.names is not None:
            self.names.populate(self.store, self.engine)
        for record in records:
            self.kick(record.uid)
        self._sweep = True
        self.kick(VNET_TEARDOWNS)
        for i in range(self._workers):
            thread = threading.Thread(target=self._loop, name=f"skiff-reconcile-{i}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)
        for i in range(self._teardown_workers):
            thread = threading.Thread(target=self._teardown_loop,
                                      name=f"skiff-teardown-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        resync = threading.Thread(target=self._resync, name="skiff-resync", daemon=True)
        resync.start()
        self._threads.append(resync)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Take no more work; wait up to ``timeout_s`` for the groups being reconciled.

        A group still busy then is handed over: the store keeps what is wanted of it,
        and the next start reconciles it again (its threads are daemons)."""
        deadline = time.monotonic() + timeout_s
        self._stop.set()
        with self._done:
            self._done.notify_all()
            while self._busy and (left := deadline - time.monotonic()) > 0:
                self._done.wait(left)
            if self._busy:
                log.warning("stopping with %d groups still being reconciled; the next start "
                            "finishes them: %s", len(self._busy), ", ".join(sorted(self._busy)))
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def kick(self, uid: str) -> None:
        """Reconcile group ``uid`` soon (or, for :data:`VNET_TEARDOWNS`, tear down the
        deleted virtual networks)."""
        with self._done:
            if uid not in self._queued:
                self._queued.append(uid)
            self._done.notify_all()

    def wait_idle(self, uid: str, timeout_s: float = 60) -> bool:
        """Wait until ``uid`` is neither queued nor being reconciled."""
        deadline = time.monotonic() + timeout_s
        with self._done:
            while uid in self._queued or uid in self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._done.wait(left)
        return True

    def when_idle(self, uid: str, callback: Callable[[], object]) -> Callable[[], None]:
        """Call ``callback`` once ``uid`` is neither queued nor being reconciled: at once,
        in this thread, if it is idle now; else from the worker that leaves it idle.

        For waiters that must not hold a thread (the API's event loop): the callback
        only hands the news on, quickly. Returns a function that withdraws it.
        """
        with self._done:
            idle = uid not in self._queued and uid not in self._busy
            if not idle:
                self._idle_callbacks.setdefault(uid, []).append(callback)
        if idle:
            callback()

        def withdraw() -> None:
            with self._done:
                callbacks = self._idle_callbacks.get(uid, [])
                if callback in callbacks:
                    callbacks.remove(callback)
                if not callbacks:
                    self._idle_callbacks.pop(uid, None)

        return withdraw

    def _next(self) -> str | None:
        with self._done:
            while not self._stop.is_set():
                for uid in self._queued:
                    if uid not in self._busy:
                        self._queued.remove(uid)
                        self._busy.add(uid)
                        return uid
                self._done.wait(1.0)
        return None

    def _loop(self) -> None:
        while (uid := self._next()) is not None:
            if self._is_teardown(uid):
                with self._done:  # it stays busy: no other worker takes it meanwhile
                    self._teardowns.append(uid)
                    self._done.notify_all()
                continue
            self._handle(uid)

    def _teardown_loop(self) -> None:
        """The teardown lane: stops and deletes, each waiting out its grace here."""
        while True:
            with self._done:
                while not self._teardowns and not self._stop.is_set():
                    self._done.wait(1.0)
                if not self._teardowns:
                    return
                uid = self._teardowns.pop(0)  # handed over before a stop: still finished
            self._handle(uid)

    def _is_teardown(self, uid: str) -> bool:
        """Whether converging ``uid`` now stops or deletes its containers."""
        if uid == VNET_TEARDOWNS:
            return False
        try:
            record = self.store.get_group_by_uid(uid)
        except Exception:  # the worker converges it, and reports what fails
            return False
        return record is not None and (record.desired in ("deleted", "stopped")
                                       or record.evicted == EVICTING)

    def _handle(self, uid: str) -> None:
        """Reconcile ``uid`` once, then mark it idle (and call who waits for that)."""
        try:
            if uid == VNET_TEARDOWNS:
                self.tear_down_vnets()
            else:
                self.converge(uid)
        except Exception as exc:  # a worker must survive any one group's failure
            log.error("reconciling %s failed\n%s", uid, describe_failure(exc, self._secrets(uid)))
        finally:
            with self._done:
                self._busy.discard(uid)
                self._done.notify_all()
                idle = [] if uid in self._queued else self._idle_callbacks.pop(uid, [])
            for callback in idle:
                try:
                    callback()
                except Exception as exc:  # a waiter's failure is not the worker's
                    log.error("a callback waiting for group %s failed\n%s", uid,
                              describe_failure(exc, self._secrets(uid)))

    def _secrets(self, uid: str) -> tuple[str, ...] | None:
        """The secrets of group ``uid``'s definition, to scrub from what is logged of it;
        None when they cannot be known (the group is gone, its definition unreadable)."""
        if uid == VNET_TEARDOWNS:
            return ()  # no group's definition is at hand there
        try:
            record = self.store.get_group_by_uid(uid)
        except Exception:  # the store may be what failed
            return None
        if record is None:
            return None
        return group_secrets(record.body, uid=uid, name=record.name)

    def _resync(self) -> None:
        while not self._stop.wait(self._resync_s):
            for record in self.store.pending_work():
                if record.provisioning_state in ("Pending", "Creating", "Deleting") \
                        or record.evicted == EVICTING:
                    self.kick(record.uid)
            try:
                self.readmit()  # capacity may have been freed by containers that ended
            except SkiffError as exc:  # the engine's capacity unread (a cluster's API)
                log.warning("evicted Spot groups not readmitted this round: %s", exc.message)
            if self.store.vnet_teardowns():
                self.kick(VNET_TEARDOWNS)

    # ---- one group ----------------------------------------------------------

    def converge(self, uid: str) -> None:
        """Make the engine match the store for group ``uid``, once."""
        record = self.store.get_group_by_uid(uid)
        if record is None:
            self._withdraw(uid)
            return
        if record.desired == "deleted":
            self._withdraw(uid)
            self.engine.delete(uid)
            self._unbill(uid)
            self._finish(record, "Succeeded")
            self.store.remove_group(uid)
            if record.subnet_key is not None:  # its network may wait for its last group
                self.kick(VNET_TEARDOWNS)
            self.readmit()
            return
        if record.desired == "stopped":
            self._withdraw(uid)
            self._quietly(lambda: self.engine.stop(uid))
            self._unbill(uid)
            self._finish(record, "Succeeded")
            self.readmit()
            return
        if record.evicted:
            if record.evicted == EVICTING:
                self._evict(record)
            return  # evicted: stopped until readmit() finds it room
        if not record.spot:
            self._carry_out_evictions(uid)
        restart = any(op.kind == "restart"
                      for op in self.store.operations_for(record.resource_id))
        deploying = record.provisioning_state in ("Pending", "Creating")
        if record.provisioning_state == "Pending":
            self.store.set_provisioning(uid, "Creating", generation=record.generation)
        secrets: tuple[str, ...] = ()
        try:
            body = ContainerGroupBody.from_stored(record.body)
            spec = to_engine_spec(body, group_id=uid, name=record.engine_name,
                                  subnet=self._placement(record))
            secrets = secrets_of(spec)
            if restart:
                self._quietly(lambda: self.engine.restart(uid, spec))
            view = self._run_or_start(record, spec, deploying=deploying, restarting=restart)
        except SkiffError as exc:
            self._withdraw(uid)
            self._unbill(uid)
            # The engine scrubs its texts; this is the second line before the store.
            error = {"code": exc.code, "message": scrub(exc.message, secrets)}
            self.store.set_provisioning(uid, "Failed", error=error, generation=record.generation)
            self._finish(record, "Failed", error)
            self.readmit()  # what it held is free
            return
        if view.failure is not None:
            self._withdraw(uid)
            self._unbill(uid)
            error = {"code": "ContainerGroupDeploymentFailed",
                     "message": scrub(view.failure, secrets)}
            self.store.set_provisioning(uid, "Failed", error=error, generation=record.generation)
            self._finish(record, "Failed", error)
            self.readmit()  # what it held is free
            return
        if self.meter is not None:
            self.meter.observed(record, view)
        if self.names is not None:
            self.names.publish(record, view.ip)
        self.store.set_provisioning(uid, "Succeeded", generation=record.generation)
        self._finish(record, "Succeeded")

    # ---- Spot groups ----------------------------------------------------------------

    def _evict(self, record: GroupRecord) -> None:
        """Stop an evicted Spot group's containers (the stop path: SIGTERM, its grace,
        SIGKILL), and bill it no more; it waits for spare capacity (:meth:`readmit`)."""
        uid = record.uid
        self._withdraw(uid)
        self._quietly(lambda: self.engine.stop(uid))
        self._unbill(uid)
        if self.store.finish_eviction(uid):
            log.info("evicted Spot container group %s (%s) for a Regular group", record.name,
                     uid)
            if self.service_log is not None:
                self.service_log.record(
                    caller=CONTAINER_INSTANCE, action=STOP, resource_id=record.resource_id,
                    description="Spot container group evicted: a Regular container group "
                                "needed the capacity it held.")

    def _carry_out_evictions(self, uid: str) -> None:
        """Before a Regular group runs, stop the Spot groups evicted for it (for any group:
        which took whose place is not kept), each in the teardown lane, waiting up to
        :data:`EVICTION_WAIT_S` for them."""
        victims = [victim for victim in self.store.evicting() if victim != uid]
        if not victims:
            return
        if not self._threads:  # not started (a caller converges by hand): here and now
            for victim in victims:
                self.converge(victim)
            return
        deadline = time.monotonic() + EVICTION_WAIT_S
        for victim in victims:
            self._hand_to_teardown(victim, deadline)
        for victim in victims:
            if not self.wait_idle(victim, max(0.0, deadline - time.monotonic())):
                log.warning("the evicted Spot group %s is not stopped yet; group %s runs "
                            "anyway", victim, uid)

    def _hand_to_teardown(self, uid: str, deadline: float) -> None:
        """Put ``uid`` in the teardown lane at once, once no worker holds it (a worker of
        the main lane need not be free to hand it over, as :meth:`_loop` would)."""
        with self._done:
            while uid in self._busy and (left := deadline - time.monotonic()) > 0:
                self._done.wait(left)
            if uid in self._busy:
                return  # still converged elsewhere: it is queued by its kick
            if uid in self._queued:
                self._queued.remove(uid)
            self._busy.add(uid)
            self._teardowns.append(uid)
            self._done.notify_all()

    def readmit(self) -> None:
        """Run again the evicted Spot groups that fit now (ACI restarts an evicted Spot
        group on its own), the first evicted first."""
        if self.admission is None:
            return
        for uid in self.store.readmit_evicted(self.admission):
            log.info("starting evicted Spot container group %s again: capacity is spare", uid)
            record = self.store.get_group_by_uid(uid)
            if self.service_log is not None and record is not None:
                self.service_log.record(
                    caller=CONTAINER_INSTANCE, action=START, resource_id=record.resource_id,
                    description="Spot container group started again after its eviction: "
                                "capacity is spare.")
            self.kick(uid)

    def _placement(self, record: GroupRecord) -> SubnetPlacement | None:
        return subnet_placement(self.store, record)

    # ---- virtual networks on the node ------------------------------------------------

    def tear_down_vnets(self) -> None:
        """Remove from the node each deleted virtual network no group is in any more, and
        forget its teardown; one still in use waits for its last group's deletion, one
        the engine fails to remove for the next resync. After a start, sweep too."""
        for key in self.store.vnet_teardowns():
            if self.store.vnet_in_use(key):
                continue  # its groups are being deleted: the last one kicks this again
            try:
                self.engine.remove_vnet(key)
            except SkiffError as exc:
                log.warning("virtual network %s: cannot remove it from the node yet: %s",
                            key, exc.message)
                continue
            self.store.finish_vnet_teardown(key)
        if self._sweep:
            self._sweep = False
            self.sweep_vnets()

    def sweep_vnets(self) -> None:
        """Remove every virtual network the engine has that the store neither holds nor
        places a group in: nothing would ever remove it otherwise."""
        for key in self.engine.vnets():
            if self.store.vnet_by_id(key) is not None or self.store.vnet_in_use(key):
                continue
            try:
                self.engine.remove_vnet(key)
            except SkiffError as exc:
                log.warning("virtual network %s: left on the node by an earlier run, cannot "
                            "remove it: %s", key, exc.message)

    def _withdraw(self, uid: str) -> None:
        if self.names is not None:
            self.names.withdraw(uid)

    def _unbill(self, uid: str) -> None:
        if self.meter is not None:
            self.meter.ended(uid)

    def _run_or_start(self, record: GroupRecord, spec: GroupSpec, *, deploying: bool,
                      restarting: bool = False) -> GroupView:
        """Run (or start) the group; a deployment's outcome and latency are counted, and
        a deployment or start is billed from here (its pull begins)."""
        uid = record.uid
        begun = time.monotonic()
        try:
            try:
                current = self.engine.view(uid)
            except GroupNotFound:
                current = None
            starting = current is not None and current.stopped
            if self.meter is not None and (deploying or restarting or starting):
                self.meter.began(record)
            view = self.engine.start(uid, spec) if starting else self.engine.run(spec)
        except SkiffError:
            if deploying and self.telemetry is not None:
                self.telemetry.started(time.monotonic() - begun, failed=True)
            raise
        if deploying and self.telemetry is not None:
            self.telemetry.started(time.monotonic() - begun, failed=view.failure is not None)
        return view

    @staticmethod
    def _quietly(action: Callable[[], object]) -> None:
        with contextlib.suppress(GroupNotFound):
            action()

    def _finish(self, record: GroupRecord, status: str,
                error: dict[str, str] | None = None) -> None:
        for op in self.store.operations_for(record.resource_id):
            if op.generation is None or op.generation <= record.generation:
                self.store.finish_operation(op.id, status, error)
