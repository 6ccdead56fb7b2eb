"""The NGroup controller's decisions (skiff.control.rollout.decide), by tables: the count
kept, members replaced, rolling batches, the unhealthy stop, manual updates."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from skiff.control.rollout import Health, Member, Plan, decide
from skiff.errors import ArmError
from skiff.models.ngroups import NGroupSpec, Rolling, parse_ngroup

PROFILE = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/" \
          "containerGroupProfiles/p"


def spec(count: int = 6, *, maintain: bool = False, mode: str = "Rolling",
         batch: int = 50, unhealthy: int = 20, pause: str | None = None,
         in_place: bool = False) -> NGroupSpec:
    rolling: dict[str, Any] = {"maxBatchPercent": batch, "maxUnhealthyPercent": unhealthy,
                               "inPlaceUpdate": in_place}
    if pause:
        rolling["pauseTimeBetweenBatches"] = pause
    body = parse_ngroup({"properties": {
        "elasticProfile": {"desiredCount": count, "maintainDesiredCount": maintain,
                           "containerGroupNamingPolicy": {"guidNamingPolicy": {"prefix": "m-"}}},
        "containerGroupProfiles": [{"resource": {"id": PROFILE}, "revision": 1}],
        "updateProfile": {"updateMode": mode, "rollingUpdateProfile": rolling}}},
        subscription="s", name="ng", default_location="westeurope")
    return NGroupSpec.from_stored(body)


def names() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"new{next(counter)}"


def members(generation: int, count: int, health: Health = "healthy",
            prefix: str = "old") -> list[Member]:
    return [Member(f"{prefix}{i}", generation, health) for i in range(count)]


def step(ngroup: NGroupSpec, current: list[Member], rollout: dict[str, Any], *,
         generation: int = 2, version: int = 2, now: float = 0.0,
         draw: Callable[[], str] | None = None) -> Plan:
    return decide(ngroup, version=version, generation=generation, members=current,
                  rollout=rollout, now=now, new_name=draw or names())


def test_a_new_ngroup_creates_its_desired_count() -> None:
    """Version 1 with no members creates desiredCount members, and stays in progress."""
    plan = step(spec(3), [], {}, generation=1, version=1)
    assert plan.create == ["new1", "new2", "new3"]
    assert plan.state is None
    assert plan.busy
    assert plan.rollout["scaled"] == 1


def test_the_count_is_kept_only_when_maintained() -> None:
    """A member deleted by its tenant is replaced with maintainDesiredCount, and not
    without it (until the NGroup's next new body)."""
    two = members(1, 2)
    kept = step(spec(3, maintain=True), two, {"scaled": 1}, generation=1, version=1)
    assert kept.create == ["new1"]
    left = step(spec(3), two, {"scaled": 1}, generation=1, version=1)
    assert left.create == []
    assert left.state == "Succeeded"
    again = step(spec(3), two, {"scaled": 1}, generation=1, version=2)
    assert again.create == ["new1"]


def test_a_failed_member_is_replaced_when_maintained() -> None:
    """With maintainDesiredCount, a failed member is deleted and a new one made."""
    current = [*members(1, 2), Member("bad", 1, "unhealthy")]
    plan = step(spec(3, maintain=True), current, {"scaled": 1}, generation=1, version=1)
    assert plan.delete == ["bad"]
    assert plan.create == ["new1"]
    assert ("MemberReplaced", "Member 'bad' failed; it is replaced.") in plan.events


def test_extra_members_go_oldest_generation_first() -> None:
    """desiredCount lowered: the extra members deleted are those of older generations."""
    current = [*members(2, 2, prefix="n"), *members(1, 2)]
    plan = step(spec(2, mode="Manual"), current, {}, version=3)
    assert sorted(plan.delete) == ["old0", "old1"]


def test_six_members_roll_in_two_batches_of_three() -> None:
    """maxBatchPercent 50 of 6: a batch of 3 replacements, the 3 old go once the new ones
    run, then the second batch, then the rollout completes."""
    ngroup, draw = spec(6), names()
    current = members(1, 6)
    first = step(ngroup, current, {"scaled": 2}, draw=draw)
    assert first.create == ["new1", "new2", "new3"]
    assert first.delete == []
    assert first.rollout["batch"] == {"number": 1, "of": 2, "new": first.create,
                                      "old": ["old0", "old1", "old2"]}
    current += [Member(n, 2, "pending") for n in first.create]
    waiting = step(ngroup, current, first.rollout, draw=draw)
    assert waiting.create == []
    assert waiting.delete == []
    assert waiting.state is None
    current = [m if m.generation == 1 else Member(m.name, 2, "healthy") for m in current]
    done = step(ngroup, current, first.rollout, draw=draw)
    assert done.delete == ["old0", "old1", "old2"]
    assert ("BatchCompleted", "Batch 1 of 2 completed.") in done.events
    current = [m for m in current if m.name not in done.delete]
    second = step(ngroup, current, done.rollout, draw=draw)
    assert second.create == ["new4", "new5", "new6"]
    assert second.rollout["batch"]["old"] == ["old3", "old4", "old5"]
    current += [Member(n, 2, "healthy") for n in second.create]
    finish = step(ngroup, current, second.rollout, draw=draw)
    assert finish.delete == ["old3", "old4", "old5"]
    current = [m for m in current if m.name not in finish.delete]
    last = step(ngroup, current, finish.rollout, draw=draw)
    assert last.state == "Succeeded"
    assert ("RollingUpdateCompleted", "Every member is at generation 2.") in last.events


def test_the_rollout_stops_when_too_many_updated_members_are_unhealthy() -> None:
    """Two of three replacements failed (67% > 20%): the rollout stops Failed, the old
    members stay, and no next batch starts until a new generation."""
    ngroup = spec(6)
    current = members(1, 6)
    first = step(ngroup, current, {"scaled": 2})
    current += [Member("new1", 2, "healthy"), Member("new2", 2, "unhealthy"),
                Member("new3", 2, "unhealthy")]
    stopped = step(ngroup, current, first.rollout)
    assert stopped.state == "Failed"
    assert stopped.delete == []
    assert stopped.create == []
    assert stopped.events[-1][0] == "RollingUpdateStopped"
    assert step(ngroup, current, stopped.rollout).create == []
    resumed = step(ngroup, current, stopped.rollout, generation=3, version=3)
    assert resumed.create
    assert resumed.state is None


def test_within_max_unhealthy_the_rollout_goes_on() -> None:
    """One of three unhealthy is within maxUnhealthyPercent 50: the batch completes."""
    ngroup = spec(6, unhealthy=50)
    current = members(1, 6)
    first = step(ngroup, current, {"scaled": 2})
    current += [Member("new1", 2, "healthy"), Member("new2", 2, "healthy"),
                Member("new3", 2, "unhealthy")]
    assert step(ngroup, current, first.rollout).delete == ["old0", "old1", "old2"]


def test_batches_pause_between_them() -> None:
    """pauseTimeBetweenBatches PT30S: the next batch waits 30 seconds after the last."""
    ngroup = spec(4, pause="PT30S")
    current = [*members(2, 2, prefix="n"), *members(1, 2)]
    rollout = {"scaled": 2, "generation": 2, "number": 1, "pauseUntil": 130.0}
    assert step(ngroup, current, rollout, now=100.0).create == []
    assert step(ngroup, current, rollout, now=130.0).create == ["new1", "new2"]


def test_in_place_updates_keep_the_members() -> None:
    """inPlaceUpdate: a batch updates members where they are; nothing is created."""
    plan = step(spec(4, in_place=True), members(1, 4), {"scaled": 2})
    assert plan.update == ["old0", "old1"]
    assert plan.create == []
    assert plan.delete == []
    assert plan.rollout["batch"]["new"] == ["old0", "old1"]


def test_manual_updates_leave_existing_members() -> None:
    """Manual mode: a new generation builds only new members; existing ones stay."""
    ngroup = spec(3, mode="Manual")
    plan = step(ngroup, members(1, 3), {"scaled": 1})
    assert plan.create == []
    assert plan.delete == []
    assert plan.state == "Succeeded"
    grown = step(spec(4, mode="Manual"), members(1, 3), {"scaled": 1})
    assert grown.create == ["new1"]


def test_a_stopped_ngroup_neither_replaces_nor_rolls() -> None:
    """Members asked to stop are not replaced nor rolled."""
    plan = decide(spec(6, maintain=True), version=2, generation=2, members=[], rollout={},
                  now=0, new_name=names(), stopped=True)
    assert plan.create == []
    assert plan.state == "Succeeded"


def test_batch_size_rounds_up() -> None:
    """ceil(maxBatchPercent% of N), at least one."""
    assert Rolling(max_batch_percent=50).batch_size(6) == 3
    assert Rolling(max_batch_percent=20).batch_size(6) == 2
    assert Rolling(max_batch_percent=1).batch_size(6) == 1


@pytest.mark.parametrize(("change", "target"), [
    ({"elasticProfile": {"desiredCount": -1}}, "properties.elasticProfile.desiredCount"),
    ({"elasticProfile": {"desiredCount": True}}, "properties.elasticProfile.desiredCount"),
    ({"elasticProfile": {"containerGroupNamingPolicy": {"guidNamingPolicy": {
        "prefix": "Upper"}}}},
     "properties.elasticProfile.containerGroupNamingPolicy.guidNamingPolicy.prefix"),
    ({"containerGroupProfiles": []}, "properties.containerGroupProfiles"),
    ({"containerGroupProfiles": [{"resource": {"id": "/subscriptions/s/x"}}]},
     "properties.containerGroupProfiles[0].resource.id"),
    ({"containerGroupProfiles": [{"resource": {"id": PROFILE.replace("/s/", "/other/")}}]},
     "properties.containerGroupProfiles[0].resource.id"),
    ({"updateProfile": {"updateMode": "Sometimes"}}, "properties.updateProfile.updateMode"),
    ({"updateProfile": {"rollingUpdateProfile": {"maxBatchPercent": 0}}},
     "properties.updateProfile.rollingUpdateProfile.maxBatchPercent"),
    ({"updateProfile": {"rollingUpdateProfile": {"pauseTimeBetweenBatches": "soon"}}},
     "properties.updateProfile.rollingUpdateProfile.pauseTimeBetweenBatches"),
])
def test_bodies_acis_refuses(change: dict[str, Any], target: str) -> None:
    """Each broken field is a 400 naming it."""
    props: dict[str, Any] = {"containerGroupProfiles": [{"resource": {"id": PROFILE}}],
                             **change}
    with pytest.raises(ArmError) as caught:
        parse_ngroup({"properties": props}, subscription="s", name="ng",
                     default_location="westeurope")
    assert caught.value.status == 400
    assert caught.value.target == target


def test_a_lost_replacement_is_made_again() -> None:
    """A replacement of the batch in flight that is gone (skiff stopped between its row
    and its group, or its tenant deleted it) is made again, even without
    maintainDesiredCount, and the batch waits for it: the old members do not go first."""
    ngroup = spec(4)
    first = step(ngroup, members(1, 4), {"scaled": 2})
    assert first.create == ["new1", "new2"]
    current = [*members(1, 4), Member("new1", 2, "healthy")]  # new2 lost
    again = step(ngroup, current, first.rollout, draw=iter(["redo"]).__next__)
    assert again.create == ["redo"]
    assert again.delete == []
    assert again.rollout["batch"]["new"] == ["new1", "redo"]
