"""An NGroup's secrets at rest and in answers: the per-member fields of its body (volumes'
account keys and secret files, and any secure value a body carries there) are sealed in
the store's files, also in a file written before they were (the upgrade seals them and
wipes the plaintext), and never answered."""

from __future__ import annotations

import base64
import copy
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import start_blocking_portal

from skiff.api.app import create_app
from skiff.api.ngroups import attach_ngroups
from skiff.store import Store, schema
from skiff.testing.inprocess import InProcessClient, fake_plane
from tests.unit.test_store_sealing import (
    SUB,
    assert_nothing_in_clear,
    old_file,
    secrets,
    store_files,
)

RG = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerInstance"
API = "?api-version=2025-09-01"


def ngroup_body(found: dict[str, str]) -> dict[str, Any]:
    """An NGroup whose per-member fields hold each of ``found``'s secrets."""
    return {"location": "local", "properties": {
        "elasticProfile": {"desiredCount": 0},
        "containerGroupProfiles": [{
            "resource": {"id": f"{RG}/containerGroupProfiles/web"},
            "containerGroupProperties": {
                "volumes": [
                    {"name": "v", "secret": {
                        "f": base64.b64encode(found["file"].encode()).decode()}},
                    {"name": "a", "azureFile": {"shareName": "s", "storageAccountName": "n",
                                                "storageAccountKey": found["key"]}}],
                "containers": [{"name": "c", "properties": {
                    "volumeMounts": [{"name": "a", "mountPath": "/a"}],
                    "environmentVariables": [{"name": "S", "secureValue": found["secure"]}]}}],
            }}]}}


def test_an_ngroup_body_is_sealed_in_the_store_files(tmp_path: Path) -> None:
    """Created, updated and read back whole; the same body again is no new version; no
    file of the store holds a secret of either body."""
    path = tmp_path / "skiff.db"
    first, second = secrets(), secrets()
    with Store(path) as store:
        record, created = store.put_ngroup(SUB, "rg", "ng", "local", ngroup_body(first), {})
        assert created
        assert record.body == ngroup_body(first)
        again, _ = store.put_ngroup(SUB, "rg", "ng", "local", ngroup_body(first), {})
        assert again.version == record.version
        updated, _ = store.put_ngroup(SUB, "rg", "ng", "local", ngroup_body(second), {})
        assert updated.version == record.version + 1
        assert updated.generation == record.generation + 1
        assert store.get_ngroup(SUB, "rg", "ng") == updated
        assert [n.body for n in store.list_ngroups()] == [ngroup_body(second)]
        assert_nothing_in_clear(path, {**first, **second})
    assert_nothing_in_clear(path, {**first, **second})


def test_an_older_file_s_ngroups_are_sealed_on_opening(tmp_path: Path) -> None:
    """A file from before NGroups' bodies were sealed: the upgrade seals them, and neither
    the live row's old text nor a deleted NGroup's remains in the files."""
    path = tmp_path / "skiff.db"
    found, gone = secrets(), secrets()
    # A sealed store at the version before the NGroups' sealing, their bodies in clear.
    old_file(path, schema.SEALING[1] - 1,
             "INSERT INTO ngroups (uid, subscription, rg_key, name_key, resource_group, name,"
             " location, body, tags, provisioning_state, desired, version, generation,"
             " rollout, events, created_at, updated_at) VALUES (?, ?, 'rg', ?, 'rg', ?,"
             " 'local', ?, '{}', 'Succeeded', 'running', 1, 1, '{}', '[]', 1.0, 1.0)",
             [("a" * 32, "ng", ngroup_body(found)), ("b" * 32, "gone", ngroup_body(gone))],
             probe=True)
    assert any(found["key"].encode() in data for data in store_files(path).values())
    with Store(path) as store:
        record = store.get_ngroup(SUB, "rg", "ng")
        assert record is not None
        assert record.body == ngroup_body(found)
        assert_nothing_in_clear(path, {**found, **gone})
    conn = sqlite3.connect(path)
    assert schema.version(conn) == schema.LATEST
    conn.close()


@pytest.fixture
def http(tmp_path: Path) -> Iterator[InProcessClient]:
    with start_blocking_portal() as portal, fake_plane(tmp_path) as plane:
        attach_ngroups(plane)
        _, secret = plane.store.create_token(SUB, "tests")
        client = InProcessClient(portal, create_app(plane), secret)
        profile = {"location": "westeurope", "properties": {
            "osType": "Linux", "containers": [{"name": "c", "properties": {
                "image": "registry.test/busybox:1",
                "resources": {"requests": {"cpu": 0.1, "memoryInGB": 0.1}}}}]}}
        assert client.put(f"{RG}/containerGroupProfiles/web{API}",
                          json=profile).status_code == 201
        yield client


def test_an_ngroup_s_answers_hold_no_secret(http: InProcessClient) -> None:
    """The PUT's, GET's and lists' answers name the secret files (contents null) and hold
    no secret value."""
    found = secrets()
    body = ngroup_body(found)
    body["location"] = "westeurope"
    answers = [http.put(f"{RG}/ngroups/ng{API}", json=body)]
    answers += [http.get(f"{RG}/ngroups/ng{API}"), http.get(f"{RG}/ngroups{API}"),
                http.get(f"/subscriptions/{SUB}/providers/Microsoft.ContainerInstance/ngroups"
                         f"{API}")]
    for answer in answers:
        assert answer.status_code in (200, 201), answer.text
        for value in found.values():
            assert value not in answer.text
            assert base64.b64encode(value.encode()).decode() not in answer.text
    fields = answers[1].json()["properties"]["containerGroupProfiles"][0][
        "containerGroupProperties"]
    expected = copy.deepcopy(body["properties"]["containerGroupProfiles"][0][
        "containerGroupProperties"])
    expected["volumes"][0]["secret"]["f"] = None
    del expected["volumes"][1]["azureFile"]["storageAccountKey"]
    del expected["containers"][0]["properties"]["environmentVariables"][0]["secureValue"]
    assert fields == expected
