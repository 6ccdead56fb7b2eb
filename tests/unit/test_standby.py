"""Standby container group pools in process (the app over a real store, the reconcile loop
and the FakeEngine): pool CRUD and its ARM errors, the refill's counts, claims (atomic,
hidden members, the empty pool's fallback and fail flag) and tenant isolation."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from skiff.api.app import create_app
from skiff.api.context import ControlPlane
from skiff.errors import ArmError
from skiff.models.rules import check_group_name
from skiff.store.standby import pool_key
from skiff.testing.fake import FakeEngine
from skiff.testing.inprocess import InProcessClient, fake_plane, service_writes
from skiff.testing.waiting import eventually

SUB = "sub-1"
OTHER = "sub-2"
POOL_API = "?api-version=2025-03-01"
ACI_API = "?api-version=2025-09-01"
RG = f"/subscriptions/{SUB}/resourceGroups/rg"
POOLS = f"{RG}/providers/Microsoft.StandbyPool/standbyContainerGroupPools"
GROUPS = f"{RG}/providers/Microsoft.ContainerInstance/containerGroups"
IMAGE = "registry.test/busybox:1"
OBJECT = "http://schemas.microsoft.com/identity/claims/objectidentifier"


def group_of_profile(label: str | None = None) -> dict[str, Any]:
    ip: dict[str, Any] = {"type": "Public", "ports": [{"port": 80}]}
    if label:
        ip["dnsNameLabel"] = label
    return {"location": "local", "properties": {
        "osType": "Linux", "ipAddress": ip,
        "containers": [{"name": "web", "properties": {
            "image": IMAGE, "command": ["httpd", "-f", "-p", "80"], "ports": [{"port": 80}],
            "resources": {"requests": {"cpu": 0.5, "memoryInGB": 0.5}}}}]}}


PROFILES = f"{RG}/providers/Microsoft.ContainerInstance/containerGroupProfiles"


def make_profile(http: InProcessClient, name: str, body: dict[str, Any]) -> str:
    """A container group profile made through the API; its ARM id."""
    made = http.put(f"{PROFILES}/{name}{ACI_API}", json=body)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    with fake_plane(tmp_path) as running:
        yield running


@pytest.fixture
def http(plane: ControlPlane) -> Iterator[InProcessClient]:
    _, secret = plane.store.create_token(SUB, "tests")
    with start_blocking_portal() as portal:
        yield InProcessClient(portal, create_app(plane), secret)


@pytest.fixture
def profile(http: InProcessClient) -> str:
    return make_profile(http, "web", group_of_profile("claimed-web"))


def other_tenant(plane: ControlPlane, portal: BlockingPortal) -> InProcessClient:
    _, secret = plane.store.create_token(OTHER, "other")
    return InProcessClient(portal, create_app(plane), secret)


def pool_body(profile: str, ready: int = 2) -> dict[str, Any]:
    return {"location": "local", "properties": {
        "elasticityProfile": {"maxReadyCapacity": ready, "refillPolicy": "always"},
        "containerGroupProperties": {"containerGroupProfile": {"id": profile}}}}


def claim_body(pool: str = "pool", fail: bool | None = None,
               config: dict[str, str] | None = None) -> dict[str, Any]:
    standby: dict[str, Any] = {"id": f"{POOLS}/{pool}"}
    if fail is not None:
        standby["failContainerGroupCreateOnReuseFailure"] = fail
    container: dict[str, Any] = {"name": "web", "properties": {}}
    if config is not None:
        container["properties"]["configMap"] = {"keyValuePairs": config}
    return {"location": "local", "tags": {"team": "a"},
            "properties": {"containers": [container], "standbyPoolProfile": standby}}


def counts(http: InProcessClient, pool: str = "pool") -> dict[str, int]:
    view = http.get(f"{POOLS}/{pool}/runtimeViews/latest{POOL_API}").json()
    summary = view["properties"]["instanceCountSummary"][0]["instanceCountsByState"]
    return {entry["state"]: entry["count"] for entry in summary}


def filled(plane: ControlPlane, http: InProcessClient, pool: str = "pool",
           ready: int = 2) -> None:
    """Run the refill, then wait for the loop to make every member Running."""
    plane.standby.run_round()  # type: ignore[union-attr]
    eventually(lambda: counts(http, pool), until=lambda c: c["Running"] == ready,
               what=f"{ready} members ready")


def test_pool_crud_answers_the_standbypool_shapes(http: InProcessClient, profile: str) -> None:
    """A pool PUT answers 201 (with its finished operation, as the specification's
    asynchronous create) then 200, GET and both lists show it, PATCH changes its capacity
    only, DELETE answers 202 then 204 and GET 404."""
    made = http.put(f"{POOLS}/pool{POOL_API}", json=pool_body(profile))
    assert made.status_code == 201, made.text
    operation = urlsplit(made.headers["Azure-AsyncOperation"])
    assert http.get(f"{operation.path}?{operation.query}").json()["status"] == "Succeeded"
    pool = made.json()
    assert pool["type"] == "Microsoft.StandbyPool/standbyContainerGroupPools"
    assert pool["properties"]["provisioningState"] == "Succeeded"
    assert pool["properties"]["elasticityProfile"] == {"maxReadyCapacity": 2,
                                                       "refillPolicy": "always"}
    assert http.put(f"{POOLS}/pool{POOL_API}", json=pool_body(profile)).status_code == 200
    assert http.get(f"{POOLS}/POOL{POOL_API}").json()["name"] == "pool"
    assert [p["name"] for p in http.get(f"{POOLS}{POOL_API}").json()["value"]] == ["pool"]
    listed = http.get(f"/subscriptions/{SUB}/providers/Microsoft.StandbyPool/"
                      f"standbyContainerGroupPools{POOL_API}").json()["value"]
    assert [p["name"] for p in listed] == ["pool"]
    patched = http.request("PATCH", f"{POOLS}/pool{POOL_API}",
                         json={"properties": {"elasticityProfile": {"maxReadyCapacity": 1}}})
    assert patched.status_code == 200, patched.text
    props = patched.json()["properties"]
    assert props["elasticityProfile"]["maxReadyCapacity"] == 1
    assert props["containerGroupProperties"]["containerGroupProfile"]["id"] == profile
    assert "Azure-AsyncOperation" not in http.put(f"{POOLS}/pool{POOL_API}",
                                                  json=pool_body(profile)).headers
    gone = http.delete(f"{POOLS}/pool{POOL_API}")
    assert gone.status_code == 202
    assert gone.headers["Location"]
    assert http.delete(f"{POOLS}/pool{POOL_API}").status_code == 204
    assert http.get(f"{POOLS}/pool{POOL_API}").json()["error"]["code"] == "ResourceNotFound"


@pytest.mark.parametrize(("change", "code"), [
    ({"elasticityProfile": {"maxReadyCapacity": 2001}}, "InvalidRequestContent"),
    ({"elasticityProfile": {"maxReadyCapacity": "two"}}, "InvalidRequestContent"),
    ({"elasticityProfile": {"maxReadyCapacity": 1, "refillPolicy": "never"}},
     "InvalidRequestContent"),
    ({"containerGroupProperties": {"containerGroupProfile": {"id": "nope"}}},
     "InvalidContainerGroupProfileReference"),
    ({"containerGroupProperties": {"containerGroupProfile": {"id": (
        f"{RG}/providers/Microsoft.ContainerInstance/containerGroupProfiles/missing")}}},
     "ResourceNotFound"),
    ({"containerGroupProperties": {"containerGroupProfile": {"id": (
        f"/subscriptions/{OTHER}/resourceGroups/rg/providers/Microsoft.ContainerInstance/"
        f"containerGroupProfiles/web")}}}, "ResourceNotFound"),
])
def test_bad_pools_get_arm_errors(http: InProcessClient, profile: str,
                                  change: dict[str, Any], code: str) -> None:
    """A pool body that breaks a rule of the spec, or names a profile that is missing or
    in another subscription (as missing: nothing told of it), is refused with an ARM
    error and nothing is kept."""
    body = pool_body(profile)
    body["properties"].update(change)
    answer = http.put(f"{POOLS}/pool{POOL_API}", json=body)
    assert answer.status_code in (400, 404), answer.text
    assert answer.json()["error"]["code"] == code
    assert http.get(f"{POOLS}{POOL_API}").json()["value"] == []


def test_bad_pool_name_is_refused(http: InProcessClient, profile: str) -> None:
    """A pool name outside the spec's pattern (3 to 24 letters, digits, dashes) is a 400."""
    answer = http.put(f"{POOLS}/a_b{POOL_API}", json=pool_body(profile))
    assert answer.json()["error"]["code"] == "InvalidResourceName"


def test_refill_keeps_capacity_and_hides_members(plane: ControlPlane, http: InProcessClient,
                                                 profile: str) -> None:
    """The refill makes maxReadyCapacity members, run by the loop; they count against the
    pool's subscription (cores) but no list or GET of the tenant's groups shows them;
    a lowered capacity retires the extras."""
    http.put(f"{POOLS}/pool{POOL_API}", json=pool_body(profile, ready=2))
    filled(plane, http, ready=2)
    for member in plane.store.pool_members(pool_key(SUB, "rg", "pool")):
        record = plane.store.get_group_by_uid(member.uid)
        assert record is not None
        # The engine makes it the containers' hostname; no request can name it.
        assert re.fullmatch(r"[a-z0-9.-]{1,63}", record.name), record.name
        with pytest.raises(ArmError):
            check_group_name(record.name)
    assert http.get(f"{GROUPS}{ACI_API}").json()["value"] == []
    assert plane.store.quota_usage(SUB)["StandardCores"] == pytest.approx(1.0)
    http.request("PATCH", f"{POOLS}/pool{POOL_API}",
               json={"properties": {"elasticityProfile": {"maxReadyCapacity": 1}}})
    plane.standby.run_round()  # type: ignore[union-attr]
    eventually(lambda: counts(http), until=lambda c: c == {"Running": 1, "Creating": 0,
                                                           "Deleting": 0},
               what="one member left")


def test_claim_answers_running_and_refills(plane: ControlPlane, http: InProcessClient,
                                           profile: str) -> None:
    """A group PUT naming the pool is answered 201 with a ready member, Running and
    Succeeded, renamed, tagged, with the request's config map, its DNS label and
    isCreatedFromStandbyPool; the pool then refills."""
    http.put(f"{POOLS}/pool{POOL_API}", json=pool_body(profile, ready=1))
    filled(plane, http, ready=1)
    answer = http.put(f"{GROUPS}/mine{ACI_API}", json=claim_body(config={"k": "v"}))
    assert answer.status_code == 201, answer.text
    group = answer.json()
    props = group["properties"]
    assert group["name"] == "mine"
    assert group["tags"] == {"team": "a"}
    assert props["provisioningState"] == "Succeeded"
    assert props["instanceView"]["state"] == "Running"
    assert props["isCreatedFromStandbyPool"] is True
    assert props["containers"][0]["properties"]["configMap"] == {"keyValuePairs": {"k": "v"}}
    assert props["ipAddress"]["dnsNameLabel"] == "claimed-web"
    assert props["containerGroupProfile"]["id"] == profile
    assert plane.store.dns_label_holder("claimed-web") is not None
    listed = http.get(f"{GROUPS}{ACI_API}").json()["value"]
    assert [g["name"] for g in listed] == ["mine"]
    eventually(lambda: counts(http), until=lambda c: c["Running"] == 1,
               what="the pool refilled")


def test_concurrent_claims_never_share_a_member(plane: ControlPlane,
                                               http: InProcessClient) -> None:
    """Four claims race for two ready members: two get a distinct member at once, two
    fall back to a normal create; no member is given twice."""
    unlabelled = make_profile(http, "plain", group_of_profile())
    http.put(f"{POOLS}/pool{POOL_API}", json=pool_body(unlabelled, ready=2))
    filled(plane, http, ready=2)
    members = {m.uid for m in plane.store.pool_members(pool_key(SUB, "rg", "pool"))}
    plane.standby.stop()  # type: ignore[union-attr]  # no refill during the race
    answers: dict[str, Any] = {}

    def claim(name: str) -> None:
        answers[name] = http.put(f"{GROUPS}/{name}{ACI_API}", json=claim_body())

    threads = [threading.Thread(target=claim, args=(f"g{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers.values()) == [201, 201, 201, 201]
    claimed = [n for n, a in answers.items() if a.json()["properties"].get(
        "isCreatedFromStandbyPool")]
    assert len(claimed) == 2
    uids = {plane.store.get_group(SUB, "rg", n).uid for n in claimed}  # type: ignore[union-attr]
    assert uids == members


def test_a_claim_refused_for_its_label_leaves_the_member(plane: ControlPlane,
                                                        http: InProcessClient,
                                                        profile: str) -> None:
    """The profile's DNS label is held by a first claim: a second claim is refused
    (DnsLabelInUse) and its member stays ready in the pool, the claim rolled back."""
    http.put(f"{POOLS}/pool{POOL_API}", json=pool_body(profile, ready=2))
    filled(plane, http, ready=2)
    plane.standby.stop()  # type: ignore[union-attr]
    assert http.put(f"{GROUPS}/first{ACI_API}", json=claim_body()).status_code == 201
    refused = http.put(f"{GROUPS}/second{ACI_API}", json=claim_body())
    assert refused.status_code == 409, refused.text
    assert counts(http)["Running"] == 1
    assert http.get(f"{GROUPS}/second{ACI_API}").status_code == 404


def test_empty_pool_falls_back_or_fails(plane: ControlPlane, http: InProcessClient,
                                       profile: str) -> None:
    """With no ready member, a claim creates the profile's group the normal way (an
    operation to poll, not from the pool); with failContainerGroupCreateOnReuseFailure it
    is refused and nothing is created."""
    http.put(f"{POOLS}/pool{POOL_API}", json=pool_body(profile, ready=0))
    refused = http.put(f"{GROUPS}/strict{ACI_API}", json=claim_body(fail=True))
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "StandbyPoolReuseFailed"
    assert http.get(f"{GROUPS}/strict{ACI_API}").status_code == 404
    made = http.put(f"{GROUPS}/loose{ACI_API}", json=claim_body())
    assert made.status_code == 201, made.text
    assert "Azure-AsyncOperation" in made.headers
    assert "isCreatedFromStandbyPool" not in made.json()["properties"]
    assert made.json()["properties"]["containers"][0]["properties"]["image"] == IMAGE


def test_a_member_that_runs_but_does_not_serve_is_not_claimed(
        plane: ControlPlane, http: InProcessClient) -> None:
    """A profile whose container declares port 80 but never listens: its member runs
    (Succeeded) yet the pool counts it Creating, and a claim falls back to a normal
    create instead of handing it out."""
    deaf = group_of_profile()
    deaf["properties"]["containers"][0]["properties"]["command"] = ["sh", "-c", "sleep 300"]
    http.put(f"{POOLS}/pool{POOL_API}", json=pool_body(make_profile(http, "deaf", deaf),
                                                       ready=1))
    plane.standby.run_round()  # type: ignore[union-attr]
    key = pool_key(SUB, "rg", "pool")
    eventually(lambda: [m.provisioning_state for m in plane.store.pool_members(key)],
               until=lambda states: states == ["Succeeded"], what="the member started")
    assert counts(http) == {"Running": 0, "Creating": 1, "Deleting": 0}
    made = http.put(f"{GROUPS}/mine{ACI_API}", json=claim_body())
    assert made.status_code == 201, made.text
    assert "isCreatedFromStandbyPool" not in made.json()["properties"]
    assert len(plane.store.pool_members(key)) == 1


def test_claim_errors(http: InProcessClient, profile: str) -> None:
    """A claim naming a missing pool, a malformed pool id, or a config map for a container
    the profile has not gets an ARM error, never a 500."""
    http.put(f"{POOLS}/pool{POOL_API}", json=pool_body(profile, ready=0))
    missing = http.put(f"{GROUPS}/a{ACI_API}", json=claim_body(pool="nope"))
    assert missing.json()["error"]["code"] == "ResourceNotFound"
    body = claim_body()
    body["properties"]["standbyPoolProfile"]["id"] = "not-an-id"
    assert http.put(f"{GROUPS}/a{ACI_API}", json=body).status_code == 400
    body = claim_body(config={"k": "v"})
    body["properties"]["containers"][0]["name"] = "other"
    wrong = http.put(f"{GROUPS}/a{ACI_API}", json=body)
    assert wrong.status_code == 400
    assert wrong.json()["error"]["code"] == "ContainerNotFoundInProfile"


def test_isolation_between_tenants(plane: ControlPlane, http: InProcessClient,
                                   profile: str) -> None:
    """Another subscription's tenant cannot read, list or claim the pool: its claim
    naming the pool is refused without a look-up, and the pool's members stay."""
    http.put(f"{POOLS}/pool{POOL_API}", json=pool_body(profile, ready=1))
    filled(plane, http, ready=1)
    with start_blocking_portal() as portal:
        other = other_tenant(plane, portal)
        assert other.get(f"{POOLS}/pool{POOL_API}").status_code == 403
        theirs = f"/subscriptions/{OTHER}/resourceGroups/rg/providers/" \
                 f"Microsoft.ContainerInstance/containerGroups/stolen{ACI_API}"
        answer = other.put(theirs, json=claim_body())
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "InvalidResourceReference"
    assert counts(http)["Running"] == 1


def test_runtime_view_of_an_empty_pool(plane: ControlPlane, http: InProcessClient,
                                       profile: str) -> None:
    """An empty pool's runtime view counts nothing and is healthy; a view other than
    ``latest`` is not found."""
    assert plane.standby is not None
    http.put(f"{POOLS}/pool{POOL_API}", json=pool_body(profile, ready=0))
    assert counts(http) == {"Running": 0, "Creating": 0, "Deleting": 0}
    view = http.get(f"{POOLS}/pool/runtimeViews/latest{POOL_API}").json()
    assert view["properties"]["status"]["code"] == "HealthState/healthy"
    assert http.get(f"{POOLS}/pool/runtimeViews/other{POOL_API}").status_code == 404


def test_refill_reports_a_missing_profile(plane: ControlPlane, http: InProcessClient,
                                          profile: str) -> None:
    """A pool whose profile went away cannot fill: its runtime view says degraded, why."""
    http.put(f"{POOLS}/pool{POOL_API}", json=pool_body(profile, ready=1))
    plane.standby.stop()  # type: ignore[union-attr]
    assert http.delete(f"{PROFILES}/web{ACI_API}").status_code in (200, 204)
    plane.store.retire_members(pool_key(SUB, "rg", "pool"),
                               [m.uid for m in plane.store.pool_members(
                                   pool_key(SUB, "rg", "pool"))])
    plane.standby.refill(plane.store.get_pool(SUB, "rg", "pool"))  # type: ignore[union-attr,arg-type]
    status = http.get(f"{POOLS}/pool/runtimeViews/latest{POOL_API}").json()["properties"]
    assert status["status"]["code"] == "HealthState/degraded"
    assert "web" in status["status"]["message"]


def test_deleting_the_resource_group_takes_pool_and_members(plane: ControlPlane,
                                                            http: InProcessClient,
                                                            profile: str) -> None:
    """Deleting the pool's resource group deletes the pool and its ready members (the
    resource group goes with its last group)."""
    http.put(f"{POOLS}/pool{POOL_API}", json=pool_body(profile, ready=1))
    filled(plane, http, ready=1)
    plane.standby.stop()  # type: ignore[union-attr]
    for record in plane.store.delete_resource_group(SUB, "rg"):
        plane.reconciler.kick(record.uid)
    assert plane.store.list_pools(SUB) == []
    eventually(lambda: plane.store.pool_members(pool_key(SUB, "rg", "pool")),
               until=lambda members: members == [], what="the members deleted")


@pytest.mark.parametrize("body", [
    [], "pool", {"properties": []}, {"properties": {"elasticityProfile": 5}},
    {"tags": ["a"], "properties": {}}, {"location": 5, "properties": {}},
    {"properties": {"elasticityProfile": {"maxReadyCapacity": True}}},
    {"properties": {"elasticityProfile": {"maxReadyCapacity": 1},
                    "containerGroupProperties": {"containerGroupProfile": [],
                                                 "subnetIds": "x"}}},
])
def test_hostile_pool_bodies_are_400s(http: InProcessClient, body: Any) -> None:
    """Bodies of the wrong shape anywhere get a 400 ARM error, never a 500."""
    answer = http.put(f"{POOLS}/pool{POOL_API}", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"]


@pytest.mark.parametrize("props", [
    {"standbyPoolProfile": "x"}, {"standbyPoolProfile": {"id": 5}},
    {"standbyPoolProfile": {"id": f"{POOLS}/pool"}, "containers": "web"},
    {"standbyPoolProfile": {"id": f"{POOLS}/pool"}, "containers": [{"name": 5}]},
    {"standbyPoolProfile": {"id": f"{POOLS}/pool"}, "containerGroupProfile": "x"},
    {"standbyPoolProfile": {"id": f"{POOLS}/pool"},
     "containers": [{"name": "web", "properties": {"configMap": "x"}}]},
])
def test_hostile_claims_are_400s(http: InProcessClient, profile: str,
                                 props: dict[str, Any]) -> None:
    """A claim of the wrong shape anywhere gets a 400 ARM error, never a 500."""
    http.put(f"{POOLS}/pool{POOL_API}", json=pool_body(profile, ready=0))
    answer = http.put(f"{GROUPS}/g{ACI_API}", json={"location": "local", "properties": props})
    assert answer.status_code == 400, answer.text


def test_a_claims_config_maps_are_written_in_place(plane: ControlPlane, http: InProcessClient,
                                                  profile: str) -> None:
    """A profile that declares a container's config map; a claim with other pairs: the
    group's files get the claim's pairs in place (an event says so), the containers keep
    running the same instance (no redeploy), and the engine still knows the group by its
    member's name."""
    declared = group_of_profile()
    declared["properties"]["containers"][0]["properties"]["configMap"] = {
        "keyValuePairs": {"mode": "standby"}}
    mapped = make_profile(http, "mapped", declared)
    http.put(f"{POOLS}/pool{POOL_API}", json=pool_body(mapped, ready=1))
    filled(plane, http, ready=1)
    plane.standby.stop()  # type: ignore[union-attr]
    member = plane.store.pool_members(pool_key(SUB, "rg", "pool"))[0].uid
    engine = plane.engine
    assert isinstance(engine, FakeEngine)
    started = engine.view(member).containers[0].current.start_time
    answer = http.put(f"{GROUPS}/mine{ACI_API}", json=claim_body(config={"mode": "live"}))
    assert answer.status_code == 201, answer.text
    eventually(lambda: engine.config_map_files(member),
               until=lambda files: files == {"web": {"mode": "live"}},
               what="the claim's config map written")
    view = engine.view(member)
    assert view.containers[0].current.start_time == started
    assert view.name.startswith("standby.")
    assert "ConfigMapUpdated" in [e.name for e in view.containers[0].events]


def test_refills_retirements_and_claims_are_in_the_activity_log(
        plane: ControlPlane, http: InProcessClient, profile: str) -> None:
    """The refill's members, a claim and a lowered capacity's retirement are writes of
    Microsoft.StandbyPool, for the pool (its id in the claims); the claim's names the
    group the caller got."""
    pool_id = f"{POOLS}/pool"
    http.put(f"{pool_id}{POOL_API}", json=pool_body(profile, ready=2))
    filled(plane, http, ready=2)
    write = "Microsoft.ContainerInstance/containerGroups/write"
    made = service_writes(plane.store, SUB, "Microsoft.StandbyPool", write)
    assert len(made) == 2
    assert all("/containerGroups/standby.pool." in e["resourceId"] for e in made)
    assert {e["claims"][OBJECT] for e in made} == {pool_id}
    assert http.put(f"{GROUPS}/mine{ACI_API}", json=claim_body()).status_code == 201
    # Recorded once the claim is answered.
    claims = eventually(lambda: [e for e in service_writes(plane.store, SUB,
                                                           "Microsoft.StandbyPool", write)
                                 if "claimed" in e["description"]], what="the claim's event")
    assert [e["resourceId"] for e in claims] == [f"{GROUPS}/mine"]
    assert claims[0]["claims"][OBJECT] == pool_id
    http.put(f"{pool_id}{POOL_API}", json=pool_body(profile, ready=0))
    plane.standby.run_round()  # type: ignore[union-attr]
    retired = service_writes(plane.store, SUB, "Microsoft.StandbyPool",
                             "Microsoft.ContainerInstance/containerGroups/delete")
    assert len(retired) >= 1
    assert all("beyond the pool's capacity" in e["description"] for e in retired)
    assert service_writes(plane.store, OTHER, "Microsoft.StandbyPool", write) == []
