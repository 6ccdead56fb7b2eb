"""Sign-in and access through the API, in process (the app over a real store and the
FakeEngine): cloud metadata, OpenID discovery, the token endpoint (success and Entra's
errors), the node's JWTs on ARM routes (ARM's 401s), subscriptions and tenants, role
assignments and definitions, the admin's service principal routes, and what a Reader
may and may not do."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from skiff.api.app import create_app
from skiff.api.context import ControlPlane
from skiff.testing.inprocess import BASE, InProcessClient, fake_plane
from skiff.testing.waiting import eventually

API = "?api-version=2023-05-01"
AUTHZ = "?api-version=2022-04-01"
SUB = "00000000-0000-0000-0000-0000000000a1"
OTHER = "00000000-0000-0000-0000-0000000000b2"
RG = f"/subscriptions/{SUB}/resourceGroups/rg"
GROUP = f"{RG}/providers/Microsoft.ContainerInstance/containerGroups/g"
READER_ID = "acdd72a7-3d97-46b9-8ea0-e9b62cb98f8c"


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    with fake_plane(tmp_path) as running:
        yield running


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as running:
        yield running


@pytest.fixture
def app(plane: ControlPlane) -> Any:
    return create_app(plane)


@pytest.fixture
def anonymous(app: Any, portal: BlockingPortal) -> InProcessClient:
    return InProcessClient(portal, app, None)


@pytest.fixture
def admin(plane: ControlPlane, app: Any, portal: BlockingPortal) -> InProcessClient:
    _, secret = plane.store.create_token(None, "admin")
    return InProcessClient(portal, app, secret)


def make_principal(admin: InProcessClient, name: str, role: str | None = None,
                   *scopes: str) -> dict[str, Any]:
    body: dict[str, Any] = {"displayName": name}
    if role:
        body |= {"role": role, "scopes": list(scopes)}
    answer = admin.post("/skiff/servicePrincipals", json=body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def token_request(http: InProcessClient, sp: dict[str, Any], *, tenant: str | None = None,
                  scope: str = f"{BASE}/.default", **extra: str) -> httpx.Response:
    form = {"grant_type": "client_credentials", "client_id": sp["appId"],
            "client_secret": sp["password"], "scope": scope} | extra
    return http.post(f"/{tenant or sp['tenant']}/oauth2/v2.0/token", data=form)


def signed_in(plane: ControlPlane, app: Any, portal: BlockingPortal, anonymous: InProcessClient,
              sp: dict[str, Any]) -> InProcessClient:
    answer = token_request(anonymous, sp)
    assert answer.status_code == 200, answer.text
    return InProcessClient(portal, app, answer.json()["access_token"])


def group_body() -> dict[str, Any]:
    return {"location": "local", "properties": {
        "osType": "Linux", "restartPolicy": "Never", "containers": [{"name": "c", "properties": {
            "image": "registry.test/busybox:1", "command": ["sleep", "300"],
            "resources": {"requests": {"cpu": 0.1, "memoryInGB": 0.1}}}}]}}


# ---- metadata and discovery -----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/metadata/endpoints?api-version=2022-09-01",
                                  "//metadata/endpoints?api-version=2022-09-01"])
def test_cloud_metadata_is_anonymous_and_names_the_adfs_login(anonymous: InProcessClient,
                                                              path: str) -> None:
    """What az cloud register reads: the resource manager, the login endpoint (ADFS form:
    no instance discovery), the audience."""
    answer = anonymous.get(BASE + path)  # az joins "https://host/" and "/metadata..."
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["resourceManager"] == f"{BASE}/"
    assert doc["authentication"]["loginEndpoint"] == f"{BASE}/adfs"
    assert doc["authentication"]["audiences"] == [f"{BASE}/"]
    assert isinstance(doc["suffixes"], dict)
    assert doc["name"]


def test_openid_discovery_at_msals_paths(anonymous: InProcessClient,
                                         plane: ControlPlane) -> None:
    """ADFS, tenant and common forms name a token endpoint and the jwks_uri, whose key
    is the one tokens are signed with; an unknown tenant is Entra's invalid_tenant."""
    tenant = plane.store.tenant_id()
    for path in ("/adfs/.well-known/openid-configuration",
                 f"/{tenant}/v2.0/.well-known/openid-configuration",
                 "/common/v2.0/.well-known/openid-configuration",
                 f"/{tenant}/.well-known/openid-configuration"):
        doc = anonymous.get(path).json()
        assert doc["token_endpoint"].startswith(BASE), path
        keys = anonymous.get(doc["jwks_uri"].removeprefix(BASE)).json()["keys"]
        assert [k["kid"] for k in keys] == [plane.issuer.kid]
        assert keys[0]["kty"] == "RSA"
        assert "d" not in keys[0]
    assert anonymous.get(f"/{tenant}/v2.0/.well-known/openid-configuration").json()[
        "issuer"] == f"{BASE}/{tenant}/v2.0"
    foreign = anonymous.get("/11111111-1111-1111-1111-111111111111/v2.0/.well-known/"
                            "openid-configuration")
    assert foreign.status_code == 400
    assert foreign.json()["error"] == "invalid_tenant"
    assert "AADSTS90002" in foreign.json()["error_description"]


# ---- the token endpoint ---------------------------------------------------------------------


@pytest.mark.parametrize("scope", [f"{BASE}/.default", f"{BASE}//.default",
                                   "https://management.azure.com/.default"])
def test_client_credentials_give_a_token_as_entra_does(admin: InProcessClient,
                                                       anonymous: InProcessClient,
                                                       scope: str) -> None:
    """token_type, expires_in, access_token; the audience is the scope's resource (a
    double slash names the audience with its slash)."""
    sp = make_principal(admin, "ci")
    answer = token_request(anonymous, sp, scope=scope)
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["token_type"] == "Bearer"
    assert 3000 < doc["expires_in"] <= 3600
    payload = doc["access_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["aud"] == scope.removesuffix(".default").replace("//", "/").replace(
        "https:/", "https://")
    assert claims["appid"] == sp["appId"]
    assert claims["tid"] == sp["tenant"]
    assert claims["oid"] == sp["objectId"]
    assert answer.headers["cache-control"].startswith("no-store")


def test_the_adfs_and_v1_endpoints_and_basic_auth_work(admin: InProcessClient,
                                                       anonymous: InProcessClient) -> None:
    """/adfs/oauth2/token, a v1 ``resource``, client_secret_basic."""
    sp = make_principal(admin, "ci")
    form = {"grant_type": "client_credentials", "client_id": sp["appId"],
            "client_secret": sp["password"], "scope": f"{BASE}/.default"}
    assert anonymous.post("/adfs/oauth2/token", data=form).status_code == 200
    v1 = anonymous.post(f"/{sp['tenant']}/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": sp["appId"],
        "client_secret": sp["password"], "resource": f"{BASE}/"}).json()
    assert v1["resource"] == f"{BASE}/"
    assert v1["expires_in"].isdigit()
    basic = base64.b64encode(f"{sp['appId']}:{sp['password']}".encode()).decode()
    answer = anonymous.post(f"/{sp['tenant']}/oauth2/v2.0/token",
                            data={"grant_type": "client_credentials",
                                  "scope": f"{BASE}/.default"},
                            headers={"Authorization": f"Basic {basic}"})
    assert answer.status_code == 200, answer.text


def test_the_token_endpoints_errors_are_entras(admin: InProcessClient,
                                               anonymous: InProcessClient) -> None:
    """A wrong secret, an unknown client, no secret, another grant, a scope without
    /.default, another tenant: Entra's error, status and AADSTS code, no token."""
    sp = make_principal(admin, "ci")
    cases = [
        (token_request(anonymous, sp, client_secret="wrong"), 401, "invalid_client", 7000215),
        (token_request(anonymous, sp | {"appId": "22222222-2222-2222-2222-222222222222"}),
         400, "unauthorized_client", 700016),
        (token_request(anonymous, sp, client_secret=""), 401, "invalid_client", 7000218),
        (token_request(anonymous, sp, grant_type="password"), 400, "unsupported_grant_type",
         70003),
        (token_request(anonymous, sp, scope=f"{BASE}/read"), 400, "invalid_scope", 1002012),
        (token_request(anonymous, sp, tenant="33333333-3333-3333-3333-333333333333"), 400,
         "invalid_request", 90002),
    ]
    for answer, status, error, code in cases:
        assert answer.status_code == status, answer.text
        doc = answer.json()
        assert doc["error"] == error
        assert doc["error_codes"] == [code]
        assert doc["error_description"].startswith(f"AADSTS{code}: ")
        assert "access_token" not in doc
        assert sp["password"] not in answer.text


# ---- tokens on ARM routes -------------------------------------------------------------------


def test_a_principals_token_acts_with_its_role(plane: ControlPlane, app: Any,
                                               portal: BlockingPortal,
                                               admin: InProcessClient,
                                               anonymous: InProcessClient) -> None:
    """A Contributor of the subscription makes a group there; elsewhere 403."""
    sp = make_principal(admin, "ci", "Contributor", f"/subscriptions/{SUB}")
    http = signed_in(plane, app, portal, anonymous, sp)
    assert http.put(RG + API, json={"location": "local"}).status_code == 201
    assert http.put(GROUP + API, json=group_body()).status_code == 201
    assert http.get(GROUP + API).status_code == 200
    other = http.put(f"/subscriptions/{OTHER}/resourceGroups/rg{API}", json={"location": "l"})
    assert other.status_code == 403
    assert other.json()["error"]["code"] == "AuthorizationFailed"
    assert sp["appId"] in other.json()["error"]["message"]


def test_bad_tokens_get_arms_401s(plane: ControlPlane, app: Any, portal: BlockingPortal,
                                  admin: InProcessClient, anonymous: InProcessClient,
                                  tmp_path: Path) -> None:
    """Tampered and foreign-signed: InvalidAuthenticationToken; another audience:
    InvalidAuthenticationTokenAudience; each with a WWW-Authenticate challenge."""
    from skiff.control.identity import Issuer

    sp = make_principal(admin, "ci", "Owner", f"/subscriptions/{SUB}")
    good = token_request(anonymous, sp).json()["access_token"]
    head, body, sig = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps(claims | {"oid": "x"}).encode()).decode()
    foreign = Issuer(tmp_path / "elsewhere", sp["tenant"])
    foreign.kid = plane.issuer.kid  # even claiming the node's key id
    stranger, _ = foreign.issue(oid=sp["objectId"], appid=sp["appId"], aud=f"{BASE}/",
                                iss="x")
    elsewhere = token_request(anonymous, sp, scope="https://vault.azure.net/.default")
    cases = [(f"{head}.{forged.rstrip('=')}.{sig}", "InvalidAuthenticationToken"),
             (stranger, "InvalidAuthenticationToken"),
             (elsewhere.json()["access_token"], "InvalidAuthenticationTokenAudience")]
    for token, code in cases:
        answer = InProcessClient(portal, app, token).get(RG + API)
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"]["code"] == code
        assert answer.headers["www-authenticate"].startswith("Bearer authorization_uri=")
    assert InProcessClient(portal, app, good).get(f"/subscriptions/{SUB}/resourcegroups"
                                                  f"{API}").status_code == 200


def test_subscriptions_and_tenants_as_arm_answers_them(plane: ControlPlane, app: Any,
                                                       portal: BlockingPortal,
                                                       admin: InProcessClient,
                                                       anonymous: InProcessClient) -> None:
    """A principal sees the subscriptions where it holds a role (at a resource group
    too); the admin every one the node knows; another is 404 as if absent."""
    sp = make_principal(admin, "ci", "Reader", RG)
    assert admin.put(f"/subscriptions/{OTHER}/resourceGroups/x{API}",
                     json={"location": "local"}).status_code == 201
    http = signed_in(plane, app, portal, anonymous, sp)
    mine = http.get(f"/subscriptions{API}").json()["value"]
    assert [s["subscriptionId"] for s in mine] == [SUB]
    assert mine[0]["tenantId"] == sp["tenant"]
    assert mine[0]["state"] == "Enabled"
    assert http.get(f"/subscriptions/{SUB}{API}").status_code == 200
    hidden = http.get(f"/subscriptions/{OTHER}{API}")
    absent = http.get(f"/subscriptions/{'9' * 8}{API}")
    assert hidden.status_code == absent.status_code == 404
    assert hidden.json()["error"]["message"].replace(OTHER, "9" * 8) == \
        absent.json()["error"]["message"]
    seen = {s["subscriptionId"] for s in admin.get(f"/subscriptions{API}").json()["value"]}
    assert {SUB, OTHER} <= seen
    tenants = http.get(f"/tenants{API}").json()["value"]
    assert [t["tenantId"] for t in tenants] == [sp["tenant"]]


# ---- role assignments -----------------------------------------------------------------------


def test_role_assignments_at_every_scope(admin: InProcessClient) -> None:
    """PUT, GET, list (atScope(), principalId) and DELETE at a subscription, a resource
    group and a resource; an assignment is found only under its own scope."""
    sp = make_principal(admin, "ci")
    ids = {}
    for scope, guid in ((f"/subscriptions/{SUB}", "1" * 8), (RG, "2" * 8), (GROUP, "3" * 8)):
        name = f"{guid}-0000-0000-0000-000000000000"
        url = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}{AUTHZ}"
        made = admin.put(url, json={"properties": {
            "roleDefinitionId": f"/subscriptions/{SUB}/providers/Microsoft.Authorization/"
                                f"roleDefinitions/{READER_ID}",
            "principalId": sp["objectId"], "principalType": "ServicePrincipal"}})
        assert made.status_code == 201, made.text
        assert made.json()["properties"]["scope"] == scope
        assert admin.get(url).json()["id"] == made.json()["id"]
        ids[scope] = name
    listing = f"{RG}/providers/Microsoft.Authorization/roleAssignments{AUTHZ}"
    at_scope = admin.get(listing + "&$filter=atScope()").json()["value"]
    assert sorted(a["properties"]["scope"] for a in at_scope) == sorted(
        [f"/subscriptions/{SUB}", RG])
    everything = admin.get(listing + f"&$filter=principalId eq '{sp['objectId']}'")
    assert len(everything.json()["value"]) == 3
    elsewhere = (f"/subscriptions/{OTHER}/providers/Microsoft.Authorization/roleAssignments/"
                 f"{ids[RG]}{AUTHZ}")
    assert admin.get(elsewhere).status_code == 404
    assert admin.delete(elsewhere).status_code == 204
    gone = admin.delete(f"{RG}/providers/Microsoft.Authorization/roleAssignments/{ids[RG]}"
                        f"{AUTHZ}")
    assert gone.status_code == 200
    assert len(admin.get(listing + f"&$filter=principalId eq '{sp['objectId']}'")
               .json()["value"]) == 2
    bad = admin.put(f"{RG}/providers/Microsoft.Authorization/roleAssignments/{'4' * 8}-0000-"
                    f"0000-0000-000000000000{AUTHZ}", json={"properties": {
                        "roleDefinitionId": "00000000-0000-0000-0000-000000000009",
                        "principalId": sp["objectId"]}})
    assert bad.json()["error"]["code"] == "RoleDefinitionDoesNotExist"


def test_role_definitions_are_the_built_in_three(admin: InProcessClient) -> None:
    """List, filter by roleName as az resolves --role, GET by id."""
    url = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions"
    names = {d["properties"]["roleName"] for d in admin.get(url + AUTHZ).json()["value"]}
    assert names == {"Owner", "Contributor", "Reader"}
    found = admin.get(url + AUTHZ + "&$filter=roleName eq 'Reader'").json()["value"]
    assert [d["name"] for d in found] == [READER_ID]
    assert admin.get(f"{url}/{READER_ID}{AUTHZ}").json()["properties"]["permissions"][0][
        "actions"] == ["*/read"]


def test_only_an_owner_grants_and_only_the_admin_manages_principals(
        plane: ControlPlane, app: Any, portal: BlockingPortal, admin: InProcessClient,
        anonymous: InProcessClient) -> None:
    """A Contributor cannot assign roles (Owner can); principals' routes are the admin
    token's alone, not a subscription token's nor an Owner principal's."""
    contributor = signed_in(plane, app, portal, anonymous,
                            make_principal(admin, "c", "Contributor", f"/subscriptions/{SUB}"))
    owner = signed_in(plane, app, portal, anonymous,
                      make_principal(admin, "o", "Owner", f"/subscriptions/{SUB}"))
    target = make_principal(admin, "t")
    url = (f"{RG}/providers/Microsoft.Authorization/roleAssignments/"
           f"{'5' * 8}-0000-0000-0000-000000000000{AUTHZ}")
    body = {"properties": {"roleDefinitionId": READER_ID, "principalId": target["objectId"]}}
    assert contributor.put(url, json=body).status_code == 403
    assert owner.put(url, json=body).status_code == 201
    _, bound = plane.store.create_token(SUB, "bound")
    for http in (owner, InProcessClient(portal, app, bound)):
        for method in ("GET", "POST"):
            answer = http.request(method, "/skiff/servicePrincipals",
                                  json={"displayName": "x"})
            assert answer.status_code == 403, answer.text
    assert [p["displayName"] for p in admin.get("/skiff/servicePrincipals").json()["value"]
            ] == ["c", "o", "t"]


def test_principals_lifecycle(admin: InProcessClient, anonymous: InProcessClient) -> None:
    """create-for-rbac on an existing name gives a new secret (the old one stops);
    a credential reset likewise; a deleted principal signs in no more."""
    first = make_principal(admin, "ci", "Reader", RG)
    again = make_principal(admin, "ci", "Reader", RG)
    assert again["appId"] == first["appId"]
    assert again["password"] != first["password"]
    assert token_request(anonymous, first).status_code == 401
    assert token_request(anonymous, again).status_code == 200
    reset = admin.post(f"/skiff/servicePrincipals/{first['appId']}/resetCredential").json()
    assert token_request(anonymous, again).status_code == 401
    assert token_request(anonymous, again | {"password": reset["password"]}).status_code == 200
    assert admin.delete(f"/skiff/servicePrincipals/{first['appId']}").status_code == 204
    assert token_request(anonymous, again | {"password": reset["password"]}).status_code == 400
    assert admin.delete(f"/skiff/servicePrincipals/{first['appId']}").status_code == 404


# ---- a Reader -------------------------------------------------------------------------------


def test_a_reader_reads_but_never_writes_execs_or_reads_secrets(
        plane: ControlPlane, app: Any, portal: BlockingPortal, admin: InProcessClient,
        anonymous: InProcessClient) -> None:
    """Reader of the resource group: GET, list and logs work; PUT, DELETE, restart,
    exec, attach and listKeys are 403 AuthorizationFailed, and nothing changed."""
    assert admin.put(RG + API, json={"location": "local"}).status_code == 201
    assert admin.put(GROUP + API, json=group_body()).status_code == 201
    account = f"{RG}/providers/Microsoft.Storage/storageAccounts/readerstore"
    assert admin.put(account + API, json={"location": "local", "kind": "StorageV2",
                                          "sku": {"name": "Standard_LRS"}}).status_code == 200
    eventually(lambda: admin.get(GROUP + API).json()["properties"]["provisioningState"]
               == "Succeeded", what="the group runs")
    reader = signed_in(plane, app, portal, anonymous, make_principal(admin, "r", "Reader", RG))
    assert reader.get(GROUP + API).status_code == 200
    assert reader.get(f"{RG}/providers/Microsoft.ContainerInstance/containerGroups"
                      f"{API}").status_code == 200
    assert reader.get(f"{GROUP}/containers/c/logs{API}").status_code == 200
    assert reader.get(account + API).status_code == 200
    refused = [reader.put(GROUP + API, json=group_body()), reader.delete(GROUP + API),
               reader.post(f"{GROUP}/restart{API}"), reader.post(f"{GROUP}/stop{API}"),
               reader.post(f"{GROUP}/containers/c/exec{API}",
                           json={"command": "ls", "terminalSize": {"rows": 2, "cols": 2}}),
               reader.post(f"{GROUP}/containers/c/attach{API}"),
               reader.post(f"{account}/listKeys{API}"), reader.delete(RG + API),
               reader.put(f"{RG}/providers/Microsoft.Authorization/roleAssignments/"
                          f"{'6' * 8}-0000-0000-0000-000000000000{AUTHZ}", json={})]
    for answer in refused:
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["code"] == "AuthorizationFailed"
        assert "key1" not in answer.text
        assert "value" not in answer.text
    assert admin.get(GROUP + API).json()["properties"]["provisioningState"] == "Succeeded"


def test_permissions_list_the_callers_roles_at_a_scope(
        plane: ControlPlane, app: Any, portal: BlockingPortal, admin: InProcessClient,
        anonymous: InProcessClient) -> None:
    """GET {scope}/providers/Microsoft.Authorization/permissions: a resource group's Reader
    gets Reader's actions there and on its groups, an empty list at its subscription (a
    role below it), 403 in another resource group (existing or not), and the admin
    Owner's '*'; anonymous is 401."""
    reader = signed_in(plane, app, portal, anonymous, make_principal(admin, "p", "Reader", RG))
    suffix = f"/providers/Microsoft.Authorization/permissions{AUTHZ}"
    for scope in (RG, GROUP):
        found = reader.get(scope + suffix)
        assert found.status_code == 200, found.text
        assert found.json()["value"] == [{"actions": ["*/read"], "notActions": [],
                                          "dataActions": [], "notDataActions": []}]
    assert reader.get(f"/subscriptions/{SUB}{suffix}").json() == {"value": []}
    refused = reader.get(f"/subscriptions/{SUB}/resourceGroups/other{suffix}")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "AuthorizationFailed"
    assert admin.get(GROUP + suffix).json()["value"][0]["actions"] == ["*"]
    assert anonymous.get(GROUP + suffix).status_code == 401
    assert admin.get(f"/nowhere/x{suffix}").status_code == 400


def test_joining_a_subnet_needs_a_role_that_may_join_it(
        plane: ControlPlane, app: Any, portal: BlockingPortal, admin: InProcessClient,
        anonymous: InProcessClient) -> None:
    """A Contributor of its subscription placing a group in another subscription's subnet:
    LinkedAuthorizationFailed while it is only Reader there, allowed as Contributor."""
    vnet = f"/subscriptions/{OTHER}/resourceGroups/net/providers/Microsoft.Network/" \
           "virtualNetworks/v"
    assert admin.put(vnet + API, json={"location": "local", "properties": {
        "addressSpace": {"addressPrefixes": ["10.230.0.0/16"]},
        "subnets": [{"name": "s", "properties": {"addressPrefix": "10.230.1.0/24"}}]}}
                     ).status_code == 201
    sp = make_principal(admin, "ci", "Contributor", f"/subscriptions/{SUB}")
    admin.put(f"{vnet}/providers/Microsoft.Authorization/roleAssignments/{'7' * 8}-0000-0000-"
              f"0000-000000000000{AUTHZ}", json={"properties": {
                  "roleDefinitionId": READER_ID, "principalId": sp["objectId"]}})
    http = signed_in(plane, app, portal, anonymous, sp)
    body = group_body()
    body["properties"]["subnetIds"] = [{"id": f"{vnet}/subnets/s"}]
    body["properties"]["ipAddress"] = {"type": "Private", "ports": [{"port": 80}]}
    body["properties"]["containers"][0]["properties"]["ports"] = [{"port": 80}]
    refused = http.put(GROUP + API, json=body)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "LinkedAuthorizationFailed"
    make_principal(admin, "ci", "Contributor", f"/subscriptions/{SUB}", vnet)
    http = signed_in(plane, app, portal, anonymous,
                     make_principal(admin, "ci", "Contributor", f"/subscriptions/{SUB}"))
    placed = http.put(GROUP + API, json=body)
    assert placed.status_code == 201, placed.text


def test_a_deleted_resources_assignments_go_with_it(
        plane: ControlPlane, app: Any, portal: BlockingPortal, admin: InProcessClient,
        anonymous: InProcessClient) -> None:
    """A Reader of a group and of a resource group loses both when they are deleted: a
    group or resource group made again under the same names is not its to read."""
    assert admin.put(RG + API, json={"location": "local"}).status_code == 201
    assert admin.put(GROUP + API, json=group_body()).status_code == 201
    make_principal(admin, "r", "Reader", GROUP)
    sp = make_principal(admin, "r", "Reader", RG)  # the same principal, a new secret
    reader = signed_in(plane, app, portal, anonymous, sp)
    assert reader.get(GROUP + API).status_code == 200
    listing = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments{AUTHZ}"
    assert len(admin.get(listing).json()["value"]) == 2
    assert admin.delete(GROUP + API).status_code in (200, 202, 204)
    eventually(lambda: len(admin.get(listing).json()["value"]) == 1,
               what="the group's assignment gone with the group")
    assert admin.delete(RG + API).status_code in (200, 202)
    eventually(lambda: admin.get(listing).json()["value"] == [],
               what="the resource group's assignment gone with it")
    assert admin.put(RG + API, json={"location": "local"}).status_code == 201
    assert admin.put(GROUP + API, json=group_body()).status_code == 201
    assert reader.get(GROUP + API).status_code == 403


def test_a_resource_group_contributor_polls_its_own_operations(
        plane: ControlPlane, app: Any, portal: BlockingPortal, admin: InProcessClient,
        anonymous: InProcessClient) -> None:
    """Operation URLs are at the subscription's scope: a Contributor of a resource group
    reads those of its own resources (as az's poller must); a principal with a role
    elsewhere is refused, the same for an operation that does not exist."""
    assert admin.put(RG + API, json={"location": "local"}).status_code == 201
    mine = signed_in(plane, app, portal, anonymous,
                     make_principal(admin, "c", "Contributor", RG))
    made = mine.put(GROUP + API, json=group_body())
    assert made.status_code == 201, made.text
    url = made.headers["Azure-AsyncOperation"].removeprefix(BASE)
    assert mine.get(url).status_code == 200
    assert admin.put(f"/subscriptions/{SUB}/resourceGroups/other{API}",
                     json={"location": "local"}).status_code == 201
    other = signed_in(plane, app, portal, anonymous, make_principal(
        admin, "o", "Owner", f"/subscriptions/{SUB}/resourceGroups/other"))
    refused = other.get(url)
    op_id = url.split("/operations/")[1].split("?")[0]
    absent = other.get(url.replace(op_id, "0" * 32))
    assert refused.status_code == absent.status_code == 403
    assert refused.text == absent.text.replace("0" * 32, op_id)


def test_a_subscription_listing_shows_a_resource_group_reader_its_own(
        plane: ControlPlane, app: Any, portal: BlockingPortal, admin: InProcessClient,
        anonymous: InProcessClient) -> None:
    """Listing a subscription's resource groups, container groups, networks and accounts,
    a Reader of one resource group sees that resource group's items only (as ARM filters
    a collection by access); a principal without any role there gets 403."""
    for rg_name in ("rg", "hidden"):
        base = f"/subscriptions/{SUB}/resourceGroups/{rg_name}"
        assert admin.put(base + API, json={"location": "local"}).status_code == 201
        assert admin.put(f"{base}/providers/Microsoft.ContainerInstance/containerGroups/g{API}",
                         json=group_body()).status_code == 201
        assert admin.put(f"{base}/providers/Microsoft.Storage/storageAccounts/{rg_name}acct"
                         f"{API}", json={"location": "local", "kind": "StorageV2",
                                         "sku": {"name": "Standard_LRS"}}).status_code == 200
    reader = signed_in(plane, app, portal, anonymous, make_principal(admin, "r", "Reader", RG))
    lists = {"resourcegroups": "/resourcegroups",
             "groups": "/providers/Microsoft.ContainerInstance/containerGroups",
             "accounts": "/providers/Microsoft.Storage/storageAccounts",
             "vnets": "/providers/Microsoft.Network/virtualNetworks"}
    seen = {what: [i["id"] for i in reader.get(f"/subscriptions/{SUB}{path}{API}").json()[
        "value"]] for what, path in lists.items()}
    assert seen == {"resourcegroups": [RG], "groups": [GROUP],
                    "accounts": [f"{RG}/providers/Microsoft.Storage/storageAccounts/rgacct"],
                    "vnets": []}
    assert len(admin.get(f"/subscriptions/{SUB}/resourcegroups{API}").json()["value"]) == 2
    stranger = signed_in(plane, app, portal, anonymous, make_principal(admin, "s"))
    for path in lists.values():
        assert stranger.get(f"/subscriptions/{SUB}{path}{API}").status_code == 403


def test_head_of_a_resource_group_tells_whether_it_exists(
        plane: ControlPlane, app: Any, portal: BlockingPortal, admin: InProcessClient,
        anonymous: InProcessClient) -> None:
    """``az group exists``: HEAD answers 204 or 404 to a reader, 403 to a stranger
    whether the group exists or not."""
    assert admin.put(RG + API, json={"location": "local"}).status_code == 201
    assert admin.request("HEAD", RG + API).status_code == 204
    assert admin.request("HEAD", RG + "x" + API).status_code == 404
    stranger = signed_in(plane, app, portal, anonymous, make_principal(admin, "s"))
    assert stranger.request("HEAD", RG + API).status_code == 403
    assert stranger.request("HEAD", RG + "x" + API).status_code == 403


# ---- the root scope and management groups -----------------------------------------------------

ROOT = "/providers/Microsoft.Authorization/roleAssignments"
OWNER_ID = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"


def root_body(principal: str, role: str = READER_ID) -> dict[str, Any]:
    return {"properties": {"roleDefinitionId": f"/providers/Microsoft.Authorization/"
                                               f"roleDefinitions/{role}",
                           "principalId": principal, "principalType": "ServicePrincipal"}}


def test_the_admin_assigns_at_the_root_and_every_scope_inherits_it(
        plane: ControlPlane, app: Any, portal: BlockingPortal, admin: InProcessClient,
        anonymous: InProcessClient) -> None:
    """PUT, GET, list and DELETE at ``/`` as the admin; the assignment is listed (with
    atScope()) under any subscription as ARM lists an inherited one: scope '/', its role
    definition under that subscription; its principal reads in every subscription."""
    sp = make_principal(admin, "everywhere")
    name = f"{'6' * 8}-0000-0000-0000-000000000000"
    made = admin.put(f"{ROOT}/{name}{AUTHZ}", json=root_body(sp["objectId"]))
    assert made.status_code == 201, made.text
    assert made.json()["id"] == f"{ROOT}/{name}"
    assert made.json()["properties"]["scope"] == "/"
    assert made.json()["properties"]["roleDefinitionId"] == \
        f"/providers/Microsoft.Authorization/roleDefinitions/{READER_ID}"
    assert admin.get(f"{ROOT}/{name}{AUTHZ}").json() == made.json()
    assert [a["name"] for a in admin.get(f"{ROOT}{AUTHZ}&$filter=atScope()").json()["value"]
            ] == [name]
    for sub in (SUB, OTHER):
        listed = admin.get(f"/subscriptions/{sub}{ROOT}{AUTHZ}&$filter=atScope()")
        [inherited] = listed.json()["value"]
        assert inherited["properties"]["scope"] == "/"
        assert inherited["id"] == f"{ROOT}/{name}"
        assert inherited["properties"]["roleDefinitionId"] == (
            f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/"
            f"{READER_ID}")
    assert admin.get(f"/subscriptions/{SUB}{ROOT}/{name}{AUTHZ}").status_code == 404
    reader = signed_in(plane, app, portal, anonymous, sp)
    for sub in (SUB, OTHER):
        assert reader.get(f"/subscriptions/{sub}/resourcegroups{API}").status_code == 200
    assert reader.put(f"/subscriptions/{SUB}/resourcegroups/rg{API}",
                      json={"location": "local"}).status_code == 403
    assert admin.delete(f"{ROOT}/{name}{AUTHZ}").status_code == 200
    assert admin.delete(f"{ROOT}/{name}{AUTHZ}").status_code == 204
    assert admin.get(f"{ROOT}/{name}{AUTHZ}").json()["error"]["code"] == \
        "RoleAssignmentNotFound"
    assert reader.get(f"/subscriptions/{SUB}/resourcegroups{API}").status_code == 403


def test_only_a_root_owner_assigns_at_the_root(
        plane: ControlPlane, app: Any, portal: BlockingPortal, admin: InProcessClient,
        anonymous: InProcessClient) -> None:
    """A subscription's Owner (principal or token) is refused every root-scope route with
    ARM's 403 AuthorizationFailed over scope '/'; a principal the admin made Owner at '/'
    (create-for-rbac --scopes /) may assign there."""
    target = make_principal(admin, "t")
    owner = signed_in(plane, app, portal, anonymous,
                      make_principal(admin, "o", "Owner", f"/subscriptions/{SUB}"))
    _, bound = plane.store.create_token(SUB, "bound")
    name = f"{'7' * 8}-0000-0000-0000-000000000000"
    calls = [("PUT", f"{ROOT}/{name}", "roleAssignments/write"),
             ("GET", f"{ROOT}/{name}", "roleAssignments/read"),
             ("DELETE", f"{ROOT}/{name}", "roleAssignments/delete"),
             ("GET", ROOT, "roleAssignments/read"),
             ("GET", "/providers/Microsoft.Authorization/roleDefinitions", "roleDefinitions/read"),
             ("GET", f"/providers/Microsoft.Authorization/roleDefinitions/{READER_ID}",
              "roleDefinitions/read")]
    for http in (owner, InProcessClient(portal, app, bound)):
        for method, path, action in calls:
            answer = http.request(method, path + AUTHZ, json=root_body(target["objectId"]))
            assert answer.status_code == 403, (method, path, answer.text)
            assert answer.json()["error"]["code"] == "AuthorizationFailed"
            assert f"'Microsoft.Authorization/{action}' over scope '/' or the scope is " \
                   "invalid" in answer.json()["error"]["message"]
    assert plane.store.get_assignment(name) is None
    root_owner = signed_in(plane, app, portal, anonymous,
                           make_principal(admin, "root", "Owner", "/"))
    assert root_owner.put(f"{ROOT}/{name}{AUTHZ}",
                          json=root_body(target["objectId"])).status_code == 201
    assert {a["properties"]["scope"] for a in admin.get(f"{ROOT}{AUTHZ}").json()["value"]} \
        == {"/", f"/subscriptions/{SUB}"}


@pytest.mark.parametrize("who", ["admin", "owner"])
def test_management_group_scopes_are_refused_to_everyone(
        plane: ControlPlane, app: Any, portal: BlockingPortal, admin: InProcessClient,
        anonymous: InProcessClient, who: str) -> None:
    """skiff has no management groups: every Microsoft.Authorization route at one answers
    ARM's 403 AuthorizationFailed naming the scope, to the admin too; nothing is stored."""
    target = make_principal(admin, "t")
    http = admin if who == "admin" else signed_in(
        plane, app, portal, anonymous, make_principal(admin, "o", "Owner", f"/subscriptions/{SUB}"))
    group = "/providers/Microsoft.Management/managementGroups/mg1"
    name = f"{'8' * 8}-0000-0000-0000-000000000000"
    for method, path in (("PUT", f"{group}{ROOT}/{name}"), ("GET", f"{group}{ROOT}/{name}"),
                         ("DELETE", f"{group}{ROOT}/{name}"), ("GET", f"{group}{ROOT}"),
                         ("GET", f"{group}/providers/Microsoft.Authorization/roleDefinitions")):
        answer = http.request(method, path + AUTHZ, json=root_body(target["objectId"]))
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.json()["error"]["code"] == "AuthorizationFailed"
        assert f"over scope '{group}' or the scope is invalid" in \
            answer.json()["error"]["message"]
    assert plane.store.get_assignment(name) is None
    other = admin.get(f"/providers/Microsoft.Foo/bars/x{ROOT}{AUTHZ}")
    assert (other.status_code, other.json()["error"]["code"]) == (400, "InvalidScope")
