"""Virtual networks leave the node through the reconcile loop, from what the store recorded.

Deleting a network writes its teardown in the same transaction; the loop removes it
from the engine once no group is in it and then forgets it, and a start of the loop
finishes what a crash interrupted and sweeps networks nobody records.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skiff.control.reconciler import VNET_TEARDOWNS, Reconciler
from skiff.errors import NetworkError
from skiff.models import parse_container_group
from skiff.store import GroupRecord, Store
from skiff.testing.fake import FakeEngine
from skiff.testing.waiting import eventually

SUB = "sub-1"
NET_ID = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/net"
NET = NET_ID.lower()  # the engine's key for it
SUBNET_ID = f"{NET_ID}/subnets/default"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "skiff.db") as s:
        yield s


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def reconciler(store: Store, engine: FakeEngine) -> Iterator[Reconciler]:
    """A reconcile loop, not started unless a test starts it (then stopped after)."""
    loop = Reconciler(store, engine, workers=2)
    yield loop
    loop.stop()


def put_vnet(store: Store, rg: str = "rg", name: str = "net",
             space: str = "10.1.0.0/16") -> None:
    store.put_vnet(SUB, rg, name, "local", {"properties": {
        "addressSpace": {"addressPrefixes": [space]},
        "subnets": [{"name": "default", "properties": {
            "addressPrefix": space.replace("0.0/16", "1.0/24")}}]}}, {})


def put_private_group(store: Store, rg: str = "rg", name: str = "priv") -> GroupRecord:
    doc: dict[str, Any] = {"location": "local", "properties": {
        "osType": "Linux", "subnetIds": [{"id": SUBNET_ID}],
        "ipAddress": {"type": "Private", "ports": [{"port": 80}]},
        "containers": [{"name": "c", "properties": {
            "image": "registry.test/busybox:1", "command": ["sh", "-c", "sleep 300"],
            "ports": [{"port": 80}],
            "resources": {"requests": {"cpu": 0.5, "memoryInGB": 0.5}}}}]}}
    stored = parse_container_group(doc, name=name, default_location="local",
                                   known_locations=["local"]).to_stored()
    record, _ = store.put_group(SUB, rg, name, "local", stored, {},
                                subnet_key=SUBNET_ID.lower())
    return record


def removals(engine: FakeEngine) -> list[str]:
    return [key for method, key in engine.calls if method == "remove_vnet"]


def test_a_deleted_network_is_recorded_then_removed_from_the_node(
    store: Store, engine: FakeEngine, reconciler: Reconciler
) -> None:
    """The deletion records the teardown; the loop removes the network and forgets it."""
    put_vnet(store)
    group = put_private_group(store)
    reconciler.converge(group.uid)
    assert engine.vnets() == [NET]
    store.set_desired(SUB, "rg", "priv", "deleted")
    reconciler.converge(group.uid)
    assert engine.vnets() == [NET]  # a network outlives its groups until it is deleted
    assert store.delete_vnet(SUB, "rg", "net") is not None
    assert store.vnet_teardowns() == [NET]
    reconciler.tear_down_vnets()
    assert engine.vnets() == []
    assert store.vnet_teardowns() == []
    reconciler.tear_down_vnets()
    assert removals(engine) == [NET]  # once


def test_a_network_waits_for_its_last_group(store: Store, engine: FakeEngine,
                                            reconciler: Reconciler) -> None:
    """A resource group deleted with its network and groups: the network is not removed
    while a group is in it, and goes once the last one was deleted."""
    put_vnet(store)
    group = put_private_group(store)
    reconciler.converge(group.uid)
    store.delete_resource_group(SUB, "rg")
    assert store.vnet_teardowns() == [NET]
    reconciler.tear_down_vnets()
    assert removals(engine) == []
    assert engine.vnets() == [NET]
    assert reconciler.wait_idle(VNET_TEARDOWNS, timeout_s=0)
    reconciler.converge(group.uid)
    assert not reconciler.wait_idle(VNET_TEARDOWNS, timeout_s=0)  # the deletion kicked it
    assert store.get_group_by_uid(group.uid) is None
    reconciler.tear_down_vnets()
    assert engine.vnets() == []
    assert store.vnet_teardowns() == []


def test_the_running_loop_removes_a_resource_groups_network_after_its_groups(
    store: Store, engine: FakeEngine, reconciler: Reconciler
) -> None:
    """With the loop running, kicking the groups and the teardown is all a handler does."""
    put_vnet(store)
    group = put_private_group(store)
    reconciler.start()
    reconciler.kick(group.uid)
    eventually(lambda: engine.vnets() == [NET], what="the group placed in its network")
    for record in store.delete_resource_group(SUB, "rg"):
        reconciler.kick(record.uid)
    reconciler.kick(VNET_TEARDOWNS)
    eventually(lambda: not engine.vnets() and not store.vnet_teardowns(),
               what="the network removed from the node and forgotten")
    assert engine.group_ids() == []


def test_a_teardown_that_fails_is_kept_and_tried_again(store: Store, engine: FakeEngine,
                                                       reconciler: Reconciler) -> None:
    """An engine that cannot remove the network now keeps the record for the next try."""
    put_vnet(store)
    engine.node_vnets.add(NET)
    store.delete_vnet(SUB, "rg", "net")
    engine.fail("remove_vnet", NetworkError("bridge busy"))
    reconciler.tear_down_vnets()
    assert store.vnet_teardowns() == [NET]
    assert engine.vnets() == [NET]
    reconciler.tear_down_vnets()
    assert store.vnet_teardowns() == []
    assert engine.vnets() == []


def test_a_crash_between_the_deletion_and_the_teardown_is_finished_at_start(
    store: Store, engine: FakeEngine, reconciler: Reconciler
) -> None:
    """The deletion committed, then skiff died before the engine removed the network:
    the next start of the loop removes it."""
    put_vnet(store)
    engine.node_vnets.add(NET)
    store.delete_vnet(SUB, "rg", "net")  # ... and nothing more: the process is gone
    reconciler.start()
    eventually(lambda: not engine.vnets() and not store.vnet_teardowns(),
               what="the pending teardown finished at start")


def test_start_sweeps_networks_the_store_does_not_know(store: Store, engine: FakeEngine,
                                                       reconciler: Reconciler) -> None:
    """At start, a network on the node that the store neither holds nor places a group in
    is removed; one the store holds stays."""
    orphan = f"/subscriptions/{SUB}/resourcegroups/gone/providers/microsoft.network/" \
             "virtualnetworks/old"
    put_vnet(store)
    engine.node_vnets.update({NET, orphan})
    reconciler.start()
    eventually(lambda: engine.vnets() == [NET], what="the orphan network swept")
    assert removals(engine) == [orphan]


def test_a_resource_groups_deletion_records_each_network(store: Store) -> None:
    """Every network of a deleted resource group gets its teardown recorded, and none of
    another resource group's."""
    put_vnet(store, "rg", "net")
    put_vnet(store, "rg", "net2", space="10.2.0.0/16")
    put_vnet(store, "other", "kept", space="10.3.0.0/16")
    store.delete_resource_group(SUB, "rg")
    assert sorted(store.vnet_teardowns()) == sorted([NET, NET + "2"])
    store.finish_vnet_teardown(NET.upper())  # keys compare without case
    assert store.vnet_teardowns() == [NET + "2"]
