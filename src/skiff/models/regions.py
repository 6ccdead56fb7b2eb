"""Where a resource may be placed: the node's own location and Azure's region names.

A skiff node is one place, but clients written for Azure name Azure regions: every
Microsoft sample has ``"location": "eastus"``, and ``az`` fills in the resource
group's. So each public Azure region name is an alias of the node (unless the
operator lists the locations it serves, ``skiff serve --locations``): a resource
is placed on the node and keeps the name it was created with, which it answers
back, and which its operation URLs and FQDN carry.

Names compare as ARM compares them: without spaces, in any case (``East US`` is
``eastus``); a resource keeps the known spelling (``eastus``, or the node's name as
configured). A name that is none of these is refused with ARM's
``LocationNotAvailableForResourceType`` (``...ForResourceGroup`` for a resource group),
which lists the names accepted.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from skiff.errors import ArmError

#: Azure's public regions where resources are placed (``az account list-locations``,
#: regionType Physical), by name.
AZURE_REGIONS: tuple[str, ...] = (
    "australiacentral", "australiacentral2", "australiaeast", "australiasoutheast",
    "austriaeast", "belgiumcentral", "brazilsouth", "brazilsoutheast", "brazilus",
    "canadacentral", "canadaeast", "centralindia", "centralus", "centraluseuap",
    "chilecentral", "denmarkeast", "eastasia", "eastus", "eastus2", "eastus2euap",
    "francecentral", "francesouth", "germanynorth", "germanywestcentral",
    "indonesiacentral", "israelcentral", "italynorth", "japaneast", "japanwest",
    "jioindiacentral", "jioindiawest", "koreacentral", "koreasouth", "malaysiawest",
    "mexicocentral", "newzealandnorth", "northcentralus", "northeurope", "norwayeast",
    "norwaywest", "polandcentral", "qatarcentral", "southafricanorth", "southafricawest",
    "southcentralus", "southeastasia", "southindia", "spaincentral", "swedencentral",
    "swedensouth", "switzerlandnorth", "switzerlandwest", "taiwannorth", "taiwannorthwest",
    "uaecentral", "uaenorth", "uksouth", "ukwest", "westcentralus", "westeurope",
    "westindia", "westus", "westus2", "westus3",
)


def location_key(text: str) -> str:
    """A location as ARM compares it: ``East US`` → ``eastus``."""
    return text.replace(" ", "").lower()


class Locations:
    """The locations a node serves: its own name (if given), and ``allowed`` (None: every
    Azure region), each resolved to its known spelling."""

    def __init__(self, node: str | None, allowed: Iterable[str] | None = None) -> None:
        names = AZURE_REGIONS if allowed is None else tuple(allowed)
        self._by_key = {location_key(n): n for n in names}
        if node is not None:
            self._by_key[location_key(node)] = node

    def resolve(self, text: str) -> str | None:
        """The known spelling of ``text``; None if the node does not serve it."""
        return self._by_key.get(location_key(text))

    def names(self) -> list[str]:
        """Every name served, sorted."""
        return sorted(self._by_key.values())

    def __contains__(self, text: object) -> bool:
        return isinstance(text, str) and self.resolve(text) is not None

    def place(self, text: str, resource_type: str, target: str = "location") -> str:
        """The known spelling of ``text``, or 400 ``LocationNotAvailableForResourceType``
        in ARM's words (``resource_type`` such as ``Microsoft.Network/virtualNetworks``)."""
        known = self.resolve(text)
        if known is None:
            raise ArmError(400, "LocationNotAvailableForResourceType",
                           f"The provided location {text[:80]!r} is not available for resource "
                           f"type '{resource_type}'. List of available regions for the resource "
                           f"type is '{','.join(self.names())}'.", target=target)
        return known

    def place_resource_group(self, text: str) -> str:
        """As :meth:`place`, for a resource group: ``LocationNotAvailableForResourceGroup``."""
        known = self.resolve(text)
        if known is None:
            raise ArmError(400, "LocationNotAvailableForResourceGroup",
                           f"The provided location {text[:80]!r} is not available for resource "
                           f"group. List of available regions is '{','.join(self.names())}'.",
                           target="location")
        return known


@functools.lru_cache(maxsize=8)
def served(node: str, allowed: tuple[str, ...] | None) -> Locations:
    """The :class:`Locations` of a node's settings (made once for each)."""
    return Locations(node, allowed)
