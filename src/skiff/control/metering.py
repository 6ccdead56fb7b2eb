"""The meter: container groups' billable time, kept in the store as ACI bills it.

ACI bills a group per second "from the time it starts pulling its first image
until it is stopped" (its FAQ), for the vCPUs and GB of memory its containers
request; Stopped, Succeeded and Failed groups accrue nothing. The store keeps
that time as spans (:mod:`skiff.store.usage`); the ends of a span come from two
places:

- the reconcile loop, which knows the decisions: it opens a group's span before
  it deploys or starts it (the pull begins there) and closes it when it stops,
  deletes or fails the group (:meth:`Meter.began`, :meth:`Meter.ended`);
- this meter's thread, which knows what the containers did on their own: every
  ``interval_s`` it reads the engine's phases (no group's lock, no subprocess)
  and closes the span of a group whose containers have all ended for good
  (Succeeded, Failed) at the moment the last one ended, and advances the
  ``last_seen`` of the others (one transaction for all of them).

After a crash, the loop's first run of each group in the new process adopts it and
tells the meter what it found (:meth:`Meter.observed`): a group whose containers
kept running under conmon kept running, and its span goes on (nothing lost); one
whose containers did not survive (the node rebooted) and were started again has
its span closed at its ``last_seen`` and a new one opened, so at most
``interval_s`` of it is lost (the crash window) and nothing is counted twice; one
that ended meanwhile has its span closed when its last container ended.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from skiff.control.periodic import Periodic
from skiff.core.engine import Engine
from skiff.core.metrics import GroupPhase
from skiff.core.view import GroupView
from skiff.store import GroupRecord, Store

#: The engine's states in which a group is billed (pulling, starting, running).
BILLED = frozenset({"Pending", "Running"})


class Meter(Periodic[None]):
    """Keeps the store's usage spans true to the groups' lifecycle (a thread once
    :meth:`start` ed; :meth:`tick` for a caller's own pace)."""

    thread_name = "skiff-meter"
    doing = "metering the groups' usage"

    def __init__(self, store: Store, engine: Engine, *, interval_s: float = 5.0,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(interval_s)
        self.store = store
        self.engine = engine
        self.clock = clock
        #: Groups the loop has run in this process (a span of another is a crash's).
        self._seen: set[str] = set()

    # ---- the reconcile loop's decisions ------------------------------------------------

    def began(self, record: GroupRecord) -> None:
        """``record``'s group is being deployed or started: bill it from now on (a span
        already open, with the same requests, goes on)."""
        self.store.open_span(record, self.clock())

    def observed(self, record: GroupRecord, view: GroupView) -> None:
        """The loop ran (or adopted) ``record``'s group and found it as ``view``."""
        uid = record.uid
        first = uid not in self._seen
        self._seen.add(uid)
        if view.state not in BILLED:
            self.store.close_span(uid, _ended_at(view) or self.clock())
            return
        if first:  # this process's first sight: did it outlive the last one's end?
            span = self.store.open_span_of(uid)
            if span is not None and not _survived(view, span.last_seen):
                self.store.close_span(uid, None)
        now = self.clock()
        self.store.open_span(record, now)
        self.store.advance_spans([uid], now)  # its containers run: seen so, after a crash

    def ended(self, uid: str) -> None:
        """Group ``uid`` was stopped, deleted or failed: bill it no more."""
        self._seen.discard(uid)
        self.store.close_span(uid, self.clock())

    # ---- what the containers did on their own ------------------------------------------

    def tick(self) -> None:
        """One round: close the spans of groups that ended, advance the others'. A group
        the engine does not know yet (not adopted since a start) is left as it is."""
        self.run_round()

    def _round(self) -> None:
        phases = self._phases()
        now = self.clock()
        going = []
        for span in self.store.open_spans():
            found = phases.get(span.group_uid)
            if found is None or span.group_uid not in self._seen:
                continue
            if found.state in BILLED:
                going.append(span.group_uid)
            elif found.ended_at is not None and found.ended_at >= span.started_at:
                self.store.close_span(span.group_uid, found.ended_at)
            elif found.state == "Failed":
                # Failed as a whole by the engine on its own (an init container that
                # failed for good, say): when it gave up is not told, so the span ends at
                # the round that sees it, at most ``interval_s`` late.
                self.store.close_span(span.group_uid, now)
            # Stopped: the loop decided it, and closed the span
        self.store.advance_spans(going, now)

    def _phases(self) -> dict[str, GroupPhase]:
        return self.engine.phases()


def _ended_at(view: GroupView) -> float | None:
    """When the last of a finished group's containers ended, if the view tells."""
    return max((c.current.finish_time for c in view.containers
                if c.current.finish_time is not None), default=None)


def _survived(view: GroupView, last_seen: float) -> bool:
    """Whether a container of the group runs since before ``last_seen`` (1 s of slack:
    the clock read before the meter's write): it outlived whatever stopped the server."""
    return any(c.current.state == "Running" and c.current.start_time is not None
               and c.current.start_time <= last_seen + 1.0 for c in view.containers)
