"""The API at the groups' gateways (skiff.gateway): the relay ends TLS with the gateway's
own certificate, passes requests to the real API pinned to its certificate, bounds its
clients, and the URLs the API builds follow the gateway only when it is served."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from fastapi import Request
from fastapi.routing import APIRoute

from skiff.api.clients import RELAYED, client_address, relayed
from skiff.api.tls import ensure_address_certificate, ensure_certificates
from skiff.engine.network.firewall import host_guard_ruleset
from skiff.errors import NetworkError
from skiff.gateway import ApiRelay
from skiff.gateway import relay as relay_module
from skiff.gateway.relay import upstream_context
from skiff.testing.inprocess import FakeHttps, fake_https
from skiff.testing.registry import free_port
from skiff.testing.waiting import eventually

API = "api-version=2023-05-01"
#: A loopback address no one listens on: it stands for a group's gateway.
GATEWAY = "127.0.0.2"
GROUPS = "/subscriptions/sub-a/resourceGroups/rg/providers/Microsoft.ContainerInstance/" \
         "containerGroups"
BODY = {"location": "local", "properties": {"osType": "Linux", "containers": [
    {"name": "c", "properties": {"image": "registry.test/busybox:1",
                                 "resources": {"requests": {"cpu": 0.1, "memoryInGB": 0.1}}}}]}}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[FakeHttps, ApiRelay]]:
    with fake_https(tmp_path / "root") as https:
        root = tmp_path / "root"

        def certificates(address: str) -> tuple[Path, Path]:
            files = ensure_address_certificate(root, address)
            return files.cert, files.key

        api_port = int(https.url.rpartition(":")[2])
        relay = ApiRelay(free_port(), ("127.0.0.1", api_port), root / "server.pem",
                         certificates, per_client=2)
        https.plane.api_hosts = relay.hosts
        https.plane.relay_clients = relay.client_of
        try:
            yield https, relay
        finally:
            relay.close()


def _client(https: FakeHttps, url: str) -> httpx.Client:
    _, secret = https.plane.store.create_token(None, "admin")
    return httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=str(https.ca)),
                        headers={"Authorization": f"Bearer {secret}"}, timeout=10)


def test_a_group_reaches_the_api_at_its_gateway_and_is_sent_back_there(
        served: tuple[FakeHttps, ApiRelay]) -> None:
    """Through the relay, a client that trusts skiff's CA checks the gateway's name in
    the certificate, creates a group and is given operation URLs and next pages at the
    gateway; the same API reached at its own address answers its own."""
    https, relay = served
    relay.serve(GATEWAY)
    relay.serve(GATEWAY)  # idempotent
    at_gateway = f"https://{GATEWAY}:{relay.port}"
    assert relay.hosts() == {f"{GATEWAY}:{relay.port}"}
    with _client(https, at_gateway) as client:
        made = client.put(f"{GROUPS}/g1?{API}", json=BODY)
        assert made.status_code == 201, made.text
        assert made.headers["Azure-AsyncOperation"].startswith(f"{at_gateway}/subscriptions/")
        polled = client.get(made.headers["Azure-AsyncOperation"])
        assert polled.status_code == 200, polled.text
        client.put(f"{GROUPS}/g2?{API}", json=BODY)
        settings = https.plane.settings
        https.plane.settings = dataclasses.replace(
            settings, api=dataclasses.replace(settings.api, page_size=1))
        listed = client.get(f"{GROUPS}?{API}").json()
        assert listed["nextLink"].startswith(f"{at_gateway}{GROUPS}?")
        assert len(client.get(listed["nextLink"]).json()["value"]) == 1
    with _client(https, https.url) as direct:
        again = direct.post(f"{GROUPS}/g1/restart?{API}")
        assert again.headers["Azure-AsyncOperation"].startswith(f"{https.url}/")


def test_a_host_the_api_does_not_serve_is_never_echoed_back(
        served: tuple[FakeHttps, ApiRelay]) -> None:
    """A Host header naming another server (or a gateway no longer served) gets the
    configured base URL in the operation URLs, not the name the client sent."""
    https, relay = served
    relay.serve(GATEWAY)
    with _client(https, https.url) as client:
        made = client.put(f"{GROUPS}/g1?{API}", json=BODY,
                          headers={"Host": "attacker.example:443"})
        assert made.status_code == 201, made.text
        assert made.headers["Azure-AsyncOperation"].startswith(f"{https.url}/")
        assert relay.withdraw(GATEWAY)
        restarted = client.post(f"{GROUPS}/g1/restart?{API}",
                                headers={"Host": f"{GATEWAY}:{relay.port}"})
        assert restarted.headers["Azure-AsyncOperation"].startswith(f"{https.url}/")


def test_the_gateway_certificate_names_the_gateway_alone(tmp_path: Path) -> None:
    """A gateway's certificate is signed by skiff's CA, names only its address, and is
    made once; one made by an earlier CA is made again."""
    server = ensure_certificates(tmp_path, "127.0.0.1")
    files = ensure_address_certificate(tmp_path, "10.89.0.1")
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    ca = x509.load_pem_x509_certificate(server.ca.read_bytes())
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in names] == ["10.89.0.1"]
    assert oct(files.key.stat().st_mode & 0o777) == "0o600"
    first = files.cert.read_bytes()
    assert ensure_address_certificate(tmp_path, "10.89.0.1").cert.read_bytes() == first
    for old in (tmp_path / "ca.pem", tmp_path / "ca.key"):
        old.unlink()
    ensure_certificates(tmp_path, "127.0.0.1")  # a new CA
    renewed = ensure_address_certificate(tmp_path, "10.89.0.1")
    assert renewed.cert.read_bytes() != first


def test_the_relay_trusts_the_apis_certificate_and_no_other(tmp_path: Path) -> None:
    """The relay's TLS to the API is pinned to the API's own certificate: a server with
    another certificate (of the same CA, or of another) is refused."""
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    server = ensure_certificates(tmp_path / "a", "127.0.0.1")
    same_ca = ensure_address_certificate(tmp_path / "a", "127.0.0.1")
    other = ensure_certificates(tmp_path / "b", "127.0.0.1")
    pinned = upstream_context(server.cert)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        for files, ok in ((server, True), (same_ca, False), (other, False)):
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(files.cert, files.key)
            with socket.create_connection(("127.0.0.1", port)) as raw:
                conn, _ = listener.accept()
                with conn:
                    thread = threading.Thread(target=_accept_tls, args=(context, conn))
                    thread.start()
                    try:
                        with pinned.wrap_socket(raw, server_hostname="127.0.0.1"):
                            assert ok
                    except ssl.SSLCertVerificationError:
                        assert not ok
                    thread.join(timeout=10)


def _accept_tls(context: ssl.SSLContext, conn: socket.socket) -> None:
    try:
        with context.wrap_socket(conn, server_side=True):
            pass
    except (ssl.SSLError, OSError):
        pass


def test_one_client_holds_at_most_its_share_of_the_relay(
        served: tuple[FakeHttps, ApiRelay]) -> None:
    """Beyond ``per_client`` connections at once from one address, a new one is closed
    at once; once one ends, a new one is served again."""
    https, relay = served
    relay.serve(GATEWAY)
    context = ssl.create_default_context(cafile=str(https.ca))

    def connect() -> ssl.SSLSocket:
        raw = socket.create_connection((GATEWAY, relay.port), timeout=10)
        return context.wrap_socket(raw, server_hostname=GATEWAY)

    def answers(conn: ssl.SSLSocket) -> bool:
        try:
            conn.sendall(b"GET /metadata/endpoints HTTP/1.1\r\nHost: x\r\n\r\n")
            return conn.recv(12).startswith(b"HTTP/1.1")
        except OSError:
            return False

    def served_anew() -> bool:
        try:
            with connect() as conn:
                return answers(conn)
        except OSError:
            return False

    held = [connect(), connect()]
    try:
        assert all(answers(c) for c in held)
        assert not served_anew()
        held.pop().close()
        eventually(served_anew, what="a new connection is served", timeout_s=10)
    finally:
        for conn in held:
            conn.close()


def test_the_host_guard_opens_the_api_port_only_when_asked() -> None:
    """Without an API port the host guard lets the groups reach DNS alone; with one, that
    TCP port on the gateway too, before the drop."""
    closed = host_guard_ruleset("sk1234", "10.89.0.1")
    assert "tcp dport 8443" not in closed
    assert "dport 53" in closed
    opened = host_guard_ruleset("sk1234", "10.89.0.1", 8443)
    rule = 'iifname "sk1234" ip daddr 10.89.0.1 tcp dport 8443 accept'
    assert rule in opened
    assert opened.index(rule) < opened.index('iifname "sk1234" drop')
    with pytest.raises(Exception, match="between 1 and 65535"):
        host_guard_ruleset("sk1234", "10.89.0.1", 70000)


def test_busyboxs_own_tls_client_is_served(served: tuple[FakeHttps, ApiRelay]) -> None:
    """busybox wget with no openssl to run (as in a busybox image) speaks its own TLS 1.2,
    whose ClientHello names no signature algorithms: the relay still completes the
    handshake (ECDHE, AES-GCM) and the API answers through it."""
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("no busybox on this machine")
    _, relay = served
    relay.serve(GATEWAY)
    url = f"https://{GATEWAY}:{relay.port}/metadata/endpoints?api-version=2022-09-01"
    done = subprocess.run([busybox, "wget", "-q", "-O-", "--no-check-certificate", url],
                          env={"PATH": "/nonexistent"},  # no openssl: busybox's ssl_client
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert '"resourceManager":"https://127.0.0.2:' in done.stdout


def test_the_relay_offers_no_weak_cipher(served: tuple[FakeHttps, ApiRelay]) -> None:
    """A TLS 1.2 client that offers only suites without forward secrecy or with CBC (SHA-1
    or SHA-256 MACs) is refused: security level 0 opened none of them."""
    https, relay = served
    relay.serve(GATEWAY)
    context = ssl.create_default_context(cafile=str(https.ca))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("AES128-GCM-SHA256:ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA256:"
                        "@SECLEVEL=0")
    with socket.create_connection((GATEWAY, relay.port), timeout=10) as raw, \
            pytest.raises(ssl.SSLError):
        context.wrap_socket(raw, server_hostname=GATEWAY)


def _echo_client(https: FakeHttps) -> None:
    """A route that answers who the API takes the client for."""
    plane = https.plane

    async def who(request: Request) -> dict[str, object]:
        return {"relayed_client": plane.relayed_client(request),
                "client": request.client.host if request.client else None,
                "via": request.scope.get(RELAYED)}

    https.app.router.routes.insert(0, APIRoute("/_test/client", who, methods=["GET"]))


def _from(address: str, https: FakeHttps, url: str) -> httpx.Client:
    transport = httpx.HTTPTransport(
        local_address=address, verify=ssl.create_default_context(cafile=str(https.ca)))
    return httpx.Client(base_url=url, transport=transport, timeout=10)


def test_the_api_knows_the_true_client_of_a_relayed_request(
        served: tuple[FakeHttps, ApiRelay], monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the relay the API takes the client for the address the relay was reached
    from (not its own loopback), whatever X-Forwarded-For says; reached directly, for the
    connection's peer, the header ignored too. A connection's client is forgotten after
    it ended (and the linger)."""
    https, relay = served
    _echo_client(https)
    relay.serve(GATEWAY)
    forged = {"X-Forwarded-For": "10.9.9.9", "Forwarded": "for=10.9.9.9"}
    with _from("127.0.0.3", https, f"https://{GATEWAY}:{relay.port}") as client:
        seen = client.get("/_test/client", headers=forged).json()
    assert seen["relayed_client"] == seen["client"] == "127.0.0.3"
    host, port = seen["via"]
    assert host == "127.0.0.1"
    assert relay.client_of(host, port) is not None  # lingers after the end
    with _from("127.0.0.1", https, https.url) as direct:
        seen = direct.get("/_test/client", headers=forged).json()
    assert seen == {"relayed_client": "127.0.0.1", "client": "127.0.0.1", "via": None}

    monkeypatch.setattr(relay_module, "CLIENT_LINGER_S", 0.0)
    with _from("127.0.0.4", https, f"https://{GATEWAY}:{relay.port}") as client:
        again = client.get("/_test/client").json()
    assert again["client"] == "127.0.0.4"
    eventually(lambda: relay.client_of(host, port) is None or tuple(again["via"]) == (host, port),
               what="the ended connection's client is forgotten", timeout_s=10)


def test_the_client_of_a_scope_comes_from_the_relay_alone() -> None:
    """The middleware's rewrite: a scope whose peer the relay knows gets the relay's
    client (once: a second pass changes nothing); any other keeps its own."""
    known = {("127.0.0.1", 5000): ("10.88.0.7", 41000)}

    def lookup(host: str, port: int) -> tuple[str, int] | None:
        return known.get((host, port))

    scope = {"type": "http", "client": ("127.0.0.1", 5000)}
    moved = relayed(scope, lookup)
    assert moved["client"] == ("10.88.0.7", 41000)
    assert moved[RELAYED] == ("127.0.0.1", 5000)
    assert relayed(moved, lookup) is moved
    assert client_address(moved, lookup) == "10.88.0.7"
    other = {"type": "websocket", "client": ("127.0.0.1", 5001)}
    assert relayed(other, lookup) is other
    assert client_address(other, None) == "127.0.0.1"
    assert client_address({"type": "http"}, lookup) is None


def test_a_withdrawn_gateway_is_closed_when_withdraw_returns(
        served: tuple[FakeHttps, ApiRelay]) -> None:
    """Once withdraw returns, nothing listens on the gateway's port any more (another
    socket binds it), and the gateway is no longer among the API's hosts."""
    _, relay = served
    relay.serve(GATEWAY)
    with pytest.raises(NetworkError, match="in use"), \
            relay_module.listen_on(GATEWAY, relay.port):
        pass
    assert relay.withdraw(GATEWAY)
    assert not relay.withdraw(GATEWAY)
    assert relay.hosts() == frozenset()
    with relay_module.listen_on(GATEWAY, relay.port):
        pass


def test_the_relays_connections_send_small_writes_at_once() -> None:
    """A connection accepted on a gateway's listener has TCP_NODELAY (asyncio sets it on
    sockets that name TCP): without it, Nagle held a response's second TLS record for
    the client's delayed ACK, ≈ 40 ms a request."""

    async def nodelay_of_accepted() -> int:
        sock = relay_module.listen_on(GATEWAY, free_port())
        port = sock.getsockname()[1]
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def accepted(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.set_result(writer.get_extra_info("socket").getsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        async with await asyncio.start_server(accepted, sock=sock):
            _, writer = await asyncio.open_connection(GATEWAY, port)
            try:
                return await asyncio.wait_for(seen, 10)
            finally:
                writer.close()

    assert asyncio.run(nodelay_of_accepted()) == 1
