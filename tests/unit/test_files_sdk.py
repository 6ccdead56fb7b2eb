"""The Azure Files data plane driven by the real ``azure-storage-file-share`` SDK over
loopback HTTPS, in process, against plain directories (FakeFileShares)."""

from __future__ import annotations

import base64
import datetime
import email.utils
import errno
import http.client
import json
import os
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

fileshare = pytest.importorskip("azure.storage.fileshare")
from azure.core.exceptions import (  # noqa: E402
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.storage.fileshare import (  # noqa: E402
    AccountSasPermissions,
    ResourceTypes,
    ShareServiceClient,
    generate_account_sas,
    generate_share_sas,
)

from skiff.api.tls import ensure_certificates  # noqa: E402
from skiff.cli.storage_files import directory_group, file_group  # noqa: E402
from skiff.core.shares import ShareRef  # noqa: E402
from skiff.files import app as files_app  # noqa: E402
from skiff.files import auth, serving  # noqa: E402
from skiff.server import bind, files_endpoint, start_files  # noqa: E402
from skiff.settings import FilesSettings, Settings  # noqa: E402
from skiff.testing.fakefiles import FakeFileShares  # noqa: E402


def _code(exc: BaseException) -> str:
    """Azure's error code, as the SDK read it (x-ms-error-code)."""
    code = getattr(exc, "error_code", "")
    return str(getattr(code, "value", code))


@dataclass
class Plane:
    url: str
    ca: str
    shares: FakeFileShares
    account: str
    keys: tuple[str, str]
    #: The clients made, closed before the server stops (else it waits its 2 s of grace
    #: for their idle TLS keep-alives).
    clients: list[ShareServiceClient] = field(default_factory=list)

    def service(self, credential: Any = None) -> ShareServiceClient:
        cred = credential if credential is not None else {"account_name": self.account,
                                                          "account_key": self.keys[0]}
        return self.kept(ShareServiceClient(f"{self.url}/{self.account}", credential=cred,
                                            connection_verify=self.ca))

    def kept(self, client: ShareServiceClient) -> ShareServiceClient:
        self.clients.append(client)
        return client


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[Plane]:
    tls = ensure_certificates(tmp_path, "127.0.0.1")
    shares = FakeFileShares(tmp_path / "shares")
    keys = shares.add_account("acct1")
    sock, listen = bind("127.0.0.1:0")
    server = serving.start(sock, listen, shares, cert=tls.cert, key=tls.key)
    plane = Plane(server.url, str(tls.ca), shares, "acct1", keys)
    try:
        yield plane
    finally:
        for client in plane.clients:
            client.close()
        server.close()


def test_share_lifecycle_upload_list_download(plane: Plane) -> None:
    service = plane.service()
    share = service.create_share("data", quota=10, metadata={"team": "a"})
    with pytest.raises(ResourceExistsError):
        service.create_share("data")
    props = share.get_share_properties()
    assert props.quota == 10
    assert props.metadata == {"team": "a"}
    share.set_share_quota(20)
    assert share.get_share_properties().quota == 20
    share.set_share_metadata({"team": "b"})
    assert share.get_share_properties().metadata == {"team": "b"}
    service.create_share("other")
    names = [s.name for s in service.list_shares(include_metadata=True)]
    assert names == ["data", "other"]
    assert [s.metadata for s in service.list_shares(name_starts_with="da",
                                                    include_metadata=True)] == [{"team": "b"}]
    paged = service.list_shares(results_per_page=1).by_page()
    assert [[s.name for s in page] for page in paged] == [["data"], ["other"]]

    directory = share.create_directory("in", metadata={"k": "v"})
    with pytest.raises(ResourceExistsError):
        share.create_directory("in")
    assert directory.get_directory_properties().metadata == {"k": "v"}
    payload = os.urandom(10 * 1024 * 1024 + 12345)
    file = directory.get_file_client("big.bin")
    file.upload_file(payload, metadata={"m": "1"},
                     content_settings=fileshare.ContentSettings(content_type="text/plain"))
    fprops = file.get_file_properties()
    assert fprops.size == len(payload)
    assert fprops.metadata == {"m": "1"}
    assert fprops.content_settings.content_type == "text/plain"
    assert file.download_file().readall() == payload
    assert file.download_file(offset=5, length=100).readall() == payload[5:105]
    assert file.download_file(offset=len(payload) - 10).readall() == payload[-10:]

    for i in range(5):
        directory.get_file_client(f"f{i}").upload_file(b"x" * i)
    directory.create_subdirectory("sub")
    listed = list(directory.list_directories_and_files())
    assert sorted(e.name for e in listed) == ["big.bin", "f0", "f1", "f2", "f3", "f4", "sub"]
    assert [e.name for e in listed if e.is_directory] == ["sub"]
    assert [e.name for e in directory.list_directories_and_files(name_starts_with="f")] == [
        "f0", "f1", "f2", "f3", "f4"]
    pages = directory.list_directories_and_files(results_per_page=3).by_page()
    assert [len(list(p)) for p in pages] == [3, 3, 1]
    assert directory.get_file_client("f0").download_file().readall() == b""

    file.set_file_metadata({"m": "2"})
    assert file.get_file_properties().metadata == {"m": "2"}
    file.resize_file(100)
    assert file.download_file().readall() == payload[:100]
    assert share.get_share_stats() > 0

    with pytest.raises(HttpResponseError) as info:
        directory.delete_directory()
    assert _code(info.value) == "DirectoryNotEmpty"
    with pytest.raises(HttpResponseError) as info:
        file.download_file(offset=1000, length=10).readall()
    assert _code(info.value) == "InvalidRange"
    with pytest.raises(ResourceNotFoundError) as missing:
        share.get_directory_client("nope").get_file_client("x").upload_file(b"1")
    assert _code(missing.value) == "ParentNotFound"
    file.delete_file()
    with pytest.raises(ResourceNotFoundError):
        file.get_file_properties()
    share.delete_share()
    with pytest.raises(ResourceNotFoundError):
        share.get_share_properties()


def test_connection_string(plane: Plane) -> None:
    text = (f"DefaultEndpointsProtocol=https;AccountName={plane.account};"
            f"AccountKey={plane.keys[1]};FileEndpoint={plane.url}/{plane.account};")
    service = plane.kept(ShareServiceClient.from_connection_string(
        text, connection_verify=plane.ca))
    service.create_share("viaconn")
    assert [s.name for s in service.list_shares()] == ["viaconn"]


def test_wrong_key_is_authentication_failed(plane: Plane) -> None:
    wrong = plane.service({"account_name": plane.account,
                           "account_key": base64.b64encode(b"k" * 64).decode()})
    with pytest.raises(ClientAuthenticationError) as info:
        wrong.create_share("x")
    assert _code(info.value) == "AuthenticationFailed"
    other = plane.service({"account_name": "acct2", "account_key": plane.keys[0]})
    with pytest.raises(ClientAuthenticationError):
        list(other.list_shares())
    assert plane.shares.shares == {}


def test_sas_read_only_cannot_write(plane: Plane) -> None:
    plane.service().create_share("sas1").get_file_client("a.txt").upload_file(b"hello")
    expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    token = generate_account_sas(plane.account, plane.keys[0], ResourceTypes(object=True),
                                 AccountSasPermissions(read=True), expiry)
    file = plane.service(token).get_share_client("sas1").get_file_client("a.txt")
    assert file.download_file().readall() == b"hello"
    with pytest.raises(HttpResponseError) as info:
        file.upload_file(b"bye")
    assert _code(info.value) == "AuthorizationPermissionMismatch"
    share_token = generate_share_sas(plane.account, "sas1", plane.keys[1],
                                     permission="rwc", expiry=expiry)
    writable = plane.service(share_token).get_share_client("sas1").get_file_client("b.txt")
    writable.upload_file(b"written")
    assert writable.download_file().readall() == b"written"
    expired = generate_account_sas(plane.account, plane.keys[0], ResourceTypes(object=True),
                                   AccountSasPermissions(read=True),
                                   datetime.datetime.now(datetime.UTC)
                                   - datetime.timedelta(minutes=1))
    with pytest.raises(ClientAuthenticationError):
        plane.service(expired).get_share_client("sas1").get_file_client(
            "a.txt").download_file().readall()
    forged = token.replace("sp=r", "sp=rw")
    with pytest.raises(ClientAuthenticationError):
        plane.service(forged).get_share_client("sas1").get_file_client("c").upload_file(b"1")


def _raw(plane: Plane, method: str, path: str, *, query: str = "",
         headers: dict[str, str] | None = None, body: bytes = b"",
         signed: bool = True) -> tuple[int, dict[str, str], bytes]:
    """One request with the path sent exactly as given (no client normalizes it)."""
    sent = {"x-ms-version": "2025-05-05", "x-ms-date": email.utils.formatdate(usegmt=True),
            **(headers or {})}
    sent = {k.lower(): v for k, v in sent.items()}
    sent["content-length"] = str(len(body))
    if signed:
        sent["authorization"] = auth.shared_key_header(
            plane.account, plane.keys[0], method, sent, path, auth.decoded_query(query))
    host, port = plane.url.removeprefix("https://").rsplit(":", 1)
    connection = http.client.HTTPSConnection(
        host, int(port), context=ssl.create_default_context(cafile=plane.ca), timeout=30)
    try:
        connection.request(method, path + (f"?{query}" if query else ""), body=body,
                           headers=sent)
        response = connection.getresponse()
        return (response.status, {k.lower(): v for k, v in response.getheaders()},
                response.read())
    finally:
        connection.close()


def test_errors_are_azure_xml_and_anonymous_is_refused(plane: Plane) -> None:
    status, headers, body = _raw(plane, "GET", "/acct1", query="comp=list", signed=False)
    assert status == 401
    assert headers["x-ms-error-code"] == "NoAuthenticationInformation"
    status, headers, _ = _raw(plane, "GET", "/acct1", query="comp=list",
                              headers={"x-ms-date": "Sat, 05 Dec 2026 05:00:00 GMT"})
    assert (status, headers["x-ms-error-code"]) == (403, "AuthenticationFailed")
    status, headers, body = _raw(plane, "GET", "/acct1/nosuch", query="restype=share")
    assert status == 404
    assert headers["x-ms-error-code"] == "ShareNotFound"
    assert headers["x-ms-request-id"]
    assert re.fullmatch(rb'<\?xml version="1.0" encoding="utf-8"\?><Error><Code>ShareNotFound'
                        rb"</Code><Message>The specified share does not exist.\n"
                        rb"RequestId:[0-9a-f-]{36}\nTime:\d{4}-\d\d-\d\dT[\d:.]+Z</Message>"
                        rb"</Error>", body)


@pytest.mark.parametrize("path", [
    "/acct1/data/../../../etc/passwd",
    "/acct1/data/%2e%2e/%2E%2E/outside/x",
    "/acct1/data/a/%2e%2e%2f%2e%2e%2foutside",
    "/acct1/data/a%5c..%5cx",
])
def test_paths_never_leave_the_share(plane: Plane, tmp_path: Path, path: str) -> None:
    plane.service().create_share("data")
    (tmp_path / "outside").mkdir()
    for method, query, headers in (("PUT", "", {"x-ms-type": "file",
                                                "x-ms-content-length": "5"}),
                                   ("GET", "", {}), ("PUT", "restype=directory", {}),
                                   ("DELETE", "", {})):
        status, answer, _ = _raw(plane, method, path, query=query, headers=headers)
        assert status in (400, 404), (method, path, status)
        assert answer["x-ms-error-code"] in ("InvalidResourceName", "ResourceNotFound",
                                             "ParentNotFound")
    assert list((tmp_path / "outside").iterdir()) == []


def test_symlinks_planted_in_a_share_are_never_followed(plane: Plane, tmp_path: Path) -> None:
    share = plane.service().create_share("data")
    root = plane.shares.root(ShareRef("acct1", "data"))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"host secret")
    (root / "dirlink").symlink_to(outside)
    (root / "filelink").symlink_to(outside / "secret")
    with pytest.raises(ResourceNotFoundError) as parent:
        share.get_directory_client("dirlink").get_file_client("planted").upload_file(b"x")
    assert _code(parent.value) == "ParentNotFound"
    with pytest.raises(ResourceNotFoundError):
        share.get_file_client("filelink").download_file().readall()
    with pytest.raises(HttpResponseError):
        share.get_file_client("filelink").upload_file(b"overwrite")
    with pytest.raises(ResourceNotFoundError):
        list(share.get_directory_client("dirlink").list_directories_and_files())
    with pytest.raises(ResourceNotFoundError):
        share.get_directory_client("dirlink").delete_directory()
    assert [e.name for e in share.list_directories_and_files()] == []
    (root / "bad\x01name").write_bytes(b"")
    os.close(os.open(os.fsencode(root) + b"/\xff\xfe", os.O_CREAT | os.O_WRONLY, 0o600))
    assert [e.name for e in share.list_directories_and_files()] == []
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_bytes() == b"host secret"


def test_ranges_past_the_end_and_quota(plane: Plane, monkeypatch: pytest.MonkeyPatch) -> None:
    share = plane.service().create_share("data", quota=1)
    file = share.get_file_client("f")
    file.create_file(10)
    status, headers, _ = _raw(plane, "PUT", "/acct1/data/f", query="comp=range",
                              headers={"x-ms-range": "bytes=8-11", "x-ms-write": "update"},
                              body=b"abcd")
    assert (status, headers["x-ms-error-code"]) == (416, "InvalidRange")
    status, headers, _ = _raw(plane, "GET", "/acct1/data/f",
                              headers={"x-ms-range": "bytes=10-20"})
    assert (status, headers["x-ms-error-code"]) == (416, "InvalidRange")
    status, headers, _ = _raw(plane, "PUT", "/acct1/data/f", query="comp=range",
                              headers={"x-ms-range": "bytes=0-3", "x-ms-write": "update",
                                       "content-md5": "AAAAAAAAAAAAAAAAAAAAAA=="},
                              body=b"abcd")
    assert (status, headers["x-ms-error-code"]) == (400, "Md5Mismatch")
    status, headers, _ = _raw(plane, "PUT", "/acct1/data/f", query="comp=range",
                              headers={"x-ms-range": "bytes=0-3", "x-ms-write": "update",
                                       "content-md5": "not base64"}, body=b"abcd")
    assert (status, headers["x-ms-error-code"]) == (400, "InvalidMd5")
    status, headers, _ = _raw(plane, "PUT", "/acct1/data/f", query="comp=range",
                              headers={"x-ms-range": "bytes=0-3", "x-ms-write": "sideways"},
                              body=b"abcd")
    assert (status, headers["x-ms-error-code"]) == (400, "InvalidHeaderValue")
    status, headers, _ = _raw(plane, "PUT", "/acct1/data/f", query="comp=range",
                              headers={"x-ms-range": "bytes=0-4", "x-ms-write": "update"},
                              body=b"abcd")
    assert (status, headers["x-ms-error-code"]) == (400, "InvalidHeaderValue")
    status, headers, _ = _raw(plane, "PUT", "/acct1/data/" + "n" * 300,
                              headers={"x-ms-type": "file", "x-ms-content-length": "1"})
    assert (status, headers["x-ms-error-code"]) == (400, "InvalidResourceName")
    with pytest.raises(HttpResponseError) as big:
        share.get_file_client("huge").create_file(2 * 1024 ** 3)
    assert _code(big.value) == "ShareSizeLimitReached"
    assert big.value.status_code == 403  # Azure Files' status for a full share

    def full(fd: int, data: bytes, offset: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files_app, "_pwrite_all", full)
    with pytest.raises(HttpResponseError) as nospace:
        file.upload_range(b"0123456789", offset=0, length=10)
    assert _code(nospace.value) == "ShareSizeLimitReached"
    assert nospace.value.status_code == 403


def test_cli_file_and_directory(plane: Plane, tmp_path: Path) -> None:
    plane.service().create_share("clishare")
    source = tmp_path / "local.bin"
    payload = os.urandom(9 * 1024 * 1024 + 7)
    source.write_bytes(payload)
    conn = (f"AccountName={plane.account};AccountKey={plane.keys[0]};"
            f"FileEndpoint={plane.url}/{plane.account}")
    env = {"SKIFF_CA": plane.ca, "AZURE_STORAGE_CONNECTION_STRING": conn}
    runner = CliRunner()

    def run(group: click.Group, *args: str) -> str:
        result = runner.invoke(group, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert plane.keys[0] not in result.output
        return result.output

    run(directory_group, "create", "-s", "clishare", "--name", "d")
    run(file_group, "upload", "-s", "clishare", "--source", str(source), "--path", "d/r.bin")
    listed = json.loads(run(file_group, "list", "-s", "clishare", "--path", "d"))
    assert listed == [{"name": "r.bin", "type": "file",
                       "properties": {"contentLength": len(payload)}}]
    assert json.loads(run(directory_group, "list", "-s", "clishare")) == [{"name": "d"}]
    run(file_group, "download", "-s", "clishare", "--path", "d/r.bin",
        "--dest", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == payload
    run(file_group, "delete", "-s", "clishare", "--path", "d/r.bin")
    missing = runner.invoke(file_group, ["delete", "-s", "clishare", "--path", "d/r.bin"],
                            env=env)
    assert missing.exit_code == 3
    assert "ERROR: (ResourceNotFound)" in missing.output
    wrong = runner.invoke(file_group, ["list", "-s", "clishare", "--account-name", "acct1",
                                       "--account-key", base64.b64encode(b"w" * 64).decode()],
                          env={"SKIFF_CA": plane.ca, "SKIFF_FILES_URL": plane.url})
    assert wrong.exit_code == 1
    assert "ERROR: (AuthenticationFailed)" in wrong.output


def test_server_starts_the_data_plane_from_settings(tmp_path: Path) -> None:
    tls = ensure_certificates(tmp_path, "127.0.0.1")
    shares = FakeFileShares(tmp_path / "shares")
    keys = shares.add_account("acct9")
    off = Settings(data_root=tmp_path, files=FilesSettings(listen=None))
    assert start_files(off, shares, tls.cert, tls.key) is None
    on = Settings(data_root=tmp_path, files=FilesSettings(listen="127.0.0.1:0"))
    files = start_files(on, shares, tls.cert, tls.key)
    assert files is not None
    try:
        service = ShareServiceClient(f"{files.url}/acct9",
                                     credential={"account_name": "acct9",
                                                 "account_key": keys[1]},
                                     connection_verify=str(tls.ca))
        service.create_share("fromsettings")
        assert [s.name for s in service.list_shares()] == ["fromsettings"]
        service.close()
    finally:
        files.close()
    public = Settings(files=FilesSettings(listen="0.0.0.0:8444",
                                          public_url="https://files.example:443/"))
    assert files_endpoint(on, "acct9") == "https://127.0.0.1:0/acct9/"
    assert files_endpoint(off, "acct9") is None
    assert serving.public_url("0.0.0.0:8444", None) == "https://127.0.0.1:8444"
    assert serving.public_url("[::1]:8444", None) == "https://[::1]:8444"
    assert serving.public_url(public.files.listen or "", public.files.public_url) == \
        "https://files.example:443"
