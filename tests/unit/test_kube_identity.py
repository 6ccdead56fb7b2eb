"""Managed identities and DNS names of groups on the kubernetes backend, through a real
skiff server built over the fake API server (skiff.testing.kubeapi): the Pod's
IDENTITY_ENDPOINT and IDENTITY_HEADER, azure-identity's own ManagedIdentityCredential
getting tokens with them from skiff's token endpoint, and the DNS server answering a
group's name with its Service's load balancer address once the cloud gives one."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rdatatype
import pytest
from anyio.from_thread import start_blocking_portal

from skiff.api.app import create_app
from skiff.kube import naming
from skiff.kube.engine import KubeSettings
from skiff.server import Server, build, start_identity_http
from skiff.settings import ApiSettings, DnsSettings, FilesSettings, MetricsSettings, Settings
from skiff.testing.documents import one_container_group
from skiff.testing.fakedisks import FakeShareDisks
from skiff.testing.inprocess import InProcessClient
from skiff.testing.kubeapi import FakeKubeApi
from skiff.testing.waiting import eventually

SUB = "00000000-0000-0000-0000-00000000000b"
API = "?api-version=2023-05-01"
RG = f"/subscriptions/{SUB}/resourceGroups/rg/providers"
NAMESPACE = naming.namespace_name(SUB, "rg")
SCOPE = "https://management.azure.com/.default"


@pytest.fixture
def fake() -> Iterator[FakeKubeApi]:
    api = FakeKubeApi().start()
    api.add_node("node-1")
    yield api
    api.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(fake: FakeKubeApi, tmp_path: Path, *, identity_url: str | None = None,
          identity_listen: str | None = None, dns: bool = False) -> Server:
    settings = Settings(data_root=tmp_path / "root",
                        api=ApiSettings(listen="127.0.0.1:0", location="local"),
                        dns=DnsSettings(listen="127.0.0.1:0" if dns else None),
                        files=FilesSettings(listen=None),
                        metrics=MetricsSettings(interval_s=0))
    kube = KubeSettings(kubeconfig=fake.kubeconfig(tmp_path / "kubeconfig"),
                        start_timeout_s=0.5, watch_timeout_s=1,
                        identity_url=identity_url, identity_listen=identity_listen)
    server = build(settings, share_disks=FakeShareDisks(tmp_path / "shares"), kube=kube)
    try:
        start_identity_http(server, identity_listen)
    except BaseException:
        server.close()
        raise
    return server


@pytest.fixture
def client() -> Iterator[Any]:
    """Makes an API client of a server, with a token of SUB (anonymous: none, and no
    api-version added)."""
    with start_blocking_portal() as portal:
        def make(server: Server, *, anonymous: bool = False) -> InProcessClient:
            if anonymous:
                return InProcessClient(portal, create_app(server.plane), None)
            _, token = server.plane.store.create_token(SUB, "tests")
            return InProcessClient(portal, create_app(server.plane), token, suffix=API)
        yield make


def group_with(identity: dict[str, Any] | None, **properties: Any) -> dict[str, Any]:
    body = one_container_group("registry.test/app:1", "sleep 300")
    body["properties"].update(properties)
    if identity is not None:
        body["identity"] = identity
    return body


def pod_env(fake: FakeKubeApi, name: str) -> dict[str, Any]:
    pod = eventually(lambda: fake.objects.get(("pods", NAMESPACE, name)), what="the Pod")
    assert pod is not None
    return {e["name"]: e.get("value", e.get("valueFrom"))
            for e in pod["spec"]["containers"][0].get("env") or []}


def secret_value(fake: FakeKubeApi, name: str, key: str) -> str:
    secret = fake.get("secrets", NAMESPACE, f"{name}.env")
    return base64.b64decode(secret["data"][key]).decode()


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    found: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload)
                                                                              % 4)))
    return found


def test_azure_identity_gets_a_groups_tokens_through_the_pods_variables(
        fake: FakeKubeApi, tmp_path: Path, client: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A group with a system and a user-assigned identity: its Pod has IDENTITY_ENDPOINT
    and IDENTITY_HEADER (the secret through the env Secret only); azure-identity's real
    ManagedIdentityCredential, with just those two set, gets the system identity's token
    and, by client_id, the user-assigned one's, signed as the node's (oid, audience); a
    wrong header is refused, and a group without an identity gets no variables."""
    identity = pytest.importorskip("azure.identity")
    port = free_port()
    server = start(fake, tmp_path, identity_url=f"http://127.0.0.1:{port}",
                   identity_listen=f"127.0.0.1:{port}")
    try:
        api = client(server)
        uai = api.put(f"{RG}/Microsoft.ManagedIdentity/userAssignedIdentities/worker",
                      json={"location": "local"})
        assert uai.status_code == 201, uai.text
        worker = uai.json()
        made = api.put(f"{RG}/Microsoft.ContainerInstance/containerGroups/app", json=group_with(
            {"type": "SystemAssigned, UserAssigned",
             "userAssignedIdentities": {worker["id"]: {}}}))
        assert made.status_code == 201, made.text
        assert api.put(f"{RG}/Microsoft.ContainerInstance/containerGroups/bare",
                       json=group_with(None)).status_code == 201
        record = server.plane.store.get_group(SUB, "rg", "app")
        assert record is not None
        env = pod_env(fake, "app")
        assert env["IDENTITY_ENDPOINT"] == f"http://127.0.0.1:{port}/identity/{record.uid}/token"
        assert env["IDENTITY_HEADER"] == {"secretKeyRef": {"name": "app.env",
                                                           "key": "identity-header"}}
        header = secret_value(fake, "app", "identity-header")
        assert len(header) == 43
        assert header not in json.dumps(fake.get("pods", NAMESPACE, "app"))
        assert "IDENTITY_ENDPOINT" not in pod_env(fake, "bare")

        monkeypatch.delenv("IMDS_ENDPOINT", raising=False)  # with it: Azure Arc's protocol
        monkeypatch.delenv("IDENTITY_SERVER_THUMBPRINT", raising=False)
        monkeypatch.setenv("IDENTITY_ENDPOINT", env["IDENTITY_ENDPOINT"])
        monkeypatch.setenv("IDENTITY_HEADER", header)
        system = identity.ManagedIdentityCredential().get_token(SCOPE)
        principal = api.get(f"{RG}/Microsoft.ContainerInstance/containerGroups/app").json()[
            "identity"]["principalId"]
        verified = server.plane.issuer.verify(system.token)
        assert (verified.oid, verified.aud) == (principal, "https://management.azure.com")
        assert system.expires_on > 0
        user = identity.ManagedIdentityCredential(
            client_id=worker["properties"]["clientId"]).get_token(SCOPE)
        assert server.plane.issuer.verify(user.token).oid == worker["properties"]["principalId"]
        assert claims_of(user.token)["appid"] == worker["properties"]["clientId"]

        monkeypatch.setenv("IDENTITY_HEADER", "x" + header[1:])
        with pytest.raises(identity.CredentialUnavailableError,
                           match="not this group's"):
            identity.ManagedIdentityCredential().get_token(SCOPE)
    finally:
        server.close()


def test_the_api_listener_serves_the_endpoint_in_app_services_words(
        fake: FakeKubeApi, tmp_path: Path, client: Any) -> None:
    """An https:// --identity-url: the API's listener answers /identity/<uid>/token with
    no ARM token, only the group's header (App Service's JSON, expires_on a string of
    epoch seconds), 401 without it; the identity picked by the node's rules."""
    server = start(fake, tmp_path, identity_url="https://skiff.example:8443/")
    try:
        api = client(server)
        made = api.put(f"{RG}/Microsoft.ContainerInstance/containerGroups/app",
                       json=group_with({"type": "SystemAssigned"}))
        assert made.status_code == 201, made.text
        record = server.plane.store.get_group(SUB, "rg", "app")
        assert record is not None
        env = pod_env(fake, "app")
        assert env["IDENTITY_ENDPOINT"] == \
            f"https://skiff.example:8443/identity/{record.uid}/token"
        header = secret_value(fake, "app", "identity-header")
        path = f"/identity/{record.uid}/token"
        query = {"api-version": "2019-08-01", "resource": "https://vault.azure.net"}
        pod = client(server, anonymous=True)  # no ARM token: the route needs none
        answer = pod.get(path, params=query, headers={"X-IDENTITY-HEADER": header})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert sorted(body) == ["access_token", "client_id", "expires_on", "resource",
                                "token_type"]
        assert isinstance(body["expires_on"], str)
        assert int(body["expires_on"]) > 0
        assert server.plane.issuer.verify(body["access_token"]).aud == "https://vault.azure.net"
        refused = pod.get(path, params=query)
        assert refused.status_code == 401
        assert refused.json()["statusCode"] == 401
        unknown = pod.get(path, params={**query, "client_id": "nobody"},
                               headers={"X-IDENTITY-HEADER": header})
        assert (unknown.status_code, unknown.json()["message"]) == (400, "Identity not found")
    finally:
        server.close()


def test_without_an_identity_url_a_group_asking_for_an_identity_is_refused(
        fake: FakeKubeApi, tmp_path: Path, client: Any) -> None:
    """No --identity-url: a group with an identity is refused with a 400 saying why (the
    user-assigned identity resources are still kept), nothing made on the cluster; the
    token path is 404; a group without an identity runs."""
    server = start(fake, tmp_path)
    try:
        api = client(server)
        uai = api.put(f"{RG}/Microsoft.ManagedIdentity/userAssignedIdentities/worker",
                      json={"location": "local"})
        assert uai.status_code == 201, uai.text
        for identity in ({"type": "SystemAssigned"},
                         {"type": "UserAssigned",
                          "userAssignedIdentities": {uai.json()["id"]: {}}}):
            refused = api.put(f"{RG}/Microsoft.ContainerInstance/containerGroups/app",
                              json=group_with(identity))
            assert refused.status_code == 400, refused.text
            error = refused.json()["error"]
            assert error["code"] == "ManagedIdentityUnavailable"
            assert "--identity-url" in error["message"]
        assert api.put(f"{RG}/Microsoft.ContainerInstance/containerGroups/plain",
                       json=group_with({"type": "None"})).status_code == 201
        assert "IDENTITY_ENDPOINT" not in pod_env(fake, "plain")
        assert ("pods", NAMESPACE, "app") not in fake.objects
        assert client(server, anonymous=True).get("/identity/0123/token").status_code == 404
    finally:
        server.close()


def test_the_dns_server_answers_a_name_with_the_load_balancers_address(
        fake: FakeKubeApi, tmp_path: Path, client: Any) -> None:
    """--dns-listen on the kubernetes backend: a public group's dnsNameLabel resolves,
    over DNS, to its Service's load balancer address once the cloud gives one (after the
    group was deployed), follows it when it moves, and is gone with the group."""
    server = start(fake, tmp_path, dns=True)
    try:
        api = client(server)
        body = group_with(None, ipAddress={"type": "Public", "ports": [{"port": 80}],
                                           "dnsNameLabel": "shop-one"})
        body["properties"]["containers"][0]["properties"]["ports"] = [{"port": 80}]
        url = f"{RG}/Microsoft.ContainerInstance/containerGroups/web"
        made = api.put(url, json=body)
        assert made.status_code == 201, made.text
        assert server.plane.reconciler.wait_idle(
            server.plane.store.get_group(SUB, "rg", "web").uid)  # type: ignore[union-attr]
        assert server.dns is not None
        host, port = server.dns.address[:2]
        name = "shop-one.local.skiff.internal"

        def resolve() -> list[str]:
            answer = dns.query.udp(dns.message.make_query(name, dns.rdatatype.A), host,
                                   port=port, timeout=2)
            return [item.address for rrset in answer.answer for item in rrset]

        assert resolve() == []  # deployed, its load balancer pending
        fake.set_service_ingress(NAMESPACE, "web", "203.0.113.7")
        eventually(resolve, what="the name published", until=lambda f: f == ["203.0.113.7"])
        fake.set_service_ingress(NAMESPACE, "web", "203.0.113.8")
        eventually(resolve, what="the name moved", until=lambda f: f == ["203.0.113.8"])
        assert api.delete(url).status_code in (200, 202, 204)
        eventually(resolve, what="the name withdrawn", until=lambda f: f == [])
    finally:
        server.close()
