"""The data plane's listener: requests handled off the event loop (a blocked store read or
a slow body holds nothing else up), and connections bounded per client address."""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from skiff.api.tls import ensure_certificates
from skiff.core.shares import ShareRef
from skiff.files import app as files_app
from skiff.files import auth, limits, serving
from skiff.server import bind
from skiff.testing.fakefiles import FakeFileShares
from skiff.testing.waiting import eventually


@dataclass
class Served:
    host: str
    port: int
    ca: str
    shares: FakeFileShares
    keys: tuple[str, str]

    def connect(self, source: str = "127.0.0.1") -> http.client.HTTPSConnection:
        connection = http.client.HTTPSConnection(
            self.host, self.port, context=ssl.create_default_context(cafile=self.ca),
            timeout=10, source_address=(source, 0))
        connection.connect()
        return connection

    def signed(self, method: str, path: str, query: str = "",
               headers: dict[str, str] | None = None, length: int = 0) -> dict[str, str]:
        sent = {"x-ms-version": "2025-05-05", "x-ms-date": email.utils.formatdate(usegmt=True),
                "content-length": str(length), **(headers or {})}
        sent["authorization"] = auth.shared_key_header(
            "acct1", self.keys[0], method, sent, path, auth.decoded_query(query))
        return sent

    def list_shares(self, connection: http.client.HTTPSConnection) -> tuple[int, str]:
        """A signed List Shares on ``connection``: its status and error code."""
        connection.request("GET", "/acct1?comp=list",
                           headers=self.signed("GET", "/acct1", "comp=list"))
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("x-ms-error-code") or ""


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    tls = ensure_certificates(tmp_path, "127.0.0.1")
    shares = FakeFileShares(tmp_path / "shares")
    keys = shares.add_account("acct1")
    shares.create_share(ShareRef("acct1", "data"))
    started: list[serving.FilesServer] = []

    def start(*, workers: int = files_app.WORKERS,
              per_client: int = serving.MAX_CONNECTIONS_PER_CLIENT) -> Served:
        sock, listen = bind("127.0.0.1:0")
        server = serving.start(sock, listen, shares, cert=tls.cert, key=tls.key,
                               workers=workers, per_client=per_client)
        started.append(server)
        host, port = server.url.removeprefix("https://").rsplit(":", 1)
        return Served(host, int(port), str(tls.ca), shares, keys)

    yield start
    for server in started:
        server.close()


def test_a_blocked_store_read_holds_up_no_other_request(serve: Callable[..., Served],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    served: Served = serve(workers=4)
    entered, release = threading.Event(), threading.Event()
    keys_of = served.shares.account_keys

    def slow_keys(account: str) -> tuple[str, str]:
        if account == "slow":  # a store read that takes its time
            entered.set()
            release.wait(timeout=20)
        return keys_of(account)

    monkeypatch.setattr(served.shares, "account_keys", slow_keys)
    answers: list[int] = []

    def slow_request() -> None:
        with contextlib.closing(served.connect()) as connection:
            connection.request("GET", "/slow?comp=list",
                               headers=served.signed("GET", "/slow", "comp=list"))
            answers.append(connection.getresponse().status)

    waiter = threading.Thread(target=slow_request)
    waiter.start()
    try:
        assert entered.wait(timeout=10)
        # answered while the other still waits
        with contextlib.closing(served.connect()) as connection:
            assert served.list_shares(connection) == (200, "")
        assert waiter.is_alive()
    finally:
        release.set()
        waiter.join(timeout=20)
    assert answers == [403]  # no such account: as a wrong key


def test_a_slow_body_holds_no_worker(serve: Callable[..., Served]) -> None:
    """With one worker thread, a Put Range whose body has not come yet leaves it free."""
    served: Served = serve(workers=1)
    served.shares.root(ShareRef("acct1", "data")).joinpath("f").write_bytes(b"\0" * 8)
    path = "/acct1/data/f"
    with contextlib.closing(served.connect()) as slow:
        slow.putrequest("PUT", f"{path}?comp=range", skip_accept_encoding=True)
        for name, value in served.signed("PUT", path, "comp=range", {
                "x-ms-range": "bytes=0-3", "x-ms-write": "update"}, length=4).items():
            slow.putheader(name, value)
        slow.endheaders()  # the headers only: the body comes later
        with contextlib.closing(served.connect()) as other:
            assert served.list_shares(other) == (200, "")
        slow.send(b"abcd")
        response = slow.getresponse()
        response.read()
        assert response.status == 201, response.getheader("x-ms-error-code")
    assert served.shares.root(ShareRef("acct1", "data")).joinpath("f").read_bytes() == \
        b"abcd" + b"\0" * 4


def test_a_client_gets_at_most_its_connections_others_are_unaffected(
        serve: Callable[..., Served], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "BUSY_GRACE_S", 0.5)
    served: Served = serve(per_client=2)
    first, second = served.connect(), served.connect()
    try:
        assert served.list_shares(first) == (200, "")
        assert served.list_shares(second) == (200, "")
        # a third from the same address: heard, answered 503 ServerBusy, closed
        with contextlib.closing(served.connect()) as third:
            third.request("GET", "/acct1?comp=list",
                          headers=served.signed("GET", "/acct1", "comp=list"))
            response = third.getresponse()
            body = response.read()
            assert response.status == 503
            assert response.getheader("x-ms-error-code") == "ServerBusy"
            assert response.getheader("connection") == "close"
            assert b"<Code>ServerBusy</Code>" in body
        # another address has its own allowance
        with contextlib.closing(served.connect("127.0.0.2")) as elsewhere:
            assert served.list_shares(elsewhere) == (200, "")
        # one beyond that sends nothing is closed after the grace
        with socket.create_connection((served.host, served.port), timeout=10,
                                      source_address=("127.0.0.1", 0)) as raw:
            context = ssl.create_default_context(cafile=served.ca)
            with context.wrap_socket(raw, server_hostname=served.host) as silent:
                assert silent.recv(1) == b""  # closed by the server, not timed out here
        # the held ones still work; once one closes, a new one is served
        assert served.list_shares(first) == (200, "")
        first.close()

        def served_again() -> bool:
            with contextlib.closing(served.connect()) as again:
                return served.list_shares(again) == (200, "")

        eventually(served_again, what="a new connection is served", timeout_s=10)
    finally:
        first.close()
        second.close()


def test_slots_count_per_client() -> None:
    slots = limits.ClientSlots(2)
    assert slots.take("a")
    assert slots.take("a")
    assert not slots.take("a")
    assert slots.take("b")
    slots.give("a")
    assert slots.held("a") == 1
    assert slots.take("a")
    slots.give("a")
    slots.give("a")
    assert slots.held("a") == 0
    with pytest.raises(ValueError, match="at least 1"):
        limits.ClientSlots(0)
