"""The Azure Files data plane driven by the real ``azure-storage-file-share`` SDK over
loopback HTTPS, in process, against plain directories (FakeFileShares)."""

from __future__ import annotations

import base64
import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

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
from skiff.files import serving  # noqa: E402
from skiff.server import bind  # noqa: E402
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

    def service(self, credential: Any = None) -> ShareServiceClient:
        cred = credential if credential is not None else {"account_name": self.account,
                                                          "account_key": self.keys[0]}
        return ShareServiceClient(f"{self.url}/{self.account}", credential=cred,
                                  connection_verify=self.ca)


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[Plane]:
    tls = ensure_certificates(tmp_path, "127.0.0.1")
    shares = FakeFileShares(tmp_path / "shares")
    keys = shares.add_account("acct1")
    sock, listen = bind("127.0.0.1:0")
    server = serving.start(sock, listen, shares, cert=tls.cert, key=tls.key)
    try:
        yield Plane(server.url, str(tls.ca), shares, "acct1", keys)
    finally:
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
    service = ShareServiceClient.from_connection_string(text, connection_verify=plane.ca)
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
