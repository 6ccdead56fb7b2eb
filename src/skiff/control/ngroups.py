"""The NGroups controller: a loop that keeps each NGroup's members as its body says.

Every round (every :attr:`NGroups.interval_s`, and at once when kicked by a write) it
reads each NGroup and its members from the store and the engine, asks
:func:`skiff.control.rollout.decide` what to do, and does it through :class:`MemberWrites`:
the API's own path for a container group's PUT and DELETE (admission, quotas, labels,
the reconcile loop, metering), so a member is a container group like any other. What the
round decided is saved in the NGroup's row (``rollout``, events, provisioning state),
so a restart of skiff resumes where it was: nothing lives only in this object.

Tenancy: an NGroup's members are named in its own subscription and resource group only,
and its profile is looked up in its own subscription (the body's check refused any
other), so no round ever touches another tenant's resources.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from skiff.control.profiles import merge_group_fields
from skiff.control.rollout import Health, Member, Plan, decide
from skiff.core.engine import Engine
from skiff.errors import ArmError, GroupNotFound, SkiffError
from skiff.models.activity import iso
from skiff.models.ngroups import (
    ORCHESTRATOR_TAG,
    NGroupSpec,
    add_volume_mounts,
    member_name,
    member_overrides,
)
from skiff.store import Store
from skiff.store.ngroups import MemberState, NGroupRecord

log = logging.getLogger(__name__)

#: A profile revision's group body: (subscription, profile id, revision or None for the
#: latest) → {"location", "properties"}; ArmError 404/400 as ACI's for a missing one.
Profiles = Callable[[str, str, "int | None"], dict[str, Any]]


def member_body(group: dict[str, Any], overrides: dict[str, Any], *, location: str,
                ngroup_id: str) -> dict[str, Any]:
    """A member's ARM body: the profile revision's ``group`` (naming it in
    ``containerGroupProfile``), the per-member fields over it, and the tag naming the
    NGroup; ArmError 400 for a per-member field the profile cannot take."""
    body = add_volume_mounts(merge_group_fields(group, member_overrides(overrides)), overrides)
    body["location"] = location
    body["tags"] = {**(body.get("tags") or {}), ORCHESTRATOR_TAG: ngroup_id}
    return body


class MemberWrites(Protocol):
    """How the controller writes members: as a container group's PUT and DELETE would."""

    def put(self, ngroup: NGroupRecord, name: str, body: dict[str, Any]) -> None: ...

    def delete(self, ngroup: NGroupRecord, name: str) -> None: ...


@dataclass(frozen=True)
class Round:
    """What one NGroup's round did (for tests and logs)."""

    ngroup: str
    plan: Plan


class NGroups:
    """The controller. ``run_round`` does one round now; ``start`` runs them in a thread."""

    def __init__(self, store: Store, engine: Engine, writes: MemberWrites, *,
                 profiles: Profiles, interval_s: float = 1.0,
                 clock: Callable[[], float] | None = None) -> None:
        self.store, self.engine, self.writes, self.profiles = store, engine, writes, profiles
        self.interval_s = interval_s
        self._clock = clock or store.now
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # ---- the loop -----------------------------------------------------------------

    def start(self) -> None:
        if self.interval_s <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="skiff-ngroups", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def kick(self) -> None:
        """Run a round soon (a write changed an NGroup or a member)."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.run_round()
            except Exception:  # the thread must outlive anything one round meets
                log.exception("an NGroups round failed")

    def run_round(self) -> list[Round]:
        """One round over every NGroup, in the caller's thread."""
        with self._lock:
            rounds = []
            for record in self.store.list_ngroups():
                try:
                    plan = self._converge(record)
                except SkiffError as exc:  # one NGroup's trouble stops no other
                    log.warning("NGroup %s: %s", record.resource_id, exc)
                    continue
                if plan is not None:
                    rounds.append(Round(record.name, plan))
            return rounds

    # ---- one NGroup ---------------------------------------------------------------

    def _converge(self, record: NGroupRecord) -> Plan | None:
        members, gone = self._members(record)
        for name in gone:
            self.store.forget_member(record.uid, name)
        if record.desired == "deleted":
            return self._delete(record, members)
        spec = NGroupSpec.from_stored(record.body)
        stopped = record.desired == "stopped"
        plan = decide(spec, version=record.version, generation=record.generation,
                      members=members, rollout=record.rollout, now=self._clock(),
                      new_name=lambda: member_name(spec.prefix), stopped=stopped)
        events = [("MemberDeleted", f"Member '{name}' was deleted.") for name in gone]
        events += plan.events
        for name in plan.delete:
            self._try(record, plan, events, "delete", name,
                      functools.partial(self.writes.delete, record, name))
            self.store.forget_member(record.uid, name)
        if plan.create or plan.update:
            try:
                body = self._member_body(record, spec)
            except ArmError as exc:
                body = None
                self._blocked(record, plan, events, exc)
            if body is not None:
                for name in [*plan.update, *plan.create]:
                    self.store.add_member(record.uid, name, record.generation)
                    if not self._try(record, plan, events, "create", name,
                                     functools.partial(self.writes.put, record, name, body)):
                        self.store.forget_member(record.uid, name)
                        break
        same = plan.rollout == record.rollout and not events and plan.state in (
            None, record.provisioning_state)
        # A settled NGroup's round writes nothing (rounds run every second).
        saved = same or self.store.save_rollout(
            record.uid, version=record.version, state=plan.state, rollout=plan.rollout,
            events=self._events(events))
        if saved and not plan.busy:
            self._finish(record, "Failed" if plan.state == "Failed" else "Succeeded")
        return plan

    def _try(self, record: NGroupRecord, plan: Plan, events: list[tuple[str, str]], what: str,
             name: str, write: Callable[[], None]) -> bool:
        try:
            write()
            return True
        except ArmError as exc:
            if what == "create":
                self._blocked(record, plan, events, exc)
            else:
                events.append(("MemberDeleteFailed", f"Member '{name}': {exc.message}"))
            return False

    def _blocked(self, record: NGroupRecord, plan: Plan, events: list[tuple[str, str]],
                 exc: ArmError) -> None:
        """A member cannot be made (a missing profile, a quota): the NGroup fails, and
        makes no member again before its next new body (a PUT or PATCH)."""
        plan.rollout["blocked"] = record.version
        plan.state = "Failed"
        events.append(("MemberCreateFailed", f"{exc.code}: {exc.message}"))

    def _member_body(self, record: NGroupRecord, spec: NGroupSpec) -> dict[str, Any]:
        profile = spec.profile
        group = self.profiles(record.subscription, profile.id, profile.revision)
        return member_body(group, profile.overrides, location=record.location,
                           ngroup_id=record.resource_id)

    def _members(self, record: NGroupRecord) -> tuple[list[Member], list[str]]:
        """The members whose groups exist (with their health), and the names of those
        whose groups are gone (or going)."""
        members, gone = [], []
        for row in self.store.member_states(record.uid):
            if row.group_uid is None or row.desired == "deleted":
                gone.append(row.name)
                continue
            members.append(Member(row.name, row.generation, self._health(row)))
        return members, gone

    def _health(self, row: MemberState) -> Health:
        """Healthy: the group runs (its containers ready); unhealthy: it failed."""
        if row.desired == "stopped":
            return "stopped"
        if row.provisioning_state == "Failed":
            return "unhealthy"
        try:
            view = self.engine.view(str(row.group_uid))
        except GroupNotFound:
            return "pending"
        if view.state in ("Failed", "Succeeded") or view.failure:
            return "unhealthy"
        if view.state != "Running" or row.provisioning_state != "Succeeded":
            return "pending"
        ready = all(c.ready for c in view.containers)
        return "healthy" if ready else "pending"

    def _delete(self, record: NGroupRecord, members: list[Member]) -> Plan | None:
        """An NGroup being deleted: its members go first, then the NGroup."""
        for member in members:
            try:
                self.writes.delete(record, member.name)
            except ArmError as exc:
                log.warning("NGroup %s: member %s: %s", record.resource_id, member.name, exc)
                continue
            self.store.forget_member(record.uid, member.name)
        if not self.store.members(record.uid):
            self._finish(record, "Succeeded")
            self.store.remove_ngroup(record.uid)
        return None

    def _finish(self, record: NGroupRecord, status: str) -> None:
        for op in self.store.operations_for(record.resource_id, status="InProgress"):
            error = None
            if status == "Failed":
                error = {"code": "NGroupFailed",
                         "message": f"The NGroup '{record.name}' failed: see its events."}
            self.store.finish_operation(op.id, status, error=error)

    def _events(self, events: list[tuple[str, str]]) -> list[dict[str, Any]]:
        at = iso(self._clock())
        return [{"name": name, "message": message, "timestamp": at} for name, message in events]
