"""The ARM answer for a container group: its definition, redacted, and its instance view.

Every GET, PUT and list answer is built here, so this is where secrets are
kept out of answers, once for all routes. As the real service does, an
answer never holds an environment variable's ``secureValue`` (the variable
is answered by name), a registry password, a secret volume's contents (its
file names map to null), an Azure file share's ``storageAccountKey``, a Log
Analytics ``workspaceKey`` nor an extension's ``protectedSettings``.

The instance view comes from the engine's :class:`~skiff.core.view.GroupView`:
per container the restart count, current and previous state and events, and
for the group its state and events. Without a view (the group is not yet on a
node) the instance views are left out rather than made up.
"""

from __future__ import annotations

from typing import Any

from skiff.core.view import ContainerView, Event, GroupView, State, iso
from skiff.models.body import ContainerGroupBody

RESOURCE_TYPE = "Microsoft.ContainerInstance/containerGroups"


def render_container_group(
    body: ContainerGroupBody,
    *,
    resource_id: str,
    name: str,
    provisioning_state: str,
    view: GroupView | None,
    ip: str | None = None,
    fqdn: str | None = None,
    include_instance_view: bool = True,
) -> dict[str, Any]:
    """The group as ARM answers it; ``include_instance_view=False`` for list answers.

    ``ip`` defaults to the view's address; ``fqdn`` is answered when given.
    """
    doc = body.to_stored()
    props: dict[str, Any] = doc.pop("properties")
    out: dict[str, Any] = {
        "id": resource_id,
        "name": name,
        "type": RESOURCE_TYPE,
        "location": doc.pop("location"),
        "tags": doc.pop("tags", {}),
        **doc,  # identity, zones and properties skiff does not know
    }
    views: dict[str, ContainerView] = {}
    if view is not None and include_instance_view:
        views = {v.name: v for v in view.all_containers()}

    answer: dict[str, Any] = {"provisioningState": provisioning_state, **props}
    for key in ("containers", "initContainers"):
        answer[key] = [_container(c, views.get(c["name"])) for c in props.get(key, [])]
    answer["imageRegistryCredentials"] = [
        {k: v for k, v in cred.items() if k != "password"}
        for cred in props.get("imageRegistryCredentials", [])
    ]
    answer["volumes"] = [_volume(v) for v in props.get("volumes", [])]
    if "ipAddress" in props:
        address = dict(props["ipAddress"])
        ip = ip if ip is not None else (view.ip if view is not None else None)
        if ip is not None:
            address["ip"] = ip
        if fqdn is not None:
            address["fqdn"] = fqdn
        answer["ipAddress"] = address
    if "diagnostics" in props:
        answer["diagnostics"] = _diagnostics(props["diagnostics"])
    if "extensions" in props:
        answer["extensions"] = [_extension(e) for e in props["extensions"]]
    if view is not None and include_instance_view:
        instance: dict[str, Any] = {"state": view.state,
                                    "events": [_event(e) for e in view.events]}
        if view.failure:  # why the group failed (a volume, the network, an image): not
            instance["detailStatus"] = view.failure  # only in its operation's error
        answer["instanceView"] = instance
    out["properties"] = answer
    return out


def _container(container: dict[str, Any], view: ContainerView | None) -> dict[str, Any]:
    props = dict(container["properties"])
    if "environmentVariables" in props:
        # A secure variable is answered by name alone, as ACI does.
        props["environmentVariables"] = [
            {k: v for k, v in var.items() if k != "secureValue"}
            for var in props["environmentVariables"]
        ]
    if view is not None:
        props["instanceView"] = render_container_view(view)
    return {**container, "properties": props}


def render_container_view(view: ContainerView) -> dict[str, Any]:
    """A container's ``instanceView``."""
    out: dict[str, Any] = {
        "restartCount": view.restart_count,
        "currentState": _state(view.current),
    }
    if view.previous is not None:
        out["previousState"] = _state(view.previous)
    out["events"] = [_event(e) for e in view.events]
    return out


def _state(state: State) -> dict[str, Any]:
    out = {
        "state": state.state,
        "startTime": iso(state.start_time),
        "exitCode": state.exit_code,
        "finishTime": iso(state.finish_time),
        "detailStatus": state.detail_status,
    }
    return {k: v for k, v in out.items() if v is not None}


def _event(event: Event) -> dict[str, Any]:
    return {
        "count": event.count,
        "firstTimestamp": iso(event.first_timestamp),
        "lastTimestamp": iso(event.last_timestamp),
        "name": event.name,
        "message": event.message,
        "type": event.type,
    }


def _volume(volume: dict[str, Any]) -> dict[str, Any]:
    out = dict(volume)
    if isinstance(out.get("secret"), dict):
        out["secret"] = dict.fromkeys(out["secret"])
    if isinstance(out.get("azureFile"), dict):
        out["azureFile"] = {k: v for k, v in out["azureFile"].items()
                            if k.lower() != "storageaccountkey"}
    return out


def _diagnostics(diagnostics: dict[str, Any]) -> dict[str, Any]:
    out = dict(diagnostics)
    for key, value in diagnostics.items():
        if key.lower() == "loganalytics" and isinstance(value, dict):
            out[key] = {k: v for k, v in value.items() if k.lower() != "workspacekey"}
    return out


def _extension(extension: Any) -> Any:
    if not isinstance(extension, dict) or not isinstance(extension.get("properties"), dict):
        return extension
    props = {k: v for k, v in extension["properties"].items()
             if k.lower() != "protectedsettings"}
    return {**extension, "properties": props}
