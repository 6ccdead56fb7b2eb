"""securityContext over HTTPS against a real server: refusals and the answered context."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from skiff.testing.catalog import BuiltImages
from skiff.testing.documents import one_container_group
from skiff.testing.server import RunningServer, settled
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root

API = "?api-version=2023-05-01"
GROUPS = ("/subscriptions/security-test/resourceGroups/rg/providers/"
          "Microsoft.ContainerInstance/containerGroups")


def with_context(images: BuiltImages, context: dict[str, Any], script: str) -> dict[str, Any]:
    """A one-container group running ``script`` with ``context`` as its securityContext."""
    doc = one_container_group(images.bb, script)
    doc["properties"]["containers"][0]["properties"]["securityContext"] = context
    return doc


def test_privileged_is_refused_and_nothing_stays(skiff: RunningServer,
                                                images: BuiltImages) -> None:
    """A privileged container gets 400 PrivilegedContainerNotAllowed from a default server,
    and no group is created."""
    http = skiff.client()
    answer = http.put(f"{GROUPS}/priv{API}", json=with_context(images, {"privileged": True},
                                                               "sleep 300"))
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "PrivilegedContainerNotAllowed"
    assert "--allow-privileged" in error["message"]
    assert http.get(f"{GROUPS}/priv{API}").status_code == 404


def test_security_context_runs_and_round_trips(skiff: RunningServer,
                                               images: BuiltImages) -> None:
    """A valid securityContext is answered back as sent, and the container runs with it
    (runAsUser, no NET_RAW... capabilities, no-new-privileges lifted)."""
    profile = base64.b64encode(json.dumps({"defaultAction": "SCMP_ACT_ALLOW"}).encode()).decode()
    context = {"runAsUser": 1234, "runAsGroup": 4321, "allowPrivilegeEscalation": True,
               "capabilities": {"drop": ["ALL"]}, "seccompProfile": profile}
    http = skiff.client()
    script = "id -u; id -g; grep -E 'CapEff|NoNewPrivs|Seccomp:' /proc/self/status; sleep 300"
    answer = http.put(f"{GROUPS}/secure{API}", json=with_context(images, context, script))
    assert answer.status_code == 201, answer.text
    group = settled(http, f"{GROUPS}/secure{API}")
    assert group["properties"]["containers"][0]["properties"]["securityContext"] == context
    logs: str = eventually(
        lambda: http.get(f"{GROUPS}/secure/containers/c/logs{API}").json()["content"],
        until=lambda content: "Seccomp" in content, what="the container's status lines",
        timeout_s=20)
    lines = logs.splitlines()
    assert lines[:2] == ["1234", "4321"], logs
    status = dict(line.split(":\t") for line in lines[2:5])
    assert int(status["CapEff"], 16) == 0, logs
    assert status["NoNewPrivs"].strip() == "0", logs
    assert status["Seccomp"].strip() == "2", logs  # the custom filter, installed
