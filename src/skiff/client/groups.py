"""Container groups: create, read, list, tag, delete, start, restart, stop.

The ACI shapes of api-version 2023-05-01 under
``/subscriptions/<s>/resourceGroups/<rg>/providers/Microsoft.ContainerInstance/containerGroups``.
Creating, deleting, starting and restarting are long-running: the ``begin_*``
methods answer the :class:`~skiff.client.polling.Operation`, the others wait
for it when asked (``wait``), reporting each status to ``progress``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

from skiff.client.errors import ApiError, OperationFailed, json_object
from skiff.client.http import HttpApi
from skiff.client.polling import Operation, Progress

PROVIDER = "Microsoft.ContainerInstance"


def _failure_message(group: Mapping[str, Any]) -> str:
    """Why a deployment failed, from the events the group or its containers report."""
    props = group.get("properties", {})
    events: list[Mapping[str, Any]] = list(props.get("instanceView", {}).get("events") or [])
    for container in props.get("containers", []) or []:
        view = container.get("properties", {}).get("instanceView", {}) or {}
        events.extend(view.get("events", []) or [])
    for event in reversed(events):
        if str(event.get("type", "")).lower() == "warning" and event.get("message"):
            return str(event["message"])
    return f"the container group {group.get('name', '')} failed to deploy"


class GroupsApi(HttpApi):
    """skiff's ARM API for container groups."""

    def group_url(self, rg: str | None = None, name: str | None = None) -> str:
        """The ARM path of a group, of the groups of a resource group (``name``
        None), or of the subscription's groups (both None)."""
        return self.resource_url(f"{PROVIDER}/containerGroups", "a group's", rg, name)

    def begin_create_or_update(self, rg: str, name: str, body: Mapping[str, Any]) -> Operation:
        """PUT the group; the operation to wait for (its body is the group as accepted)."""
        return self._operation("PUT", self.group_url(rg, name), json=body)

    def create_or_update(self, rg: str, name: str, body: Mapping[str, Any], *,
                         wait: bool = True, progress: Progress | None = None) -> dict[str, Any]:
        """PUT the group. With ``wait``, poll until the deployment ends and answer
        the group as it is then (:class:`OperationFailed` if it failed); else
        answer the group as accepted."""
        operation = self.begin_create_or_update(rg, name, body)
        if not wait:
            return operation.body
        self.wait(operation, progress=progress)
        group = self.get(rg, name)
        if str(group.get("properties", {}).get("provisioningState", "")).lower() == "failed":
            raise OperationFailed(200, "DeploymentFailed", _failure_message(group))
        return group

    def get(self, rg: str, name: str) -> dict[str, Any]:
        """The group (``ResourceNotFound`` 404 if there is none)."""
        return json_object(self._send("GET", self.group_url(rg, name)))

    def iter_groups(self, rg: str | None = None) -> Iterator[dict[str, Any]]:
        """The groups of a resource group, or of the subscription; follows ``nextLink``."""
        return self._pages(self.group_url(rg), "groups")

    def update_tags(self, rg: str, name: str, tags: Mapping[str, str]) -> dict[str, Any]:
        """PATCH the group's tags; the group."""
        return json_object(self._send("PATCH", self.group_url(rg, name),
                                      json={"tags": dict(tags)}))

    def begin_delete(self, rg: str, name: str) -> Operation:
        return self._operation("DELETE", self.group_url(rg, name))

    def delete(self, rg: str, name: str, wait: bool = True, *,
               progress: Progress | None = None) -> dict[str, Any] | None:
        """Delete the group; with ``wait``, until it is gone. The group as the
        API answered it (200), or None (202, 204: nothing to show)."""
        operation = self.begin_delete(rg, name)
        if wait:
            self.wait(operation, progress=progress)
        return operation.body or None

    def _action(self, rg: str, name: str, action: str) -> Operation:
        return self._operation("POST", f"{self.group_url(rg, name)}/{action}")

    def start(self, rg: str, name: str, *, wait: bool = True,
              progress: Progress | None = None) -> None:
        """Start a stopped group's containers (long-running)."""
        operation = self._action(rg, name, "start")
        if wait:
            self.wait(operation, progress=progress)

    def restart(self, rg: str, name: str, *, wait: bool = True,
                progress: Progress | None = None) -> None:
        """Restart the group's containers in place (long-running)."""
        operation = self._action(rg, name, "restart")
        if wait:
            self.wait(operation, progress=progress)

    def stop(self, rg: str, name: str) -> None:
        """Stop the group's containers (synchronous: 204)."""
        self._action(rg, name, "stop")

    def resource_group_location(self, rg: str) -> str | None:
        """The resource group's location, as az uses it for a group without
        ``--location``; None if skiff has no such group (it makes them on use)."""
        url = (f"/subscriptions/{quote(self.subscription, safe='')}"
               f"/resourcegroups/{quote(rg, safe='')}")
        try:
            data = json_object(self._send("GET", url, params={"api-version": "2021-04-01"}))
        except ApiError as exc:
            if exc.status in (404, 405):
                return None
            raise
        location = data.get("location")
        return location if isinstance(location, str) and location else None

    # Last in the class: below it, ``list`` in an annotation would mean this method.
    def list(self, rg: str | None = None) -> list[dict[str, Any]]:
        """Every group of a resource group, or of the subscription (all pages)."""
        return [*self.iter_groups(rg)]
