"""A fake of skiff's API for the CLI's unit tests, and the checks of a command's result.

:class:`FakeArm` is an ``httpx.MockTransport`` handler holding groups and
operations in memory, as far as ``skiff container`` needs them; the network
commands' tests put it behind one transport with their fake of the network API.
:func:`ok` and :func:`failed` check a ``CliRunner`` result the way a user reads one.
"""

from __future__ import annotations

import json
import re
from copy import deepcopy
from typing import Any

import httpx
from click.testing import Result

from skiff.client import API_VERSION

BASE = "https://skiff.test:8443"
SUB = "11111111-2222-3333-4444-555555555555"
PROVIDER = "/providers/Microsoft.ContainerInstance"
_RG = re.compile(r"^/subscriptions/[^/]+/resourcegroups/([^/]+)$", re.I)
_LIST = re.compile(rf"^/subscriptions/[^/]+(?:/resourceGroups/([^/]+))?{PROVIDER}/containerGroups$")
_GROUP = re.compile(rf"^/subscriptions/[^/]+/resourceGroups/([^/]+){PROVIDER}/containerGroups/"
                    r"([^/]+)(?:/(start|stop|restart))?$")
_CONTAINER = re.compile(rf"^/subscriptions/[^/]+/resourceGroups/([^/]+){PROVIDER}/"
                        r"containerGroups/([^/]+)/containers/([^/]+)/(logs|exec|attach)$")
_OP = re.compile(rf"^/subscriptions/[^/]+{PROVIDER}/locations/[^/]+/operations/([^/]+)$")


class FakeArm:
    """skiff's API in memory, as far as the CLI needs it: groups, operations that end
    after ``polls`` polls with ``outcome``, lists paged by ``page_size``, logs, streams."""

    def __init__(self, *, polls: int = 2, outcome: str = "Succeeded", page_size: int = 100,
                 echo_secrets: bool = False) -> None:
        self.polls, self.outcome, self.page_size = polls, outcome, page_size
        self.echo_secrets = echo_secrets
        self.rg_location: str | None = "westeurope"
        self.groups: dict[tuple[str, str], dict[str, Any]] = {}
        self.states: dict[tuple[str, str], str] = {}
        self.operations: dict[str, tuple[tuple[str, str], int, str]] = {}
        self.requests: list[httpx.Request] = []
        self.put_error: tuple[int, dict[str, Any]] | None = None
        self.ws_uri = "ws://127.0.0.1:9/"
        self.logs = "line 1\nline 2\n"

    def add(self, rg: str, name: str, body: dict[str, Any], state: str = "Succeeded") -> None:
        self.groups[(rg, name)] = deepcopy(body)
        self.states[(rg, name)] = state

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.url.path) for r in self.requests]

    def bodies(self, method: str) -> list[Any]:
        return [json.loads(r.content) for r in self.requests if r.method == method and r.content]

    def view(self, key: tuple[str, str]) -> dict[str, Any]:
        rg, name = key
        body, state = deepcopy(self.groups[key]), self.states[key]
        props = body["properties"]
        props["provisioningState"] = state
        for c in props["containers"]:
            for env in c["properties"].get("environmentVariables", []):
                if "secureValue" in env and not self.echo_secrets:
                    env.pop("secureValue")
            if state == "Succeeded":
                c["properties"]["instanceView"] = {"restartCount": 0, "currentState": {
                    "state": "Running", "startTime": "2024-05-01T10:00:00Z",
                    "detailStatus": ""}, "events": []}
        for cred in props.get("imageRegistryCredentials", []):
            if not self.echo_secrets:
                cred.pop("password", None)
        if "ipAddress" in props:
            props["ipAddress"]["ip"] = "10.0.0.5"
            if "dnsNameLabel" in props["ipAddress"]:
                props["ipAddress"]["fqdn"] = f"{props['ipAddress']['dnsNameLabel']}.local.test"
        if state in ("Succeeded", "Failed"):
            props["instanceView"] = {"state": "Running" if state == "Succeeded" else "Failed",
                                     "events": []}
        return {"id": f"/subscriptions/{SUB}/resourceGroups/{rg}{PROVIDER}/containerGroups/{name}",
                "name": name, "type": "Microsoft.ContainerInstance/containerGroups",
                "location": body.get("location", "local"), "properties": props}

    def _operation(self, key: tuple[str, str], outcome: str, status: int,
                   body: Any = None) -> httpx.Response:
        op_id = f"op{len(self.operations)}"
        self.operations[op_id] = (key, self.polls, outcome)
        url = (f"{BASE}/subscriptions/{SUB}{PROVIDER}/locations/local/operations/{op_id}"
               f"?api-version={API_VERSION}")
        return httpx.Response(status, json=body,
                              headers={"Azure-AsyncOperation": url, "Retry-After": "0"})

    def _not_found(self, what: str) -> httpx.Response:
        return httpx.Response(404, json={"error": {"code": "ResourceNotFound",
                                                   "message": f"The Resource '{what}' was not "
                                                              "found."}})

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path, method = request.url.path, request.method
        if m := _RG.match(path):
            if self.rg_location is None:
                return httpx.Response(404, json={"error": {"code": "ResourceGroupNotFound",
                                                           "message": "no"}})
            return httpx.Response(200, json={"name": m[1], "location": self.rg_location})
        if m := _OP.match(path):
            key, left, outcome = self.operations[m[1]]
            if left > 1:
                self.operations[m[1]] = (key, left - 1, outcome)
                return httpx.Response(200, json={"status": "InProgress"},
                                      headers={"Retry-After": "0"})
            if key in self.states:
                self.states[key] = outcome
            body: dict[str, Any] = {"status": outcome}
            if outcome == "Failed":
                body["error"] = {"code": "InaccessibleImage",
                                 "message": "The image 'nginx:nope' could not be pulled."}
            return httpx.Response(200, json=body)
        if m := _LIST.match(path):
            keys = sorted(k for k in self.groups if m[1] is None or k[0] == m[1])
            start = int(request.url.params.get("skip", "0"))
            page: dict[str, Any] = {"value": [self.view(k) for k in
                                              keys[start:start + self.page_size]]}
            if start + self.page_size < len(keys):
                page["nextLink"] = (f"{BASE}{path}?api-version={API_VERSION}"
                                    f"&skip={start + self.page_size}")
            return httpx.Response(200, json=page)
        if m := _CONTAINER.match(path):
            if (m[1], m[2]) not in self.groups:
                return self._not_found(m[2])
            if m[4] == "logs":
                return httpx.Response(200, json={"content": self.logs})
            return httpx.Response(200, json={"webSocketUri": self.ws_uri, "password": "pw"})
        if m := _GROUP.match(path):
            key = (m[1], m[2])
            if method == "PUT":
                if self.put_error:
                    return httpx.Response(self.put_error[0], json=self.put_error[1])
                status = 200 if key in self.groups else 201
                self.add(*key, json.loads(request.content), "Creating")
                return self._operation(key, self.outcome, status, self.view(key))
            if key not in self.groups:
                return self._not_found(m[2]) if method != "DELETE" else httpx.Response(204)
            if method == "GET":
                return httpx.Response(200, json=self.view(key))
            if method == "DELETE":
                del self.groups[key]
                return self._operation(key, "Succeeded", 202)
            if m[3] == "stop":
                return httpx.Response(204)
            return self._operation(key, "Succeeded", 202)
        return httpx.Response(404, json={"error": {"code": "NoRoute", "message": path}})


def ok(result: Result) -> Result:
    """The result, once it is known to have succeeded (else its stderr in the failure)."""
    assert result.exit_code == 0, (result.stderr, result.exception)
    return result


def failed(result: Result, code: int = 1) -> str:
    """The one stderr line of a failed command, which must print no traceback."""
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]
