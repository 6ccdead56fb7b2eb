"""Virtual networks in the store: subnets in use, node-wide overlaps, placement."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skiff.errors import ArmError
from skiff.models import network as models
from skiff.store import Store

SUBNET_KEY = ("/subscriptions/s/resourcegroups/rg/providers/microsoft.network/"
              "virtualnetworks/net/subnets/default")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "store.db") as s:
        yield s


def body(space: str = "10.1.0.0/16", **subnets: str) -> dict[str, Any]:
    return {"properties": {"addressSpace": {"addressPrefixes": [space]}, "subnets": [
        {"name": n, "properties": {"addressPrefix": p}} for n, p in subnets.items()]}}


def code(exc: pytest.ExceptionInfo[ArmError]) -> str:
    return exc.value.code


def test_a_subnet_in_use_cannot_go_or_change(store: Store) -> None:
    """A group placed in a subnet keeps it, its range and its network from changing."""
    store.put_vnet("s", "rg", "net", "local", body(default="10.1.0.0/24"), {})
    record, _ = store.put_group("s", "rg", "g", "local", {"properties": {}}, {},
                                subnet_key=SUBNET_KEY)
    assert record.subnet_key == SUBNET_KEY
    found = store.subnet_placement(SUBNET_KEY)
    assert found is not None
    assert found[1:] == ("default", "10.1.0.0/24")
    with pytest.raises(ArmError) as exc:
        store.delete_vnet("s", "rg", "net")
    assert code(exc) == "InUseSubnetCannotBeDeleted"
    with pytest.raises(ArmError) as exc:
        store.put_vnet("s", "rg", "net", "local", body(default="10.1.0.0/25"), {})
    assert code(exc) == "InUseSubnetCannotBeUpdated"
    with pytest.raises(ArmError) as exc:
        store.change_vnet("s", "rg", "net", lambda b: models.remove_subnet(b, "DEFAULT"))
    assert code(exc) == "InUseSubnetCannotBeDeleted"
    assert store.vnet_in_use("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/"
                             "virtualNetworks/NET")
    store.remove_group(record.uid)
    assert store.delete_vnet("s", "rg", "net") is not None
    assert store.get_vnet("s", "rg", "net") is None


def test_groups_need_an_existing_subnet(store: Store) -> None:
    """Placing a group in a subnet that does not exist is refused; nothing is stored."""
    with pytest.raises(ArmError) as exc:
        store.put_group("s", "rg", "g", "local", {"properties": {}}, {}, subnet_key=SUBNET_KEY)
    assert code(exc) == "SubnetNotFound"
    assert store.get_group("s", "rg", "g") is None


def test_networks_of_one_node_do_not_overlap(store: Store) -> None:
    """Two networks overlapping are refused, whatever their subscription; one may grow."""
    store.put_vnet("s", "rg", "net", "local", body("10.1.0.0/16"), {})
    with pytest.raises(ArmError) as exc:
        store.put_vnet("t", "other", "net2", "local", body("10.1.128.0/17"), {})
    assert code(exc) == "VirtualNetworkAddressSpaceConflict"
    store.put_vnet("s", "rg", "NET", "local", body("10.0.0.0/15"), {})  # itself: fine
    assert [v.name for v in store.list_vnets("s")] == ["net"]


def test_deleting_the_resource_group_takes_its_networks(store: Store) -> None:
    """A resource group's deletion removes its virtual networks with it."""
    store.put_vnet("s", "rg", "net", "local", body(default="10.1.0.0/24"), {})
    store.delete_resource_group("s", "rg")
    assert store.list_vnets("s") == []
    assert store.get_resource_group("s", "rg") is None


def test_subnet_ids_match_whatever_the_case_of_the_subscription(store: Store) -> None:
    """A subscription id in capitals (as some clients send it) still finds its subnet."""
    store.put_vnet("ABC-DEF", "RG", "Net", "local", body(default="10.1.0.0/24"), {})
    key = ("/subscriptions/abc-def/resourcegroups/rg/providers/microsoft.network/"
           "virtualnetworks/net/subnets/default")
    found = store.subnet_placement(key)
    assert found is not None
    assert found[0].name == "Net"
    record, _ = store.put_group("ABC-DEF", "rg", "g", "local", {"properties": {}}, {},
                                subnet_key=key)
    assert record.subnet_key == key
    assert store.vnet_by_id("/subscriptions/ABC-DEF/resourceGroups/rg/providers/"
                            "Microsoft.Network/virtualNetworks/NET") is not None
    assert store.subnet_placement(key.replace("/default", "/other")) is None
    assert store.subnet_placement("/subscriptions/abc-def/subnets/default") is None


def test_a_resource_group_whose_network_another_uses_is_not_deleted(store: Store) -> None:
    """Deleting a resource group is refused while a group of another resource group is
    in one of its subnets; nothing changes; once that group is gone it works."""
    store.put_vnet("s", "net-rg", "net", "local", body(default="10.1.0.0/24"), {})
    key = ("/subscriptions/s/resourcegroups/net-rg/providers/microsoft.network/"
           "virtualnetworks/net/subnets/default")
    record, _ = store.put_group("s", "apps", "g", "local", {"properties": {}}, {},
                                subnet_key=key)
    with pytest.raises(ArmError) as exc:
        store.delete_resource_group("s", "net-rg")
    assert code(exc) == "InUseSubnetCannotBeDeleted"
    assert store.get_vnet("s", "net-rg", "net") is not None
    assert store.get_resource_group("s", "net-rg") is not None
    store.remove_group(record.uid)
    store.delete_resource_group("s", "net-rg")
    assert store.get_vnet("s", "net-rg", "net") is None


def test_networks_take_a_subscription_id_in_any_case(store: Store) -> None:
    """A network made under ``S`` is the one of ``s``: found, replaced, listed, placed in
    and deleted through either spelling."""
    made, created = store.put_vnet("S", "rg", "net", "local", body(default="10.1.0.0/24"), {})
    assert created
    assert made.subscription == "s"
    assert store.put_vnet("s", "RG", "net", "local", body(default="10.1.0.0/24"), {})[1] is False
    assert store.get_vnet("s", "rg", "net") is not None
    assert [v.name for v in store.list_vnets("S")] == ["net"]
    store.put_group("S", "rg", "g", "local", {"properties": {}}, {}, subnet_key=SUBNET_KEY)
    with pytest.raises(ArmError) as exc:
        store.delete_vnet("s", "rg", "net")
    assert "container group 'g'" in exc.value.message


def test_refusals_name_no_group_of_another_subscription(store: Store) -> None:
    """A subnet in use by another subscription's group (placed by an admin) is refused
    without the group's name or resource group."""
    store.put_vnet("s", "rg", "net", "local", body(default="10.1.0.0/24"), {})
    store.put_group("other", "hidden-rg", "hidden", "local", {"properties": {}}, {},
                    subnet_key=SUBNET_KEY)
    for attempt in (lambda: store.delete_vnet("s", "rg", "net"),
                    lambda: store.delete_resource_group("s", "rg"),
                    lambda: store.put_vnet("s", "rg", "net", "local",
                                           body(default="10.1.0.0/25"), {})):
        with pytest.raises(ArmError) as exc:
            attempt()
        assert "another subscription" in exc.value.message
        assert "hidden" not in exc.value.message
