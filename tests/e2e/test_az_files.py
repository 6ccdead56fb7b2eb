"""The real az CLI (the pinned azure-cli) against skiff's Azure Files data plane:
``az storage share|directory|file`` with the connection string ``skiff storage account
show-connection-string`` prints, as a user would run them."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from skiff.cli.main import main
from skiff.client import SkiffClient
from skiff.core.shares import ShareRef
from skiff.testing.az import Az
from skiff.testing.server import RunningServer, running_server

pytestmark = pytest.mark.root


@pytest.fixture
def skiff(tmp_path: Path) -> Iterator[RunningServer]:
    """A skiff serving the API and the Azure Files data plane (no groups run here)."""
    with running_server(tmp_path / "root", files=True) as running:
        yield running


def skiff_cli(skiff: RunningServer, *args: str) -> dict[str, object]:
    """``skiff ARGS`` against the test server; its JSON output."""
    def factory() -> SkiffClient:
        return SkiffClient(skiff.url, skiff.token, ca=str(skiff.ca))

    result = CliRunner().invoke(main, list(args), obj=factory)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    out: dict[str, object] = json.loads(result.stdout)
    return out


def test_az_storage_share_directory_and_file_commands(skiff: RunningServer, az: Az,
                                                      tmp_path: Path) -> None:
    account = f"az{uuid.uuid4().hex[:12]}"
    skiff_cli(skiff, "storage", "account", "create", "-n", account, "-g", "rg")
    conn = str(skiff_cli(skiff, "storage", "account", "show-connection-string",
                         "-n", account)["connectionString"])
    assert f"FileEndpoint={skiff.files_url}/{account}/" in conn
    az = az.trusting(skiff.ca)
    c = ("--connection-string", conn)

    # shares
    assert az("storage", "share", "exists", "-n", "data", *c) == {"exists": False}
    assert az("storage", "share", "create", "-n", "data", "--quota", "1", *c) == \
        {"created": True}
    assert az("storage", "share", "exists", "-n", "data", *c) == {"exists": True}
    shown = az("storage", "share", "show", "-n", "data", *c)
    assert shown["name"] == "data"
    assert shown["properties"]["quota"] == 1
    az("storage", "share", "update", "-n", "data", "--quota", "3", *c)
    assert az("storage", "share", "show", "-n", "data", *c)["properties"]["quota"] == 3
    az("storage", "share", "create", "-n", "other", *c)
    listed = az("storage", "share", "list", *c)
    assert sorted(s["name"] for s in listed) == ["data", "other"]
    assert {s["name"]: s["quota"] for s in listed}["data"] == 3, listed

    # directories
    assert az("storage", "directory", "create", "-s", "data", "-n", "in", *c) == \
        {"created": True}
    az("storage", "directory", "create", "-s", "data", "-n", "in/deeper", *c)
    assert [d["name"] for d in az("storage", "directory", "list", "-s", "data", *c)] == \
        ["in"]
    assert [d["name"] for d in az("storage", "directory", "list", "-s", "data",
                                  "-n", "in", *c)] == ["deeper"]

    # files: bytes of every value, across several 4 MiB ranges, and an empty file
    source = tmp_path / "source.bin"
    content = os.urandom(9 * 1024 * 1024 + 123) + bytes(range(256))
    source.write_bytes(content)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    az("storage", "file", "upload", "-s", "data", "--source", str(source),
       "--path", "in/blob.bin", *c)
    az("storage", "file", "upload", "-s", "data", "--source", str(empty),
       "--path", "in/empty.txt", *c)
    entries = {e["name"]: e for e in az("storage", "file", "list", "-s", "data",
                                          "-p", "in", *c)}
    assert set(entries) == {"blob.bin", "deeper", "empty.txt"}
    assert entries["blob.bin"]["properties"]["contentLength"] == len(content)
    assert entries["empty.txt"]["properties"]["contentLength"] == 0
    shown = az("storage", "file", "show", "-s", "data", "-p", "in/blob.bin", *c)
    assert shown["name"] == "blob.bin"
    assert shown["properties"]["contentLength"] == len(content)
    target = tmp_path / "downloaded.bin"
    az("storage", "file", "download", "-s", "data", "-p", "in/blob.bin",
       "--dest", str(target), *c)
    assert target.read_bytes() == content
    az("storage", "file", "download", "-s", "data", "-p", "in/empty.txt",
       "--dest", str(tmp_path / "empty.out"), *c)
    assert (tmp_path / "empty.out").read_bytes() == b""
    az("storage", "file", "delete", "-s", "data", "-p", "in/blob.bin", *c)  # az: deleted null
    gone = az.run("storage", "file", "show", "-s", "data", "-p", "in/blob.bin", *c)
    assert gone.returncode != 0
    assert "ResourceNotFound" in gone.stderr, gone.stderr
    assert [e["name"] for e in az("storage", "file", "list", "-s", "data", "-p", "in",
                                  *c)] == ["deeper", "empty.txt"]

    # what az put is what the share holds on the node, byte for byte
    az("storage", "file", "upload", "-s", "data", "--source", str(source),
       "--path", "copy.bin", *c)
    storage = skiff.server.plane.storage
    assert storage is not None
    assert (Path(storage.root(ShareRef(account, "data"))) / "copy.bin").read_bytes() == content

    # a wrong key: every command fails as Azure's does, and the key is never shown
    key = conn.split("AccountKey=", 1)[1].split(";", 1)[0]
    wrong = conn.replace(key, "A" * (len(key) - 2) + "==")
    for args in (("storage", "share", "list"),
                 ("storage", "file", "list", "-s", "data"),
                 ("storage", "file", "download", "-s", "data", "-p", "copy.bin",
                  "--dest", str(tmp_path / "never.bin"))):
        failed = az.run(*args, "--connection-string", wrong, "--debug")
        assert failed.returncode != 0, args
        # az words some of these its own way; the answer is in its debug log
        assert "<Code>AuthenticationFailed</Code>" in failed.stderr, args
        assert key not in failed.stderr + failed.stdout
    assert not (tmp_path / "never.bin").exists() or \
        (tmp_path / "never.bin").read_bytes() == b""

    # deleting
    assert az("storage", "directory", "delete", "-s", "data", "-n", "in/deeper", *c) == \
        {"deleted": True}
    assert az("storage", "share", "delete", "-n", "other", *c) == {"deleted": True}
    assert az("storage", "share", "exists", "-n", "other", *c) == {"exists": False}


def test_without_the_data_plane_accounts_have_no_file_endpoint(tmp_path: Path) -> None:
    """skiff serve --files-listen none: no account answers a primaryEndpoints.file that
    nobody serves, and show-connection-string says why it has no string to give."""
    with running_server(tmp_path / "root", files=False) as bare:
        assert bare.settings.files.listen is None
        made = skiff_cli(bare, "storage", "account", "create", "-n", "nofiles", "-g", "rg")
        assert made["primaryEndpoints"] == {}

        def factory() -> SkiffClient:
            return SkiffClient(bare.url, bare.token, ca=str(bare.ca))

        refused = CliRunner().invoke(main, ["storage", "account", "show-connection-string",
                                            "-n", "nofiles"], obj=factory)
        assert refused.exit_code == 1
        assert "(NoFileEndpoint)" in refused.stderr
