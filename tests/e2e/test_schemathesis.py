"""Schemathesis against a real skiff: every operation of /openapi.json, fuzzed.

The app runs in-process (ASGI) on the fixture server's control plane, so the
store, the reconcile loop and the engine are real. Requests carry the admin
token and the api-version (without them every answer would be the same 401 or
400); everything else is generated, valid (positive) and invalid (negative).
Every answer must be one its operation documents in /openapi.json, and every
method a path does not take must answer 405 with an ``Allow`` naming exactly
the methods it documents (schemathesis's status code and Allow checks).
A valid container group would pull an image from the internet: every image
reference that parses is pointed at the local registry's busybox instead, so
valid groups start real, cheap containers. All of them are deleted at the end.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import APIOperation, Case, GenerationMode

from skiff.api.app import create_app
from skiff.client import SkiffClient
from skiff.engine.images import parse
from skiff.errors import SkiffError
from skiff.testing.catalog import BuiltImages
from skiff.testing.server import RunningServer
from skiff.testing.waiting import eventually

# Beside the node's tests (scripts/test), never beside one that compares the whole host.
pytestmark = [pytest.mark.root, pytest.mark.usefixtures("host_shared")]

API_VERSION = "2023-05-01"
# The types that came after 2023-05-01 answer only the api-versions that have them.
NEWER_VERSIONS = {"/containerGroupProfiles": "2025-09-01", "/ngroups": "2025-09-01",
                  "Microsoft.StandbyPool/": "2025-03-01"}
SUB = "00000000-0000-0000-0000-000000000000"
PROVIDER = f"/subscriptions/{SUB}/resourceGroups/fuzz/providers/Microsoft.ContainerInstance"
# Examples per operation and generation mode, on generated paths (mostly 404s
# after the path's own checks) and on the target group (where bodies and
# queries reach the work): over 2,000 requests (the floor, asserted), a minute here.
EXAMPLES_ANYWHERE = 30
EXAMPLES_ON_TARGET = 75
MIN_CASES = 2000
# Every operation is also fuzzed on a group that exists, so that bodies and
# queries reach past the 404 of a generated name; the operation id is the
# target's create operation. Deletes come last, as they end the target.
TARGET = {"subscription": SUB, "resource_group": "fuzz", "name": "target",
          "container": "main", "location": "local", "subnet": "main",
          "account": "fuzztarget", "share": "target",
          # Microsoft.Authorization at the target's resource group; a principal
          "scope": f"subscriptions/{SUB}/resourceGroups/fuzz",
          "role_id": "acdd72a7-3d97-46b9-8ea0-e9b62cb98f8c",
          "id_": "00000000-0000-0000-0000-0000000000f1",  # the test's principal's, once made
          "role_assignment_name": "00000000-0000-0000-0000-0000000000f0",
          # a profile's revision; a standby pool's runtime view
          "revision": "1", "view": "latest"}
# The operations whose 2xx needs a body no fuzzer guesses (a free, non-overlapping
# CIDR); their success path is tests/e2e/test_vnets.py's. They are fuzzed all the same.
NEEDS_A_FREE_RANGE = ("PUT /subscriptions/{subscription}/resourceGroups/{resource_group}/"
                      "providers/Microsoft.Network/virtualNetworks/{name}",
                      "PUT /subscriptions/{subscription}/resourceGroups/{resource_group}/"
                      "providers/Microsoft.Network/virtualNetworks/{name}/subnets/{subnet}",
                      # an existing principal's id: tests/unit/test_signin.py's success path
                      "PUT /{scope}/providers/Microsoft.Authorization/roleAssignments/"
                      "{role_assignment_name}",
                      # The same at the root scope '/'; and a GET there never finds the
                      # target's assignment: its name (a GUID, one across every scope) names
                      # the assignment at the target's resource group. The root's success
                      # paths are tests/unit/test_signin.py's and tests/e2e/test_az.py's.
                      "PUT /providers/Microsoft.Authorization/roleAssignments/"
                      "{role_assignment_name}",
                      # a body naming an existing container group profile by its id: the
                      # success paths are tests/unit/test_ngroups_api.py's, test_standby.py's
                      # and tests/e2e/test_sdk_2025.py's
                      "PUT /subscriptions/{subscription}/resourceGroups/{resource_group}/"
                      "providers/Microsoft.ContainerInstance/ngroups/{name}",
                      "PATCH /subscriptions/{subscription}/resourceGroups/{resource_group}/"
                      "providers/Microsoft.ContainerInstance/ngroups/{name}",
                      "PUT /subscriptions/{subscription}/resourceGroups/{resource_group}/"
                      "providers/Microsoft.StandbyPool/standbyContainerGroupPools/{name}",
                      "GET /providers/Microsoft.Authorization/roleAssignments/"
                      "{role_assignment_name}")

Operation = APIOperation[Any, Any, Any, Any]
AnyCase = Case[Any]


def _sleeper(image: str) -> dict[str, Any]:
    """A group of one small container that sleeps: the fuzzer's target."""
    return {"location": "local", "properties": {"osType": "Linux", "containers": [{
        "name": "main", "properties": {
            "image": image, "command": ["sleep", "300"],
            "resources": {"requests": {"cpu": 0.1, "memoryInGB": 0.1}}}}]}}


def _order(operation: Operation) -> tuple[int, int]:
    """Reads and container operations first, while the target runs; then what
    stops, restarts or redefines it; deletes last, the innermost resource first
    (a subnet before its network, a network before its resource group)."""
    method = operation.method.upper()
    if method == "DELETE":
        return 3, -operation.path.count("/")
    if method == "PUT":
        return 2, 0
    return (1 if operation.path.endswith(("/stop", "/start", "/restart")) else 0), 0


def _local_images(body: Any, image: str) -> Any:
    """The container group with every valid image reference pointed at ``image``."""
    props = body.get("properties") if isinstance(body, dict) else None
    if not isinstance(props, dict):
        return body
    for key in ("containers", "initContainers"):
        for container in props.get(key) if isinstance(props.get(key), list) else []:
            spec = container.get("properties") if isinstance(container, dict) else None
            if isinstance(spec, dict) and isinstance(spec.get("image"), str):
                try:
                    parse(spec["image"])
                except SkiffError:
                    continue
                spec["image"] = image
    return body


def _is_arm_error(body: Any) -> bool:
    error = body.get("error") if isinstance(body, dict) else None
    return (isinstance(error, dict) and isinstance(error.get("code"), str) and bool(error["code"])
            and isinstance(error.get("message"), str) and bool(error["message"]))


def _documented(doc: dict[str, Any], method: str, path: str) -> set[int]:
    """The statuses /openapi.json says an operation answers."""
    return {int(s) for s in doc["paths"][path][method.lower()]["responses"] if s.isdigit()}


def _check(case: AnyCase, image: str, seen: dict[str, list[int]], doc: dict[str, Any]) -> None:
    """Send the case; no 5xx, a documented status, and every refusal an ARM error body."""
    if case.method == "PUT" and case.path.endswith("/containerGroups/{name}"):
        case.body = _local_images(case.body, image)
    response = case.call()
    seen.setdefault(f"{case.method} {case.path}", []).append(response.status_code)
    where = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
    assert response.status_code < 500, where
    assert response.status_code in _documented(doc, case.method, case.path), where
    if response.status_code >= 300 and case.method != "HEAD":  # a HEAD answer has no body
        assert _is_arm_error(response.json()), where


def _check_other_methods(skiff: RunningServer, doc: dict[str, Any]) -> int:
    """Every method a documented path does not take: 405, ARM's error, and ``Allow`` naming
    exactly the path's documented methods (HEAD and OPTIONS aside). Returns the requests."""
    sent = 0
    with _api(skiff) as api:
        for path, operations in doc["paths"].items():
            url = path.format(**{**TARGET, "operation": "op"})
            documented = {m.upper() for m in operations}
            for method in sorted({"GET", "PUT", "PATCH", "POST", "DELETE"} - documented):
                answer = api.request(method, url, params={"api-version": _version_for(path)})
                sent += 1
                where = f"{method} {url} -> {answer.status_code}: {answer.text[:200]}"
                assert answer.status_code == 405, where
                assert _is_arm_error(answer.json()), where
                allowed = {m.strip() for m in answer.headers.get("Allow", "").split(",")}
                assert allowed - {"HEAD", "OPTIONS"} == documented - {"HEAD"}, where
    return sent


def _fuzz(operation: Operation, image: str, seen: dict[str, list[int]], doc: dict[str, Any],
          examples: int, **fixed: Any) -> None:
    """Fuzz one operation, in every generation mode it allows."""
    # Negative cases need something with a type to break: a path's strings have none.
    modes = [GenerationMode.POSITIVE]
    if operation.body or operation.query:
        modes.append(GenerationMode.NEGATIVE)
    for mode in modes:
        @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                  phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode, **fixed))
        def fuzz(case: AnyCase) -> None:
            _check(case, image, seen, doc)

        fuzz()


def _api(skiff: RunningServer) -> httpx.Client:
    """The fixture server over HTTPS, as the admin."""
    return skiff.client(params={"api-version": API_VERSION})


def _version_for(path: str) -> str:
    """The api-version an operation on ``path`` is fuzzed with."""
    return next((v for part, v in NEWER_VERSIONS.items() if part in path), API_VERSION)


def _delete_everything(skiff: RunningServer) -> None:
    """Delete every NGroup (which would make members again) and then every group the
    fuzzer made, through the API; wait until they are gone."""
    store, engine = skiff.server.plane.store, skiff.server.plane.engine
    with _api(skiff) as api:
        for ngroup in store.list_ngroups():
            sub, rg, name = (quote(part, safe="") for part in
                             (ngroup.subscription, ngroup.resource_group, ngroup.name))
            answer = api.delete(f"/subscriptions/{sub}/resourceGroups/{rg}/providers/"
                                f"Microsoft.ContainerInstance/ngroups/{name}",
                                params={"api-version": NEWER_VERSIONS["/ngroups"]})
            assert answer.status_code in (200, 202, 204), answer.text
        eventually(lambda: not store.list_ngroups(), what="the fuzzed NGroups are gone",
                   timeout_s=60, interval_s=0.1)
        for record in store.list_groups(None, limit=1000)[0]:
            parts = (record.subscription, record.resource_group, record.name)
            sub, rg, name = (quote(part, safe="") for part in parts)
            answer = api.delete(f"/subscriptions/{sub}/resourceGroups/{rg}/providers/"
                                f"Microsoft.ContainerInstance/containerGroups/{name}")
            # 200: a group made from a profile with a short shutdownGracePeriod is gone
            # before the answer
            assert answer.status_code in (200, 202, 204), answer.text
    eventually(lambda: not store.list_groups(None, limit=1000)[0] and not engine.group_ids(),
               what="the fuzzed groups are all deleted", timeout_s=60, interval_s=0.1)


def _running(api: httpx.Client, resource_id: str) -> bool:
    """Whether the group's instanceView says Running."""
    view = api.get(resource_id).json()["properties"].get("instanceView", {})
    return bool(view.get("state") == "Running")


def test_every_operation_answers_arm_errors_and_never_5xx(
    skiff: RunningServer, images: BuiltImages
) -> None:
    """Fuzzed requests to every operation never get a 5xx or an undocumented status; each
    refusal is an ARM error; every undocumented method is a 405 with the path's Allow."""
    app = create_app(skiff.server.plane)
    doc: dict[str, Any] = app.openapi()
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    auth = {"Authorization": f"Bearer {skiff.token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    seen: dict[str, list[int]] = {}
    try:
        with _api(skiff) as api:
            created = api.put(f"/subscriptions/{SUB}/resourceGroups/fuzz/providers/"
                              "Microsoft.ContainerInstance/containerGroups/target",
                              json=_sleeper(images.bb))
            assert created.status_code == 201, created.text
            operation_id = created.headers["Azure-AsyncOperation"].split("?")[0].split("/")[-1]
            target = {**TARGET, "operation": operation_id}
            eventually(lambda: _running(api, created.json()["id"]), what="the target group runs",
                       timeout_s=30)
            network = api.put(f"/subscriptions/{SUB}/resourceGroups/fuzz/providers/"
                              "Microsoft.Network/virtualNetworks/target", json={
                                  "location": "local", "properties": {
                                      "addressSpace": {"addressPrefixes": ["10.240.0.0/16"]},
                                      "subnets": [{"name": "main", "properties": {
                                          "addressPrefix": "10.240.0.0/24"}}]}})
            assert network.status_code == 201, network.text
            account = api.put(f"/subscriptions/{SUB}/resourceGroups/fuzz/providers/"
                              "Microsoft.Storage/storageAccounts/fuzztarget", json={
                                  "location": "local", "kind": "StorageV2",
                                  "sku": {"name": "Standard_LRS"}})
            assert account.status_code == 200, account.text
            share = api.put(f"/subscriptions/{SUB}/resourceGroups/fuzz/providers/"
                            "Microsoft.Storage/storageAccounts/fuzztarget/fileServices/default/"
                            "shares/target", json={"properties": {"shareQuota": 1}})
            assert share.status_code == 201, share.text
            identity = api.put(f"/subscriptions/{SUB}/resourceGroups/fuzz/providers/"
                               "Microsoft.ManagedIdentity/userAssignedIdentities/target",
                               json={"location": "local"})
            assert identity.status_code == 201, identity.text
            newer = {"api-version": NEWER_VERSIONS["/ngroups"]}
            profile = api.put(f"{PROVIDER}/containerGroupProfiles/target", params=newer,
                              json=_sleeper(images.bb))
            assert profile.status_code == 201, profile.text
            ngroup = api.put(f"{PROVIDER}/ngroups/target", params=newer, json={
                "location": "local", "properties": {
                    "elasticProfile": {"desiredCount": 0},
                    "containerGroupProfiles": [{"resource": {"id": profile.json()["id"]}}]}})
            assert ngroup.status_code in (200, 201), ngroup.text
            pool = api.put(f"/subscriptions/{SUB}/resourceGroups/fuzz/providers/"
                           "Microsoft.StandbyPool/standbyContainerGroupPools/target",
                           params={"api-version": NEWER_VERSIONS["Microsoft.StandbyPool/"]},
                           json={"location": "local", "properties": {
                               "elasticityProfile": {"maxReadyCapacity": 0},
                               "containerGroupProperties": {"containerGroupProfile": {
                                   "id": profile.json()["id"]}}}})
            assert pool.status_code in (200, 201), pool.text
        store = skiff.server.plane.store
        principal, _ = store.create_principal("fuzz-target")
        store.put_assignment(TARGET["role_assignment_name"], f"/{TARGET['scope']}",
                             "acdd72a7-3d97-46b9-8ea0-e9b62cb98f8c", principal.object_id,
                             "ServicePrincipal")
        target["id_"] = principal.app_id
        other_methods = 0
        for operation in sorted(operations, key=_order):
            names = {p.name for p in operation.path_parameters}
            if operation.method.upper() == "DELETE" and not other_methods:
                other_methods = _check_other_methods(skiff, doc)  # while all exist
            # The activity log answers only a query with a time range (Azure's rule).
            query = {"api-version": _version_for(operation.path)} | (
                {"$filter": "eventTimestamp ge 2000-01-01"}
                if operation.path.endswith("/eventtypes/management/values") else {})
            _fuzz(operation, images.bb, seen, doc,
                  EXAMPLES_ANYWHERE if names else EXAMPLES_ON_TARGET, headers=auth, query=query)
            if names:
                fixed = {k: v for k, v in target.items() if k in names}
                _fuzz(operation, images.bb, seen, doc, EXAMPLES_ON_TARGET, headers=auth,
                      query=query, path_parameters=fixed)
    finally:
        _delete_everything(skiff)
    # The fuzzer got past the refusals to every operation's work at least once.
    assert len(seen) == len(operations)
    never = {op: sorted(set(statuses)) for op, statuses in seen.items()
             if op not in NEEDS_A_FREE_RANGE and not any(200 <= s < 300 for s in statuses)}
    assert not never, never
    assert any(400 in statuses for statuses in seen.values()), seen
    cases = sum(len(statuses) for statuses in seen.values()) + other_methods
    print(f"schemathesis: {cases} requests, {other_methods} of them undocumented methods")
    assert cases >= MIN_CASES, f"{cases} requests"
    assert other_methods > 0


def test_operation_urls_work_for_any_subscription_name(
    skiff: RunningServer, images: BuiltImages
) -> None:
    """A subscription named in any script gets an Azure-AsyncOperation header that polls."""
    # Found by the fuzzer: the header carried the name raw, and a header is latin-1 (500).
    client = SkiffClient(skiff.url, skiff.token, ca=str(skiff.ca), subscription="sub-\u00fc\u2713")
    with client:
        group = client.create_or_update("rg", "anywhere", _sleeper(images.bb))
        assert group["properties"]["provisioningState"] == "Succeeded"
        client.delete("rg", "anywhere")
    assert skiff.server.plane.engine.group_ids() == []


def test_exec_refuses_commands_and_sizes_it_cannot_use(
    skiff: RunningServer, images: BuiltImages
) -> None:
    """exec answers 400 with an ARM error to what the fuzzer once made a 500 of."""
    bad = [b'{"command": "echo \'unclosed"}', b'{"command": "trailing\\\\"}',
           b'{"command": "nul\\u0000byte"}', b'{"command": "ls", "terminalSize": {"rows": "tall"}}',
           b'{"command": "ls", "terminalSize": {"cols": [80]}}',
           b'{"command": "ls", "terminalSize": {"cols": 1e999}}',
           b'{"command": "ls", "terminalSize": {"rows": 70000}}']
    path = (f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerInstance/"
            "containerGroups/execs")
    with _api(skiff) as api:
        created = api.put(path, json=_sleeper(images.bb))
        assert created.status_code == 201, created.text
        eventually(lambda: _running(api, created.json()["id"]), what="the group runs",
                   timeout_s=30)
        for body in bad:
            answer = api.post(f"{path}/containers/main/exec", content=body,
                              headers={"Content-Type": "application/json"})
            assert answer.status_code == 400, (body, answer.text)
            assert answer.json()["error"]["code"] == "InvalidRequestContent", body
        # A size of 0 is what a new terminal reports: the default size, as before.
        answer = api.post(f"{path}/containers/main/exec",
                          json={"command": "ls", "terminalSize": {"rows": 0, "cols": 0}})
        assert answer.status_code == 200, answer.text
        assert api.delete(path).status_code in (200, 202)
