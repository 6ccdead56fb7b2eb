"""SharedKey and SAS against the official SDK's own signers (vectors derived by calling
them, not copied)."""

from __future__ import annotations

import base64
import datetime
import email.utils

import pytest

pytest.importorskip("azure.storage.fileshare")
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.rest import HttpRequest
from azure.storage.fileshare import (
    AccountSasPermissions,
    ResourceTypes,
    generate_account_sas,
    generate_file_sas,
)
from azure.storage.fileshare._shared.authentication import (
    SharedKeyCredentialPolicy,
)

from skiff.files import auth

KEY = base64.b64encode(bytes(range(64))).decode()
OTHER = base64.b64encode(b"o" * 64).decode()


def _sdk_signed(method: str, url: str, headers: dict[str, str]) -> dict[str, str]:
    request = HttpRequest(method, url, headers=headers)
    pipeline = PipelineRequest(request, PipelineContext(None))
    policy = SharedKeyCredentialPolicy("acct", KEY)  # type: ignore[no-untyped-call]
    policy.on_request(pipeline)  # type: ignore[no-untyped-call]
    return {k.lower(): v for k, v in request.headers.items()}


def _check(method: str, raw_path: str, query: str, headers: dict[str, str],
           keys: tuple[str, str] = (OTHER, KEY)) -> None:
    auth.check_shared_key(headers["authorization"], keys, "acct", method, headers, raw_path,
                          auth.decoded_query(query))


def test_shared_key_matches_the_sdk_signer() -> None:
    headers = _sdk_signed("PUT", "https://127.0.0.1:8444/acct/share/dir%20a/f.txt?comp=range",
                          {"x-ms-version": "2025-05-05",
                           "x-ms-date": "Sat, 05 Dec 2026 06:00:00 GMT",
                           "x-ms-range": "bytes=0-9", "x-ms-write": "update",
                           "x-ms-file-request-intent": "backup", "Content-Length": "10",
                           "Content-MD5": "abc=", "Content-Type": "application/octet-stream",
                           "Range": "bytes=0-9"})
    _check("PUT", "/acct/share/dir%20a/f.txt", "comp=range", headers)
    # what the server signs is the SDK's string, byte for byte
    text = auth.string_to_sign("PUT", headers, "acct", "/acct/share/dir%20a/f.txt",
                               [("comp", "range")], with_range=False)
    assert headers["authorization"] == f"SharedKey acct:{auth.sign(KEY, text)}"
    assert text.startswith("PUT\n\n\n10\nabc=\napplication/octet-stream\n")
    assert "/acct/acct/share/dir%20a/f.txt\ncomp:range" in text


def test_shared_key_query_and_tampering() -> None:
    url = "https://127.0.0.1:8444/acct?comp=list&prefix=a%2Fb&maxresults=2&include=metadata"
    headers = _sdk_signed("GET", url, {"x-ms-version": "2025-05-05",
                                       "x-ms-date": "Sat, 05 Dec 2026 06:00:00 GMT"})
    query = "comp=list&prefix=a%2Fb&maxresults=2&include=metadata"
    _check("GET", "/acct", query, headers)
    with pytest.raises(auth.AuthFailed):
        _check("GET", "/acct", query.replace("maxresults=2", "maxresults=3"), headers)
    with pytest.raises(auth.AuthFailed):
        _check("DELETE", "/acct", query, headers)
    with pytest.raises(auth.AuthFailed):
        _check("GET", "/acct", query, {**headers, "x-ms-date": "Sun, 06 Dec 2026 06:00:00 GMT"})
    with pytest.raises(auth.AuthFailed):
        _check("GET", "/acct", query, headers, keys=(OTHER, OTHER))
    with pytest.raises(auth.AuthFailed, match="account name"):
        _check("GET", "/acct", query,
               {**headers, "authorization": headers["authorization"].replace("acct:", "b:")})
    # the message names neither key nor signature
    with pytest.raises(auth.AuthFailed) as failed:
        _check("GET", "/acct", query, headers, keys=(OTHER, OTHER))
    assert headers["authorization"].split(":")[1] not in str(failed.value)
    assert KEY not in str(failed.value)


def test_request_dates_bound_replays() -> None:
    now = 1_800_000_000.0
    auth.check_date({"x-ms-date": email.utils.formatdate(now - 60, usegmt=True)}, now)
    auth.check_date({"date": email.utils.formatdate(now + 60, usegmt=True)}, now)
    for headers in ({}, {"x-ms-date": "yesterday"},
                    {"x-ms-date": email.utils.formatdate(now - 16 * 60, usegmt=True)},
                    {"x-ms-date": email.utils.formatdate(now + 16 * 60, usegmt=True)}):
        with pytest.raises(auth.AuthFailed):
            auth.check_date(headers, now)


def _future(hours: int = 1) -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=hours)


def _query(token: str) -> dict[str, str]:
    return dict(auth.decoded_query(token))


def test_account_sas_permissions_and_types() -> None:
    token = generate_account_sas("acct", KEY, ResourceTypes(object=True),
                                 AccountSasPermissions(read=True, list=True), _future())
    q = _query(token)
    auth.check_sas(q, (OTHER, KEY), "acct", auth.Access("o", "r", "s", "f"), client_ip="1.2.3.4")
    with pytest.raises(auth.NotPermitted) as denied:
        auth.check_sas(q, (KEY,), "acct", auth.Access("o", "w", "s", "f"), client_ip="1.2.3.4")
    assert denied.value.code == "AuthorizationPermissionMismatch"
    with pytest.raises(auth.NotPermitted) as wrong_type:
        auth.check_sas(q, (KEY,), "acct", auth.Access("c", "r", "s"), client_ip="1.2.3.4")
    assert wrong_type.value.code == "AuthorizationResourceTypeMismatch"
    with pytest.raises(auth.AuthFailed):
        auth.check_sas(q, (OTHER,), "acct", auth.Access("o", "r", "s", "f"), client_ip="1.2.3.4")
    with pytest.raises(auth.AuthFailed):
        auth.check_sas({**q, "sp": "rwl"}, (KEY,), "acct", auth.Access("o", "w", "s", "f"),
                       client_ip="1.2.3.4")
    expired = _query(generate_account_sas("acct", KEY, ResourceTypes(object=True),
                                          AccountSasPermissions(read=True), _future(-1)))
    with pytest.raises(auth.AuthFailed, match="expiry"):
        auth.check_sas(expired, (KEY,), "acct", auth.Access("o", "r", "s", "f"),
                       client_ip="1.2.3.4")
    early = _query(generate_account_sas("acct", KEY, ResourceTypes(object=True),
                                        AccountSasPermissions(read=True), _future(2),
                                        start=_future(1)))
    with pytest.raises(auth.AuthFailed, match="start"):
        auth.check_sas(early, (KEY,), "acct", auth.Access("o", "r", "s", "f"),
                       client_ip="1.2.3.4")
    fenced = _query(generate_account_sas("acct", KEY, ResourceTypes(object=True),
                                         AccountSasPermissions(read=True), _future(),
                                         ip="10.0.0.1-10.0.0.9", protocol="https"))
    auth.check_sas(fenced, (KEY,), "acct", auth.Access("o", "r", "s", "f"), client_ip="10.0.0.5")
    with pytest.raises(auth.NotPermitted):
        auth.check_sas(fenced, (KEY,), "acct", auth.Access("o", "r", "s", "f"),
                       client_ip="10.0.0.10")


def test_file_sas_is_bound_to_its_file() -> None:
    token = generate_file_sas("acct", "share", ["dir", "a.txt"], KEY, permission="r",
                              expiry=_future())
    q = _query(token)
    auth.check_sas(q, (KEY,), "acct", auth.Access("o", "r", "share", "dir/a.txt"),
                   client_ip="1.2.3.4")
    with pytest.raises(auth.AuthFailed):
        auth.check_sas(q, (KEY,), "acct", auth.Access("o", "r", "share", "dir/b.txt"),
                       client_ip="1.2.3.4")
    with pytest.raises(auth.NotPermitted):
        auth.check_sas(q, (KEY,), "acct", auth.Access("o", "d", "share", "dir/a.txt"),
                       client_ip="1.2.3.4")
