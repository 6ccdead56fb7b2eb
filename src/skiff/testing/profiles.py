"""Container group profiles for tests of the standby pools, until the profiles' own
routes give the control plane theirs (:attr:`skiff.api.context.ControlPlane.profiles`).

A table of profile ids to group bodies, answering as the plane's look-up must: the body
of a known profile (any revision), ACI's 404 for an unknown one, a 400 for one in
another subscription.
"""

from __future__ import annotations

import copy
from typing import Any

from skiff.errors import ArmError

PROFILE_TYPE = "Microsoft.ContainerInstance/containerGroupProfiles"


class ProfileTable:
    """Profiles by id (any case): ``plane.profiles = ProfileTable()``."""

    def __init__(self) -> None:
        self._bodies: dict[str, dict[str, Any]] = {}

    def add(self, subscription: str, resource_group: str, name: str,
            body: dict[str, Any]) -> str:
        """Keep ``body`` (``{"location", "properties"}``) as a profile; its ARM id."""
        profile_id = (f"/subscriptions/{subscription}/resourceGroups/{resource_group}"
                      f"/providers/{PROFILE_TYPE}/{name}")
        self._bodies[profile_id.lower()] = copy.deepcopy(body)
        return profile_id

    def __call__(self, subscription: str, profile_id: str,
                 revision: int | None) -> dict[str, Any]:
        parts = profile_id.strip("/").split("/")
        if len(parts) > 1 and parts[1].lower() != subscription.lower():
            raise ArmError(400, "InvalidResourceReference",
                           f"The profile '{profile_id}' is not in subscription "
                           f"'{subscription}'.")
        found = self._bodies.get(profile_id.lower())
        if found is None:
            raise ArmError(404, "ResourceNotFound",
                           f"The Resource '{PROFILE_TYPE}/{parts[-1]}' was not found.")
        return copy.deepcopy(found)
