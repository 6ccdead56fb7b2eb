"""``skiff container ngroup ...`` against the API over real HTTPS (the fake engine; the
NGroups controller's thread running): create from flags and wait, update to a new
revision, show with events, list as a table, stop, start, delete."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from skiff.cli.main import main
from skiff.client import SkiffClient
from skiff.testing.inprocess import FakeHttps, fake_https
from tests.unit.test_ngroups_api import API, PROFILE, SUB, group_body


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[FakeHttps, str]]:
    """The API over HTTPS, the controller's thread running, and the profile ``web`` with
    revisions 1 and 2."""
    with fake_https(tmp_path / "root") as running:
        controller = running.plane.ngroups
        assert controller is not None
        controller.interval_s = 0.05
        controller.start()
        try:
            _, secret = running.plane.store.create_token(SUB, "cli")
            with httpx.Client(base_url=running.url,
                              verify=ssl.create_default_context(cafile=str(running.ca)),
                              headers={"Authorization": f"Bearer {secret}"}) as http:
                for mark in ("1", "2"):
                    body = group_body()
                    body["properties"]["containers"][0]["properties"]["command"] = [
                        "sh", "-c", f"sleep 300 # {mark}"]
                    answer = http.put(f"{PROFILE}{API}", json=body)
                    assert answer.status_code in (200, 201), answer.text
            yield running, secret
        finally:
            controller.stop()


def run(server: tuple[FakeHttps, str], *args: str) -> Result:
    running, token = server

    def factory() -> SkiffClient:
        return SkiffClient(running.url, token, ca=str(running.ca), subscription=SUB)
    result = CliRunner().invoke(main, ["container", "ngroup", *args], obj=factory)
    assert result.exit_code == 0, result.output
    return result


def test_the_ngroup_commands(server: tuple[FakeHttps, str]) -> None:
    """create waits for the members; update rolls them to revision 2; show --events
    tells the batches; list -o table shows it; stop, start and delete succeed."""
    created = json.loads(run(server, "create", "-g", "rg", "-n", "ng", "-l", "westeurope",
                             "--profile", PROFILE, "--profile-revision", "1",
                             "--desired-count", "2", "--prefix", "cli-",
                             "--update-mode", "Rolling", "--max-batch-percent", "50",
                             "--maintain-desired-count").output)
    assert created["properties"]["provisioningState"] == "Succeeded"
    assert created["resourceGroup"] == "rg"
    assert created["properties"]["elasticProfile"]["containerGroupNamingPolicy"] == {
        "guidNamingPolicy": {"prefix": "cli-"}}
    updated = json.loads(run(server, "update", "-g", "rg", "-n", "ng",
                             "--profile-revision", "2").output)
    assert updated["properties"]["containerGroupProfiles"][0]["revision"] == 2
    assert updated["properties"]["provisioningState"] == "Succeeded"
    events = json.loads(run(server, "show", "-g", "rg", "-n", "ng", "--events").output)
    assert [e["name"] for e in events].count("BatchCompleted") == 2
    table = run(server, "list", "-o", "table").output
    assert "ng" in table
    assert "Rolling" in table
    run(server, "stop", "-g", "rg", "-n", "ng")
    run(server, "start", "-g", "rg", "-n", "ng")
    run(server, "delete", "-g", "rg", "-n", "ng", "--yes")
    missing = CliRunner().invoke(main, ["container", "ngroup", "show", "-g", "rg", "-n", "ng"],
                                 obj=lambda: SkiffClient(server[0].url, server[1],
                                                         ca=str(server[0].ca),
                                                         subscription=SUB))
    assert missing.exit_code == 3, missing.output
