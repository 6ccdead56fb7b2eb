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

from collections.abc import Mapping
from typing import Any, cast

from skiff.documents import redacted, todict


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

    clean = redacted(body)
    try:
        view = cast(dict[str, Any], todict(ContainerGroup.deserialize(clean)))
    except DeserializationError:
        view = _lifted(clean)
    add_resource_group(view)
    return view


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
