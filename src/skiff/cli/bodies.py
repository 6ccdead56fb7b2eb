"""The ARM body of a container group, from ``create``'s flags or an ACI YAML file.

``az container create`` makes a group from flags (one container named as
the group, its ports, environment, registry credentials, network placement)
or from a deployment file; skiff takes the same flags and files and must
send the API the same body az would. This module holds that translation,
pure functions of their arguments and testable without a server or a click
context: the flags' body (:func:`group_body`), the checks az makes on the
network flags before anything is created, the ``key=value`` lists, the
registry an image names, a YAML file's name and body, and the secret values
a file carries (so that no error message ever shows them).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from skiff.cli.common import InvalidArgument
from skiff.cli.subnets import is_resource_id

if TYPE_CHECKING:
    import yaml  # type: ignore[import-untyped,unused-ignore]


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


def group_body(*, name: str, image: str, location: str | None = None, cpu: float = 1,
               memory: float = 1.5, ports: tuple[int, ...] = (80,), protocol: str | None = None,
               ip_address: str | None = None, dns_name_label: str | None = None,
               restart_policy: str = "Always", command_line: str | None = None,
               environment_variables: list[tuple[str, str]] | None = None,
               secure_environment_variables: list[tuple[str, str]] | None = None,
               registry_login_server: str | None = None, registry_username: str | None = None,
               registry_password: str | None = None, os_type: str = "Linux",
               subnet_id: str | None = None, isolation: str | None = None,
               azure_file: Mapping[str, str] | None = None, priority: str | None = None,
               sku: str | None = None) -> dict[str, Any]:
    """The ARM body of ``az container create``'s flags: one container named as
    the group; ports opened on an IP address only when it asks for one. A group
    in a subnet (``subnet_id``, its ARM id) has a Private address, as in az;
    the flags that contradict that are refused before (:func:`check_network_flags`).
    ``azure_file`` (from :func:`azure_file_flags`): a file share mounted as az mounts
    it, a volume named ``azurefile``."""
    env = [{"name": k, "value": v} for k, v in environment_variables or []]
    env += [{"name": k, "secureValue": v} for k, v in secure_environment_variables or []]
    container: dict[str, Any] = {
        "image": image,
        "resources": {"requests": {"cpu": cpu, "memoryInGB": memory}},
    }
    if command_line:
        container["command"] = shlex.split(command_line)
    if env:
        container["environmentVariables"] = env
    props: dict[str, Any] = {"containers": [{"name": name, "properties": container}],
                             "osType": os_type, "restartPolicy": restart_policy}
    ip_type = "Public" if dns_name_label else ip_address
    if subnet_id or (ip_address and ip_address.lower() == "private"):
        ip_type = "Private"
    if ip_type:
        open_ports = [{"protocol": protocol or "TCP", "port": p} for p in ports]
        container["ports"] = [dict(p) for p in open_ports]
        ip: dict[str, Any] = {"ports": open_ports, "type": ip_type}
        if dns_name_label:
            ip["dnsNameLabel"] = dns_name_label
        props["ipAddress"] = ip
    if subnet_id:
        props["subnetIds"] = [{"id": subnet_id}]
    if azure_file:
        props["volumes"] = [{"name": AZURE_FILE_VOLUME, "azureFile": {
            "shareName": azure_file["share"], "storageAccountName": azure_file["account"],
            "storageAccountKey": azure_file["key"]}}]
        container["volumeMounts"] = [{"name": AZURE_FILE_VOLUME,
                                      "mountPath": azure_file["mount_path"]}]
    if priority:
        props["priority"] = priority.capitalize()
    if sku:
        props["sku"] = sku.capitalize()
    if isolation:  # skiff's extension: Container (runc) or Sandbox (gVisor)
        props["isolation"] = isolation.capitalize()
    if registry_login_server:
        props["imageRegistryCredentials"] = [{"server": registry_login_server,
                                              "username": registry_username,
                                              "password": registry_password}]
    body: dict[str, Any] = {"properties": props}
    if location:
        body["location"] = location
    return body


#: The name az gives the volume of its --azure-file-volume-* flags.
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


AZURE_FILE_VOLUME = "azurefile"


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
    return {"share": share, "account": account, "key": key, "mount_path": mount_path}


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


# Top-level keys of a container group resource; an ACI YAML file's others
# (apiVersion, az export's additional_properties) are not part of the body.
_RESOURCE_KEYS = ("name", "type", "location", "tags", "identity", "zones", "properties")


def yaml_error(path: Path | str, exc: yaml.YAMLError) -> InvalidArgument:
    """PyYAML's report of where ``path`` is broken, as PyYAML words it (what it was
    parsing, the line and column, the line itself with a caret under the column), as az
    prints it. The line is the user's own, shown on their terminal; the API's messages,
    which may be logged, quote positions only (:mod:`skiff.models.deployment`)."""
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    problem = getattr(exc, "problem", None) or type(exc).__name__
    return InvalidArgument(f"Error while parsing yaml file {path}{where}: {problem}",
                           detail=str(exc).replace('"<unicode string>"', f'"{path}"'))


def body_from_file(path: Path, name: str | None) -> tuple[str, dict[str, Any]]:
    """The group's name and ARM body from an ACI YAML file (as ``az container
    create --file``: the name of ``-n`` and of the file must agree)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc.strerror or exc}") from exc
    return body_from_yaml(text, name, path)


def body_from_yaml(text: str, name: str | None, source: Path | str) -> tuple[str, dict[str, Any]]:
    """The group's name and ARM body from an ACI YAML document's text (a file's, or one
    pasted into the portal); ``source`` names it in errors."""
    import yaml  # type: ignore[import-untyped,unused-ignore]  # --file only: ~15 ms to import

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise yaml_error(source, exc) from exc
    if not isinstance(data, dict) or not isinstance(data.get("properties"), dict):
        raise InvalidArgument(f"{source} is not a container group: it needs a 'properties' "
                              "mapping")
    in_file = data.get("name")
    if name and in_file and name != in_file:
        raise InvalidArgument("The name parameter and name from yaml definition must match.")
    name = name or (str(in_file) if in_file else None)
    if not name:
        raise InvalidArgument("The name of the container group is required")
    body = {k: data[k] for k in _RESOURCE_KEYS if data.get(k) is not None}
    body["name"] = name
    return name, body


def secrets_of(body: Mapping[str, Any]) -> list[str]:
    """The secret values of a deployment file, whatever its shape: a file the API
    will refuse must still be read here, so that its error is the API's."""
    def mapping(value: Any) -> Mapping[str, Any]:
        return value if isinstance(value, Mapping) else {}

    def items(value: Any) -> list[Mapping[str, Any]]:
        return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []

    props = mapping(body.get("properties"))
    found: list[str] = []
    for key in ("containers", "initContainers"):
        for c in items(props.get(key)):
            for env in items(mapping(c.get("properties")).get("environmentVariables")):
                found.append(str(env.get("secureValue") or ""))
    found += [str(c.get("password") or "") for c in items(props.get("imageRegistryCredentials"))]
    for volume in items(props.get("volumes")):
        found.append(str(mapping(volume.get("azureFile")).get("storageAccountKey") or ""))
        found += [str(v) for v in mapping(volume.get("secret")).values()]
    return found
