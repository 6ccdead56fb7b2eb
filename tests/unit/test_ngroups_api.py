"""NGroups through the API, in process (the app over a real store, the reconcile loop and
the FakeEngine; the controller's rounds run when the test calls them): members made and
kept, named and tagged, rolled over in batches, stopped and started, deleted with the
NGroup; refusals; and an NGroup never seen from another subscription."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import start_blocking_portal

from skiff.api.app import create_app
from skiff.api.context import ControlPlane
from skiff.api.ngroups import attach_ngroups
from skiff.control.ngroups import NGroups
from skiff.errors import ArmError
from skiff.models.activity import EventQuery
from skiff.testing.inprocess import InProcessClient, fake_plane, service_writes
from skiff.testing.waiting import eventually

SUB = "sub-1"
API = "?api-version=2025-09-01"
RG = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerInstance"
PROFILE = f"{RG}/containerGroupProfiles/web"
OBJECT = "http://schemas.microsoft.com/identity/claims/objectidentifier"


def group_body(image: str = "registry.test/busybox:1") -> dict[str, Any]:
    return {"location": "westeurope", "properties": {
        "osType": "Linux", "restartPolicy": "Always", "containers": [{
            "name": "c", "properties": {
                "image": image, "command": ["sh", "-c", "sleep 300"],
                "resources": {"requests": {"cpu": 0.1, "memoryInGB": 0.1}}}}]}}


def add_revision(http: InProcessClient, image: str, mark: str) -> None:
    """A new revision of the profile (its definition changed by ``mark``)."""
    body = group_body(image)
    body["properties"]["containers"][0]["properties"]["command"] = ["sh", "-c",
                                                                    f"sleep 300 # {mark}"]
    answer = http.put(f"{PROFILE}{API}", json=body)
    assert answer.status_code in (200, 201), answer.text


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[ControlPlane, InProcessClient]]:
    """A plane, a client of ``SUB``, and the profile ``web`` with revisions 1 and 2."""
    with start_blocking_portal() as portal, fake_plane(tmp_path) as plane:
        _, secret = plane.store.create_token(SUB, "tests")
        http = InProcessClient(portal, create_app(plane), secret)
        add_revision(http, "registry.test/busybox:1", "1")
        add_revision(http, "registry.test/busybox:1", "2")
        yield plane, http


def ngroup(count: int = 3, revision: int = 1, *, mode: str = "Rolling", batch: int = 50,
           maintain: bool = True) -> dict[str, Any]:
    return {"location": "westeurope", "properties": {
        "elasticProfile": {"desiredCount": count, "maintainDesiredCount": maintain,
                           "containerGroupNamingPolicy": {"guidNamingPolicy": {"prefix": "web-"}}},
        "containerGroupProfiles": [{"resource": {"id": PROFILE}, "revision": revision}],
        "updateProfile": {"updateMode": mode, "rollingUpdateProfile": {
            "maxBatchPercent": batch, "maxUnhealthyPercent": 0}}}}


def members(plane: ControlPlane) -> dict[str, int | None]:
    """The NGroup's members (container groups tagged with it): name → profile revision."""
    found = {}
    for record in plane.store.list_groups(SUB, "rg")[0]:
        if record.desired != "deleted" and record.tags.get("orchestratorId", "").endswith(
                "/ngroups/ng"):
            found[record.name] = record.body["properties"]["containerGroupProfile"].get(
                "revision")
    return found


def controller(plane: ControlPlane) -> NGroups:
    assert plane.ngroups is not None
    return plane.ngroups


def settle(plane: ControlPlane, http: InProcessClient, state: str = "Succeeded") -> None:
    """Rounds until the NGroup is in ``state``."""
    def reached() -> bool:
        controller(plane).run_round()
        return bool(http.get(f"{RG}/ngroups/ng{API}").json()["properties"]
                    ["provisioningState"] == state)
    eventually(reached, what=f"the NGroup is {state}", timeout_s=20)


def test_an_ngroup_makes_its_members(node: tuple[ControlPlane, InProcessClient]) -> None:
    """A PUT answers 201 with an operation; the members are container groups named by the
    prefix and a GUID, tagged with the NGroup, built from the revision, and running."""
    plane, http = node
    answer = http.put(f"{RG}/ngroups/ng{API}", json=ngroup(3))
    assert answer.status_code == 201, answer.text
    assert answer.json()["properties"]["provisioningState"] == "Creating"
    assert "Azure-AsyncOperation" in answer.headers
    settle(plane, http)
    found = members(plane)
    assert len(found) == 3
    assert set(found.values()) == {1}
    assert all(name.startswith("web-") and len(name) == 40 for name in found)
    operation = http.get(answer.headers["Azure-AsyncOperation"].removeprefix("https://skiff.test"))
    assert operation.json()["status"] == "Succeeded"
    listed = http.get(f"{RG}/ngroups{API}").json()["value"]
    assert [n["name"] for n in listed] == ["ng"]


def test_a_patch_of_the_count_alone_keeps_the_rest(
        node: tuple[ControlPlane, InProcessClient]) -> None:
    """A PATCH of ``elasticProfile.desiredCount`` only (what the SDK's NGroupPatch sends)
    is merged in depth, as ARM's JSON merge patch: the new member keeps the prefix, the
    NGroup its maintainDesiredCount and update profile."""
    plane, http = node
    http.put(f"{RG}/ngroups/ng{API}", json=ngroup(2))
    settle(plane, http)
    answer = http.request("PATCH", f"{RG}/ngroups/ng{API}",
                          json={"properties": {"elasticProfile": {"desiredCount": 3}}})
    assert answer.status_code in (200, 202), answer.text
    settle(plane, http)
    assert len(members(plane)) == 3
    assert all(name.startswith("web-") for name in members(plane))
    props = http.get(f"{RG}/ngroups/ng{API}").json()["properties"]
    assert props["elasticProfile"] == ngroup(3)["properties"]["elasticProfile"]
    assert props["updateProfile"]["updateMode"] == "Rolling"


def test_a_deleted_member_is_replaced(node: tuple[ControlPlane, InProcessClient]) -> None:
    """maintainDesiredCount: a member deleted by its tenant is made again."""
    plane, http = node
    http.put(f"{RG}/ngroups/ng{API}", json=ngroup(2))
    settle(plane, http)
    gone = sorted(members(plane))[0]
    assert http.delete(f"{RG}/containerGroups/{gone}{API}").status_code in (200, 202)
    eventually(lambda: controller(plane).run_round() is not None and len(members(plane)) == 2
               and gone not in members(plane), what="a replacement")
    events = http.get(f"{RG}/ngroups/ng/events{API}").json()["value"]
    assert any(e["name"] == "MemberDeleted" and gone in e["message"] for e in events)


def test_a_new_revision_rolls_six_members_in_two_batches(
        node: tuple[ControlPlane, InProcessClient]) -> None:
    """Six members, maxBatchPercent 50: revision 2 replaces three, then three more; at
    no time are fewer than six members running."""
    plane, http = node
    http.put(f"{RG}/ngroups/ng{API}", json=ngroup(6))
    settle(plane, http)
    assert http.put(f"{RG}/ngroups/ng{API}", json=ngroup(6, revision=2)).status_code == 200
    seen: list[tuple[int, int]] = []

    def rolled() -> bool:
        controller(plane).run_round()
        revisions = list(members(plane).values())
        counts = (revisions.count(1), revisions.count(2))
        if not seen or seen[-1] != counts:
            seen.append(counts)
        return counts == (0, 6)
    eventually(rolled, what="every member at revision 2", timeout_s=20)
    assert (6, 3) in seen
    assert (3, 3) in seen
    assert (3, 6) in seen
    assert all(old + new >= 6 for old, new in seen)
    settle(plane, http)
    names = [e["name"] for e in http.get(f"{RG}/ngroups/ng/events{API}").json()["value"]]
    assert names.count("BatchStarted") == 2
    assert names.count("BatchCompleted") == 2
    assert "RollingUpdateCompleted" in names


def test_a_failing_revision_stops_the_rollout(node: tuple[ControlPlane, InProcessClient]) -> None:
    """A revision whose image cannot be pulled: the first batch fails, the NGroup is
    Failed, and the old members stay."""
    plane, http = node
    add_revision(http, "registry.test/missing:1", "3")
    plane.engine.pull_errors["registry.test/missing:1"] = ArmError(  # type: ignore[attr-defined]
        400, "InaccessibleImage", "no such image")
    http.put(f"{RG}/ngroups/ng{API}", json=ngroup(4, maintain=False))
    settle(plane, http)
    http.put(f"{RG}/ngroups/ng{API}", json=ngroup(4, revision=3, maintain=False))
    settle(plane, http, "Failed")
    revisions = list(members(plane).values())
    assert revisions.count(1) == 4
    assert revisions.count(3) == 2
    events = http.get(f"{RG}/ngroups/ng/events{API}").json()["value"]
    assert events[-1]["name"] == "RollingUpdateStopped"


def test_manual_mode_keeps_existing_members(node: tuple[ControlPlane, InProcessClient]) -> None:
    """Manual: a new revision and a larger count make only the new member of revision 2."""
    plane, http = node
    http.put(f"{RG}/ngroups/ng{API}", json=ngroup(2, mode="Manual"))
    settle(plane, http)
    http.put(f"{RG}/ngroups/ng{API}", json=ngroup(3, revision=2, mode="Manual"))
    settle(plane, http)
    assert sorted(r or 0 for r in members(plane).values()) == [1, 1, 2]


def test_stop_start_and_delete(node: tuple[ControlPlane, InProcessClient]) -> None:
    """Stop stops every member (none replaced), start runs them again, and a DELETE
    takes the members with the NGroup."""
    plane, http = node
    http.put(f"{RG}/ngroups/ng{API}", json=ngroup(2))
    settle(plane, http)
    assert http.post(f"{RG}/ngroups/ng/stop{API}").status_code == 204
    assert {plane.store.get_group(SUB, "rg", n).desired  # type: ignore[union-attr]
            for n in members(plane)} == {"stopped"}
    controller(plane).run_round()
    assert len(members(plane)) == 2
    assert http.post(f"{RG}/ngroups/ng/start{API}").status_code == 202
    assert {plane.store.get_group(SUB, "rg", n).desired  # type: ignore[union-attr]
            for n in members(plane)} == {"running"}
    settle(plane, http)
    answer = http.delete(f"{RG}/ngroups/ng{API}")
    assert answer.status_code == 202
    eventually(lambda: controller(plane).run_round() is not None
               and http.get(f"{RG}/ngroups/ng{API}").status_code == 404, what="gone")
    assert members(plane) == {}
    assert http.delete(f"{RG}/ngroups/ng{API}").status_code == 204


@pytest.mark.parametrize(("path", "doc", "status", "code"), [
    ("ngroups/ng?api-version=2023-05-01", ngroup(), 400, "NoRegisteredProviderFound"),
    (f"ngroups/ng{API}", {"properties": []}, 400, "InvalidRequestContent"),
    (f"ngroups/ng{API}", {"properties": {"containerGroupProfiles": []}}, 400,
     "InvalidRequestContent"),
    (f"ngroups/bad.name{API}", ngroup(), 400, "InvalidResourceName"),
    (f"ngroups/ng{API}", {**ngroup(), "location": "mars"}, 400,
     "LocationNotAvailableForResourceType"),
])
def test_refusals(node: tuple[ControlPlane, InProcessClient], path: str, doc: dict[str, Any],
                  status: int, code: str) -> None:
    """Bodies and versions ACI refuses get its codes, never a 500."""
    _, http = node
    answer = http.put(f"{RG}/{path}", json=doc)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code


def test_several_profiles_are_refused_with_the_reason(
        node: tuple[ControlPlane, InProcessClient]) -> None:
    """The spec's containerGroupProfiles is an array, but gives no way to divide members
    among several: a second entry is a 400 naming it and saying why, and no NGroup."""
    _, http = node
    doc = ngroup(2)
    doc["properties"]["containerGroupProfiles"].append({"resource": {"id": PROFILE},
                                                        "revision": 2})
    answer = http.put(f"{RG}/ngroups/ng{API}", json=doc)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["target"] == "properties.containerGroupProfiles[1]"
    assert "lists 2" in error["message"]
    assert "divided among several" in error["message"]
    assert http.get(f"{RG}/ngroups/ng{API}").status_code == 404


def test_a_missing_profile_or_revision_is_refused(
        node: tuple[ControlPlane, InProcessClient]) -> None:
    """The profile is looked up before the NGroup is accepted."""
    _, http = node
    answer = http.put(f"{RG}/ngroups/ng{API}", json=ngroup(revision=9))
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "ContainerGroupProfileRevisionNotFound"
    assert http.get(f"{RG}/ngroups/ng{API}").status_code == 404


def test_another_subscription_sees_nothing(node: tuple[ControlPlane, InProcessClient],
                                           tmp_path: Path) -> None:
    """Another tenant's token is refused on the NGroup's paths and lists none of its own."""
    plane, http = node
    http.put(f"{RG}/ngroups/ng{API}", json=ngroup(1))
    _, other = plane.store.create_token("sub-2", "other")
    with start_blocking_portal() as portal:
        stranger = InProcessClient(portal, create_app(plane), other)
        assert stranger.get(f"{RG}/ngroups/ng{API}").status_code == 403
        assert stranger.delete(f"{RG}/ngroups/ng{API}").status_code == 403
        mine = stranger.get(f"/subscriptions/sub-2/providers/Microsoft.ContainerInstance/"
                            f"ngroups{API}")
        assert mine.status_code == 200
        assert mine.json()["value"] == []


def test_a_rollout_resumes_after_a_restart(node: tuple[ControlPlane, InProcessClient]) -> None:
    """The controller keeps nothing of its own: a new one over the same store (skiff
    restarted mid-rollout, a batch in flight) finishes the rolling update."""
    plane, http = node
    http.put(f"{RG}/ngroups/ng{API}", json=ngroup(4))
    settle(plane, http)
    http.put(f"{RG}/ngroups/ng{API}", json=ngroup(4, revision=2))
    controller(plane).run_round()  # the first batch starts
    assert sorted(r or 0 for r in members(plane).values()) == [1, 1, 1, 1, 2, 2]
    old = controller(plane)
    attach_ngroups(plane, interval_s=0)
    assert controller(plane) is not old
    settle(plane, http)
    assert sorted(r or 0 for r in members(plane).values()) == [2, 2, 2, 2]


def test_deleting_the_resource_group_takes_the_ngroup(
        node: tuple[ControlPlane, InProcessClient]) -> None:
    """A resource group's delete takes its NGroups, which make no member again."""
    plane, http = node
    http.put(f"{RG}/ngroups/ng{API}", json=ngroup(2))
    settle(plane, http)
    answer = http.delete(f"/subscriptions/{SUB}/resourceGroups/rg?api-version=2021-04-01")
    assert answer.status_code in (200, 202), answer.text
    controller(plane).run_round()
    assert plane.store.list_ngroups() == []
    assert members(plane) == {}


def test_per_member_properties_are_laid_over_the_profile(
        node: tuple[ControlPlane, InProcessClient]) -> None:
    """containerGroupProperties' volumes and containers' volume mounts land in every
    member; a container the profile lacks is refused at the PUT, not later."""
    plane, http = node
    doc = ngroup(1)
    stub = doc["properties"]["containerGroupProfiles"][0]
    stub["containerGroupProperties"] = {
        "volumes": [{"name": "scratch", "emptyDir": {}}],
        "containers": [{"name": "c", "properties": {"volumeMounts": [
            {"name": "scratch", "mountPath": "/scratch"}]}}]}
    assert http.put(f"{RG}/ngroups/ng{API}", json=doc).status_code == 201
    settle(plane, http)
    (name,) = members(plane)
    record = plane.store.get_group(SUB, "rg", name)
    assert record is not None
    props = record.body["properties"]
    assert props["volumes"] == [{"name": "scratch", "emptyDir": {}}]
    assert props["containers"][0]["properties"]["volumeMounts"] == [
        {"name": "scratch", "mountPath": "/scratch"}]
    assert props["containerGroupProfile"] == {"id": PROFILE, "revision": 1}
    stub["containerGroupProperties"]["containers"][0]["name"] = "nope"
    answer = http.put(f"{RG}/ngroups/other{API}", json=doc)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "ContainerNotFoundInProfile"
    assert http.get(f"{RG}/ngroups/other{API}").status_code == 404


def test_member_writes_are_in_the_activity_log(
        node: tuple[ControlPlane, InProcessClient]) -> None:
    """Each member the controller makes or deletes is a write of Microsoft.ContainerInstance
    on the member, for the NGroup (its id in the claims), whose operation's outcome
    follows."""
    plane, http = node
    http.put(f"{RG}/ngroups/ng{API}", json=ngroup(2))
    settle(plane, http)
    made = service_writes(plane.store, SUB, "Microsoft.ContainerInstance",
                          "Microsoft.ContainerInstance/containerGroups/write")
    assert sorted(e["resourceId"].rsplit("/", 1)[1] for e in made) == sorted(members(plane))
    assert {e["claims"][OBJECT] for e in made} == {f"{RG}/ngroups/ng"}
    assert all("NGroup 'ng'" in e["description"] for e in made)
    assert {e["status"]["value"] for e in made} == {"Accepted"}
    eventually(lambda: [e for e in plane.store.list_events(SUB, EventQuery(0.0, 2.0**40))[0]
                        if e["operationId"] == made[0]["operationId"]
                        and e["status"]["value"] == "Succeeded"],
               what="the member's creation's outcome")
    http.put(f"{RG}/ngroups/ng{API}", json=ngroup(1))
    settle(plane, http)
    gone = service_writes(plane.store, SUB, "Microsoft.ContainerInstance",
                          "Microsoft.ContainerInstance/containerGroups/delete")
    assert len(gone) == 1
    assert gone[0]["claims"][OBJECT] == f"{RG}/ngroups/ng"
    assert gone[0]["resourceId"].rsplit("/", 1)[1] not in members(plane)
