"""ACI documents: a container group's ARM body from ``create``'s flags, from an ACI YAML
file, and back out as ``export`` writes it.

The CLI (``skiff container create|export``) and the web portal (its create form, YAML tab
and export) must send and show the same documents az would; both are clients of the API,
neither may import the other, so the translation lives here: pure functions of their
arguments, on the standard library (PyYAML imported by the functions that parse or write
YAML), testable without a server. Errors are :class:`InvalidDocument`; the secret values
a document carries are listed (:func:`secrets_of`) so that no error message shows them,
and an exported one has none (:func:`redacted`), only where they go back
(:func:`secret_slots`).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from copy import deepcopy
from datetime import date, datetime, timedelta
from datetime import time as dtime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from skiff.errors import SkiffError

if TYPE_CHECKING:
    import yaml  # type: ignore[import-untyped,unused-ignore]


class InvalidDocument(SkiffError):
    """A document (flags, a YAML file) that makes no container group; ``detail``, if
    any, is a parser's report (its lines, a caret under a column), for the user's own eyes."""

    code = "InvalidArgumentValue"

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


# ---- a group's body from create's flags ------------------------------------------------

#: The name az gives the volume of its --azure-file-volume-* flags.
AZURE_FILE_VOLUME = "azurefile"
#: The names of the other volumes a form or flags make (az's: ``secrets``, ``gitrepo``).
EMPTY_DIR_VOLUME = "emptydir"
SECRETS_VOLUME = "secrets"
GIT_REPO_VOLUME = "gitrepo"


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
               sku: str | None = None, empty_dir: str | None = None,
               secrets: Mapping[str, str] | None = None, secrets_mount_path: str | None = None,
               git_repo: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ARM body of ``az container create``'s flags: one container named as
    the group; ports opened on an IP address only when it asks for one. A group
    in a subnet (``subnet_id``, its ARM id) has a Private address, as in az;
    the flags that contradict that are refused before (:func:`check_network_flags`).
    ``azure_file`` (from :func:`azure_file_flags`): a file share mounted as az mounts
    it, a volume named ``azurefile`` (``read_only: "true"``: mounted read-only).
    The other volumes, in this order after it: ``empty_dir`` (a mount path) an emptyDir
    named ``emptydir``; ``secrets`` (file name → base64 content) at ``secrets_mount_path``,
    named ``secrets``; ``git_repo`` (``repository``, ``mount_path``, optional
    ``directory`` and ``revision``) named ``gitrepo`` (mounted only where ``mount_path``
    is given), as az's ``--secrets*`` and ``--gitrepo-*`` flags make them."""
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
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if azure_file:
        share: dict[str, Any] = {
            "shareName": azure_file["share"], "storageAccountName": azure_file["account"],
            "storageAccountKey": azure_file["key"]}
        mount: dict[str, Any] = {"name": AZURE_FILE_VOLUME,
                                 "mountPath": azure_file["mount_path"]}
        if azure_file.get("read_only") == "true":
            share["readOnly"] = mount["readOnly"] = True
        volumes.append({"name": AZURE_FILE_VOLUME, "azureFile": share})
        mounts.append(mount)
    if empty_dir:
        volumes.append({"name": EMPTY_DIR_VOLUME, "emptyDir": {}})
        mounts.append({"name": EMPTY_DIR_VOLUME, "mountPath": empty_dir})
    if secrets is not None and secrets_mount_path:
        volumes.append({"name": SECRETS_VOLUME, "secret": dict(secrets)})
        mounts.append({"name": SECRETS_VOLUME, "mountPath": secrets_mount_path})
    if git_repo:
        repo = {"repository": git_repo["repository"]}
        repo.update({k: git_repo[k] for k in ("directory", "revision") if git_repo.get(k)})
        volumes.append({"name": GIT_REPO_VOLUME, "gitRepo": repo})
        if git_repo.get("mount_path"):  # az defines the volume unmounted without one
            mounts.append({"name": GIT_REPO_VOLUME, "mountPath": git_repo["mount_path"]})
    if volumes:
        props["volumes"] = volumes
    if mounts:
        container["volumeMounts"] = mounts
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


# ---- ACI YAML files --------------------------------------------------------------------

# Top-level keys of a container group resource; an ACI YAML file's others
# (apiVersion, az export's additional_properties) are not part of the body.
RESOURCE_KEYS = ("name", "type", "location", "tags", "identity", "zones", "properties")


def yaml_error(path: Path | str, exc: yaml.YAMLError) -> InvalidDocument:
    """PyYAML's report of where ``path`` is broken, as PyYAML words it (what it was
    parsing, the line and column, the line itself with a caret under the column), as az
    prints it. The line is the user's own, shown on their terminal; the API's messages,
    which may be logged, quote positions only (:mod:`skiff.models.deployment`)."""
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    problem = getattr(exc, "problem", None) or type(exc).__name__
    return InvalidDocument(f"Error while parsing yaml file {path}{where}: {problem}",
                           detail=str(exc).replace('"<unicode string>"', f'"{path}"'))


def body_from_yaml(text: str, name: str | None,
                   source: Path | str) -> tuple[str, dict[str, Any]]:
    """The group's name and ARM body from an ACI YAML document's text (a file's, or one
    pasted into the portal); ``source`` names it in errors."""
    import yaml  # type: ignore[import-untyped,unused-ignore]  # --file only: ~15 ms to import

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise yaml_error(source, exc) from exc
    if not isinstance(data, dict) or not isinstance(data.get("properties"), dict):
        raise InvalidDocument(f"{source} is not a container group: it needs a 'properties' "
                              "mapping")
    in_file = data.get("name")
    if name and in_file and name != in_file:
        raise InvalidDocument("The name parameter and name from yaml definition must match.")
    name = name or (str(in_file) if in_file else None)
    if not name:
        raise InvalidDocument("The name of the container group is required")
    body = {k: data[k] for k in RESOURCE_KEYS if data.get(k) is not None}
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


# ---- export ----------------------------------------------------------------------------


def _camel(name: str) -> str:
    return re.sub(r"(?!^)_([a-zA-Z])", lambda m: m.group(1).upper(), name)


def todict(obj: Any) -> Any:
    """What az's ``todict`` makes of an SDK model: attribute names in camelCase,
    enums as values, times in ISO form; ``None`` dropped."""
    if hasattr(type(obj), "_attribute_map"):
        return {_camel(key): todict(value) for key, value in vars(obj).items()
                if value is not None and not key.startswith("_") and not callable(value)
                and key != "additional_properties"}
    if isinstance(obj, dict):
        return {key: todict(value) for key, value in obj.items() if value is not None}
    if isinstance(obj, list):
        return [todict(item) for item in obj if item is not None]
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, datetime | date | dtime):
        return obj.isoformat()
    if isinstance(obj, timedelta):
        return str(obj)
    return obj


def redacted(body: Mapping[str, Any]) -> dict[str, Any]:
    """The group without any secret value, should a server ever echo one."""
    group = deepcopy(dict(body))
    props = group.get("properties")
    if not isinstance(props, dict):
        return group
    for key in ("containers", "initContainers"):
        for container in props.get(key) or []:
            for env in (container.get("properties") or {}).get("environmentVariables") or []:
                if isinstance(env, dict):
                    env.pop("secureValue", None)
    for cred in props.get("imageRegistryCredentials") or []:
        if isinstance(cred, dict):
            cred.pop("password", None)
    for volume in props.get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        if isinstance(volume.get("azureFile"), dict):
            volume["azureFile"].pop("storageAccountKey", None)
        if isinstance(volume.get("secret"), dict):
            volume["secret"] = {name: None for name in volume["secret"]}
    return group


def export_view(body: Mapping[str, Any], api_version: str) -> dict[str, Any]:
    """A container group as ``az container export`` writes it: the ARM body
    with ``apiVersion``, without its state (provisioningState, instance views,
    the address it was given) and without secrets."""
    group = redacted(body)
    out: dict[str, Any] = {"apiVersion": api_version}
    for key in ("location", "name", "identity", "zones", "tags", "type"):
        if group.get(key) is not None:
            out[key] = group[key]
    props = dict(group.get("properties") or {})
    for key in ("instanceView", "provisioningState"):
        props.pop(key, None)
    if isinstance(props.get("ipAddress"), dict):
        props["ipAddress"] = {k: v for k, v in props["ipAddress"].items()
                              if k not in ("ip", "fqdn")}
    for key in ("containers", "initContainers"):
        if isinstance(props.get(key), list):
            props[key] = [_without_instance_view(c) for c in props[key]]
    out["properties"] = props
    return cast(dict[str, Any], todict(out))


def export_yaml(body: Mapping[str, Any], api_version: str) -> str:
    """``az container export``'s file of a group (:func:`export_view` as YAML), headed by
    a comment that lists where its secrets go back (:func:`secret_slots`)."""
    import yaml  # type: ignore[import-untyped,unused-ignore]  # export only: ~15 ms to import

    text: str = yaml.safe_dump(export_view(body, api_version), default_flow_style=False,
                               allow_unicode=True)
    slots = secret_slots(body)
    if slots:
        text = "".join(["# Secrets are not exported. Put them back before "
                        "`skiff container create --file`:\n",
                        *(f"#   {slot}\n" for slot in slots), text])
    return text


def secret_slots(body: Mapping[str, Any]) -> list[str]:
    """Where an exported group needs a secret put back before it can be created
    again: the API shows secure variables, registry credentials, storage keys
    and secret files without their values."""
    props = body.get("properties") or {}
    slots: list[str] = []
    for key in ("containers", "initContainers"):
        for i, c in enumerate(props.get(key) or []):
            envs = (c.get("properties") or {}).get("environmentVariables") or []
            slots += [f"properties.{key}[{i}].properties.environmentVariables[{j}].secureValue "
                      f"({env.get('name')})" for j, env in enumerate(envs)
                      if env.get("value") is None]
    slots += [f"properties.imageRegistryCredentials[{i}].password ({cred.get('server')})"
              for i, cred in enumerate(props.get("imageRegistryCredentials") or [])]
    for i, volume in enumerate(props.get("volumes") or []):
        if isinstance(volume.get("azureFile"), dict):
            slots.append(f"properties.volumes[{i}].azureFile.storageAccountKey "
                         f"({volume.get('name')})")
        slots += [f"properties.volumes[{i}].secret.{file} ({volume.get('name')})"
                  for file in volume.get("secret") or {}]
    return slots


def _without_instance_view(container: Any) -> Any:
    if isinstance(container, dict) and isinstance(container.get("properties"), dict):
        container = {**container, "properties": {k: v for k, v in container["properties"].items()
                                                 if k != "instanceView"}}
    return container
