"""The Microsoft.Storage routes in process: storage accounts, their keys, checkNameAvailability
and file shares over a real store and fake share disks (directories), through httpx's ASGI
transport. Tenancy (another subscription's account is absent, its name taken, its groups
unnamed), and bad input answered as ARM errors, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI

from skiff.api.app import create_app
from skiff.api.context import ControlPlane
from skiff.core.shares import ShareRef
from skiff.testing.inprocess import InProcessClient, fake_plane

SUB, OTHER = "sub-1", "sub-2"
API = "?api-version=2023-05-01"
STORAGE = "providers/Microsoft.Storage/storageAccounts"


def accounts(sub: str = SUB, rg: str = "rg") -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/{STORAGE}"


def account(name: str, sub: str = SUB, rg: str = "rg") -> str:
    return f"{accounts(sub, rg)}/{name}"


def share(acct: str, name: str, sub: str = SUB, rg: str = "rg") -> str:
    return f"{account(acct, sub, rg)}/fileServices/default/shares/{name}"


ACCOUNT_BODY = {"location": "local", "kind": "StorageV2", "sku": {"name": "Standard_LRS"},
                "tags": {"team": "a"}}


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as running:
        yield running


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    with fake_plane(tmp_path) as running:
        yield running


@pytest.fixture
def app(plane: ControlPlane) -> FastAPI:
    return create_app(plane)


def client(plane: ControlPlane, app: FastAPI, portal: BlockingPortal,
           sub: str) -> InProcessClient:
    _, secret = plane.store.create_token(sub, f"tests-{sub}")
    return InProcessClient(portal, app, secret, suffix=API)


@pytest.fixture
def http(plane: ControlPlane, app: FastAPI, portal: BlockingPortal) -> InProcessClient:
    return client(plane, app, portal, SUB)


@pytest.fixture
def other(plane: ControlPlane, app: FastAPI, portal: BlockingPortal) -> InProcessClient:
    return client(plane, app, portal, OTHER)


def error(answer: Any, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()["error"]
    assert body["code"] == code, body
    return str(body["message"])


def make_account(http: InProcessClient, name: str = "acct1", **over: Any) -> dict[str, Any]:
    answer = http.put(account(name, **over), json=ACCOUNT_BODY)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def mount(plane: ControlPlane, sub: str, rg: str, name: str, acct: str, shr: str) -> str:
    """A container group whose body mounts the share (written to the store directly: the
    group's validation of azureFile volumes is the engine's side)."""
    body = {"location": "local", "properties": {"osType": "Linux", "containers": [], "volumes": [
        {"name": "v", "azureFile": {"shareName": shr, "storageAccountName": acct,
                                    "storageAccountKey": "secret-key"}}]}}
    record, _ = plane.store.put_group(sub, rg, name, "local", body, {})
    return record.uid


def test_account_lifecycle(http: InProcessClient, plane: ControlPlane) -> None:
    made = make_account(http)
    assert made["id"] == f"/subscriptions/{SUB}/resourceGroups/rg/{STORAGE}/acct1"
    assert made["type"] == "Microsoft.Storage/storageAccounts"
    assert made["kind"] == "StorageV2"
    assert made["sku"] == {"name": "Standard_LRS", "tier": "Standard"}
    assert made["tags"] == {"team": "a"}
    assert made["properties"]["provisioningState"] == "Succeeded"
    assert made["properties"]["primaryEndpoints"]["file"] == "https://127.0.0.1:8444/acct1/"
    assert made["properties"]["creationTime"].endswith("Z")
    assert "keys" not in json.dumps(made).lower().replace("keycreationtime", "")

    assert http.get(account("acct1")).json() == made
    assert [a["name"] for a in http.get(accounts()).json()["value"]] == ["acct1"]
    listed = http.get(f"/subscriptions/{SUB}/{STORAGE}").json()["value"]
    assert [a["name"] for a in listed] == ["acct1"]

    patched = http.request("PATCH", account("acct1"), json={"tags": {"b": "2"}})
    assert patched.status_code == 200
    assert patched.json()["tags"] == {"b": "2"}
    again = http.put(account("acct1"), json={**ACCOUNT_BODY, "kind": "FileStorage",
                                              "sku": {"name": "Premium_LRS"}})
    assert again.status_code == 200
    assert again.json()["kind"] == "FileStorage"
    assert again.json()["sku"]["tier"] == "Premium"

    assert http.delete(account("acct1")).status_code == 200
    error(http.get(account("acct1")), 404, "ResourceNotFound")
    assert http.delete(account("acct1")).status_code == 204


def test_keys_list_and_regenerate(http: InProcessClient, plane: ControlPlane) -> None:
    make_account(http)
    keys = http.post(account("acct1") + "/listKeys").json()["keys"]
    assert [k["keyName"] for k in keys] == ["key1", "key2"]
    assert all(k["permissions"] == "FULL" and len(k["value"]) == 88 for k in keys)
    assert keys[0]["value"] != keys[1]["value"]
    regen = http.post(account("acct1") + "/regenerateKey", json={"keyName": "key2"})
    assert regen.status_code == 200
    new = regen.json()["keys"]
    assert new[0]["value"] == keys[0]["value"]
    assert new[1]["value"] != keys[1]["value"]
    assert plane.storage is not None
    assert plane.storage.account_keys("acct1") == (new[0]["value"], new[1]["value"])
    error(http.post(account("acct1") + "/regenerateKey", json={"keyName": "key3"}), 400,
          "InvalidRequestContent")


def test_check_name_availability(http: InProcessClient, other: InProcessClient) -> None:
    url = f"/subscriptions/{SUB}/providers/Microsoft.Storage/checkNameAvailability"
    body = {"name": "acct1", "type": "Microsoft.Storage/storageAccounts"}
    assert http.post(url, json=body).json() == {"nameAvailable": True}
    make_account(other, sub=OTHER)
    taken = http.post(url, json=body).json()
    assert taken["nameAvailable"] is False
    assert taken["reason"] == "AlreadyExists"
    assert taken["message"] == "The storage account named acct1 is already taken."
    bad = http.post(url, json={"name": "Bad_Name"}).json()
    assert bad["nameAvailable"] is False
    assert bad["reason"] == "AccountNameInvalid"


def test_tenancy(http: InProcessClient, other: InProcessClient) -> None:
    make_account(http)
    # another subscription's account is absent to it, its keys and shares too
    error(other.get(account("acct1", sub=OTHER)), 404, "ResourceNotFound")
    error(other.get(account("acct1")), 403, "AuthorizationFailed")
    error(other.post(account("acct1", sub=OTHER) + "/listKeys"), 404, "ResourceNotFound")
    error(other.get(share("acct1", "data", sub=OTHER)), 404, "ParentResourceNotFound")
    assert other.get(f"/subscriptions/{OTHER}/{STORAGE}").json()["value"] == []
    # ... and its name is taken, on the node as in Azure
    message = error(other.put(account("acct1", sub=OTHER), json=ACCOUNT_BODY), 409,
                    "StorageAccountAlreadyTaken")
    assert message == "The storage account named acct1 is already taken."
    # another resource group of the same subscription too
    error(http.put(account("acct1", rg="rg2"), json=ACCOUNT_BODY), 409,
          "StorageAccountAlreadyTaken")
    assert other.delete(account("acct1", sub=OTHER)).status_code == 204
    assert http.get(account("acct1")).status_code == 200


def test_share_lifecycle(http: InProcessClient, plane: ControlPlane) -> None:
    make_account(http)
    made = http.put(share("acct1", "data"), json={"properties": {"metadata": {"a": "1"}}})
    assert made.status_code == 201, made.text
    props = made.json()["properties"]
    assert props["shareQuota"] == 5120
    assert props["metadata"] == {"a": "1"}
    assert made.json()["type"] == "Microsoft.Storage/storageAccounts/fileServices/shares"
    assert plane.storage is not None
    root = plane.storage.root(ShareRef("acct1", "data"))
    assert root.is_dir()
    (root / "f").write_bytes(b"x" * 1000)

    changed = http.put(share("acct1", "data"), json={"properties": {"shareQuota": 10}})
    assert changed.status_code == 200
    assert changed.json()["properties"]["shareQuota"] == 10
    assert changed.json()["properties"]["metadata"] == {"a": "1"}
    assert changed.json()["etag"] != made.json()["etag"]
    stats = http.get(share("acct1", "data") + "?$expand=stats").json()
    assert stats["properties"]["shareUsageBytes"] == 1000
    assert [s["name"] for s in http.get(
        account("acct1") + "/fileServices/default/shares").json()["value"]] == ["data"]
    assert http.get(account("acct1") + "/fileServices/default").json()["name"] == "default"

    error(http.put(share("acct1", "data"), json={"properties": {"shareQuota": 0}}), 400,
          "InvalidHeaderValue")
    assert http.delete(share("acct1", "data")).status_code == 200
    assert not root.exists()
    error(http.get(share("acct1", "data")), 404, "ResourceNotFound")
    assert http.delete(share("acct1", "data")).status_code == 204


def test_account_delete_takes_its_shares(http: InProcessClient, plane: ControlPlane) -> None:
    make_account(http)
    assert http.put(share("acct1", "data"), json={}).status_code == 201
    assert plane.storage is not None
    root = plane.storage.root(ShareRef("acct1", "data"))
    assert http.delete(account("acct1")).status_code == 200
    assert not root.exists()
    make_account(http)  # the name is free again, without the old share
    assert http.get(account("acct1") + "/fileServices/default/shares").json()["value"] == []


def test_in_use_refused_naming_own_groups_only(http: InProcessClient, other: InProcessClient,
                                               plane: ControlPlane) -> None:
    make_account(http)
    assert http.put(share("acct1", "data"), json={}).status_code == 201
    mount(plane, SUB, "rg", "mine", "acct1", "data")
    mount(plane, OTHER, "secret-rg", "theirs", "ACCT1", "Data")
    for answer in (http.delete(share("acct1", "data")), http.delete(account("acct1"))):
        message = error(answer, 409, "ShareInUse")
        assert "'mine'" in message
        assert "another subscription" in message
        assert "theirs" not in message
        assert "secret-rg" not in message
        assert OTHER not in message
        assert "secret-key" not in message
    assert http.get(share("acct1", "data")).status_code == 200

    # a group being deleted no longer holds it
    plane.store.set_desired(SUB, "rg", "mine", "deleted")
    plane.store.set_desired(OTHER, "secret-rg", "theirs", "deleted")
    assert http.delete(share("acct1", "data")).status_code == 200


def test_resource_group_delete_takes_accounts(http: InProcessClient,
                                              plane: ControlPlane) -> None:
    make_account(http, "inside", rg="gone")
    assert http.put(share("inside", "data", rg="gone"), json={}).status_code == 201
    mount(plane, SUB, "keep", "user", "inside", "data")
    message = error(http.delete(f"/subscriptions/{SUB}/resourceGroups/gone"), 409, "ShareInUse")
    assert "'user'" in message
    assert "resource group 'gone'" in message
    assert http.get(account("inside", rg="gone")).status_code == 200  # nothing went

    plane.store.set_desired(SUB, "keep", "user", "deleted")
    mount(plane, SUB, "gone", "own", "inside", "data")  # its own groups go with it
    assert plane.storage is not None
    root = plane.storage.root(ShareRef("inside", "data"))
    assert http.delete(f"/subscriptions/{SUB}/resourceGroups/gone").status_code == 202
    assert plane.store.get_account("inside") is None
    assert not root.exists()


@pytest.mark.parametrize(("url", "body", "status", "code"), [
    (account("ab"), ACCOUNT_BODY, 400, "AccountNameInvalid"),
    (account("UpperCase"), ACCOUNT_BODY, 400, "AccountNameInvalid"),
    (account("a" * 25), ACCOUNT_BODY, 400, "AccountNameInvalid"),
    (account("with-dash"), ACCOUNT_BODY, 400, "AccountNameInvalid"),
    (account("acct9"), {**ACCOUNT_BODY, "kind": "BlobStorage"}, 400, "InvalidKind"),
    (account("acct9"), {"location": "local", "sku": {"name": "x"}}, 400,
     "MissingRequiredProperty"),
    (account("acct9"), {"location": "local", "kind": "StorageV2"}, 400,
     "MissingRequiredProperty"),
    (account("acct9"), {"location": "local", "kind": "StorageV2", "sku": "Standard_LRS"}, 400,
     "InvalidRequestContent"),
    (account("acct9"), {"location": " ", "kind": "StorageV2", "sku": {"name": "x"}}, 400,
     "LocationRequired"),
    (account("acct9"), [1], 400, "InvalidRequestContent"),
    (account("acct9"), {**ACCOUNT_BODY, "tags": {"a": 1}}, 400, "InvalidTagValue"),
    (share("acct1", "ab"), {}, 400, "InvalidResourceName"),
    (share("acct1", "a--b"), {}, 400, "InvalidResourceName"),
    (share("acct1", "-ab"), {}, 400, "InvalidResourceName"),
    (share("acct1", "Upper"), {}, 400, "InvalidResourceName"),
    (share("acct1", "a" * 64), {}, 400, "InvalidResourceName"),
    (share("acct1", "data"), {"properties": {"shareQuota": 102401}}, 400, "InvalidHeaderValue"),
    (share("acct1", "data"), {"properties": {"shareQuota": "5"}}, 400, "InvalidHeaderValue"),
    (share("acct1", "data"), {"properties": {"shareQuota": True}}, 400, "InvalidHeaderValue"),
    (share("acct1", "data"), {"properties": {"metadata": {"1a": "x"}}}, 400, "InvalidMetadata"),
    (share("acct1", "data"), {"properties": {"metadata": []}}, 400, "InvalidRequestContent"),
    (share("acct1", "data"), {"properties": 5}, 400, "InvalidRequestContent"),
    (share("nosuch", "data"), {}, 404, "ParentResourceNotFound"),
])
def test_bad_input(http: InProcessClient, url: str, body: Any, status: int, code: str) -> None:
    make_account(http)
    error(http.put(url, json=body), status, code)


def test_location_defaults_to_the_nodes(http: InProcessClient) -> None:
    made = http.put(account("acct3"), json={"kind": "FileStorage", "sku": {"name": "x"}})
    assert made.status_code == 200
    assert made.json()["location"] == "local"


def test_bad_json_and_empty_bodies(http: InProcessClient) -> None:
    make_account(http)
    error(http.put(account("acct2"), content=b"{nope"), 400, "InvalidRequestContent")
    error(http.put(account("acct2"), content=b""), 400, "InvalidRequestContent")
    error(http.put(share("acct1", "data"), content=b"{nope"), 400, "InvalidRequestContent")
    assert http.put(share("acct1", "data"), content=b"").status_code == 201  # as {}
    error(http.post(account("acct1") + "/regenerateKey", content=b"[]"), 400,
          "InvalidRequestContent")
    error(http.post(f"/subscriptions/{SUB}/providers/Microsoft.Storage/checkNameAvailability",
                    json={"name": 5}), 400, "InvalidRequestContent")
    error(http.request("PATCH", account("acct1"), json={"tags": "x"}), 400,
          "InvalidRequestContent")


def test_keys_never_in_errors_or_reads(http: InProcessClient, plane: ControlPlane) -> None:
    make_account(http)
    keys = [k["value"] for k in http.post(account("acct1") + "/listKeys").json()["keys"]]
    texts = [http.get(account("acct1")).text, http.get(accounts()).text,
             http.put(account("acct1", rg="rg2"), json=ACCOUNT_BODY).text,
             http.put(share("acct1", "x"), json={}).text]
    for text in texts:
        assert not any(key in text for key in keys)


def test_openapi_describes_storage(http: InProcessClient) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    shares = ("/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/"
              "Microsoft.Storage/storageAccounts/{account}/fileServices/default/shares/{share}")
    assert set(paths[shares]) == {"put", "get", "delete"}
    assert "requestBody" in paths[shares]["put"]
