"""The portal's storage pages in process: accounts and shares from the ARM API, a share's
directories browsed, a file uploaded and downloaded through the Azure Files data plane
with the key the caller's role may list; a directory made, a file and an emptied
directory deleted (a full one refused with the data plane's message); a Reader may look
but not read files, a role that may not write shares is offered no change and refused
one, and a change without the session's CSRF token, or too large, writes nothing."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import MutableMapping
from typing import Any

import anyio
import httpx
import pytest

from skiff.portal import storage
from skiff.portal.arm import Permissions
from skiff.portal.files import Share
from skiff.portal.sessions import COOKIE
from skiff.testing.inprocess import InProcessClient
from skiff.testing.waiting import eventually
from tests.unit.test_portal import (  # noqa: F401  (fixtures)
    RG,
    SAME_ORIGIN,
    SUB,
    Served,
    admin,
    admin_token,
    browser,
    csrf_of,
    served,
    sign_in,
)

ACCOUNTS = f"{RG}/providers/Microsoft.Storage/storageAccounts"
PAGE = f"/portal/storage/{SUB}/rg/acct"


@pytest.fixture
def share(admin: InProcessClient) -> str:  # noqa: F811
    """Account ``acct`` with share ``data`` in ``rg``: the account's key."""
    assert admin.put(RG, json={"location": "local"}).status_code == 201
    assert admin.put(f"{ACCOUNTS}/acct", json={"location": "local", "kind": "StorageV2",
                                               "sku": {"name": "Standard_LRS"}}).status_code == 200
    made = admin.put(f"{ACCOUNTS}/acct/fileServices/default/shares/data",
                     json={"properties": {"shareQuota": 1}})
    assert made.status_code in (200, 201), made.text
    return str(admin.post(f"{ACCOUNTS}/acct/listKeys").json()["keys"][0]["value"])


def upload(browser: InProcessClient, name: str, data: bytes, path: str = "",  # noqa: F811
           csrf: str | None = None) -> httpx.Response:
    token = csrf if csrf is not None else csrf_of(browser.get(f"{PAGE}/data").text)
    return browser.post(f"{PAGE}/data/upload", headers=SAME_ORIGIN,
                        data={"csrf": token, "path": path}, files={"file": (name, data)})


def test_accounts_shares_and_files_round_trip(served: Served, browser: InProcessClient,  # noqa: F811
                                              admin_token: str, share: str) -> None:  # noqa: F811
    """The list names the account, its page the share; a file uploaded into a directory
    made through the data plane is listed there and downloads byte for byte; the key is
    never in a page."""
    sign_in(browser, admin_token)
    listed = browser.get("/portal/storage")
    assert listed.status_code == 200
    assert f'href="{PAGE}"' in listed.text
    assert f'href="{PAGE}/data"' in browser.get(PAGE).text
    files = storage._files_app(type("R", (), {"app": served.app})())
    assert files is not None
    served.loop.call(functools.partial(
        Share(files, "acct", share, "data").request, "PUT", "logs",
        params={"restype": "directory"},
        headers={"x-ms-file-attributes": "None", "x-ms-file-creation-time": "now",
                 "x-ms-file-last-write-time": "now", "x-ms-file-permission": "inherit"}))
    root = browser.get(f"{PAGE}/data").text
    assert "logs/</a>" in root
    assert share not in root
    sent = bytes(range(256)) * 40
    answer = upload(browser, "../../b in.bin", sent, "logs")
    assert answer.status_code == 303, answer.text
    shown = browser.get(answer.headers["location"]).text
    assert "Uploaded b in.bin" in shown
    assert re.search(r'<td class="name">b in.bin</td><td class="num">10240</td>', shown)
    got = browser.get(f"{PAGE}/data/download?path=logs/b%20in.bin")
    assert got.status_code == 200
    assert got.content == sent
    assert got.headers["content-disposition"] == \
        "attachment; filename=\"b in.bin\"; filename*=UTF-8''b%20in.bin"
    missing = browser.get(f"{PAGE}/data/download?path=nope.txt")
    assert missing.status_code == 404
    assert "ResourceNotFound" in missing.text


def test_an_upload_needs_the_sessions_csrf_and_fits_the_limit(
        browser: InProcessClient, admin_token: str, share: str,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A forged upload and one over the limit write nothing."""
    sign_in(browser, admin_token)
    assert upload(browser, "a.txt", b"x", csrf="forged").status_code == 403
    monkeypatch.setattr(storage, "MAX_UPLOAD", 1000)
    assert upload(browser, "big.bin", b"x" * 2000).status_code == 413
    page = browser.get(f"{PAGE}/data").text
    assert "a.txt" not in page
    assert "big.bin" not in page


def test_a_reader_sees_accounts_but_not_files(browser: InProcessClient,  # noqa: F811
                                              admin: InProcessClient,  # noqa: F811
                                              share: str) -> None:
    """Without listKeys the share's page says why it cannot show the files."""
    principal = admin.post("/skiff/servicePrincipals", json={
        "displayName": "r", "role": "Reader", "scopes": [RG]}).json()
    token = browser.post(f"/{principal['tenant']}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": principal["appId"],
        "client_secret": principal["password"], "scope": "https://skiff.test/.default"})
    sign_in(browser, token.json()["access_token"])
    assert f'href="{PAGE}"' in browser.get("/portal/storage").text
    refused = browser.get(f"{PAGE}/data")
    assert refused.status_code == 403
    assert "listKeys" in refused.text


def _post(browser: InProcessClient, action: str, csrf: str | None = None,  # noqa: F811
          **fields: str) -> httpx.Response:
    token = csrf if csrf is not None else csrf_of(browser.get(f"{PAGE}/data").text)
    return browser.post(f"{PAGE}/data/{action}", headers=SAME_ORIGIN,
                        data={"csrf": token, **fields})


def test_make_a_directory_then_delete_a_file_and_the_emptied_directory(
        browser: InProcessClient, admin_token: str, share: str) -> None:  # noqa: F811
    """A directory made from the page is listed; deleting it while it holds a file shows
    the data plane's DirectoryNotEmpty beside the confirmation; the file deleted first,
    the directory goes too. Each delete asks first, with a form of the session."""
    sign_in(browser, admin_token)
    made = _post(browser, "mkdir", name="logs", path="")
    assert made.status_code == 303, made.text
    root = browser.get(made.headers["location"]).text
    assert "Made directory logs" in root
    assert "logs/</a>" in root
    taken = _post(browser, "mkdir", name="logs", path="")
    assert taken.status_code == 200
    assert re.search(r'id="mkdir-error"[^>]*>ResourceAlreadyExists: ', taken.text)
    assert 'aria-invalid="true"' in taken.text
    assert "one name" in _post(browser, "mkdir", name="a/b", path="").text
    assert upload(browser, "note.txt", b"hello", "logs").status_code == 303
    asked = browser.get(f"{PAGE}/data/delete?path=logs&kind=directory")
    assert asked.status_code == 200
    assert "Delete directory logs?" in asked.text
    assert 'name="csrf"' in asked.text
    full = _post(browser, "delete", path="logs", kind="directory")
    assert full.status_code == 200
    assert "DirectoryNotEmpty: The specified directory is not empty." in full.text
    assert "note.txt" in browser.get(f"{PAGE}/data?path=logs").text
    gone = _post(browser, "delete", path="logs/note.txt", kind="file")
    assert gone.status_code == 303
    assert gone.headers["location"].startswith(f"{PAGE}/data?path=logs&")
    assert "note.txt" not in browser.get(f"{PAGE}/data?path=logs").text
    emptied = _post(browser, "delete", path="logs", kind="directory")
    assert emptied.status_code == 303
    listed = browser.get(emptied.headers["location"]).text
    assert "Deleted logs" in listed
    assert "logs/</a>" not in listed
    assert "InvalidUri" in _post(browser, "delete", path="", kind="directory").text
    missing = _post(browser, "delete", path="nope.txt", kind="file")
    assert "ResourceNotFound" in missing.text


def test_changes_need_the_sessions_csrf(browser: InProcessClient, admin_token: str,  # noqa: F811
                                        share: str) -> None:
    """A directory or a delete posted without the session's token changes nothing."""
    sign_in(browser, admin_token)
    assert _post(browser, "mkdir", csrf="forged", name="x").status_code == 403
    assert upload(browser, "keep.txt", b"k").status_code == 303
    assert _post(browser, "delete", csrf="forged", path="keep.txt",
                 kind="file").status_code == 403
    page = browser.get(f"{PAGE}/data").text
    assert "x/</a>" not in page
    assert "keep.txt" in page


def test_a_role_that_may_not_write_shares_sees_no_changes_and_a_forged_post_is_refused(
        served: Served, browser: InProcessClient, admin: InProcessClient,  # noqa: F811
        admin_token: str, share: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """Where the caller's permissions leave out the shares' write, the page offers no
    upload, directory or delete, and such posts (with the session's own CSRF token) are
    refused (403) and change nothing; a Reader's are refused too (no key)."""
    sign_in(browser, admin_token)
    assert upload(browser, "keep.txt", b"k").status_code == 303
    csrf = csrf_of(browser.get(f"{PAGE}/data").text)
    allows = Permissions.allows
    monkeypatch.setattr(Permissions, "allows",
                        lambda self, action: action != storage.WRITE and allows(self, action))
    page = browser.get(f"{PAGE}/data").text
    assert "keep.txt" in page
    for offered in ('/mkdir"', '/upload"', "/delete?", ">Delete<"):
        assert offered not in page
    assert "may read this share's files but not change them" in page
    assert _post(browser, "mkdir", csrf, name="x").status_code == 403
    assert _post(browser, "delete", csrf, path="keep.txt", kind="file").status_code == 403
    assert upload(browser, "y.txt", b"y", csrf=csrf).status_code == 403
    assert browser.get(f"{PAGE}/data/delete?path=keep.txt&kind=file").status_code == 403
    monkeypatch.undo()
    principal = admin.post("/skiff/servicePrincipals", json={
        "displayName": "r", "role": "Reader", "scopes": [RG]}).json()
    token = browser.post(f"/{principal['tenant']}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": principal["appId"],
        "client_secret": principal["password"], "scope": "https://skiff.test/.default"})
    reader = served.client(None)
    sign_in(reader, token.json()["access_token"])
    own = csrf_of(reader.get("/portal/storage").text)
    refused = reader.post(f"{PAGE}/data/delete", headers=SAME_ORIGIN,
                          data={"csrf": own, "path": "keep.txt", "kind": "file"})
    assert refused.status_code == 403
    assert "keep.txt" in browser.get(f"{PAGE}/data").text


def test_a_download_is_streamed_a_range_at_a_time(browser: InProcessClient,  # noqa: F811
                                                  admin_token: str, share: str,  # noqa: F811
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A file of several chunks comes whole, asked of the data plane one range at a time
    (none larger than a chunk), as an octet stream that is not to be sniffed, named by
    RFC 6266's filename* (UTF-8) with an ASCII stand-in; an empty file is an empty body."""
    sign_in(browser, admin_token)
    monkeypatch.setattr(storage, "DOWNLOAD_CHUNK", 4000)
    sent = os.urandom(10_000)
    assert upload(browser, "größe 1;'.bin", sent).status_code == 303
    assert upload(browser, "empty.txt", b"").status_code == 303
    asked: list[tuple[int, int | None]] = []
    real = Share.read

    async def counted(self: Share, path: str, start: int = 0,
                      length: int | None = None) -> bytes:
        asked.append((start, length))
        return await real(self, path, start, length)

    monkeypatch.setattr(Share, "read", counted)
    got = browser.get(f"{PAGE}/data/download?path=gr%C3%B6%C3%9Fe%201%3B%27.bin")
    assert got.status_code == 200, got.text
    assert got.content == sent
    assert asked == [(0, 4000), (4000, 4000), (8000, 2000)]
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["content-length"] == "10000"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["content-disposition"] == (
        "attachment; filename=\"gr__e 1__.bin\"; "
        "filename*=UTF-8''gr%C3%B6%C3%9Fe%201%3B%27.bin")
    empty = browser.get(f"{PAGE}/data/download?path=empty.txt")
    assert (empty.status_code, empty.content) == (200, b"")


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_download_the_browser_leaves_stops_and_leaks_nothing(
        served: Served, browser: InProcessClient, admin_token: str,  # noqa: F811
        share: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A browser that disconnects after the first chunk ends the download there: the
    portal asks the data plane for no more ranges, the app returns, and no file the data
    plane opened is left open."""
    sign_in(browser, admin_token)
    monkeypatch.setattr(storage, "DOWNLOAD_CHUNK", 1024)
    assert upload(browser, "big.bin", os.urandom(64 * 1024)).status_code == 303
    signed = served.client(None).post("/portal/signin", data={"token": admin_token},
                                      headers=SAME_ORIGIN)
    cookie = signed.headers["set-cookie"].split(";")[0]
    assert cookie.startswith(f"{COOKIE}=")
    asked: list[int] = []
    real = Share.read

    async def counted(self: Share, path: str, start: int = 0,
                      length: int | None = None) -> bytes:
        asked.append(start)
        return await real(self, path, start, length)

    monkeypatch.setattr(Share, "read", counted)
    before = _open_fds()

    async def leave() -> list[MutableMapping[str, Any]]:
        sent: list[MutableMapping[str, Any]] = []
        first = anyio.Event()
        requested = False

        async def receive() -> dict[str, Any]:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await first.wait()
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and message.get("body"):
                first.set()
                await anyio.sleep(0.05)  # a slow network: the disconnect arrives meanwhile

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "https", "server": ("skiff.test", 443),
                 "client": ("127.0.0.1", 50000), "root_path": "",
                 "path": f"{PAGE}/data/download", "raw_path": f"{PAGE}/data/download".encode(),
                 "query_string": b"path=big.bin",
                 "headers": [(b"host", b"skiff.test"), (b"cookie", cookie.encode())]}
        with anyio.fail_after(30):
            await served.app(scope, receive, send)
        return sent

    sent = served.loop.call(leave)
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 200
    bodies = [m for m in sent if m["type"] == "http.response.body" and m.get("body")]
    assert 1 <= len(bodies) < 64
    assert 1 <= len(asked) < 64
    eventually(lambda: _open_fds() <= before, what="the data plane's files closed",
               timeout_s=10)


@pytest.mark.parametrize(("name", "header"), [
    ("report.pdf", "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"),
    ("a\\b/c\r\n.txt", "attachment; filename=\"c.txt\"; filename*=UTF-8''c.txt"),
    ("\"x\";y", "attachment; filename=\"_x__y\"; filename*=UTF-8''%22x%22%3By"),
    ("日本.txt", "attachment; filename=\"__.txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt"),
    ("..", "attachment; filename=\"file\"; filename*=UTF-8''file"),
])
def test_attachment_names_a_file_safely(name: str, header: str) -> None:
    """No path, quote, control character or non-ASCII byte reaches the header raw."""
    assert storage.attachment(name) == header


@pytest.mark.parametrize("path", ["..", "logs/..", "../data", ".", "a/./b"])
def test_dot_segments_reach_the_data_plane_and_are_refused_as_names(
        browser: InProcessClient, admin_token: str, share: str, path: str) -> None:  # noqa: F811
    """``.`` and ``..`` in a share path are sent as they are (percent-encoded, so that the
    HTTP client does not remove them and reach another place than the one signed): the
    data plane refuses them as names (400), not as a bad signature."""
    sign_in(browser, admin_token)
    for url in (f"{PAGE}/data?path={path}", f"{PAGE}/data/download?path={path}"):
        refused = browser.get(url)
        assert refused.status_code == 400, (url, refused.text)
        assert "AuthenticationFailed" not in refused.text
