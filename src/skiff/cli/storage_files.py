"""``skiff storage file|directory``: az's data-plane commands against Azure Files (skiff's
data plane, or any endpoint), signed with the account's key (SharedKey).

The account comes from ``--connection-string`` (its ``FileEndpoint``, ``AccountName``
and ``AccountKey``; else ``AZURE_STORAGE_CONNECTION_STRING``) or from
``--account-name``/``--account-key`` (else ``AZURE_STORAGE_ACCOUNT``/``AZURE_STORAGE_KEY``),
addressed at ``SKIFF_FILES_URL/<account>`` (default ``https://127.0.0.1:8444``). The
server's certificate is checked against ``SKIFF_CA`` (else ``<data root>/ca.pem``).
The key is never printed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import wraps
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import click

from skiff.cli.common import _die, keep_secret
from skiff.cli.output import emit, output_options
from skiff.files.client import FilesClient, FilesClientError, parse_connection_string
from skiff.settings import DEFAULT_DATA_ROOT

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_FILES_URL = "https://127.0.0.1:8444"


def _account_options(func: F) -> F:
    for option in reversed([
        click.option("--account-name", envvar="AZURE_STORAGE_ACCOUNT", default=None,
                     help="Storage account name (env AZURE_STORAGE_ACCOUNT)."),
        click.option("--account-key", envvar="AZURE_STORAGE_KEY", default=None,
                     help="Storage account key (env AZURE_STORAGE_KEY)."),
        click.option("--connection-string", envvar="AZURE_STORAGE_CONNECTION_STRING",
                     default=None, help="Storage account connection string "
                     "(env AZURE_STORAGE_CONNECTION_STRING)."),
        click.option("--share-name", "-s", required=True, help="The file share name."),
    ]):
        func = option(func)
    return func


def _files_errors(func: F) -> F:
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except FilesClientError as exc:
            _die(exc.code or str(exc.status), str(exc).split(": ", 1)[-1],
                 3 if exc.status == 404 else 1)
        except OSError as exc:
            _die("OSError", str(exc))
        except Exception as exc:  # httpx's transport errors: no traceback
            _die("ServiceRequestError", f"{type(exc).__name__}: {exc}")

    return wrapper  # type: ignore[return-value]


def _client(account_name: str | None, account_key: str | None,
            connection_string: str | None) -> FilesClient:
    keep_secret(account_key, connection_string)
    endpoint = ""
    if connection_string:
        fields = parse_connection_string(connection_string)
        keep_secret(fields.get("AccountKey"))
        account_name = fields.get("AccountName") or account_name
        account_key = fields.get("AccountKey") or account_key
        endpoint = fields.get("FileEndpoint", "")
    if not account_name or not account_key:
        raise click.UsageError("give --connection-string, or --account-name and "
                               "--account-key")
    if not endpoint:
        base = os.environ.get("SKIFF_FILES_URL") or DEFAULT_FILES_URL
        endpoint = f"{base.rstrip('/')}/{account_name}"
    root = Path(os.environ.get("SKIFF_DATA_ROOT") or DEFAULT_DATA_ROOT)
    ca: str | bool = os.environ.get("SKIFF_CA") or ""
    if not ca:
        ca = str(root / "ca.pem") if (root / "ca.pem").is_file() else True
    return FilesClient(endpoint, account_name, account_key, verify=ca)


@click.group(name="file")
def file_group() -> None:
    """Upload, download, list and delete files in a share."""


@file_group.command()
@_account_options
@click.option("--source", required=True, type=click.Path(exists=True, dir_okay=False,
                                                          path_type=Path),
              help="The local file to upload.")
@click.option("--path", "remote", default=None,
              help="The path in the share to upload to; default: the source's name, at "
                   "the share's root.")
@output_options
@_files_errors
def upload(account_name: str | None, account_key: str | None, connection_string: str | None,
           share_name: str, source: Path, remote: str | None, output: str,
           query: Any) -> None:
    """Upload a file to a share (any size, 4 MiB ranges)."""
    with _client(account_name, account_key, connection_string) as client:
        size = client.upload(source, share_name, remote or source.name)
    emit({"name": PurePosixPath(remote or source.name).name, "contentLength": size},
         output, query)


@file_group.command()
@_account_options
@click.option("--path", "remote", required=True, help="The file's path in the share.")
@click.option("--dest", type=click.Path(path_type=Path), default=None,
              help="The local file (or directory) to write; default: the file's name here.")
@output_options
@_files_errors
def download(account_name: str | None, account_key: str | None, connection_string: str | None,
             share_name: str, remote: str, dest: Path | None, output: str,
             query: Any) -> None:
    """Download a file from a share."""
    name = PurePosixPath(remote).name
    target = dest or Path(name)
    if target.is_dir():
        target = target / name
    with _client(account_name, account_key, connection_string) as client:
        size = client.download(share_name, remote, target)
    emit({"name": name, "contentLength": size, "destination": str(target)}, output, query)


@file_group.command(name="list")
@_account_options
@click.option("--path", "remote", default="", help="The directory to list; default: the root.")
@output_options
@_files_errors
def list_files(account_name: str | None, account_key: str | None,
               connection_string: str | None, share_name: str, remote: str, output: str,
               query: Any) -> None:
    """List the files and directories of a share's directory."""
    with _client(account_name, account_key, connection_string) as client:
        result = [{"name": e.name, "type": "dir" if e.is_directory else "file",
                   "properties": {"contentLength": e.size}}
                  for e in client.list(share_name, remote)]
    emit(result, output, query)


@file_group.command()
@_account_options
@click.option("--path", "remote", required=True, help="The file's path in the share.")
@_files_errors
def delete(account_name: str | None, account_key: str | None, connection_string: str | None,
           share_name: str, remote: str) -> None:
    """Delete a file."""
    with _client(account_name, account_key, connection_string) as client:
        client.delete(share_name, remote)


@click.group(name="directory")
def directory_group() -> None:
    """Create and list directories in a share."""


@directory_group.command(name="create")
@_account_options
@click.option("--name", "-n", required=True, help="The directory's path in the share.")
@output_options
@_files_errors
def create_directory(account_name: str | None, account_key: str | None,
                     connection_string: str | None, share_name: str, name: str, output: str,
                     query: Any) -> None:
    """Create a directory (its parent must exist)."""
    with _client(account_name, account_key, connection_string) as client:
        client.create_directory(share_name, name)
    emit({"created": True}, output, query)


@directory_group.command(name="list")
@_account_options
@click.option("--name", "-n", default="", help="The directory to list; default: the root.")
@output_options
@_files_errors
def list_directories(account_name: str | None, account_key: str | None,
                     connection_string: str | None, share_name: str, name: str, output: str,
                     query: Any) -> None:
    """List the directories of a share's directory."""
    with _client(account_name, account_key, connection_string) as client:
        result = [{"name": e.name} for e in client.list(share_name, name) if e.is_directory]
    emit(result, output, query)
