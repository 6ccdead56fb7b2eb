"""Managed identities through the API, in process (a real store, the fake engine): the
user-assigned identity resource, a group's ``identity`` as ACI takes and answers it,
tenancy, and what the identity endpoint answers a group (picking its identity, signing
its token)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import start_blocking_portal

from skiff.api.app import create_app
from skiff.api.context import ControlPlane
from skiff.control.identities import GroupIdentities
from skiff.testing.inprocess import InProcessClient, fake_plane

API = "?api-version=2023-05-01"
ALICE, BOB = "sub-alice", "sub-bob"
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def rg(sub: str, name: str = "rg") -> str:
    return f"/subscriptions/{sub}/resourceGroups/{name}"


def uai(sub: str, name: str = "worker", rg_name: str = "rg") -> str:
    return f"{rg(sub, rg_name)}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"


def group(sub: str, name: str = "g") -> str:
    return f"{rg(sub)}/providers/Microsoft.ContainerInstance/containerGroups/{name}"


def body(identity: Any = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"location": "local", "properties": {
        "osType": "Linux", "containers": [{"name": "c", "properties": {
            "image": "registry.test/busybox:1", "command": ["sleep", "300"],
            "resources": {"requests": {"cpu": 0.1, "memoryInGB": 0.1}}}}]}}
    if identity is not None:
        doc["identity"] = identity
    return doc


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    with fake_plane(tmp_path) as running:
        yield running


@pytest.fixture
def client(plane: ControlPlane) -> Iterator[Any]:
    """Makes a client holding a new token of a subscription (None: the admin's)."""
    app = create_app(plane)
    with start_blocking_portal() as portal:
        def make(subscription: str | None) -> InProcessClient:
            _, secret = plane.store.create_token(subscription, subscription or "admin")
            return InProcessClient(portal, app, secret, suffix=API)
        yield make


def error(answer: httpx.Response, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    doc = answer.json()["error"]
    assert doc["code"] == code, doc
    return str(doc["message"])


def identities(plane: ControlPlane) -> GroupIdentities:
    assert plane.identities is not None
    return plane.identities


# ---- Microsoft.ManagedIdentity/userAssignedIdentities ---------------------------------


def test_a_user_assigned_identity_is_made_read_listed_tagged_and_deleted(client: Any) -> None:
    """PUT makes it (201) with GUIDs for tenant, principal and client, which a second PUT
    (200) and PATCH keep; GET, both lists and DELETE (200, then 204; then 404) as ARM."""
    alice = client(ALICE)
    made = alice.put(uai(ALICE), json={"location": "westeurope", "tags": {"team": "a"}})
    assert made.status_code == 201, made.text
    doc = made.json()
    assert doc["id"] == uai(ALICE)
    assert (doc["name"], doc["type"], doc["location"]) == \
        ("worker", "Microsoft.ManagedIdentity/userAssignedIdentities", "westeurope")
    props = doc["properties"]
    assert all(GUID.fullmatch(props[k]) for k in ("tenantId", "principalId", "clientId"))
    again = alice.put(uai(ALICE), json={"location": "westeurope", "tags": {"team": "b"}})
    assert again.status_code == 200
    assert again.json()["properties"] == props
    assert again.json()["tags"] == {"team": "b"}
    patched = alice.request("PATCH", uai(ALICE), json={"tags": {"team": "c"}})
    assert patched.json()["tags"] == {"team": "c"}
    assert patched.json()["properties"] == props
    assert alice.get(uai(ALICE.upper())).json()["properties"] == props
    assert alice.put(uai(ALICE, "other", "rg2"), json={"location": "local"}).status_code == 201
    in_rg = alice.get(f"{rg(ALICE)}/providers/Microsoft.ManagedIdentity/userAssignedIdentities")
    assert [i["name"] for i in in_rg.json()["value"]] == ["worker"]
    in_sub = alice.get(f"/subscriptions/{ALICE}/providers/Microsoft.ManagedIdentity/"
                       "userAssignedIdentities")
    assert sorted(i["name"] for i in in_sub.json()["value"]) == ["other", "worker"]
    assert alice.delete(uai(ALICE)).status_code == 200
    assert alice.delete(uai(ALICE)).status_code == 204
    error(alice.get(uai(ALICE)), 404, "ResourceNotFound")


@pytest.mark.parametrize("name", ["ab", "-lead", "has space", "x" * 129])
def test_an_identity_with_a_bad_name_is_refused(client: Any, name: str) -> None:
    error(client(ALICE).put(uai(ALICE, name), json={"location": "local"}), 400,
          "InvalidResourceName")


def test_deleting_a_resource_group_takes_its_identities(client: Any) -> None:
    alice = client(ALICE)
    assert alice.put(uai(ALICE), json={"location": "local"}).status_code == 201
    assert alice.delete(rg(ALICE)).status_code in (200, 202)
    assert alice.get(uai(ALICE)).status_code == 404


def test_another_tenant_learns_nothing_of_an_identity(client: Any) -> None:
    """Bob's token on Alice's identity: 403 AuthorizationFailed for reads, lists, writes
    and deletes (the identity stays; the answer is the same whether it exists), and the
    same 403 naming only his own words whether or not the identity he names in a group
    exists."""
    alice, bob = client(ALICE), client(BOB)
    made = alice.put(uai(ALICE), json={"location": "local"}).json()
    for method in ("GET", "DELETE", "PUT"):
        answer = bob.request(method, uai(ALICE), json={"location": "local"})
        error(answer, 403, "AuthorizationFailed")
        assert made["properties"]["principalId"] not in answer.text
        absent = bob.request(method, uai(ALICE, "absent"), json={"location": "local"})
        assert error(absent, 403, "AuthorizationFailed") == \
            answer.json()["error"]["message"].replace("worker", "absent")
    error(bob.get(f"/subscriptions/{ALICE}/providers/Microsoft.ManagedIdentity/"
                  "userAssignedIdentities"), 403, "AuthorizationFailed")
    assert alice.get(uai(ALICE)).status_code == 200
    messages = [error(bob.put(group(BOB, name), json=body({
        "type": "UserAssigned", "userAssignedIdentities": {uai(ALICE, who): {}}})),
        403, "LinkedAuthorizationFailed") for name, who in (("a", "worker"), ("b", "absent"))]
    assert "userAssignedIdentities/assign/action" in messages[0]
    assert messages[0].replace("'a'", "'b'").replace("/a'", "/b'").replace("worker", "absent") \
        == messages[1]
    assert made["properties"]["principalId"] not in messages[0]
    assert bob.get(group(BOB, "a")).status_code == 404


# ---- a group's identity ---------------------------------------------------------------


def test_a_system_identity_is_made_with_the_group_and_kept_across_updates(client: Any) -> None:
    """SystemAssigned gives the group a principal and the tenant, answered as ACI does;
    an update keeps them (whatever the client sends as principalId); dropping the
    identity and asking again gives a new principal."""
    alice = client(ALICE)
    made = alice.put(group(ALICE), json=body({"type": "systemassigned"}))
    assert made.status_code == 201, made.text
    identity = made.json()["identity"]
    assert identity["type"] == "SystemAssigned"
    assert set(identity) == {"type", "principalId", "tenantId"}
    assert GUID.fullmatch(identity["principalId"])
    update = body({"type": "SystemAssigned", "principalId": "forged"})
    update["tags"] = {"v": "2"}
    again = alice.put(group(ALICE), json=update)
    assert again.status_code == 200, again.text
    assert again.json()["identity"] == identity
    assert alice.get(group(ALICE)).json()["identity"] == identity
    listed = alice.get(f"{rg(ALICE)}/providers/Microsoft.ContainerInstance/containerGroups")
    assert listed.json()["value"][0]["identity"] == identity
    assert "identity" not in alice.put(group(ALICE), json=body()).json()
    renewed = alice.put(group(ALICE), json=body({"type": "SystemAssigned"})).json()["identity"]
    assert renewed["principalId"] != identity["principalId"]
    none = alice.put(group(ALICE), json=body({"type": "None"})).json()["identity"]
    assert none == {"type": "None"}


def test_user_assigned_identities_are_answered_with_their_ids(client: Any) -> None:
    alice = client(ALICE)
    worker = alice.put(uai(ALICE), json={"location": "local"}).json()["properties"]
    made = alice.put(group(ALICE), json=body({
        "type": "SystemAssigned, UserAssigned",
        "userAssignedIdentities": {uai(ALICE): {}, uai(ALICE).upper(): {}}}))
    assert made.status_code == 201, made.text
    identity = made.json()["identity"]
    assert identity["type"] == "SystemAssigned, UserAssigned"
    assert identity["userAssignedIdentities"] == {uai(ALICE): {
        "principalId": worker["principalId"], "clientId": worker["clientId"]}}
    assert identity["principalId"] != worker["principalId"]


@pytest.mark.parametrize(("identity", "code"), [
    ({"type": "Managed"}, "InvalidIdentityType"),
    ({"type": 3}, "InvalidIdentityType"),
    ("SystemAssigned", "InvalidRequestContent"),
    ({"type": "UserAssigned"}, "MissingIdentityIds"),
    ({"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {}},
     "MissingIdentityIds"),
    ({"type": "SystemAssigned", "userAssignedIdentities": {uai(ALICE): {}}}, "BadRequest"),
    ({"type": "UserAssigned", "userAssignedIdentities": {"/subscriptions/x": {}}},
     "InvalidIdentityValues"),
    ({"type": "UserAssigned", "userAssignedIdentities": {uai(ALICE): "yes"}},
     "InvalidRequestContent"),
    ({"type": "UserAssigned", "userAssignedIdentities": {uai(ALICE, "absent"): {}}},
     "FailedIdentityOperation"),
])
def test_a_bad_identity_is_refused_in_arms_words(client: Any, identity: Any,
                                                 code: str) -> None:
    alice = client(ALICE)
    alice.put(uai(ALICE), json={"location": "local"})
    message = error(alice.put(group(ALICE), json=body(identity)), 400, code)
    assert message
    assert alice.get(group(ALICE)).status_code == 404


# ---- the endpoint's answers -----------------------------------------------------------


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    padded = payload + "=" * (-len(payload) % 4)
    found: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return found


def test_a_group_gets_tokens_for_the_identity_it_picks(client: Any,
                                                       plane: ControlPlane) -> None:
    """No selector: the system identity; client_id, object_id or msi_res_id (any case):
    that identity, the user-assigned ones included; an unknown one, or one deleted
    since: IMDS's Identity not found. Every number a string."""
    alice = client(ALICE)
    worker = alice.put(uai(ALICE), json={"location": "local"}).json()["properties"]
    made = alice.put(group(ALICE), json=body({
        "type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {uai(ALICE): {}}}))
    record = plane.store.get_group(ALICE, "rg", "g")
    assert record is not None
    system = made.json()["identity"]

    def ask(**query: str) -> dict[str, Any]:
        reply = identities(plane).answer(record.uid, {"resource": "https://r.test/", **query})
        return {"status": reply.status, **reply.body}

    token = ask()
    assert token["status"] == 200
    assert all(isinstance(token[k], str) for k in ("expires_in", "expires_on", "not_before"))
    assert 0 < int(token["expires_in"]) <= 24 * 3600
    assert token["token_type"] == "Bearer"
    assert token["resource"] == "https://r.test/"
    found = claims(token["access_token"])
    assert (found["oid"], found["tid"], found["aud"]) == \
        (system["principalId"], system["tenantId"], "https://r.test/")
    assert found["appid"] == token["client_id"]
    for selector in ({"client_id": worker["clientId"].upper()},
                     {"object_id": worker["principalId"]}, {"msi_res_id": uai(ALICE).lower()}):
        picked = ask(**selector)
        assert picked["status"] == 200, picked
        assert claims(picked["access_token"])["oid"] == worker["principalId"]
        assert picked["client_id"] == worker["clientId"]
    assert ask(object_id=system["principalId"])["client_id"] == token["client_id"]
    assert ask(client_id="nobody") == {"status": 400, "error": "invalid_request",
                                       "error_description": "Identity not found"}
    assert ask(client_id="a", object_id="b")["status"] == 400
    alice.delete(uai(ALICE))
    assert ask(msi_res_id=uai(ALICE))["error_description"] == "Identity not found"


def test_the_only_user_assigned_identity_is_the_default_and_two_need_a_choice(
    client: Any, plane: ControlPlane
) -> None:
    alice = client(ALICE)
    for name in ("one", "two"):
        alice.put(uai(ALICE, name), json={"location": "local"})
    alice.put(group(ALICE, "single"), json=body({
        "type": "UserAssigned", "userAssignedIdentities": {uai(ALICE, "one"): {}}}))
    alice.put(group(ALICE, "double"), json=body({
        "type": "UserAssigned",
        "userAssignedIdentities": {uai(ALICE, "one"): {}, uai(ALICE, "two"): {}}}))
    alice.put(group(ALICE, "bare"), json=body())
    uid = {n: plane.store.get_group(ALICE, "rg", n).uid  # type: ignore[union-attr]
           for n in ("single", "double", "bare")}
    one = alice.get(uai(ALICE, "one")).json()["properties"]
    single = identities(plane).answer(uid["single"], {"resource": "r"})
    assert claims(str(single.body["access_token"]))["oid"] == one["principalId"]
    double = identities(plane).answer(uid["double"], {"resource": "r"})
    assert double.status == 400
    assert "Multiple user assigned identities" in str(double.body["error_description"])
    bare = identities(plane).answer(uid["bare"], {"resource": "r"})
    assert bare.body == {"error": "invalid_request", "error_description": "Identity not found"}
    assert identities(plane).answer("0" * 32, {"resource": "r"}).status == 400


READER = "acdd72a7-3d97-46b9-8ea0-e9b62cb98f8c"


def test_a_groups_identity_calls_the_api_with_the_roles_assigned_to_it(
    client: Any, plane: ControlPlane
) -> None:
    """A token from the identity endpoint for Azure's resource manager is taken by the
    API as its principal's: refused (403) until a role is assigned to the identity's
    principal id, then allowed what the role allows (Reader: a GET, not a DELETE). A
    user-assigned identity's principal takes roles too; an unknown principal does not;
    a token for another audience is not the API's."""
    alice: InProcessClient = client(ALICE)
    worker = alice.put(uai(ALICE), json={"location": "local"}).json()["properties"]
    system = alice.put(group(ALICE), json=body({
        "type": "SystemAssigned, UserAssigned",
        "userAssignedIdentities": {uai(ALICE): {}}})).json()["identity"]
    record = plane.store.get_group(ALICE, "rg", "g")
    assert record is not None

    def token(resource: str, **query: str) -> str:
        reply = identities(plane).answer(record.uid, {"resource": resource, **query})
        assert reply.status == 200, reply.body
        return str(reply.body["access_token"])

    def assign(name: str, principal: str) -> httpx.Response:
        return alice.put(f"{rg(ALICE)}/providers/Microsoft.Authorization/roleAssignments/{name}",
                         json={"properties": {
                             "roleDefinitionId": f"/subscriptions/{ALICE}/providers/"
                                                 f"Microsoft.Authorization/roleDefinitions/{READER}",
                             "principalId": principal}})

    app = create_app(plane)
    with start_blocking_portal() as portal:
        as_group = InProcessClient(portal, app, token("https://management.azure.com/"),
                                   suffix=API)
        error(as_group.get(group(ALICE)), 403, "AuthorizationFailed")
        made = assign("00000000-0000-0000-0000-0000000000a1", system["principalId"])
        assert made.status_code == 201, made.text
        seen = as_group.get(group(ALICE))
        assert seen.status_code == 200, seen.text
        assert seen.json()["identity"]["principalId"] == system["principalId"]
        error(as_group.delete(group(ALICE)), 403, "AuthorizationFailed")
        error(as_group.get(group(ALICE).replace(ALICE, BOB)), 403, "AuthorizationFailed")
        as_worker = InProcessClient(portal, app, token("https://management.azure.com/",
                                                       client_id=worker["clientId"]),
                                    suffix=API)
        error(as_worker.get(group(ALICE)), 403, "AuthorizationFailed")
        assert assign("00000000-0000-0000-0000-0000000000a2",
                      worker["principalId"]).status_code == 201
        assert as_worker.get(group(ALICE)).status_code == 200
        error(assign("00000000-0000-0000-0000-0000000000a3",
                     "00000000-0000-0000-0000-0000000000ff"), 400, "PrincipalNotFound")
        elsewhere = InProcessClient(portal, app, token("https://r.test/"), suffix=API)
        error(elsewhere.get(group(ALICE)), 401, "InvalidAuthenticationTokenAudience")
