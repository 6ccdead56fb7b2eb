"""Container group profiles through the API, in process (the app over a real store and the
FakeEngine): CRUD, immutable revisions, refusals, secrets, tenant isolation; and the
control plane's two functions that make a group's body from a profile revision."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from skiff.api.app import create_app
from skiff.api.context import ControlPlane
from skiff.control.expiry import Expiry, expired
from skiff.control.profiles import merge_group_fields, profile_group_body
from skiff.errors import ArmError
from skiff.models import ContainerGroupBody, to_engine_spec
from skiff.models.profile import Lifetime
from skiff.testing.inprocess import InProcessClient, fake_plane
from skiff.testing.waiting import eventually

API = "?api-version=2025-09-01"
ALICE, BOB = "sub-alice", "sub-bob"
SECRET = "hunter2-profile-secret"


def profile_url(sub: str = ALICE, name: str = "web", rg: str = "rg") -> str:
    return (f"/subscriptions/{sub}/resourceGroups/{rg}/providers/"
            f"Microsoft.ContainerInstance/containerGroupProfiles/{name}")


def profile_id(sub: str = ALICE, name: str = "web", rg: str = "rg") -> str:
    return profile_url(sub, name, rg)


def profile_body(image: str = "registry.test/busybox:1", **props: Any) -> dict[str, Any]:
    container = {"name": "c", "properties": {
        "image": image, "command": ["sleep", "300"],
        "environmentVariables": [{"name": "TOKEN", "secureValue": SECRET}],
        "resources": {"requests": {"cpu": 0.1, "memoryInGB": 0.1}}}}
    return {"location": "local", "properties": {
        "osType": "Linux", "restartPolicy": "Never", "containers": [container], **props}}


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    with fake_plane(tmp_path) as running:
        yield running


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as running:
        yield running


@pytest.fixture
def client(plane: ControlPlane, portal: BlockingPortal) -> Any:
    """Makes a client holding a new token of a subscription (None: the admin's)."""
    app = create_app(plane)

    def make(subscription: str | None, suffix: str = API) -> InProcessClient:
        _, secret = plane.store.create_token(subscription, subscription or "admin")
        return InProcessClient(portal, app, secret, suffix=suffix)

    return make


def error(answer: httpx.Response, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    doc = answer.json()["error"]
    assert doc["code"] == code, doc
    return str(doc["message"])


def test_a_profile_is_created_read_listed_and_deleted(client: Any) -> None:
    """PUT 201 at revision 1, GET and both lists show it, DELETE 200 then 204, then 404."""
    alice = client(ALICE)
    made = alice.put(profile_url(), json=profile_body() | {"tags": {"team": "a"}})
    assert made.status_code == 201, made.text
    doc = made.json()
    assert doc["id"] == profile_url()
    assert doc["type"] == "Microsoft.ContainerInstance/containerGroupProfiles"
    assert doc["tags"] == {"team": "a"}
    assert doc["properties"]["revision"] == 1
    assert doc["properties"]["registeredRevisions"] == [1]
    assert "provisioningState" not in doc["properties"]
    assert alice.get(profile_url(name="WEB")).json()["name"] == "web"  # names without case
    for url in (profile_url().rsplit("/", 1)[0],
                f"/subscriptions/{ALICE}/providers/Microsoft.ContainerInstance/"
                "containerGroupProfiles"):
        assert [p["name"] for p in alice.get(url).json()["value"]] == ["web"]
    assert alice.delete(profile_url()).status_code == 200
    assert alice.delete(profile_url()).status_code == 204
    error(alice.get(profile_url()), 404, "ResourceNotFound")


def test_every_change_makes_a_new_immutable_revision(client: Any) -> None:
    """The same definition again writes nothing; a new one is revision 2; tags are not a
    revision; revision 1 still answers the old image; an unknown revision is 404."""
    alice = client(ALICE)
    assert alice.put(profile_url(), json=profile_body()).status_code == 201
    again = alice.put(profile_url(), json=profile_body())
    assert (again.status_code, again.json()["properties"]["revision"]) == (200, 1)
    changed = alice.put(profile_url(), json=profile_body("registry.test/busybox:2"))
    assert changed.json()["properties"]["revision"] == 2
    assert changed.json()["properties"]["registeredRevisions"] == [1, 2]
    patched = alice.request("PATCH", profile_url(), json={"tags": {"k": "v"}})
    assert (patched.json()["tags"], patched.json()["properties"]["revision"]) == ({"k": "v"}, 2)
    first = alice.get(profile_url() + "/revisions/1").json()
    assert first["properties"]["revision"] == 1
    assert first["properties"]["containers"][0]["properties"]["image"] == "registry.test/busybox:1"
    listed = alice.get(profile_url() + "/revisions").json()["value"]
    assert [r["properties"]["revision"] for r in listed] == [1, 2]
    assert [r["properties"]["containers"][0]["properties"]["image"] for r in listed] == [
        "registry.test/busybox:1", "registry.test/busybox:2"]
    error(alice.get(profile_url() + "/revisions/3"), 404, "ContainerGroupProfileRevisionNotFound")
    error(alice.get(profile_url() + "/revisions/x"), 404, "ContainerGroupProfileRevisionNotFound")


def test_profile_only_fields_are_kept_and_checked(client: Any) -> None:
    """shutdownGracePeriod and timeToLive are answered back; read-only fields sent are
    ignored; malformed values are 400s naming the field."""
    alice = client(ALICE)
    doc = alice.put(profile_url(), json=profile_body(
        shutdownGracePeriod="PT30S", timeToLive="PT1H", revision=42,
        registeredRevisions=[7])).json()
    props = doc["properties"]
    assert (props["shutdownGracePeriod"], props["timeToLive"]) == ("PT30S", "PT1H")
    assert (props["revision"], props["registeredRevisions"]) == (1, [1])
    error(alice.put(profile_url(), json=profile_body(timeToLive="soon")), 400,
          "InvalidTimeToLive")
    error(alice.put(profile_url(), json=profile_body(shutdownGracePeriod="PT2H")), 400,
          "InvalidShutdownGracePeriod")
    moment = alice.put(profile_url(), json=profile_body(timeToLive="2030-01-02T03:04:05Z"))
    assert moment.status_code == 200, moment.text
    error(alice.put(profile_url(), json=profile_body(shutdownGracePeriod="2030-13-01T00:00:00Z")),
          400, "InvalidShutdownGracePeriod")


def test_the_sdks_date_times_are_taken_and_answered_as_sent(client: Any) -> None:
    """azure-mgmt-containerinstance 10.2.0b2 sends both fields as RFC 3339 date-times (the
    specification's type): a profile takes them, answers them back unchanged; the grace of
    a moment is the node's (None), timeToLive's is the moment of deletion."""
    sent = {"shutdownGracePeriod": "2099-01-01T00:00:30.000Z",
            "timeToLive": "2099-01-02T03:04:05.000Z"}
    answer = client(ALICE).put(profile_url(), json=profile_body(**sent))
    assert answer.status_code == 201, answer.text
    assert {k: answer.json()["properties"][k] for k in sent} == sent
    lifetime = Lifetime.of(sent)
    assert lifetime.grace_s is None
    assert lifetime.ttl_s is None
    assert lifetime.expires_at == datetime(2099, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("body", "code"), [
    ({"location": "local", "properties": {"osType": "Linux", "containers": []}},
     "ContainerGroupContainersRequired"),
    ({"location": "local"}, "InvalidRequestContent"),
    ([1, 2], "InvalidRequestContent"),
    (profile_body(containerGroupProfile={"id": "x"}), "InvalidContainerGroupProfile"),
    (profile_body(restartPolicy="Sometimes"), "InvalidRestartPolicy"),
])
def test_a_bad_profile_is_refused_as_a_bad_group_is(client: Any, body: Any, code: str) -> None:
    """A profile's definition meets every rule a group's does; nothing is written."""
    alice = client(ALICE)
    error(alice.put(profile_url(), json=body), 400, code)
    error(alice.get(profile_url()), 404, "ResourceNotFound")


def test_names_and_api_versions_are_checked(client: Any) -> None:
    """A name off the specification's pattern is a 400; an api-version before profiles
    existed answers as ARM does for an unknown type."""
    alice = client(ALICE)
    error(alice.put(profile_url(name="-bad"), json=profile_body()), 400,
          "InvalidContainerGroupProfileName")
    assert alice.put(profile_url(name="Ok_Name-1"), json=profile_body()).status_code == 201
    old = client(ALICE, suffix="?api-version=2023-05-01")
    error(old.get(profile_url(name="Ok_Name-1")), 400, "NoRegisteredProviderFound")


def test_secrets_are_sealed_at_rest_and_never_answered(client: Any, plane: ControlPlane,
                                                        tmp_path: Path) -> None:
    """A secure value is in no answer (PUT, GET, list, revisions) and not in the file."""
    alice = client(ALICE)
    answers = [alice.put(profile_url(), json=profile_body()),
               alice.get(profile_url()), alice.get(profile_url() + "/revisions"),
               alice.get(profile_url() + "/revisions/1"),
               alice.get(profile_url().rsplit("/", 1)[0])]
    for answer in answers:
        assert answer.status_code == 200 or answer.status_code == 201, answer.text
        assert SECRET not in answer.text
        assert "TOKEN" in answer.text
    with sqlite3.connect(tmp_path / "skiff.db") as conn:
        stored = " ".join(str(r) for r in conn.execute(
            "SELECT body FROM container_group_profile_revisions"))
    assert "TOKEN" in stored
    assert SECRET not in stored
    body = profile_group_body(plane, ALICE, profile_id(), None)
    assert body["properties"]["containers"][0]["properties"]["environmentVariables"][0][
        "secureValue"] == SECRET


def test_another_subscription_learns_nothing_of_a_profile(client: Any,
                                                          plane: ControlPlane) -> None:
    """Bob's token on Alice's profile: 403 for every route; his own lists are empty; a
    group body from her profile under his subscription is the same 404 as none."""
    alice, bob = client(ALICE), client(BOB)
    assert alice.put(profile_url(), json=profile_body()).status_code == 201
    for method, path in [("GET", profile_url()), ("PUT", profile_url()),
                         ("PATCH", profile_url()), ("DELETE", profile_url()),
                         ("GET", profile_url() + "/revisions"),
                         ("GET", profile_url() + "/revisions/1")]:
        answer = bob.request(method, path, json=profile_body() if method == "PUT" else
                             {"tags": {}} if method == "PATCH" else None)
        error(answer, 403, "AuthorizationFailed")
        assert "busybox" not in answer.text
    assert bob.get(f"/subscriptions/{BOB}/providers/Microsoft.ContainerInstance/"
                   "containerGroupProfiles").json() == {"value": []}
    with pytest.raises(ArmError) as theirs:
        profile_group_body(plane, BOB, profile_id(), None)
    with pytest.raises(ArmError) as missing:
        profile_group_body(plane, BOB, profile_id(sub=BOB), None)
    assert (theirs.value.status, theirs.value.code) == (missing.value.status,
                                                         missing.value.code) == (
        404, "ResourceNotFound")
    assert alice.get(profile_url()).json()["properties"]["revision"] == 1


def test_a_group_body_comes_from_the_named_revision(client: Any, plane: ControlPlane) -> None:
    """profile_group_body gives the named revision (the current one for None), the
    reference resolved; malformed ids and revisions are 400s, a missing revision 404."""
    alice = client(ALICE)
    alice.put(profile_url(), json=profile_body(timeToLive="PT1M"))
    alice.put(profile_url(), json=profile_body("registry.test/busybox:2"))
    latest = profile_group_body(plane, ALICE.upper(), profile_id(name="WEB"), None)
    first = profile_group_body(plane, ALICE, profile_id(), 1)
    image = [b["properties"]["containers"][0]["properties"]["image"] for b in (latest, first)]
    assert image == ["registry.test/busybox:2", "registry.test/busybox:1"]
    assert latest["properties"]["containerGroupProfile"] == {"id": profile_id(), "revision": 2}
    assert first["properties"]["timeToLive"] == "PT1M"
    for bad_id, bad_revision, code in [
        ("/subscriptions/x/resourceGroups/rg", None, "InvalidContainerGroupProfileReference"),
        (profile_id(), 0, "InvalidContainerGroupProfileRevision"),
        (profile_id(), True, "InvalidContainerGroupProfileRevision"),
        (profile_id(), 9, "ContainerGroupProfileRevisionNotFound"),
    ]:
        with pytest.raises(ArmError) as refused:
            profile_group_body(plane, ALICE, bad_id, bad_revision)
        assert refused.value.code == code


def test_merge_takes_only_a_groups_own_fields() -> None:
    """Tags, subnet, config maps (by container), extra volumes and the DNS label come
    from the group; its image, resources and restart policy never do; the inputs stay."""
    base = profile_body() | {"properties": profile_body()["properties"] | {
        "volumes": [{"name": "v", "emptyDir": {}}],
        "ipAddress": {"type": "Public", "ports": [{"port": 80}]}}}
    before = repr(base)
    overrides = {"Tags": {"t": "1"}, "properties": {
        "restartPolicy": "Always", "subnetIds": [{"id": "subnet"}],
        "ipAddress": {"dnsNameLabel": "mine", "ports": [{"port": 1}]},
        "volumes": [{"name": "v", "secret": {}}, {"name": "w", "emptyDir": {}}],
        "containers": [{"name": "c", "properties": {
            "image": "evil", "configMap": {"keyValuePairs": {"k": "v"}}}}]}}
    merged = merge_group_fields(base, overrides)
    props = merged["properties"]
    assert merged["tags"] == {"t": "1"}
    assert props["restartPolicy"] == "Never"
    assert props["subnetIds"] == [{"id": "subnet"}]
    assert props["ipAddress"] == {"type": "Public", "ports": [{"port": 80}],
                                  "dnsNameLabel": "mine"}
    assert props["volumes"] == [{"name": "v", "secret": {}}, {"name": "w", "emptyDir": {}}]
    inner = props["containers"][0]["properties"]
    assert inner["image"] == "registry.test/busybox:1"
    assert inner["configMap"] == {"keyValuePairs": {"k": "v"}}
    assert repr(base) == before
    with pytest.raises(ArmError) as refused:
        merge_group_fields(base, {"properties": {"containers": [
            {"name": "other", "properties": {"configMap": {}}}]}})
    assert refused.value.code == "ContainerNotFoundInProfile"


# ---- groups made from a profile ----------------------------------------------------------------


def group_url(sub: str = ALICE, name: str = "g", rg: str = "rg") -> str:
    return (f"/subscriptions/{sub}/resourceGroups/{rg}/providers/"
            f"Microsoft.ContainerInstance/containerGroups/{name}")


def from_profile(revision: int | None = None, **props: Any) -> dict[str, Any]:
    ref: dict[str, Any] = {"id": profile_id()}
    if revision is not None:
        ref["revision"] = revision
    return {"location": "local", "properties": {"containerGroupProfile": ref, **props}}


def test_a_group_is_made_from_a_profile_revision(client: Any, plane: ControlPlane) -> None:
    """A group PUT naming revision 1 runs revision 1's image with its own config map, and
    answers containerGroupProfile {id, revision} (not the profile's own fields); with no
    revision it is made from the current one."""
    alice = client(ALICE)
    alice.put(profile_url(), json=profile_body(timeToLive="PT1H"))
    alice.put(profile_url(), json=profile_body("registry.test/busybox:2"))
    made = alice.put(group_url(), json=from_profile(1, containers=[
        {"name": "c", "properties": {"configMap": {"keyValuePairs": {"k": "v"}}}}]))
    assert made.status_code == 201, made.text
    doc = alice.get(group_url()).json()
    props = doc["properties"]
    assert props["containerGroupProfile"] == {"id": profile_id(), "revision": 1}
    assert props["containers"][0]["properties"]["image"] == "registry.test/busybox:1"
    assert props["containers"][0]["properties"]["configMap"] == {"keyValuePairs": {"k": "v"}}
    assert "timeToLive" not in props
    assert SECRET not in made.text
    engine: Any = plane.engine
    eventually(lambda: engine.images == {"registry.test/busybox:1"},
               what="the engine runs revision 1's image")
    latest = alice.put(group_url(name="g2"), json=from_profile())
    assert latest.json()["properties"]["containerGroupProfile"]["revision"] == 2


def test_a_group_from_a_missing_or_foreign_profile_is_refused(client: Any) -> None:
    """A missing profile or revision, a malformed reference, another subscription's
    profile: each refused with nothing made and nothing of the other tenant told."""
    alice, bob = client(ALICE), client(BOB)
    error(alice.put(group_url(), json=from_profile()), 404, "ResourceNotFound")
    alice.put(profile_url(), json=profile_body())
    error(alice.put(group_url(), json=from_profile(5)), 404,
          "ContainerGroupProfileRevisionNotFound")
    bad = from_profile()
    bad["properties"]["containerGroupProfile"] = {"id": "/subscriptions/x"}
    error(alice.put(group_url(), json=bad), 400, "InvalidContainerGroupProfileReference")
    bad["properties"]["containerGroupProfile"] = "web"
    error(alice.put(group_url(), json=bad), 400, "InvalidRequestContent")
    theirs = bob.put(group_url(sub=BOB), json=from_profile())
    error(theirs, 403, "LinkedAuthorizationFailed")
    assert "busybox" not in theirs.text
    error(alice.get(group_url()), 404, "ResourceNotFound")


def test_answers_have_the_fields_of_their_api_version(client: Any) -> None:
    """containerGroupProfile and configMap are in answers from 2024-05-01-preview on and
    left out of 2023-05-01's (GET, PUT and list alike)."""
    alice = client(ALICE)
    old = client(ALICE, suffix="?api-version=2023-05-01")
    alice.put(profile_url(), json=profile_body())
    put = alice.put(group_url(), json=from_profile(containers=[
        {"name": "c", "properties": {"configMap": {"keyValuePairs": {"k": "v"}}}}]))
    assert "containerGroupProfile" in put.json()["properties"]
    listing = group_url().rsplit("/", 1)[0]
    for answer in (old.get(group_url()).json(), old.get(listing).json()["value"][0]):
        assert "containerGroupProfile" not in answer["properties"]
        assert "configMap" not in answer["properties"]["containers"][0]["properties"]
    for answer in (alice.get(group_url()).json(), alice.get(listing).json()["value"][0]):
        assert answer["properties"]["containerGroupProfile"]["revision"] == 1
        assert answer["properties"]["containers"][0]["properties"]["configMap"]
    assert "containerGroupProfile" not in old.request("PATCH", group_url(), json={
        "tags": {"a": "b"}}).json()["properties"]


# ---- timeToLive --------------------------------------------------------------------------------


class Clock:
    """A test's clock: the engine's containers and the expiry both read it."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_expired_is_decided_from_the_lifetime_alone() -> None:
    """A duration counts from the containers' end (never for a group still running); a
    date-time is the moment, whatever the group does."""
    ttl = Lifetime(ttl_s=60)
    assert not expired(ttl, ended_at=None, now=10**10)
    assert not expired(ttl, ended_at=100, now=159)
    assert expired(ttl, ended_at=100, now=160)
    assert expired(Lifetime(expires_at=50), ended_at=None, now=50)
    assert not expired(Lifetime(expires_at=50), ended_at=None, now=49)
    assert not expired(Lifetime(), ended_at=0, now=10**10)


def test_a_group_from_a_profile_is_deleted_when_its_time_to_live_is_up(
        tmp_path: Path, portal: BlockingPortal) -> None:
    """A group made from a profile with timeToLive PT1M goes 60 s after its container
    ended (not before), through the delete path: Deleting, gone, and in the activity log
    under the provider's name; a group PUT with its own timeToLive is kept."""
    clock = Clock()
    with fake_plane(tmp_path, clock=clock) as plane:
        app = create_app(plane)
        _, token = plane.store.create_token(ALICE, ALICE)
        alice = InProcessClient(portal, app, token, suffix=API)
        body = profile_body(timeToLive="PT1M")
        body["properties"]["containers"][0]["properties"]["command"] = ["sleep", "10"]
        assert alice.put(profile_url(), json=body).status_code == 201
        assert alice.put(group_url(), json=from_profile()).status_code == 201
        own = profile_body(timeToLive="PT1S")
        own["properties"]["containers"][0]["properties"]["command"] = ["exit", "0"]
        assert alice.put(group_url(name="own"), json=own).status_code == 201
        def deployed(name: str) -> bool:
            state: str = alice.get(group_url(name=name)).json()["properties"][
                "provisioningState"]
            return state == "Succeeded"

        for name in ("g", "own"):
            eventually(functools.partial(deployed, name), what=f"{name} is deployed")
        expiry = Expiry(plane.store, plane.engine, plane.reconciler, tenant_id="tenant",
                        interval_s=0, clock=clock)
        assert expiry.run_round() == []  # still running
        clock.now += 10  # the container's sleep ends
        eventually(lambda: alice.get(group_url()).json()["properties"]["instanceView"][
            "state"] == "Succeeded", what="the group's container ended")
        clock.now += 59
        assert expiry.run_round() == []
        clock.now += 1
        gone = plane.store.get_group(ALICE, "rg", "g")
        assert gone is not None
        assert expiry.run_round() == [gone.resource_id]
        eventually(lambda: alice.get(group_url()).status_code == 404, what="the group is gone")
        assert alice.get(group_url(name="own")).status_code == 200
        clock.now += 3600
        assert expiry.run_round() == []
        with sqlite3.connect(tmp_path / "skiff.db") as conn:
            events = conn.execute("SELECT status_key FROM activity_log WHERE caller_key = ?"
                                  " AND resource_key LIKE ?",
                                  ("microsoft.containerinstance", "%/containergroups/g")
                                  ).fetchall()
        assert {e[0] for e in events} >= {"started", "accepted"}


def test_a_time_to_live_moment_deletes_a_running_group(tmp_path: Path,
                                                       portal: BlockingPortal) -> None:
    """timeToLive as a date-time: the group goes at that moment, running or not."""
    clock = Clock()
    with fake_plane(tmp_path, clock=clock) as plane:
        app = create_app(plane)
        _, token = plane.store.create_token(ALICE, ALICE)
        alice = InProcessClient(portal, app, token, suffix=API)
        alice.put(profile_url(), json=profile_body(timeToLive="2027-06-01T00:00:00Z"))
        assert alice.put(group_url(), json=from_profile()).status_code == 201
        expiry = Expiry(plane.store, plane.engine, plane.reconciler, tenant_id="tenant",
                        interval_s=0, clock=clock)
        assert expiry.run_round() == []
        clock.now = 1_800_000_000.0 + 86400 * 365
        assert len(expiry.run_round()) == 1
        eventually(lambda: alice.get(group_url()).status_code == 404, what="the group is gone")


def test_a_group_from_a_profile_stops_with_its_shutdown_grace_period() -> None:
    """The engine's spec of a group made from a profile carries its shutdownGracePeriod; a
    group's own (no profile) is an unknown property and leaves the node's default."""
    stored = profile_body(shutdownGracePeriod="PT45S")
    stored["properties"]["containerGroupProfile"] = {"id": profile_id(), "revision": 1}
    spec = to_engine_spec(ContainerGroupBody.model_validate(stored), group_id="g1", name="g")
    assert spec.stop_grace_s == 45
    del stored["properties"]["containerGroupProfile"]
    own = to_engine_spec(ContainerGroupBody.model_validate(stored), group_id="g1", name="g")
    assert own.stop_grace_s is None


@pytest.mark.parametrize("revision", ["²", "99999999999999999999", "-1", "0", "1.0", "%20"])
def test_a_hostile_revision_is_a_clear_404_or_400(client: Any, revision: str) -> None:
    """Digits of other scripts, a number past SQLite's integers, zero, a negative: the path
    answers 404, a group's reference 400, never a 500."""
    alice = client(ALICE)
    alice.put(profile_url(), json=profile_body())
    error(alice.get(f"{profile_url()}/revisions/{revision}"), 404,
          "ContainerGroupProfileRevisionNotFound")
    number: Any = int(revision) if revision.lstrip("-").isascii() and \
        revision.lstrip("-").isdigit() else revision
    error(alice.put(group_url(), json=from_profile(number)), 400,
          "InvalidContainerGroupProfileRevision")


@pytest.mark.parametrize("own", [
    {"containers": [{"name": ["c"], "properties": {"configMap": {}}}]},
    {"volumes": [{"name": ["v"]}, 7]},
    {"ipAddress": {"dnsNameLabel": 5}},
    {"subnetIds": "x"},
])
def test_a_groups_hostile_fields_over_a_profile_are_400s(client: Any,
                                                         own: dict[str, Any]) -> None:
    """Whatever a group lays over its profile is checked as a group's body is: a 400 with
    a code, never a 500, and nothing made."""
    alice = client(ALICE)
    alice.put(profile_url(), json=profile_body())
    answer = alice.put(group_url(), json=from_profile(**own))
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"]
    error(alice.get(group_url()), 404, "ResourceNotFound")


def test_a_profiles_answers_have_the_fields_of_their_api_version(client: Any) -> None:
    """A profile's group fields newer than the request's api-version are left out of its
    answers (secretReferences: 2024-10-01-preview on); its own fields never are."""
    new, old = client(ALICE), client(ALICE, suffix="?api-version=2024-05-01-preview")
    refs = [{"name": "r", "identity": "x", "secretReferenceUri": "https://v.example/s"}]
    new.put(profile_url(), json=profile_body(secretReferences=refs, timeToLive="PT1M"))
    assert new.get(profile_url()).json()["properties"]["secretReferences"] == refs
    for answer in (old.get(profile_url()).json(), old.get(profile_url() + "/revisions/1").json(),
                   old.get(profile_url().rsplit("/", 1)[0]).json()["value"][0]):
        assert "secretReferences" not in answer["properties"]
        assert answer["properties"]["timeToLive"] == "PT1M"
