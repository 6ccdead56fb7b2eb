"""What an NGroup's controller does in one round, decided without side effects.

:func:`decide` takes the NGroup's checked body, its members as they are (each built from
a generation of the NGroup, each healthy, pending, unhealthy or stopped) and what the
last round kept (``rollout``), and answers what to do: members to create, to update in
place, to delete, the state to keep, the provisioning state and the events. No clock is
read (``now`` is given) and no name is drawn (``new_name`` is), so it is tested by tables
alone, in the style of the engine's restart tracker.

The rules, ACI's (docs: "NGroups rolling update"):

- The count. ``desiredCount`` members that are not leaving. A member deleted by its
  tenant, or failed, is replaced when ``maintainDesiredCount`` says so; otherwise the
  count is set again only by the next new body of the NGroup.
- Manual updates. New members are built from the current generation; existing ones stay.
- Rolling updates. Batches of ``ceil(maxBatchPercent% * desiredCount)`` members of older
  generations: replacements are created (or the members are updated in place, with
  ``inPlaceUpdate``), and once none of them is pending, the old ones go; the next batch
  starts after ``pauseTimeBetweenBatches``. After each batch, if more than
  ``maxUnhealthyPercent`` of the updated members are unhealthy, the rollout stops
  (``Failed``) and the old members stay, until the NGroup's next new body.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from skiff.models.ngroups import NGroupSpec

Health = Literal["healthy", "pending", "unhealthy", "stopped"]


@dataclass(frozen=True)
class Member:
    name: str
    generation: int
    health: Health


@dataclass
class Plan:
    """One round's decisions."""

    #: New members' names, each built from the NGroup's current generation.
    create: list[str] = field(default_factory=list)
    #: Members updated in place to the current generation.
    update: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    rollout: dict[str, Any] = field(default_factory=dict)
    #: The NGroup's provisioning state, or None to keep it.
    state: str | None = None
    #: (name, message) of each event, in order.
    events: list[tuple[str, str]] = field(default_factory=list)

    @property
    def busy(self) -> bool:
        """Whether the NGroup is still on its way (its operations not done)."""
        return self.state not in ("Succeeded", "Failed")


def decide(spec: NGroupSpec, *, version: int, generation: int, members: Sequence[Member],
           rollout: dict[str, Any], now: float, new_name: Callable[[], str],
           stopped: bool = False) -> Plan:
    """The round's plan for an NGroup at ``version``/``generation`` whose members (those
    whose container groups exist) are ``members``; ``stopped``: its members are asked to
    be stopped (nothing is replaced nor rolled)."""
    plan = Plan(rollout=dict(rollout))
    state = plan.rollout
    batch: dict[str, Any] | None = state.get("batch")
    live = {m.name: m for m in members}
    if stopped:
        plan.state = "Succeeded"
        return plan
    if batch is not None:  # members gone since are no longer waited for...
        lost = [n for n in batch["new"] if n not in live]
        batch = {**batch, "new": [n for n in batch["new"] if n in live],
                 "old": [n for n in batch["old"] if n in live]}
        if lost and batch["old"]:  # ...but a lost replacement is made again (a crash
            again = [new_name() for _ in lost]  # between its row and its group, a delete)
            plan.create += again
            batch["new"] += again
    leaving = set(batch["old"]) if batch else set()
    rolling = spec.rolling
    if spec.maintain:
        failed = [m for m in members if m.health == "unhealthy"
                  and (batch is None or m.name not in batch["new"])]
        for m in failed:
            plan.delete.append(m.name)
            plan.events.append(("MemberReplaced", f"Member '{m.name}' failed; it is replaced."))
    active = [m for m in members if m.name not in leaving and m.name not in plan.delete]
    may_scale = spec.maintain or state.get("scaled") != version
    coming = len(plan.create)  # replacements of the batch in flight, made again
    if len(active) + coming < spec.desired_count and may_scale \
            and state.get("blocked") != version:
        more = [new_name() for _ in range(spec.desired_count - len(active) - coming)]
        plan.create += more
        plan.events.append(("ScaledOut", f"Creating {len(more)} member(s) to keep "
                                          f"{spec.desired_count}."))
    elif len(active) + coming > spec.desired_count:
        order = sorted(active, key=lambda m: (m.generation, m.health != "unhealthy"))
        extra = [m.name for m in order[:len(active) + coming - spec.desired_count]]
        plan.delete += extra
        plan.events.append(("ScaledIn", f"Deleting {len(extra)} member(s) to keep "
                                         f"{spec.desired_count}."))
        active = [m for m in active if m.name not in extra]
    if may_scale:
        state["scaled"] = version
    if rolling is not None:
        batch = _roll(spec, plan, batch, active, members, generation, now, new_name)
    state["batch"] = batch
    pending = any(m.health == "pending" for m in active if m.generation == generation)
    old = rolling is not None and state.get("stopped") != generation and any(
        m.generation < generation for m in active)
    if state.get("stopped") == generation or state.get("blocked") == version:
        plan.state = "Failed"
    elif plan.create or plan.update or plan.delete or batch or pending or old:
        plan.state = None  # as it is: Creating or Updating
    else:
        plan.state = "Succeeded"
    return plan


def _roll(spec: NGroupSpec, plan: Plan, batch: dict[str, Any] | None,
          active: list[Member], members: Sequence[Member], generation: int,
          now: float, new_name: Callable[[], str]) -> dict[str, Any] | None:
    """The rolling update's step: the batch in flight checked, or the next one started."""
    rolling = spec.rolling
    assert rolling is not None
    state = plan.rollout
    if state.get("generation") != generation:  # a new rollout: batches counted afresh
        state.update(generation=generation, number=0, pauseUntil=0)
    live = {m.name: m for m in members}
    if batch is not None:
        if any(n not in live or live[n].health == "pending" for n in batch["new"]):
            return batch  # a replacement is being made, or is not running yet
        updated = [m for m in active if m.generation == generation]
        unhealthy = sum(1 for m in updated if m.health == "unhealthy")
        if rolling.too_unhealthy(unhealthy, len(updated)):
            state["stopped"] = generation
            plan.events.append((
                "RollingUpdateStopped",
                f"Batch {batch['number']}: {unhealthy} of {len(updated)} updated member(s) "
                f"are unhealthy, more than maxUnhealthyPercent "
                f"({rolling.max_unhealthy_percent}%); the rolling update stops."))
            return None
        plan.delete += batch["old"]
        state["pauseUntil"] = now + rolling.pause_s
        plan.events.append(("BatchCompleted", f"Batch {batch['number']} of "
                                              f"{batch['of']} completed."))
        return None
    if state.get("stopped") == generation:
        return None
    old = [m for m in active if m.generation < generation]
    if not old:
        if state.get("rolled", 0) < generation and state.get("number"):
            plan.events.append(("RollingUpdateCompleted",
                                f"Every member is at generation {generation}."))
            state["rolled"] = generation
            state["number"] = 0
        return None
    if now < float(state.get("pauseUntil", 0)):
        return None
    size = rolling.batch_size(spec.desired_count or len(active))
    # The unhealthy first: they gain the most; then the oldest.
    chosen = sorted(old, key=lambda m: m.health != "unhealthy")[:size]
    number = int(state.get("number", 0)) + 1
    total = number - 1 + math.ceil(len(old) / size)
    state["number"] = number
    names = [m.name for m in chosen]
    if rolling.in_place:
        plan.update += names
        new, leaving = names, []
    else:
        new = [new_name() for _ in chosen]
        plan.create += new
        leaving = names
    plan.events.append(("BatchStarted", f"Batch {number} of {total}: updating {len(chosen)} "
                                        f"member(s) to generation {generation}."))
    return {"number": number, "of": total, "new": new, "old": leaving}

