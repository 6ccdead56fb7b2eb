"""``create``'s flags and files, read as az reads them, before a body is made.

``az container create`` makes a group from flags (one container named as
the group, its ports, environment, registry credentials, network placement)
or from a deployment file; skiff takes the same flags and files and must
send the API the same body az would. The body itself is
:mod:`skiff.documents`' (the portal makes it too); this module holds what
only the command line has, pure functions of their arguments and testable
without a server or a click context: the checks az makes on the network
flags before anything is created, the ``key=value`` lists, the registry an
image names, the identities, the file share, secret and gitRepo volume flags,
and a YAML file read from disk.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import click

from skiff.cli.common import InvalidArgument
from skiff.cli.subnets import is_resource_id
from skiff.documents import InvalidDocument, body_from_yaml


def parse_pairs(values: tuple[str, ...], flag: str) -> list[tuple[str, str]]:
    """az's ``KEY=VALUE`` list of ``flag`` as pairs; one without a key and ``=`` is refused."""
    pairs = []
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value.split('=')[0]!r} is not in the format "
                                     "'key=value'", param_hint=flag)
        pairs.append((key, val))
    return pairs


def registry_server(image: str) -> str | None:
    """The registry an image reference names, as Docker reads it (None: Docker Hub)."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


#: What ``--assign-identity`` names the group's own (system-assigned) identity, as az.
SYSTEM_IDENTITY = "[system]"


def identity_body(values: tuple[str, ...]) -> dict[str, Any]:
    """The group's ``identity`` for ``--assign-identity`` as az builds it: ``[system]``
    (or the flag alone) for the system identity, anything else a user-assigned
    identity's resource id; both kinds give ``"SystemAssigned, UserAssigned"``."""
    ids = [v for value in values for v in value.split()]
    users = list(dict.fromkeys(v for v in ids if v.lower() != SYSTEM_IDENTITY))
    system = any(v.lower() == SYSTEM_IDENTITY for v in ids)
    if not users:
        return {"type": "SystemAssigned"}
    return {"type": "SystemAssigned, UserAssigned" if system else "UserAssigned",
            "userAssignedIdentities": {v: {} for v in users}}


def azure_file_flags(*, share: str | None, account: str | None, key: str | None,
                     mount_path: str | None) -> dict[str, str] | None:
    """The --azure-file-volume-* flags, checked as az checks them: none, or all four."""
    if not (share or account or key or mount_path):
        return None
    if not (share and account and key):
        raise InvalidArgument("Please specify --azure-file-volume-share-name, "
                              "--azure-file-volume-account-name and "
                              "--azure-file-volume-account-key to use Azure File volume mount.")
    if not mount_path:
        raise InvalidArgument("Please specify --azure-file-volume-mount-path to use Azure "
                              "File volume mount.")
    _check_mount_path(mount_path)
    return {"share": share, "account": account, "key": key, "mount_path": mount_path}


def _check_mount_path(path: str | None) -> None:
    """az's check of a volume's mount path (it makes it of --azure-file-volume-mount-path
    alone; skiff of every mount path flag)."""
    if path and ":" in path:
        raise InvalidArgument("The volume mount path cannot contain ':'")


def secrets_flags(values: tuple[str, ...], mount_path: str | None
                  ) -> tuple[dict[str, str], str] | None:
    """``--secrets`` (``file=content`` pairs) and ``--secrets-mount-path`` as az reads
    them: a secret volume whose files hold the contents, base64-encoded in the body (az
    encodes ASCII only; skiff encodes UTF-8, of which ASCII is a part); a later pair of the
    same name wins, as az's dictionary. Secrets without a mount path are refused as az
    refuses them; a mount path without secrets too (az ignores it: skiff says so)."""
    if not values:
        if mount_path:
            raise InvalidArgument("Please specify --secrets --secrets-mount-path to enable "
                                  "secrets volume mount.")
        return None
    found: dict[str, str] = {}
    for value in values:
        name, sep, content = value.partition("=")
        if not sep:
            raise InvalidArgument("Secrets need to be specified in key=value format.")
        found[name] = base64.b64encode(content.encode("utf-8")).decode("ascii")
    if not mount_path:
        raise InvalidArgument("Please specify --secrets --secrets-mount-path to enable "
                              "secrets volume mount.")
    _check_mount_path(mount_path)
    return found, mount_path


def gitrepo_flags(*, url: str | None, directory: str | None, revision: str | None,
                  mount_path: str | None) -> dict[str, str] | None:
    """The --gitrepo-* flags as az reads them: a gitRepo volume of the repository's URL
    (optional directory, revision), mounted at the mount path if one is given (az then
    defines the volume unmounted, as skiff does). The others without --gitrepo-url are
    refused with az's message (az refuses the mount path alone and ignores the rest)."""
    if not url:
        if directory or revision or mount_path:
            raise InvalidArgument("Please specify --gitrepo-url (--gitrepo-dir "
                                  "--gitrepo-revision) to enable Git Repo volume mount.")
        return None
    if directory and ".." in directory:
        raise InvalidArgument("The git repo directory cannot contain '..'")
    _check_mount_path(mount_path)
    found = {"repository": url, "directory": directory or "", "revision": revision or ""}
    if mount_path:
        found["mount_path"] = mount_path
    return found


def check_ports(ports: tuple[int, ...], *, has_ip: bool) -> None:
    """Refuse a port given twice (their range is the option's type); say, on stderr, that
    ports given for a group without an IP address are not opened: az drops them silently
    (it sends no container ports then), skiff sends the same body, but not in silence."""
    for port in ports:
        if ports.count(port) > 1:
            raise click.UsageError(f"--ports lists the port {port} more than once.")
    if ports and not has_ip:
        click.echo(f"WARNING: --ports {' '.join(map(str, ports))} not opened: the group has "
                   "no IP address (give --ip-address Public, --dns-name-label or --subnet).",
                   err=True)


def check_network_flags(*, vnet: str | None, subnet: str | None, ip_address: str | None,
                         dns_name_label: str | None) -> None:
    """Refuse what az refuses, or what the API would, before anything is made: a group
    in a subnet is private (no public IP, no DNS name label), a private one needs a subnet."""
    private = ip_address is not None and ip_address.lower() == "private"
    if not subnet:
        if vnet:
            raise click.UsageError("usage error: --vnet NAME --subnet NAME | --vnet ID "
                                   "--subnet NAME | --subnet ID")
        if private:
            raise click.UsageError("--ip-address Private places the group in a virtual "
                                   "network: give its subnet with --vnet NAME --subnet NAME "
                                   "(or --subnet ID).")
        return
    if not vnet and not is_resource_id(subnet):
        raise click.UsageError("usage error: --vnet NAME --subnet NAME | --vnet ID --subnet "
                               "NAME | --subnet ID")
    if dns_name_label:
        raise click.UsageError("--dns-name-label cannot be used with --subnet: a group in a "
                               "virtual network has a private IP address and no DNS name "
                               "label.")
    if ip_address and not private:
        raise click.UsageError("--ip-address Public cannot be used with --subnet: a group in "
                               "a virtual network has a private IP address.")


def body_from_file(path: Path, name: str | None) -> tuple[str, dict[str, Any]]:
    """The group's name and ARM body from an ACI YAML file (as ``az container
    create --file``: the name of ``-n`` and of the file must agree)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return body_from_yaml(text, name, path)
    except InvalidDocument as exc:
        raise InvalidArgument(exc.message, detail=exc.detail) from exc


