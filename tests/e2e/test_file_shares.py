"""File shares end to end: a storage account and a share made through the ARM API, files
put and read back with the official Azure Files SDK over the data plane, and container
groups mounting the share (issue 13's "Done means")."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from skiff.testing.catalog import BuiltImages
from skiff.testing.server import RunningServer, running_server, settled
from skiff.testing.waiting import eventually

fileshare = pytest.importorskip("azure.storage.fileshare")

API = "?api-version=2023-05-01"
RG = "/subscriptions/sub-1/resourceGroups/rg"
GROUPS = f"{RG}/providers/Microsoft.ContainerInstance/containerGroups"
ACCOUNTS = f"{RG}/providers/Microsoft.Storage/storageAccounts"


@pytest.fixture
def skiff(tmp_path: Path, images: BuiltImages) -> Iterator[RunningServer]:
    """A skiff serving the API and the Azure Files data plane on loopback."""
    with running_server(tmp_path / "root", allow=images.endpoints, files=True) as running:
        yield running


def make_share(http: httpx.Client, account: str, share: str, quota_gib: int) -> str:
    """Make the account and the share through ARM; the account's key1."""
    made = http.put(f"{ACCOUNTS}/{account}{API}", json={
        "location": "local", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}})
    assert made.status_code in (200, 201), made.text
    made = http.put(f"{ACCOUNTS}/{account}/fileServices/default/shares/{share}{API}",
                    json={"properties": {"shareQuota": quota_gib}})
    assert made.status_code in (200, 201), made.text
    keys = http.post(f"{ACCOUNTS}/{account}/listKeys{API}")
    assert keys.status_code == 200, keys.text
    key: str = keys.json()["keys"][0]["value"]
    return key


def mounting(images: BuiltImages, account: str, share: str, key: str, script: str, *,
             read_only: bool = False) -> dict[str, Any]:
    """A group running ``script`` with the share at /mnt/share."""
    return {"location": "local", "properties": {
        "osType": "Linux", "restartPolicy": "Never",
        "volumes": [{"name": "share", "azureFile": {
            "shareName": share, "storageAccountName": account, "storageAccountKey": key,
            "readOnly": read_only}}],
        "containers": [{"name": "c", "properties": {
            "image": images.bb, "command": ["sh", "-c", script],
            "volumeMounts": [{"name": "share", "mountPath": "/mnt/share"}],
            "resources": {"requests": {"cpu": 0.1, "memoryInGB": 0.1}}}}]}}


def run_to_end(http: httpx.Client, name: str, body: dict[str, Any]) -> str:
    """Create the group, wait until its container has ended; its logs."""
    made = http.put(f"{GROUPS}/{name}{API}", json=body)
    assert made.status_code in (200, 201), made.text

    def ended() -> dict[str, Any] | None:
        group: dict[str, Any] = http.get(f"{GROUPS}/{name}{API}").json()
        view = group["properties"].get("instanceView") or {}
        state = group["properties"]["containers"][0]["properties"].get("instanceView", {})
        current = state.get("currentState", {}).get("state")
        return group if current == "Terminated" or view.get("state") == "Failed" else None

    group = eventually(ended, what=f"group {name} ends", timeout_s=60)
    state = group["properties"]["containers"][0]["properties"]["instanceView"]
    assert state["currentState"]["state"] == "Terminated", group["properties"]
    logs = http.get(f"{GROUPS}/{name}/containers/c/logs{API}").json()["content"]
    assert isinstance(logs, str)
    return logs


def test_sdk_files_and_groups_meet_in_a_share_that_outlives_them(
    skiff: RunningServer, images: BuiltImages
) -> None:
    account, share = f"acct{uuid.uuid4().hex[:10]}", "data"
    with skiff.client() as http:
        key = make_share(http, account, share, quota_gib=1)
        endpoint = http.get(f"{ACCOUNTS}/{account}{API}").json()[
            "properties"]["primaryEndpoints"]["file"]
        assert endpoint == f"{skiff.files_url}/{account}/"
        service = fileshare.ShareServiceClient(
            endpoint, credential={"account_name": account, "account_key": key},
            connection_verify=str(skiff.ca))
        files = service.get_share_client(share)
        files.create_directory("in")
        files.get_file_client("in/question.txt").upload_file(b"six times seven\n")

        # a group reads what the SDK put and writes a result
        logs = run_to_end(http, "writer", mounting(
            images, account, share, key,
            "cat /mnt/share/in/question.txt && mkdir -p /mnt/share/out && "
            "echo 42 > /mnt/share/out/answer.txt && stat -c '%u %a' /mnt/share/out/answer.txt"))
        assert "six times seven" in logs
        assert "0 777" in logs  # as ACI's SMB mount shows its files
        deleted = http.delete(f"{GROUPS}/writer{API}")
        assert deleted.status_code in (200, 202, 204), deleted.text
        eventually(lambda: http.get(f"{GROUPS}/writer{API}").status_code == 404,
                   what="the writer is gone", timeout_s=60)

        # the result outlives the group: the SDK downloads it, a later group sees it
        answer = files.get_file_client("out/answer.txt").download_file().readall()
        assert answer == b"42\n"
        logs = run_to_end(http, "reader", mounting(
            images, account, share, key, "cat /mnt/share/out/answer.txt"))
        assert "42" in logs

        # a read-only mount cannot write
        logs = run_to_end(http, "readonly", mounting(
            images, account, share, key,
            "echo no > /mnt/share/out/nope.txt; echo rc=$?", read_only=True))
        assert "rc=1" in logs, logs
        assert "Read-only file system" in logs, logs
        assert "nope.txt" not in [f["name"] for f in files.list_directories_and_files("out")]

        # writing past the quota (1 GiB) fails inside with ENOSPC; what fits stays
        logs = run_to_end(http, "filler", mounting(
            images, account, share, key,
            "dd if=/dev/zero of=/mnt/share/big bs=1M count=1200 2>&1; echo rc=$?"))
        assert "No space left on device" in logs, logs
        assert "rc=1" in logs, logs
        assert files.get_file_client("out/answer.txt").download_file().readall() == b"42\n"


def test_a_wrong_key_fails_the_group_with_failed_mount(
    skiff: RunningServer, images: BuiltImages
) -> None:
    account = f"acct{uuid.uuid4().hex[:10]}"
    with skiff.client() as http:
        key = make_share(http, account, "data", quota_gib=1)
        wrong = "A" * len(key)
        made = http.put(f"{GROUPS}/badkey{API}",
                        json=mounting(images, account, "data", wrong, "true"))
        assert made.status_code in (200, 201), made.text
        group = settled(http, f"{GROUPS}/badkey{API}", timeout_s=60)
        view = group["properties"]["instanceView"]
        assert view["state"] == "Failed", group["properties"]
        text = str(group)
        assert "FailedMountAzureFileVolume" in text, text
        assert wrong not in text
        assert key not in text
