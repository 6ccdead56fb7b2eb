"""The locations the node serves, as the routes check them (see skiff.models.regions)."""

from __future__ import annotations

from skiff.api.context import ControlPlane
from skiff.models.regions import Locations, served


def locations(plane_: ControlPlane) -> Locations:
    """The node's own location and its aliases (every Azure region, or the operator's list)."""
    api = plane_.settings.api
    return served(api.location, api.locations)
