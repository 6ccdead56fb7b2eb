"""skiff.metadata.appservice: the App Service managed identity protocol that groups on a
cluster get their tokens through (the header secret, the request's checks, the answer's
shape), and its plain-HTTP listener on loopback."""

from __future__ import annotations

import json
import stat
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from skiff.metadata.appservice import KEY_FILE, AppServiceEndpoint, serve_plain
from skiff.metadata.endpoint import MetadataReply, imds_error
from skiff.testing.waiting import eventually

UID = "0123456789abcdef0123456789abcdef"
TOKEN = {"access_token": "tok", "client_id": "app-1", "expires_in": "86399",
         "expires_on": "1900000000", "ext_expires_in": "86399", "not_before": "1",
         "resource": "https://r.test/", "token_type": "Bearer"}


class Recorder:
    """The node endpoint's answer: records what it was asked, answers a fixed token (or,
    for client_id "nobody", IMDS's Identity not found)."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, dict[str, str]]] = []

    def __call__(self, uid: str, query: Mapping[str, str]) -> MetadataReply:
        self.asked.append((uid, dict(query)))
        if query.get("client_id") == "nobody":
            return imds_error("Identity not found")
        return MetadataReply(200, {**TOKEN, "resource": query["resource"]})


def ask(endpoint: AppServiceEndpoint, answer: Recorder, *, method: str = "GET",
        path: str = f"/identity/{UID}/token", header: str | None = None,
        **query: str) -> tuple[int, dict[str, Any]]:
    query = {"api-version": "2019-08-01", "resource": "https://r.test/", **query}
    headers = {"x-identity-header": endpoint.secret(UID) if header is None else header}
    reply = endpoint.reply(method, path, list(query.items()), headers, answer)
    return reply.status, dict(reply.body)


def test_the_header_secret_is_the_groups_own_and_stable() -> None:
    """The same uid and key: the same secret (a Pod is not remade for it); another uid (a
    group made again) or another key: another one; 43 characters of base64url."""
    one = AppServiceEndpoint(b"k" * 32, "http://x")
    secret = one.secret(UID)
    assert len(secret) == 43
    assert secret.replace("-", "").replace("_", "").isalnum()
    assert AppServiceEndpoint(b"k" * 32, "http://y").secret(UID) == secret
    assert one.secret(UID[::-1]) != secret
    assert AppServiceEndpoint(b"j" * 32, "http://x").secret(UID) != secret
    assert one.endpoint(UID) == f"http://x/identity/{UID}/token"
    assert AppServiceEndpoint(b"k" * 32, "https://h:8443/base/").endpoint("u") == \
        "https://h:8443/base/identity/u/token"


def test_the_key_is_made_once_readable_by_its_owner_alone(tmp_path: Path) -> None:
    """The header key is made on first use (0600) and read back after: secrets survive a
    restart of skiff."""
    first = AppServiceEndpoint.from_key_dir(tmp_path / "keys", "http://x")
    assert stat.S_IMODE((tmp_path / "keys" / KEY_FILE).stat().st_mode) == 0o600
    again = AppServiceEndpoint.from_key_dir(tmp_path / "keys", "http://x")
    assert again.secret(UID) == first.secret(UID)


def test_a_token_is_answered_in_app_services_shape() -> None:
    """A good request: the node's answer cut to App Service's five fields, expires_on a
    string of epoch seconds; the group asked for is the one in the path."""
    answer = Recorder()
    status, body = ask(AppServiceEndpoint(b"k" * 32, "http://x"), answer)
    assert status == 200
    assert body == {"access_token": "tok", "expires_on": "1900000000",
                    "resource": "https://r.test/", "token_type": "Bearer", "client_id": "app-1"}
    assert answer.asked == [(UID, {"resource": "https://r.test/"})]


@pytest.mark.parametrize(("given", "imds"), [
    ({"client_id": "c"}, {"client_id": "c"}),
    ({"object_id": "o"}, {"object_id": "o"}),
    ({"principal_id": "o"}, {"object_id": "o"}),
    ({"mi_res_id": "/subscriptions/s/x"}, {"msi_res_id": "/subscriptions/s/x"}),
])
def test_app_services_selectors_become_imds_ones(given: dict[str, str],
                                                 imds: dict[str, str]) -> None:
    """client_id, object_id (or principal_id) and mi_res_id reach the node's picking code
    under IMDS's names."""
    answer = Recorder()
    status, _ = ask(AppServiceEndpoint(b"k" * 32, "http://x"), answer, **given)
    assert status == 200
    assert answer.asked == [(UID, {"resource": "https://r.test/", **imds})]


@pytest.mark.parametrize(("options", "status", "message"), [
    ({"path": "/identity/token"}, 404, "Not found"),
    ({"path": f"/metadata/identity/{UID}/token"}, 404, "Not found"),
    ({"method": "POST"}, 405, "Method not allowed"),
    ({"header": ""}, 401, "The X-IDENTITY-HEADER header is missing"),
    ({"header": "x" * 43}, 401, "The X-IDENTITY-HEADER header is not this group's"),
    ({"api-version": "2017-09-01"}, 400, "api-version must be 2019-08-01"),
    ({"resource": ""}, 400, "Required parameter 'resource' is missing"),
    ({"object_id": "a", "principal_id": "b"}, 400,
     "Only one of client_id, object_id and msi_res_id may be given"),
    ({"client_id": "nobody"}, 400, "Identity not found"),
])
def test_bad_requests_are_refused_in_app_services_words(options: dict[str, str], status: int,
                                                        message: str) -> None:
    """Each bad request: its status and {"statusCode", "message"}, which MSAL quotes; the
    node's own errors (Identity not found) passed on; nothing asked of the node before
    the header is checked."""
    answer = Recorder()
    endpoint = AppServiceEndpoint(b"k" * 32, "http://x")
    got = ask(endpoint, answer, **options)
    assert got == (status, {"statusCode": status, "message": message})
    if status in (401, 404, 405):
        assert answer.asked == []


def test_another_groups_secret_is_refused() -> None:
    """The secret of one group does not open another's endpoint."""
    endpoint = AppServiceEndpoint(b"k" * 32, "http://x")
    status, _ = ask(endpoint, Recorder(), path=f"/identity/{UID[::-1]}/token")
    assert status == 401


def test_the_plain_http_listener_serves_the_endpoint(tmp_path: Path) -> None:
    """serve_plain on loopback: a token for the right header, 401 for a wrong one, each
    JSON; shut down cleanly."""
    endpoint = AppServiceEndpoint(b"k" * 32, "http://x")
    server = serve_plain("127.0.0.1:0", endpoint, Recorder())
    try:
        port = server.server_address[1]
        url = f"http://127.0.0.1:{port}/identity/{UID}/token?api-version=2019-08-01" \
              "&resource=https%3A%2F%2Fr.test%2F"
        good = urllib.request.Request(url, headers={"X-IDENTITY-HEADER": endpoint.secret(UID)})
        with urllib.request.urlopen(good, timeout=5) as answer:  # noqa: S310 -- loopback
            assert json.loads(answer.read())["access_token"] == "tok"
        bad = urllib.request.Request(url, headers={"X-IDENTITY-HEADER": "nope"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad, timeout=5)  # noqa: S310 -- loopback
        assert refused.value.code == 401
        assert json.loads(refused.value.read())["statusCode"] == 401
    finally:
        server.shutdown()
        server.server_close()


def test_the_plain_listener_bounds_one_clients_connections(tmp_path: Path) -> None:
    """A client holding MAX_CONNECTIONS idle connections gets its next one closed at once
    (not a thread more); once it lets one go, it is served again."""
    import socket

    from skiff.metadata.appservice import MAX_CONNECTIONS

    endpoint = AppServiceEndpoint(b"k" * 32, "http://x")
    server = serve_plain("127.0.0.1:0", endpoint, Recorder())
    held: list[socket.socket] = []
    try:
        address = ("127.0.0.1", int(server.server_address[1]))
        held = [socket.create_connection(address, timeout=5) for _ in range(MAX_CONNECTIONS)]
        for sock in held:  # each accepted and given its thread: a byte of its head arrives
            sock.sendall(b"G")
        extra = socket.create_connection(address, timeout=5)
        with extra:
            assert extra.recv(1) == b""  # closed by the server, not left waiting
        held.pop().close()
        url = f"http://127.0.0.1:{address[1]}/identity/{UID}/token?api-version=2019-08-01" \
              "&resource=https%3A%2F%2Fr.test%2F"
        good = urllib.request.Request(url, headers={"X-IDENTITY-HEADER": endpoint.secret(UID)})

        def served() -> bool:
            try:
                with urllib.request.urlopen(good, timeout=5) as answer:  # noqa: S310
                    return bool(json.loads(answer.read())["access_token"] == "tok")
            except OSError:
                return False

        eventually(served, what="a request once a connection was let go")
    finally:
        for sock in held:
            sock.close()
        server.shutdown()
        server.server_close()
