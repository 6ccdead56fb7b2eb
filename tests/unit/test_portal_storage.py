"""The portal's storage pages in process: accounts and shares from the ARM API, a share's
directories browsed, a file uploaded and downloaded through the Azure Files data plane
with the key the caller's role may list; a Reader may look but not read files, and an
upload without the session's CSRF token, or too large, writes nothing."""

from __future__ import annotations

import functools
import re

import httpx
import pytest

from skiff.portal import storage
from skiff.portal.files import Share
from skiff.testing.inprocess import InProcessClient
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
    assert 'filename="b_in.bin"' in got.headers["content-disposition"]
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
