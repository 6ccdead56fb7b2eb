"""Container group profiles (``Microsoft.ContainerInstance/containerGroupProfiles``): a
group's definition kept under a name, with its immutable revisions, to make groups from.
Profiles exist from api-version 2024-05-01-preview; the client speaks 2025-09-01 for them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skiff.client.errors import json_object
from skiff.client.groups import PROVIDER
from skiff.client.http import HttpApi

PROFILES_API_VERSION = "2025-09-01"
_VERSION = {"api-version": PROFILES_API_VERSION}


class ProfilesApi(HttpApi):
    """skiff's ARM API for container group profiles."""

    def profile_url(self, rg: str | None = None, name: str | None = None) -> str:
        """The ARM path of a profile, of a resource group's (``name`` None), or of the
        subscription's (both None)."""
        return self.resource_url(f"{PROVIDER}/containerGroupProfiles", "a profile's", rg, name)

    def put_profile(self, rg: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create the profile, or make a new revision of it; the profile as accepted."""
        return json_object(self._send("PUT", self.profile_url(rg, name), json=body,
                                      params=_VERSION))

    def get_profile(self, rg: str, name: str, revision: int | None = None) -> dict[str, Any]:
        """The profile (its current revision), or one of its revisions."""
        url = self.profile_url(rg, name)
        if revision is not None:
            url += f"/revisions/{revision}"
        return json_object(self._send("GET", url, params=_VERSION))

    def list_profiles(self, rg: str | None = None) -> list[dict[str, Any]]:
        """The profiles of a resource group, or of the subscription."""
        return [*self._pages(f"{self.profile_url(rg)}?api-version={PROFILES_API_VERSION}",
                             "container group profiles")]

    def list_profile_revisions(self, rg: str, name: str) -> list[dict[str, Any]]:
        """Every revision of the profile, oldest first."""
        return [*self._pages(f"{self.profile_url(rg, name)}/revisions?api-version="
                             f"{PROFILES_API_VERSION}", "container group profile revisions")]

    def delete_profile(self, rg: str, name: str) -> None:
        """Delete the profile and its revisions (nothing if there is none)."""
        self._send("DELETE", self.profile_url(rg, name), params=_VERSION)
