"""NGroups on a real node (raw ARM calls: no Azure SDK release below 11 speaks NGroups):
six tiny members made from a profile revision, then rolled over to the next revision with
maxBatchPercent 50, the two batches of three observed in the members' revisions over
time and in the NGroup's events; the members go with the NGroup."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from skiff.testing.catalog import BuiltImages
from skiff.testing.documents import one_container_group
from skiff.testing.server import RunningServer
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root

SUB = "ngroup-test"
API = "?api-version=2025-09-01"
RG = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerInstance"
PROFILE = f"{RG}/containerGroupProfiles/tiny"
_OBJECT_ID = "http://schemas.microsoft.com/identity/claims/objectidentifier"


def add_revision(http: httpx.Client, images: BuiltImages, revision: int) -> None:
    """Revision ``revision`` of the profile: a tiny group that says which it is."""
    body = one_container_group(images.bb, f"echo revision {revision}; sleep 600",
                               cpu=0.1, memory_gb=0.1)
    answer = http.put(f"{PROFILE}{API}", json=body)
    assert answer.status_code in (200, 201), answer.text
    assert answer.json()["properties"]["revision"] == revision


def ngroup(revision: int) -> dict[str, Any]:
    return {"location": "local", "properties": {
        "elasticProfile": {"desiredCount": 6, "maintainDesiredCount": True,
                           "containerGroupNamingPolicy": {"guidNamingPolicy": {"prefix": "t-"}}},
        "containerGroupProfiles": [{"resource": {"id": PROFILE}, "revision": revision}],
        "updateProfile": {"updateMode": "Rolling", "rollingUpdateProfile": {
            "maxBatchPercent": 50, "maxUnhealthyPercent": 0,
            "pauseTimeBetweenBatches": "PT1S"}}}}


def revisions(http: httpx.Client) -> list[int]:
    """The profile revision of each member (container groups tagged with the NGroup) that
    is not being deleted."""
    found = []
    for group in http.get(f"{RG}/containerGroups{API}").json()["value"]:
        props = group["properties"]
        if group.get("tags", {}).get("orchestratorId", "").endswith("/ngroups/ng") \
                and props.get("provisioningState") != "Deleting":
            found.append(int(props["containerGroupProfile"]["revision"]))
    return sorted(found)


def state(http: httpx.Client) -> str:
    return str(http.get(f"{RG}/ngroups/ng{API}").json()["properties"]["provisioningState"])


def test_six_members_roll_over_in_two_batches(skiff: RunningServer,
                                              images: BuiltImages) -> None:
    """Revision 1 makes six running members named t-<GUID>; revision 2 then replaces
    three, and once they run, three more: the members' revisions pass through 3+3 of
    each, never fewer than six members; the events tell the two batches."""
    http = skiff.client()
    add_revision(http, images, 1)
    add_revision(http, images, 2)
    answer = http.put(f"{RG}/ngroups/ng{API}", json=ngroup(1))
    assert answer.status_code == 201, answer.text
    eventually(lambda: state(http) == "Succeeded", what="six members", timeout_s=180,
               interval_s=0.5)
    assert revisions(http) == [1] * 6
    names = [g["name"] for g in
             http.get(f"{RG}/containerGroups{API}").json()["value"]]
    assert all(n.startswith("t-") and len(n) == 38 for n in names)
    # Each member's creation is in the activity log, as the provider's work for the NGroup.
    log = http.get(f"/subscriptions/{SUB}/providers/Microsoft.Insights/eventtypes/management/"
                   "values", params={"api-version": "2015-04-01", "$filter": (
                       "eventTimestamp ge '2020-01-01T00:00:00Z' and "
                       "caller eq 'Microsoft.ContainerInstance'")})
    assert log.status_code == 200, log.text
    made = {e["resourceId"].rsplit("/", 1)[1] for e in log.json()["value"]
            if e["operationName"]["value"].endswith("/containerGroups/write")
            and e["status"]["value"] == "Accepted"
            and e["claims"][_OBJECT_ID].endswith("/ngroups/ng")}
    assert made == set(names)

    assert http.put(f"{RG}/ngroups/ng{API}", json=ngroup(2)).status_code == 200
    seen: list[tuple[int, int]] = []

    def rolled() -> bool:
        found = revisions(http)
        counts = (found.count(1), found.count(2))
        if not seen or seen[-1] != counts:
            seen.append(counts)
        return counts == (0, 6) and state(http) == "Succeeded"
    eventually(rolled, what="every member at revision 2", timeout_s=300, interval_s=0.2)
    assert (3, 3) in seen, seen  # the first batch's old members gone, the second's not yet
    assert all(old + new >= 6 for old, new in seen), seen
    assert max(new for _, new in seen if _ == 6) <= 3, seen  # one batch at a time
    events = http.get(f"{RG}/ngroups/ng/events{API}").json()["value"]
    started = [e["message"] for e in events if e["name"] == "BatchStarted"]
    assert started == ["Batch 1 of 2: updating 3 member(s) to generation 2.",
                       "Batch 2 of 2: updating 3 member(s) to generation 2."]
    assert any(e["name"] == "RollingUpdateCompleted" for e in events)

    answer = http.delete(f"{RG}/ngroups/ng{API}")
    assert answer.status_code == 202
    eventually(lambda: http.get(f"{RG}/ngroups/ng{API}").status_code == 404
               and revisions(http) == [], what="the NGroup and its members gone",
               timeout_s=120, interval_s=0.5)
