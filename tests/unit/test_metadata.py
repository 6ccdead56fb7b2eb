"""The identity endpoint's HTTP server and token signer, on a loopback socket (the node
hands it sockets made inside groups' namespaces; any listening socket serves the same)."""

from __future__ import annotations

import base64
import json
import socket
import stat
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import start_blocking_portal
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from skiff.control.identity import MANAGED_TOKEN_LIFETIME_S, Issuer, ManagedIdentityTokens
from skiff.core.identity import METADATA_LISTEN_PORT
from skiff.core.spec import Port
from skiff.engine.network.firewall import group_ruleset
from skiff.metadata import MetadataEndpoint, MetadataReply
from skiff.metadata.endpoint import MAX_CONNECTIONS, check_request, parse_head

TOKEN = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://r.test/"
HEADER_MISSING = {"error": "invalid_request",
                  "error_description": "Required metadata header not specified"}


def listening() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock


@pytest.fixture
def endpoint() -> Iterator[tuple[MetadataEndpoint, list[tuple[str, dict[str, str]]]]]:
    asked: list[tuple[str, dict[str, str]]] = []

    def answer(group_id: str, query: Mapping[str, str]) -> MetadataReply:
        asked.append((group_id, dict(query)))
        return MetadataReply(200, {"group": group_id})

    served = MetadataEndpoint(answer)
    try:
        yield served, asked
    finally:
        served.close()


def request(port: int, raw: bytes) -> tuple[int, dict[str, Any]]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(raw)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def get(port: int, target: str, *, metadata: bool = True) -> tuple[int, dict[str, Any]]:
    header = b"Metadata: true\r\n" if metadata else b""
    return request(port, f"GET {target} HTTP/1.1\r\nHost: x\r\n".encode() + header + b"\r\n")


def test_each_socket_answers_as_its_group(endpoint: Any) -> None:
    """Two groups' sockets: each request is answered for the group whose socket took it
    (never for what the request says); IMDS's errors before any answer is asked for."""
    served, asked = endpoint
    socks = {"g1": listening(), "g2": listening()}
    for group_id, sock in socks.items():
        served.serve(group_id, sock)
    assert served.groups() == ["g1", "g2"]
    ports = {g: s.getsockname()[1] for g, s in socks.items()}
    assert get(ports["g1"], TOKEN + "&client_id=x") == (200, {"group": "g1"})
    assert get(ports["g2"], TOKEN) == (200, {"group": "g2"})
    assert asked[0] == ("g1", {"api-version": "2018-02-01", "resource": "https://r.test/",
                               "client_id": "x"})
    assert get(ports["g1"], TOKEN, metadata=False) == (400, HEADER_MISSING)
    assert get(ports["g1"], "/metadata/instance?api-version=2021-02-01")[0] == 404
    assert get(ports["g1"], "/metadata/identity/oauth2/token?resource=r")[0] == 400
    assert get(ports["g1"], "/metadata/identity/oauth2/token?api-version=2018-02-01") == (
        400, {"error": "invalid_request",
              "error_description": "Required audience parameter not specified"})
    assert request(ports["g1"],
                   f"POST {TOKEN} HTTP/1.1\r\nMetadata: true\r\n\r\n".encode())[0] == 405
    assert request(ports["g1"], b"nonsense\r\n\r\n")[0] == 400
    assert len(asked) == 2
    served.withdraw("g1")
    assert served.groups() == ["g2"]
    with pytest.raises(ConnectionRefusedError):
        get(ports["g1"], TOKEN)
    served.withdraw("g1")  # twice: nothing
    assert get(ports["g2"], TOKEN)[0] == 200


def test_a_group_holds_a_bounded_number_of_connections(endpoint: Any) -> None:
    """Silent connections beyond the bound are closed at once; a request still gets its
    answer when the others end."""
    served, _ = endpoint
    sock = listening()
    served.serve("g", sock)
    port = sock.getsockname()[1]
    silent = [socket.create_connection(("127.0.0.1", port), timeout=5)
              for _ in range(MAX_CONNECTIONS)]
    try:
        extra = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            extra.sendall(f"GET {TOKEN} HTTP/1.1\r\nMetadata: true\r\n\r\n".encode())
            assert extra.recv(100) == b""  # closed unanswered
        except ConnectionResetError:
            pass  # closed unanswered, the request unread
        finally:
            extra.close()
    finally:
        for conn in silent:
            conn.close()
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(get(port, TOKEN)[0]))
    thread.start()
    thread.join(15)
    assert result == [200]


def test_a_failing_answer_is_a_500_in_imds_words() -> None:
    def answer(group_id: str, query: Mapping[str, str]) -> MetadataReply:
        raise RuntimeError("boom")

    served = MetadataEndpoint(answer)
    try:
        sock = listening()
        served.serve("g", sock)
        status, doc = get(sock.getsockname()[1], TOKEN)
        assert status == 500
        assert doc["error"] == "internal_error"
        assert "boom" not in json.dumps(doc)
    finally:
        served.close()
    served.withdraw("g")  # after close: nothing


def test_requests_are_checked_as_imds_checks_them() -> None:
    assert check_request("GET", TOKEN, {"metadata": "True"}) == {
        "api-version": "2018-02-01", "resource": "https://r.test/"}
    reply = check_request("GET", TOKEN, {"metadata": "false"})
    assert isinstance(reply, MetadataReply)
    assert reply.body == HEADER_MISSING
    assert parse_head(b"GET / HTTP/1.1\r\nA: b\r\nMetadata:  true ") == (
        "GET", "/", {"a": "b", "metadata": "true"})
    assert parse_head(b"GET / SPDY/3") is None
    assert parse_head(b"GET / HTTP/1.1\r\nno colon") is None


def test_the_group_filter_drops_the_endpoints_address_from_outside() -> None:
    """Whatever ports a group opens, 169.254.169.254 is dropped before them unless it
    comes through lo."""
    rules = group_ruleset([Port(80)])
    assert rules.index('iif "lo" accept') < rules.index("ip daddr 169.254.169.254 drop") \
        < rules.index("tcp dport { 80 } accept")


def test_port_80_of_the_endpoint_is_redirected_so_containers_keep_port_80() -> None:
    """The endpoint listens on METADATA_LISTEN_PORT (a socket on port 80 of any address
    would make a container's bind to 0.0.0.0:80 fail); the group's own requests to
    169.254.169.254:80 are redirected there, in the nat output hook."""
    rules = group_ruleset([Port(80)])
    assert "type nat hook output" in rules
    assert ("ip daddr 169.254.169.254 tcp dport 80 dnat ip to "
            f"169.254.169.254:{METADATA_LISTEN_PORT}") in rules
    assert METADATA_LISTEN_PORT > 60999  # above Linux's default ephemeral range


def raw(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_tokens_are_rs256_jwts_with_a_managed_identitys_claims(tmp_path: Path) -> None:
    """The token is signed by the node's issuer (it verifies with the published JWK, its
    kid in the header, and the issuer itself accepts it), names the principal, tenant,
    application and audience, and lives a day, as a managed identity's does."""
    issuer = Issuer(tmp_path / "keys", "tenant-1")
    tokens = ManagedIdentityTokens(issuer, "https://skiff.test/")
    issued = tokens.issue("oid-1", "tenant-1", "app-1", "https://r.test/")
    head, payload, signature = issued.token.split(".")
    (jwk,) = issuer.jwks()["keys"]
    assert json.loads(raw(head))["kid"] == jwk["kid"]
    assert json.loads(raw(head))["alg"] == "RS256"
    public = rsa.RSAPublicNumbers(int.from_bytes(raw(jwk["e"]), "big"),
                                  int.from_bytes(raw(jwk["n"]), "big")).public_key()
    public.verify(raw(signature), f"{head}.{payload}".encode(), padding.PKCS1v15(),
                  hashes.SHA256())
    claims = json.loads(raw(payload))
    assert (claims["oid"], claims["sub"], claims["tid"], claims["appid"], claims["aud"]) == \
        ("oid-1", "oid-1", "tenant-1", "app-1", "https://r.test/")
    assert claims["iss"] == "https://skiff.test/tenant-1/v2.0"
    assert claims["exp"] == issued.expires_on
    assert claims["exp"] - claims["iat"] == MANAGED_TOKEN_LIFETIME_S == 24 * 3600
    verified = issuer.verify(issued.token)
    assert (verified.oid, verified.appid, verified.aud) == ("oid-1", "app-1", "https://r.test/")
    assert stat.S_IMODE((tmp_path / "keys" / "signing.pem").stat().st_mode) == 0o600
    assert tokens.tenant_of("any") == "tenant-1"


def test_azure_identitys_managed_identity_credential_takes_the_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Azure SDK's ManagedIdentityCredential (IMDS flavour, pointed at the endpoint by
    AZURE_POD_IDENTITY_AUTHORITY_HOST as a pod identity is) gets the group's tokens: the
    system identity by default, a user-assigned one by client_id; a group without an
    identity makes it say no identity is assigned."""
    identity = pytest.importorskip("azure.identity")
    from skiff.api.app import create_app
    from skiff.testing.inprocess import InProcessClient, fake_plane

    with fake_plane(tmp_path) as plane, start_blocking_portal() as portal:
        _, secret = plane.store.create_token("sub", "t")
        api = InProcessClient(portal, create_app(plane), secret, suffix="?api-version=2023-05-01")
        rg = "/subscriptions/sub/resourceGroups/rg/providers"
        uai = api.put(f"{rg}/Microsoft.ManagedIdentity/userAssignedIdentities/worker",
                      json={"location": "local"}).json()
        container = {"name": "c", "properties": {"image": "registry.test/b:1", "resources": {
            "requests": {"cpu": 0.1, "memoryInGB": 0.1}}}}
        for name, kind in (("g", {"type": "SystemAssigned, UserAssigned",
                                  "userAssignedIdentities": {uai["id"]: {}}}), ("bare", None)):
            doc: dict[str, Any] = {"location": "local", "properties": {
                "osType": "Linux", "containers": [container]}}
            if kind:
                doc["identity"] = kind
            made = api.put(f"{rg}/Microsoft.ContainerInstance/containerGroups/{name}", json=doc)
            assert made.status_code == 201, made.text
        assert plane.identities is not None
        served = MetadataEndpoint(plane.identities.answer)
        try:
            ports = {}
            for name in ("g", "bare"):
                record = plane.store.get_group("sub", "rg", name)
                assert record is not None
                sock = listening()
                served.serve(record.uid, sock)
                ports[name] = sock.getsockname()[1]
            group = api.get(f"{rg}/Microsoft.ContainerInstance/containerGroups/g").json()
            monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST",
                               f"http://127.0.0.1:{ports['g']}")
            system = identity.ManagedIdentityCredential().get_token(
                "https://management.azure.com/.default")
            assert claims_of(system.token)["oid"] == group["identity"]["principalId"]
            assert system.expires_on > 0
            user = identity.ManagedIdentityCredential(
                client_id=uai["properties"]["clientId"]).get_token(
                "https://management.azure.com/.default")
            assert claims_of(user.token)["oid"] == uai["properties"]["principalId"]
            monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST",
                               f"http://127.0.0.1:{ports['bare']}")
            with pytest.raises(identity.CredentialUnavailableError, match="Identity not found"):
                identity.ManagedIdentityCredential().get_token(
                    "https://management.azure.com/.default")
        finally:
            served.close()


def claims_of(token: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(raw(token.split(".")[1]))
    return found
