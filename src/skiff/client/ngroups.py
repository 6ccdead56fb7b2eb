"""NGroups (``Microsoft.ContainerInstance/ngroups``, api-version 2025-09-01): create,
read, list, delete, start, stop, restart, and their events (a skiff extension).

Creating, deleting, starting and restarting are long-running, as a group's are: with
``wait``, the call polls the operation until the NGroup has settled (its members made
or rolled over), reporting each status to ``progress``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from skiff.client.errors import OperationFailed, json_object
from skiff.client.http import HttpApi
from skiff.client.polling import Operation, Progress

NGROUPS_API_VERSION = "2025-09-01"


class NGroupsApi(HttpApi):
    """skiff's ARM API for NGroups."""

    def ngroup_url(self, rg: str | None = None, name: str | None = None) -> httpx.URL:
        path = f"/subscriptions/{quote(self.subscription, safe='')}"
        if rg is not None:
            path += f"/resourceGroups/{quote(rg, safe='')}"
        path += "/providers/Microsoft.ContainerInstance/ngroups"
        if name is not None:
            if rg is None:
                raise ValueError("an NGroup's path needs its resource group")
            path += f"/{quote(name, safe='')}"
        return httpx.URL(path, params={"api-version": NGROUPS_API_VERSION})

    def _ngroup_operation(self, method: str, url: httpx.URL, *, json: Any = None,
                          wait: bool, progress: Progress | None) -> Operation:
        operation = self._operation(method, str(url), json=json)
        if wait:
            self.wait(operation, progress=progress)
        return operation

    def create_or_update_ngroup(self, rg: str, name: str, body: Mapping[str, Any], *,
                                wait: bool = True,
                                progress: Progress | None = None) -> dict[str, Any]:
        """PUT the NGroup; with ``wait``, until its members are made (or rolled over),
        answering the NGroup then (:class:`OperationFailed` if it failed)."""
        operation = self._ngroup_operation("PUT", self.ngroup_url(rg, name), json=body,
                                           wait=False, progress=progress)
        if not wait:
            return operation.body
        with contextlib.suppress(OperationFailed):  # the NGroup's events say why
            self.wait(operation, progress=progress)
        found = self.get_ngroup(rg, name)
        if str(found.get("properties", {}).get("provisioningState")) == "Failed":
            events = self.ngroup_events(rg, name)
            why = events[-1]["message"] if events else "see its events"
            raise OperationFailed(200, "NGroupFailed", f"the NGroup {name} failed: {why}")
        return found

    def get_ngroup(self, rg: str, name: str) -> dict[str, Any]:
        return json_object(self._send("GET", self.ngroup_url(rg, name)))

    def ngroup_events(self, rg: str, name: str) -> list[dict[str, Any]]:
        url = self.ngroup_url(rg, name)
        found = json_object(self._send("GET", url.copy_with(path=url.path + "/events")))
        value = found.get("value")
        return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []

    def iter_ngroups(self, rg: str | None = None) -> Iterator[dict[str, Any]]:
        return self._pages(str(self.ngroup_url(rg)), "ngroups")

    def delete_ngroup(self, rg: str, name: str, *, wait: bool = True,
                      progress: Progress | None = None) -> None:
        """Delete the NGroup and its members (204 if there is none)."""
        self._ngroup_operation("DELETE", self.ngroup_url(rg, name), wait=wait,
                               progress=progress)

    def ngroup_action(self, rg: str, name: str, action: str, *, wait: bool = True,
                      progress: Progress | None = None) -> None:
        """POST ``start``, ``restart`` (long-running) or ``stop`` (synchronous)."""
        url = self.ngroup_url(rg, name)
        self._ngroup_operation("POST", url.copy_with(path=f"{url.path}/{action}"),
                               wait=wait and action != "stop", progress=progress)
