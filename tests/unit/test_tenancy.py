"""Tenant isolation through the API, in process (the app over a real store and the
FakeEngine, through httpx's ASGI transport): what one subscription's token can learn of,
or do to, another subscription's resources.

The classes of hole, each with its rule: a request naming another subscription's
resource by id (refused as ARM refuses a linked resource: 403 LinkedAuthorizationFailed);
a refusal naming another tenant's resources (never); a node-wide listing (only the
caller's part); subscription ids in another case (one subscription, as in ARM); and,
over every route of the app that names a subscription, another tenant's token on a
resource (403 or 404, nothing of it in the answer, nothing of it changed).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from skiff.api.app import create_app
from skiff.api.context import ControlPlane
from skiff.settings import ApiSettings, Settings
from skiff.testing.fake import FakeEngine
from skiff.testing.inprocess import InProcessClient, fake_plane
from skiff.testing.waiting import eventually

#: A version every route knows (container group profiles: 2024-05-01-preview on).
API = "?api-version=2025-09-01"
ALICE, BOB = "sub-alice", "sub-bob"
PUBLIC_IMAGE = "registry.test/base:1"


def rg(sub: str, name: str = "rg") -> str:
    return f"/subscriptions/{sub}/resourceGroups/{name}"


def net(sub: str, rg_name: str = "rg") -> str:
    return f"{rg(sub, rg_name)}/providers/Microsoft.Network/virtualNetworks/net"


def group(sub: str, name: str = "g", rg_name: str = "rg") -> str:
    return f"{rg(sub, rg_name)}/providers/Microsoft.ContainerInstance/containerGroups/{name}"


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    """A control plane over the fake engine, its reconcile loop running, one image public."""
    settings = Settings(data_root=tmp_path,
                        api=ApiSettings(public_cached_images=(PUBLIC_IMAGE,)))
    with fake_plane(tmp_path, settings) as running:
        yield running


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as running:
        yield running


@pytest.fixture
def client(plane: ControlPlane, portal: BlockingPortal) -> Any:
    """Makes a client holding a new token of a subscription (None: the admin's)."""
    app = create_app(plane)

    def make(subscription: str | None) -> InProcessClient:
        _, secret = plane.store.create_token(subscription, subscription or "admin")
        return InProcessClient(portal, app, secret, suffix=API)

    return make


def vnet_body(prefix: str = "10.210") -> dict[str, Any]:
    return {"location": "local", "properties": {
        "addressSpace": {"addressPrefixes": [f"{prefix}.0.0/16"]},
        "subnets": [{"name": "default", "properties": {"addressPrefix": f"{prefix}.1.0/24"}}]}}


def body(image: str = "registry.test/busybox:1", subnet: str | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "c", "properties": {
        "image": image, "command": ["sleep", "300"],
        "resources": {"requests": {"cpu": 0.1, "memoryInGB": 0.1}}}}
    doc: dict[str, Any] = {"location": "local", "properties": {
        "osType": "Linux", "restartPolicy": "Never", "containers": [container]}}
    if subnet is not None:
        doc["properties"]["subnetIds"] = [{"id": subnet}]
        doc["properties"]["ipAddress"] = {"type": "Private", "ports": [{"port": 80}]}
        container["properties"]["ports"] = [{"port": 80}]
    return doc


def error(answer: httpx.Response, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    doc = answer.json()["error"]
    assert doc["code"] == code, doc
    return str(doc["message"])


# ---- linked resources: a subnet of another subscription --------------------------------------


@pytest.mark.parametrize("spelling", [ALICE, ALICE.upper()])
def test_a_token_cannot_place_a_group_in_another_subscriptions_subnet(client: Any,
                                                                      spelling: str) -> None:
    """Bob's group naming Alice's subnet (in any case) is refused 403
    LinkedAuthorizationFailed, the same answer whether the subnet exists or not, naming
    nothing of Alice's but the id Bob wrote; Alice can still delete her network."""
    alice, bob = client(ALICE), client(BOB)
    assert alice.request("PUT", net(ALICE), json=vnet_body()).status_code == 201
    answers = [bob.request("PUT", group(BOB, name),
                           json=body(subnet=f"{net(spelling)}/subnets/{subnet}"))
               for name, subnet in (("intruder", "default"), ("prober", "absent"))]
    messages = [error(a, 403, "LinkedAuthorizationFailed") for a in answers]
    assert "subnets/join/action" in messages[0]
    assert messages[0].replace("intruder", "prober").replace("default", "absent") \
        == messages[1]
    assert bob.request("GET", group(BOB, "intruder")).status_code == 404
    assert alice.request("DELETE", net(ALICE)).status_code == 200


def test_a_token_places_groups_in_its_own_subnets_in_any_case(client: Any) -> None:
    """The linked-resource check compares subscriptions as ARM does: a subnet id spelling
    the caller's own subscription in capitals is its own."""
    alice = client(ALICE)
    assert alice.request("PUT", net(ALICE), json=vnet_body()).status_code == 201
    made = alice.request("PUT", group(ALICE), json=body(subnet=f"{net(ALICE.upper())}"
                                                             "/subnets/default"))
    assert made.status_code == 201, made.text


def test_the_admin_links_any_subscriptions_subnet_and_refusals_name_no_other_tenant(
    client: Any, plane: ControlPlane
) -> None:
    """The admin token may place Bob's group in Alice's subnet; Alice's refusals to change
    her network, subnet or resource group then tell her it is in use, never by whom."""
    alice, admin = client(ALICE), client(None)
    assert alice.request("PUT", net(ALICE), json=vnet_body()).status_code == 201
    placed = admin.request("PUT", group(BOB, "secret-group", "secret-rg"),
                           json=body(subnet=f"{net(ALICE)}/subnets/default"))
    assert placed.status_code == 201, placed.text
    refusals = [
        error(alice.request("DELETE", net(ALICE)), 400, "InUseSubnetCannotBeDeleted"),
        error(alice.request("DELETE", f"{net(ALICE)}/subnets/default"), 400,
              "InUseSubnetCannotBeDeleted"),
        error(alice.request("PUT", net(ALICE), json=vnet_body() | {"properties": {
            "addressSpace": {"addressPrefixes": ["10.210.0.0/16"]}, "subnets": []}}),
              400, "InUseSubnetCannotBeDeleted"),
        error(alice.request("PUT", f"{net(ALICE)}/subnets/default",
                            json={"properties": {"addressPrefix": "10.210.2.0/24"}}),
              400, "InUseSubnetCannotBeUpdated"),
        error(alice.request("DELETE", rg(ALICE)), 400, "InUseSubnetCannotBeDeleted"),
    ]
    for message in refusals:
        assert "another subscription" in message
        assert "secret" not in message
        assert BOB not in message


def test_a_refusal_names_the_callers_own_group(client: Any) -> None:
    """In its own subscription, an in-use refusal still says which group is in the way."""
    alice = client(ALICE)
    assert alice.request("PUT", net(ALICE), json=vnet_body()).status_code == 201
    assert alice.request("PUT", group(ALICE, "mine"),
                         json=body(subnet=f"{net(ALICE)}/subnets/default")).status_code == 201
    assert "'mine'" in error(alice.request("DELETE", net(ALICE)), 400,
                             "InUseSubnetCannotBeDeleted")


def test_an_address_space_conflict_names_no_other_tenants_network(client: Any) -> None:
    """Address spaces are checked across every subscription (one host routes them), but
    the refusal names the other network only to its own subscription."""
    alice, bob = client(ALICE), client(BOB)
    assert alice.request("PUT", net(ALICE), json=vnet_body()).status_code == 201
    foreign = error(bob.request("PUT", net(BOB, "bobs"), json=vnet_body()), 400,
                    "VirtualNetworkAddressSpaceConflict")
    assert "another subscription" in foreign
    assert "'net'" not in foreign
    own = error(alice.request("PUT", net(ALICE, "rg2"), json=vnet_body()), 400,
                "VirtualNetworkAddressSpaceConflict")
    assert "'net'" in own


# ---- node-wide listings: cachedImages -------------------------------------------------------


def cached(http: InProcessClient, sub: str) -> list[str]:
    answer = http.request(
        "GET", f"/subscriptions/{sub}/providers/Microsoft.ContainerInstance/locations/local"
               "/cachedImages")
    assert answer.status_code == 200, answer.text
    return sorted(item["image"] for item in answer.json()["value"])


def test_cached_images_lists_the_callers_images_and_the_public_ones_only(
    client: Any, plane: ControlPlane
) -> None:
    """Of the node's cache, a subscription sees the images its own groups use and the
    operator's public ones (once cached), never another tenant's private image."""
    alice, bob = client(ALICE), client(BOB)
    engine = plane.engine
    assert isinstance(engine, FakeEngine)
    assert cached(alice, ALICE) == []
    for http, sub, image in ((alice, ALICE, "registry.test/alice-private:7"),
                             (bob, BOB, "registry.test/bob-private:3"),
                             (bob, BOB, PUBLIC_IMAGE)):
        assert http.request("PUT", group(sub, image.split("/")[1].replace(":", "-")),
                            json=body(image)).status_code == 201
    eventually(lambda: len(engine.cached_images()) == 3, what="the three images pulled")
    assert cached(alice, ALICE) == ["registry.test/alice-private:7", PUBLIC_IMAGE]
    assert cached(bob, BOB) == [PUBLIC_IMAGE, "registry.test/bob-private:3"]
    assert cached(client("sub-carol"), "sub-carol") == [PUBLIC_IMAGE]


# ---- subscription ids in another case -------------------------------------------------------


def test_subscriptions_that_differ_only_in_case_are_one(client: Any) -> None:
    """A token made for ``ACME`` reaches one subscription however a request spells it:
    every resource made in one spelling is found, listed and replaced in the other."""
    acme = client("ACME")
    assert acme.request("PUT", net("ACME"), json=vnet_body()).status_code == 201
    assert acme.request("PUT", group("ACME"), json=body()).status_code == 201
    assert acme.request("PUT", group("acme"), json=body()).status_code == 200
    assert acme.request("PUT", net("acme"), json=vnet_body()).status_code == 200
    for spelling in ("acme", "Acme"):
        assert acme.request("GET", group(spelling)).status_code == 200
        assert acme.request("GET", rg(spelling)).status_code == 200
        listing = acme.request(
            "GET", f"/subscriptions/{spelling}/providers/Microsoft.ContainerInstance"
                   "/containerGroups").json()["value"]
        assert [g["id"] for g in listing] == [group("acme")]
        groups_ = acme.request("GET", f"/subscriptions/{spelling}/resourcegroups")
        assert [r["name"] for r in groups_.json()["value"]] == ["rg"]
        nets = acme.request("GET", f"/subscriptions/{spelling}/providers/Microsoft.Network"
                                   "/virtualNetworks").json()["value"]
        assert [n["id"] for n in nets] == [net("acme")]


# ---- every route: another subscription's token on Alice's resources --------------------------

#: Names only Alice's resources have, and what only her resources hold (never sent by Bob).
ALICE_RG, ALICE_GROUP, ALICE_NET = "alice-rg", "alice-group", "alice-net"
ALICE_IMAGE = "registry.test/alice-private:7"
ALICE_TAG = "alice-tag-value"
ALICE_SUBNET_PREFIX = "10.211.1.0/24"
ALICE_ACCOUNT, ALICE_SHARE = "alicestore", "alice-share"
ALICE_ACCOUNT_BODY = {"location": "local", "kind": "StorageV2", "sku": {"name": "Standard_LRS"},
                      "tags": {"t": "alice-tag-value"}}


def alice_resources(alice: InProcessClient) -> dict[str, str]:
    """Alice's resource group, a group (tagged, running), a container group profile of the
    same name, a virtual network with a subnet and an operation; the values each route's
    path parameters take to name them."""
    assert alice.request("PUT", rg(ALICE, ALICE_RG),
                         json={"location": "local", "tags": {"t": ALICE_TAG}}).status_code == 201
    assert alice.request("PUT", net(ALICE, ALICE_RG).replace("/net", f"/{ALICE_NET}"),
                         json=vnet_body("10.211")).status_code == 201
    made = alice.request("PUT", group(ALICE, ALICE_GROUP, ALICE_RG),
                         json=body(ALICE_IMAGE) | {"tags": {"t": ALICE_TAG}})
    assert made.status_code == 201, made.text
    eventually(lambda: alice.request("GET", group(ALICE, ALICE_GROUP, ALICE_RG)).json()[
        "properties"]["provisioningState"] == "Succeeded", what="Alice's group runs")
    operation = made.headers["Azure-AsyncOperation"].split("/operations/")[1].split("?")[0]
    profile = group(ALICE, ALICE_GROUP, ALICE_RG).replace("/containerGroups/",
                                                         "/containerGroupProfiles/")
    assert alice.request("PUT", profile, json=body(ALICE_IMAGE) | {
        "tags": {"t": ALICE_TAG}}).status_code == 201  # its revision 1: the paths' "1"
    assert alice.request("PUT", account_url(ALICE), json=ALICE_ACCOUNT_BODY).status_code == 200
    assert alice.request("PUT", f"{account_url(ALICE)}/fileServices/default/shares/"
                         f"{ALICE_SHARE}", json={}).status_code == 201
    return {"subscription": ALICE, "resource_group": ALICE_RG, "location": "local",
            "operation": operation, "container": "c", "subnet": "default",
            "account": ALICE_ACCOUNT, "share": ALICE_SHARE, "revision": "1", "view": "latest"}


def account_url(sub: str) -> str:
    return (f"/subscriptions/{sub}/resourceGroups/{ALICE_RG}/providers/Microsoft.Storage/"
            f"storageAccounts/{ALICE_ACCOUNT}")


def routes_with_a_subscription(app: Any) -> list[tuple[str, str]]:
    """(method, path template) of every route of the app whose path names a subscription."""
    found = []
    pending = list(app.routes)
    while pending:
        route = pending.pop()
        included = getattr(route, "original_router", None)  # FastAPI's included routers
        if included is not None:
            pending.extend(included.routes)
        path = getattr(route, "path", "")
        for method in sorted(getattr(route, "methods", None) or ()):
            if "{subscription}" in path and method != "HEAD":
                found.append((method, path))
    return sorted(found)


def request_body(method: str, path: str) -> dict[str, Any] | None:
    """A valid body for the route, so that only the tenancy check can refuse it."""
    if method not in ("PUT", "PATCH", "POST"):
        return None
    if path.endswith("/Microsoft.CostManagement/query"):
        return {"type": "Usage", "timeframe": "MonthToDate", "dataset": {
            "granularity": "None", "grouping": [{"type": "Dimension", "name": "ResourceId"}]}}
    if path.endswith("/exec"):
        return {"command": "ls", "terminalSize": {"rows": 24, "cols": 80}}
    if path.endswith("/regenerateKey"):
        return {"keyName": "key1"}
    if path.endswith("/checkNameAvailability"):
        return {"name": ALICE_ACCOUNT, "type": "Microsoft.Storage/storageAccounts"}
    if path.endswith("/shares/{share}"):
        return {"properties": {"shareQuota": 1}}
    if path.endswith("/storageAccounts/{account}") and method == "PUT":
        return {"location": "local", "kind": "FileStorage", "sku": {"name": "Premium_LRS"}}
    if method == "PATCH":
        return {"tags": {"t": "bob-was-here"}}
    if path.endswith("/subnets/{subnet}"):
        return {"properties": {"addressPrefix": "10.211.9.0/24"}}
    if "virtualNetworks" in path:
        return vnet_body("10.212")
    if "containerGroups" in path:
        return body()
    return {"location": "local"}


def own_version(template: str) -> str:
    """The api-version a route's type needs, where 2023-05-01 knows no such type."""
    return "?api-version=2025-09-01" if "/ngroups" in template else ""


def test_no_route_lets_another_subscription_read_or_change_alices_resources(
    client: Any, plane: ControlPlane
) -> None:
    """Every route whose path names a subscription, with Bob's token and Alice's resources
    in the path (her subscription, in two spellings): 403 or 404, nothing of hers in the
    answer (image, tag, address, subnet, status), and her resources as they were; under
    Bob's own subscription, lists and reads show nothing of hers."""
    alice, bob = client(ALICE), client(BOB)
    names = alice_resources(alice)
    before = alice.request("GET", group(ALICE, ALICE_GROUP, ALICE_RG)).json()
    keys = alice.request("POST", f"{account_url(ALICE)}/listKeys").json()
    app = create_app(plane)
    routes = routes_with_a_subscription(app)
    assert len(routes) >= 25, routes  # the matrix covers the API, not a few routes
    for spelling in (ALICE, ALICE.upper()):
        for method, template in routes:
            name = ALICE_NET if "virtualNetworks/{name}" in template else ALICE_GROUP
            path = template.format(**names | {"subscription": spelling, "name": name}) \
                + own_version(template)
            answer = bob.request(method, path, json=request_body(method, template))
            assert answer.status_code in (403, 404), (method, path, answer.text)
            for theirs in (ALICE_IMAGE, ALICE_TAG, ALICE_SUBNET_PREFIX, "10.77.",
                           "Succeeded", "Running"):
                assert theirs not in answer.text, (method, path, answer.text)
    for method, template in routes:  # Bob's own subscription, the same names: his alone
        if method == "GET":
            name = ALICE_NET if "virtualNetworks/{name}" in template else ALICE_GROUP
            answer = bob.request("GET", template.format(**names | {"subscription": BOB,
                                                                    "name": name}))
            for theirs in (ALICE_IMAGE, ALICE_TAG, ALICE_SUBNET_PREFIX, ALICE_GROUP,
                           ALICE_NET, ALICE_RG):
                assert theirs not in answer.text or answer.status_code == 404, (
                    template, answer.text)
    after = alice.request("GET", group(ALICE, ALICE_GROUP, ALICE_RG)).json()
    assert after["tags"] == before["tags"] == {"t": ALICE_TAG}
    assert after["properties"]["provisioningState"] == "Succeeded"
    assert after["properties"]["containers"][0]["properties"]["instanceView"][
        "restartCount"] == 0
    assert alice.request("GET", rg(ALICE, ALICE_RG)).status_code == 200
    assert alice.request("POST", f"{account_url(ALICE)}/listKeys").json() == keys
    profile = alice.request("GET", group(ALICE, ALICE_GROUP, ALICE_RG).replace(
        "/containerGroups/", "/containerGroupProfiles/")).json()
    assert (profile["tags"], profile["properties"]["registeredRevisions"]) == (
        {"t": ALICE_TAG}, [1])
    account = alice.request("GET", account_url(ALICE)).json()
    assert (account["kind"], account["tags"]) == ("StorageV2", {"t": ALICE_TAG})
    share = alice.request("GET", f"{account_url(ALICE)}/fileServices/default/shares/"
                          f"{ALICE_SHARE}").json()
    assert share["properties"]["shareQuota"] == 5120
    assert alice.request("GET", net(ALICE, ALICE_RG).replace("/net", f"/{ALICE_NET}")
                         ).json()["properties"]["subnets"][0]["properties"][
        "addressPrefix"] == ALICE_SUBNET_PREFIX


def test_an_operation_is_found_only_under_its_own_subscription(client: Any) -> None:
    """Alice's operation id, asked under Bob's subscription with Bob's token: 404
    OperationNotFound, as for an id that does not exist."""
    alice, bob = client(ALICE), client(BOB)
    names = alice_resources(alice)
    path = (f"/subscriptions/{BOB}/providers/Microsoft.ContainerInstance/locations/local/"
            f"operations/{names['operation']}")
    answer = bob.request("GET", path)
    assert error(answer, 404, "OperationNotFound")
    absent = bob.request("GET", path.replace(names["operation"], "0" * 32))
    assert error(absent, 404, "OperationNotFound").replace("0" * 32, names["operation"]) \
        == answer.json()["error"]["message"]


def test_a_capacity_refusal_tells_nothing_of_what_other_tenants_use(plane: ControlPlane,
                                                                    client: Any) -> None:
    """When Alice's groups fill the node, Bob's refusal is ACI's 409 ServiceUnavailable
    naming only Bob's own request, never what is used or left on the node."""
    assert isinstance(plane.engine, FakeEngine)
    cores = plane.engine.node_capacity.cpu_cores
    alice, bob = client(ALICE), client(BOB)
    big = body()
    big["properties"]["containers"][0]["properties"]["resources"]["requests"]["cpu"] = cores - 0.5
    assert alice.request("PUT", group(ALICE, "big"), json=big).status_code == 201
    wanted = body()
    wanted["properties"]["containers"][0]["properties"]["resources"]["requests"]["cpu"] = 1
    message = error(bob.request("PUT", group(BOB, "small"), json=wanted), 409,
                    "ServiceUnavailable")
    assert message.endswith("Resource requested: '1' CPU '0.1' GB memory 'Linux' OS"), message
    assert "left" not in message
    assert f"{cores - 0.5:g}" not in message
    assert "0.5" not in message


# ---- every route: a signed-in principal without a role, and a Reader ----------------------


def principal_client(plane: ControlPlane, app: Any, portal: BlockingPortal, name: str,
                     role: str | None = None, scope: str = "") -> tuple[InProcessClient, str]:
    """A client holding a JWT of a new service principal (given ``role`` at ``scope``),
    got from the token endpoint as az gets one; and the principal's object id."""
    record, secret = plane.store.create_principal(name)
    if role is not None:
        from skiff.control.access import role_named

        found = role_named(role)
        assert found is not None
        plane.store.put_assignment(str(uuid.uuid4()), scope, found.id, record.object_id,
                                   "ServicePrincipal")
    anonymous = InProcessClient(portal, app, None)
    answer = anonymous.request("POST", f"/{plane.store.tenant_id()}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": record.app_id,
        "client_secret": secret, "scope": "https://skiff.test/.default"})
    assert answer.status_code == 200, answer.text
    return InProcessClient(portal, app, answer.json()["access_token"], suffix=API), \
        record.object_id


#: Names no resource has: a path naming them is answered as one naming Alice's.
ABSENT = {"resource_group": "absent-rg", "name": "absent", "container": "nobody",
          "subnet": "nosubnet", "account": "absentstore", "share": "absent-share",
          "operation": "0" * 32, "view": "latest"}


def test_no_route_tells_a_principal_without_a_role_anything(
    client: Any, plane: ControlPlane, portal: BlockingPortal
) -> None:
    """Every route naming a subscription, with a signed-in principal that holds no role
    there (and one that is Owner of another resource group: 403, or an empty list of the
    subscription's resources, filtered to what it may read): 403 AuthorizationFailed
    (404 for the subscription itself), the same answer, names aside, whether Alice's
    resource exists or not; nothing of hers in it and nothing of hers changed. A Reader
    of Alice's resource group is refused every route that is not a GET."""
    alice = client(ALICE)
    names = alice_resources(alice)
    before = alice.request("GET", group(ALICE, ALICE_GROUP, ALICE_RG)).json()
    app = create_app(plane)
    nobody, _ = principal_client(plane, app, portal, "nobody")
    elsewhere, _ = principal_client(plane, app, portal, "elsewhere", "Owner",
                                    rg(ALICE, "other-rg"))
    reader, _ = principal_client(plane, app, portal, "reader", "Reader", rg(ALICE, ALICE_RG))
    routes = routes_with_a_subscription(app)
    assert len(routes) >= 25, routes
    for method, template in routes:
        vnet = "virtualNetworks/{name}" in template
        # The activity log asks a time range of every query (else 400, whoever asks).
        query = "?$filter=eventTimestamp ge 2000-01-01" if template.endswith(
            "/eventtypes/management/values") else own_version(template)
        real = template.format(**names | {"name": ALICE_NET if vnet else ALICE_GROUP}) + query
        absent = template.format(**names | ABSENT) + query
        whole = template == "/subscriptions/{subscription}"  # elsewhere holds a role in it
        for http in (nobody,) if whole else (nobody, elsewhere):
            answers = [http.request(method, path, json=request_body(method, template))
                       for path in (real, absent)]
            expected = 404 if whole else 403
            if http is elsewhere and answers[0].status_code == 200:
                # a subscription's collection, filtered to what elsewhere may read: nothing
                assert [a.json() for a in answers] == [{"value": []}] * 2, (method, real)
                continue
            for answer in answers:
                assert answer.status_code == expected, (method, real, answer.text)
                for theirs in (ALICE_IMAGE, ALICE_TAG, ALICE_SUBNET_PREFIX, "Succeeded"):
                    assert theirs not in answer.text, (method, real, answer.text)
            texts = [a.json()["error"]["message"] for a in answers]
            for key, value in sorted(ABSENT.items(), key=lambda kv: -len(kv[1])):
                texts[1] = texts[1].replace(value, str(
                    (names | {"name": ALICE_NET if vnet else ALICE_GROUP})[key]))
            assert texts[0] == texts[1], (method, template, texts)
        if template.endswith("/Microsoft.CostManagement/query") and "{resource_group}" in \
                template:  # a read, as Azure's Reader may: her own group's usage only
            seen = reader.request(method, real, json=request_body(method, template))
            assert seen.status_code == 200, (method, real, seen.text)
            assert {row[1] for row in seen.json()["properties"]["rows"]} == {
                f"/subscriptions/{ALICE}/resourcegroups/{ALICE_RG}/providers/"
                f"microsoft.containerinstance/containergroups/{ALICE_GROUP}"}
        elif method != "GET" and "{resource_group}" in template:
            refused = reader.request(method, real, json=request_body(method, template))
            assert refused.status_code == 403, (method, real, refused.text)
            assert refused.json()["error"]["code"] == "AuthorizationFailed"
    after = alice.request("GET", group(ALICE, ALICE_GROUP, ALICE_RG)).json()
    assert after["tags"] == before["tags"] == {"t": ALICE_TAG}
    assert after["properties"]["provisioningState"] == "Succeeded"
    assert alice.request("GET", rg(ALICE, ALICE_RG)).status_code == 200


# ---- every Microsoft.Authorization route: the root, another subscription, a management group --

READER_ROLE = "acdd72a7-3d97-46b9-8ea0-e9b62cb98f8c"
MANAGEMENT_GROUP = "providers/Microsoft.Management/managementGroups/mg"


def authorization_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path template) of every Microsoft.Authorization route: at a ``{scope}``
    and at the root."""
    found = []
    pending = list(app.routes)
    while pending:
        route = pending.pop()
        included = getattr(route, "original_router", None)
        if included is not None:
            pending.extend(included.routes)
        path = getattr(route, "path", "")
        for method in sorted(getattr(route, "methods", None) or ()):
            if "/providers/Microsoft.Authorization/" in path and method != "HEAD":
                found.append((method, path.replace("{scope:path}", "{scope}")))
    return sorted(found)


def test_no_authorization_route_lets_a_subscription_reach_the_root_or_another_tenant(
    client: Any, plane: ControlPlane, portal: BlockingPortal
) -> None:
    """Every role assignment and role definition route, at the root, at Alice's resource
    group and at a management group, with Bob's token, a principal holding no role and
    a principal Owner of Bob's subscription: 403 AuthorizationFailed, nothing of Alice's
    assignment in the answer, nothing stored or removed."""
    alice = client(ALICE)
    app = create_app(plane)
    holder, _ = plane.store.create_principal("alices-reader")
    name = str(uuid.uuid4())
    made = alice.request("PUT", f"{rg(ALICE)}/providers/Microsoft.Authorization/"
                         f"roleAssignments/{name}?api-version=2022-04-01", json={"properties": {
                             "roleDefinitionId": READER_ROLE, "principalId": holder.object_id}})
    assert made.status_code == 201, made.text
    bob = client(BOB)
    nobody, _ = principal_client(plane, app, portal, "nobody")
    bobs_owner, _ = principal_client(plane, app, portal, "bobs-owner", "Owner",
                                     f"/subscriptions/{BOB}")
    routes = authorization_routes(app)
    assert len([r for r in routes if "{scope}" not in r[1]]) >= 6, routes  # the root's
    assert len([r for r in routes if "{scope}" in r[1]]) >= 6, routes
    body = {"properties": {"roleDefinitionId": READER_ROLE, "principalId": holder.object_id}}
    for method, template in routes:
        scopes = [rg(ALICE)[1:], MANAGEMENT_GROUP] if "{scope}" in template else [""]
        for scope in scopes:
            path = template.format(scope=scope, role_assignment_name=name, role_id=READER_ROLE)
            for http in (bob, nobody, bobs_owner):
                answer = http.request(method, path, json=body)
                assert answer.status_code == 403, (method, path, answer.text)
                assert answer.json()["error"]["code"] == "AuthorizationFailed"
                assert holder.object_id not in answer.text, (method, path, answer.text)
    assert [a.name for a in plane.store.assignments(holder.object_id)] == [name]
