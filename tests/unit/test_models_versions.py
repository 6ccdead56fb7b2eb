"""skiff.models.versions and skiff.models.regions: what a body may leave out by api-version,
and which location names a node serves."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from skiff.errors import ArmError
from skiff.models import parse_container_group
from skiff.models.regions import AZURE_REGIONS, Locations
from skiff.models.versions import fill_version_defaults, optional_os_and_resources


def bare() -> dict[str, Any]:
    return {"properties": {
        "containers": [{"name": "c", "properties": {"image": "busybox"}}],
        "initContainers": [{"name": "i", "properties": {"image": "busybox"}}]}}


@pytest.mark.parametrize(("version", "optional"), [
    ("2024-05-01-preview", True), ("2024-10-01-preview", True), ("2025-09-01", True),
    ("2023-05-01", False), ("2023-02-01-preview", False), (None, False)])
def test_which_api_versions_let_os_type_and_resources_out(version: str | None,
                                                           optional: bool) -> None:
    assert optional_os_and_resources(version) is optional


def test_defaults_fill_what_is_missing_and_nothing_else() -> None:
    """osType Linux, each container 1 CPU 1.5 GB; init containers untouched; the caller's
    body unchanged; a container that names resources keeps them."""
    doc = bare()
    doc["properties"]["containers"].append(
        {"name": "d", "properties": {"image": "busybox",
                                     "resources": {"requests": {"cpu": 2, "memoryInGB": 4}}}})
    before = copy.deepcopy(doc)
    filled = fill_version_defaults(doc, "2024-05-01-preview")
    assert doc == before
    props = filled["properties"]
    assert props["osType"] == "Linux"
    assert props["containers"][0]["properties"]["resources"] == {
        "requests": {"cpu": 1.0, "memoryInGB": 1.5}}
    assert props["containers"][1]["properties"]["resources"] == {
        "requests": {"cpu": 2, "memoryInGB": 4}}
    assert props["initContainers"] == before["properties"]["initContainers"]
    assert fill_version_defaults(doc, "2023-05-01") is doc


def test_defaults_read_names_in_any_case_and_nulls_as_missing() -> None:
    doc: dict[str, Any] = {"Properties": {"OSType": None, "Containers": [
        {"Name": "c", "Properties": {"image": "busybox", "Resources": None}}]}}
    props = fill_version_defaults(doc, "2025-09-01")["Properties"]
    assert props["OSType"] == "Linux"
    assert props["Containers"][0]["Properties"]["Resources"]["requests"]["cpu"] == 1.0
    body = parse_container_group(fill_version_defaults(doc, "2025-09-01"), name="g",
                                 default_location="local", known_locations=["local"])
    assert body.properties.os_type == "Linux"


def test_a_body_of_another_shape_is_left_to_validation() -> None:
    shapes: list[dict[str, Any]] = [{}, {"properties": []}, {"properties": {"containers": "x"}},
                                    {"properties": {"containers": [1, {"name": "c"}]}}]
    for doc in shapes:
        fill_version_defaults(doc, "2024-05-01-preview")  # no exception of its own
    with pytest.raises(ArmError) as caught:
        parse_container_group({"properties": {"containers": [{"name": "c"}]}}, name="g",
                              default_location="local", known_locations=["local"],
                              api_version="2024-05-01-preview")
    assert caught.value.code == "ContainerImageRequired"


def test_locations_resolve_as_arm_compares_them() -> None:
    every = Locations("local")
    assert every.resolve("East US") == "eastus"
    assert every.resolve("WESTEUROPE") == "westeurope"
    assert every.resolve("Local") == "local"
    assert every.resolve("atlantis") is None
    assert "eastus2" in every
    assert "nowhere" not in every
    assert set(every.names()) == {*AZURE_REGIONS, "local"}
    assert len(set(AZURE_REGIONS)) == len(AZURE_REGIONS)
    assert all(name == name.lower() and " " not in name for name in AZURE_REGIONS)
    only = Locations("edge-1", ["West Europe"])
    assert only.names() == ["West Europe", "edge-1"]
    assert only.resolve("westeurope") == "West Europe"
    assert only.resolve("eastus") is None
    with pytest.raises(ArmError) as caught:
        only.place("eastus", "Microsoft.Network/virtualNetworks")
    assert caught.value.code == "LocationNotAvailableForResourceType"
    assert caught.value.status == 400
    with pytest.raises(ArmError) as caught:
        only.place_resource_group("eastus")
    assert caught.value.code == "LocationNotAvailableForResourceGroup"
