"""What az shows of a resource: the Azure SDK's model of an ARM body, flattened.

``az container show`` does not print the ARM body the API answers: it prints
the SDK's model of it (``properties`` flattened away, attribute names in
camelCase, enums as values, ``None`` dropped) with ``resourceGroup`` added to
every object that has an ARM ``id``. Scripts written against az read those
names, so skiff makes the same view here, without the secrets a server
should never echo. ``export`` writes the ARM body instead, without its state,
and says where the secrets it could not export belong; ``-o table`` is az's
``transform_container_group``. :func:`todict` and :func:`add_resource_group`
are az's post-processing for any resource: ``skiff network`` uses them too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from copy import deepcopy
from datetime import date, datetime, timedelta
from datetime import time as dtime
from enum import Enum
from typing import Any, cast

from skiff.client import API_VERSION


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


def _resource_group_of(resource_id: str) -> str | None:
    parts = resource_id.split("/")
    for i, part in enumerate(parts[:-1]):
        if part.lower() == "resourcegroups":
            return parts[i + 1] or None
    return None


def add_resource_group(obj: Any) -> None:
    """az's post-processing: every object with an ARM ``id`` gets its ``resourceGroup``."""
    if isinstance(obj, list):
        for item in obj:
            add_resource_group(item)
    elif isinstance(obj, dict):
        if "resourcegroup" not in (k.lower() for k in obj) and isinstance(obj.get("id"), str):
            rg = _resource_group_of(obj["id"])
            if rg is not None:
                obj["resourceGroup"] = rg
        for key, value in obj.items():
            if key != "sourceVault":
                add_resource_group(value)


def _redacted(body: Mapping[str, Any]) -> dict[str, Any]:
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


def _lifted(body: Mapping[str, Any]) -> dict[str, Any]:
    """The flattening by hand, for a body the SDK cannot read."""
    out = {k: v for k, v in body.items() if k != "properties"}
    out.update(body.get("properties") or {})
    for key in ("containers", "initContainers"):
        if isinstance(out.get(key), list):
            out[key] = [{**{k: v for k, v in c.items() if k != "properties"},
                         **(c.get("properties") or {})} for c in out[key] if isinstance(c, dict)]
    return cast(dict[str, Any], todict(out))


def az_view(body: Mapping[str, Any]) -> dict[str, Any]:
    """A container group as ``az container show`` prints it: the SDK's model of
    the ARM body, flattened, camelCase, ``resourceGroup`` added, secrets removed."""
    # The SDK's models take ~30 ms to import: only a command that prints a group pays it.
    from azure.core.exceptions import DeserializationError
    from azure.mgmt.containerinstance.models import ContainerGroup

    clean = _redacted(body)
    try:
        view = cast(dict[str, Any], todict(ContainerGroup.deserialize(clean)))
    except DeserializationError:
        view = _lifted(clean)
    add_resource_group(view)
    return view


def export_view(body: Mapping[str, Any]) -> dict[str, Any]:
    """A container group as ``az container export`` writes it: the ARM body
    with ``apiVersion``, without its state (provisioningState, instance views,
    the address it was given) and without secrets."""
    group = _redacted(body)
    out: dict[str, Any] = {"apiVersion": API_VERSION}
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


def export_yaml(body: Mapping[str, Any]) -> str:
    """``az container export``'s file of a group (:func:`export_view` as YAML), headed by
    a comment that lists where its secrets go back (:func:`secret_slots`)."""
    import yaml  # type: ignore[import-untyped,unused-ignore]  # export only: ~15 ms to import

    text: str = yaml.safe_dump(export_view(body), default_flow_style=False, allow_unicode=True)
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


def _group_row(group: Mapping[str, Any]) -> dict[str, Any]:
    """az's ``transform_container_group``: one row of ``az container list -o table``."""
    containers = [c for c in group.get("containers") or [] if isinstance(c, dict)]
    images = ",".join(dict.fromkeys(str(c.get("image")) for c in containers)) or None
    cpu_memory = None
    if containers:
        cpu = memory = 0.0
        for c in containers:
            requests = (c.get("resources") or {}).get("requests") or {}
            cpu += float(requests.get("cpu", 0))
            memory += float(requests.get("memoryInGb", 0))
        # Rounded: 0.1 + 0.2 cores is 0.3, not 0.30000000000000004 (az prints the sum).
        cpu_memory = f"{round(cpu, 2)} core/{round(memory, 2)} gb"
    ip_ports = network = None
    ip = group.get("ipAddress")
    if ip:
        ports = list(ip.get("ports") or [])
        if ip.get("type") == "Private":
            for c in containers:
                ports += c.get("ports") or []
        ip_ports = f"{ip.get('ip') or ''}:{','.join(str(p.get('port')) for p in ports)}"
        network = ip.get("type")
    status = (group.get("instanceView") or {}).get("state") or group.get("provisioningState")
    return {"Name": group.get("name"), "ResourceGroup": group.get("resourceGroup"),
            "Status": status, "Image": images, "IP:ports": ip_ports, "Network": network,
            "CPU/Memory": cpu_memory, "OsType": group.get("osType"),
            "Location": group.get("location")}


def group_table(result: Any) -> list[dict[str, Any]]:
    """az's table of container groups: a row per group."""
    groups = result if isinstance(result, list) else [result]
    return [_group_row(g) for g in groups if isinstance(g, dict)]


def resource_view(body: dict[str, Any]) -> dict[str, Any]:
    """A resource as az prints it: properties flattened, ``resourceGroup`` added."""
    view = {k: v for k, v in body.items() if k != "properties"}
    view.update(body.get("properties") or {})
    out = cast(dict[str, Any], todict(view))
    add_resource_group(out)
    return out
