"""Unit tests for skiff.store: resource groups, container groups and DNS labels on real SQLite."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skiff.errors import GroupNotFound
from skiff.store import (
    ContainerGroupBeingDeleted,
    GroupRecord,
    InvalidResourceGroupLocation,
    InvalidResourceLocation,
    InvalidSkipToken,
    ResourceGroupBeingDeleted,
    Store,
    StoreError,
)

SUB = "00000000-0000-0000-0000-000000000001"
OTHER = "00000000-0000-0000-0000-000000000002"


def body(image: str = "busybox", **extra: Any) -> dict[str, Any]:
    """A small container group body, as the API would store it."""
    return {
        "location": "westus",
        "properties": {
            "osType": "Linux",
            "containers": [{"name": "c", "properties": {
                "image": image,
                "resources": {"requests": {"cpu": 1.0, "memoryInGB": 1.5}},
                "environmentVariables": [{"name": "K", "secureValue": "s3cret"}],
            }}],
        },
        **extra,
    }


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "store.db") as s:
        yield s


# --- resource groups ---------------------------------------------------------------------------


def test_resource_group_crud(store: Store) -> None:
    """A resource group is created, read, listed, retagged and deleted."""
    record, created = store.put_resource_group(SUB, "Prod", "westus", {"team": "a"})
    assert created
    assert (record.name, record.location, record.tags) == ("Prod", "westus", {"team": "a"})
    assert store.get_resource_group(SUB, "Prod") == record
    again, created = store.put_resource_group(SUB, "Prod", "westus", {"team": "b"})
    assert not created
    assert again.tags == {"team": "b"}
    assert again.created_at == record.created_at
    assert store.get_resource_group(SUB, "Prod") == again
    store.put_resource_group(SUB, "dev", "westus", {})
    assert [rg.name for rg in store.list_resource_groups(SUB)] == ["dev", "Prod"]
    assert store.list_resource_groups(OTHER) == []
    assert store.delete_resource_group(SUB, "Prod") == []
    assert store.get_resource_group(SUB, "Prod") is None
    assert [rg.name for rg in store.list_resource_groups(SUB)] == ["dev"]
    assert store.delete_resource_group(SUB, "nothing") == []


def test_resource_group_names_ignore_case_and_keep_theirs(store: Store) -> None:
    """PROD and prod are one resource group, shown as first created; subscriptions apart."""
    store.put_resource_group(SUB, "Prod", "westus", {})
    record, created = store.put_resource_group(SUB, "PROD", "westus", {"x": "1"})
    assert not created
    assert record.name == "Prod"
    found = store.get_resource_group(SUB, "prod")
    assert found is not None
    assert found.name == "Prod"
    _, created = store.put_resource_group(OTHER, "prod", "westus", {})
    assert created


def test_resource_group_keeps_its_location(store: Store) -> None:
    """A PUT of an existing resource group in another location is ARM's 409; spaces and case
    in a location do not make it another."""
    store.put_resource_group(SUB, "rg", "westus", {})
    store.put_resource_group(SUB, "rg", "West US", {})
    with pytest.raises(InvalidResourceGroupLocation) as caught:
        store.put_resource_group(SUB, "rg", "eastus", {})
    assert caught.value.status == 409
    assert caught.value.code == "InvalidResourceGroupLocation"


def test_deleting_a_resource_group_deletes_its_groups(store: Store) -> None:
    """Every group of a deleted resource group is to be deleted, at a new generation; the
    resource group is gone at once and refuses new content until its last group is removed."""
    a, _ = store.put_group(SUB, "rg", "a", "westus", body(), {})
    b, _ = store.put_group(SUB, "rg", "b", "westus", body(), {})
    other, _ = store.put_group(SUB, "rg2", "a", "westus", body(), {})
    doomed = store.delete_resource_group(SUB, "RG")
    assert [(g.uid, g.desired, g.provisioning_state, g.generation) for g in doomed] == [
        (a.uid, "deleted", "Deleting", 2), (b.uid, "deleted", "Deleting", 2)]
    assert store.get_resource_group(SUB, "rg") is None
    assert [rg.name for rg in store.list_resource_groups(SUB)] == ["rg2"]
    assert store.get_group(SUB, "rg2", "a") == other
    with pytest.raises(ResourceGroupBeingDeleted) as caught:
        store.put_group(SUB, "rg", "c", "westus", body(), {})
    assert caught.value.status == 409
    with pytest.raises(ResourceGroupBeingDeleted):
        store.put_resource_group(SUB, "rg", "westus", {})
    store.remove_group(a.uid)
    with pytest.raises(ResourceGroupBeingDeleted):
        store.put_resource_group(SUB, "rg", "westus", {})
    store.remove_group(b.uid)
    _, created = store.put_resource_group(SUB, "rg", "eastus", {})
    assert created


# --- container groups --------------------------------------------------------------------------


def test_group_crud(store: Store) -> None:
    """A group is created (with its resource group), read by name and uid, and removed."""
    record, created = store.put_group(SUB, "rg", "web", "westus", body(), {"env": "test"})
    assert created
    assert (record.subscription, record.resource_group, record.name, record.location) == (
        SUB, "rg", "web", "westus")
    assert record.body == body()
    assert record.tags == {"env": "test"}
    assert (record.provisioning_state, record.desired, record.generation, record.error) == (
        "Pending", "running", 1, None)
    assert len(record.uid) == 32
    assert int(record.uid, 16) >= 0
    assert record.resource_id == (f"/subscriptions/{SUB}/resourceGroups/rg/providers/"
                                  "Microsoft.ContainerInstance/containerGroups/web")
    assert store.get_group(SUB, "rg", "web") == record
    assert store.get_group_by_uid(record.uid) == record
    rg = store.get_resource_group(SUB, "rg")
    assert rg is not None
    assert rg.location == "westus"
    assert store.count_groups(SUB) == 1
    assert store.count_groups(OTHER) == 0
    store.remove_group(record.uid)
    store.remove_group(record.uid)  # twice: nothing to do
    assert store.get_group(SUB, "rg", "web") is None
    assert store.get_group_by_uid(record.uid) is None
    assert store.get_resource_group(SUB, "rg") is not None  # still there: not being deleted
    assert store.get_group(SUB, "rg", "nothing") is None


def test_group_names_ignore_case_and_keep_theirs(store: Store) -> None:
    """A group is found under any case of its and its resource group's names, and shows
    the case it was created with."""
    record, _ = store.put_group(SUB, "MyRG", "Web", "westus", body(), {})
    again, created = store.put_group(SUB, "myrg", "WEB", "westus", body(), {})
    assert not created
    assert again == record
    found = store.get_group(SUB, "MYRG", "web")
    assert found == record
    assert (found.resource_group, found.name) == ("MyRG", "Web")
    assert "/resourceGroups/MyRG/" in found.resource_id
    assert found.resource_id.endswith("/Web")
    assert store.get_group(OTHER, "myrg", "web") is None


def test_a_group_uses_the_existing_resource_group_case(store: Store) -> None:
    """A group put under another case of an existing resource group shows the group's case."""
    store.put_resource_group(SUB, "Prod", "westus", {})
    record, _ = store.put_group(SUB, "PROD", "web", "westus", body(), {})
    assert record.resource_group == "Prod"


def test_generation_rules(store: Store) -> None:
    """A new body bumps the generation and asks for a running group; the same body (in any
    key order, with any top-level tags) does not; a change of tags alone does not."""
    first, _ = store.put_group(SUB, "rg", "web", "westus", body(), {"a": "1"})
    store.set_desired(SUB, "rg", "web", "stopped")
    assert store.set_provisioning(first.uid, "Succeeded", error={"code": "x"})
    same, created = store.put_group(SUB, "rg", "web", "westus",
                                    dict(reversed(list(body(tags={"t": "v"}).items()))),
                                    {"a": "1"})
    assert not created
    assert same.error == {"code": "x"}
    assert (same.generation, same.desired, same.provisioning_state) == (2, "stopped", "Succeeded")
    retagged, _ = store.put_group(SUB, "rg", "web", "westus", body(), {"a": "2"})
    assert (retagged.generation, retagged.tags, retagged.desired) == (2, {"a": "2"}, "stopped")
    changed, created = store.put_group(SUB, "rg", "web", "westus", body("nginx"), {"a": "2"})
    assert not created
    assert (changed.generation, changed.desired, changed.provisioning_state, changed.error) == (
        3, "running", "Pending", None)
    assert changed.body == body("nginx")
    assert changed.uid == first.uid
    assert "tags" not in changed.body


def test_group_keeps_its_location(store: Store) -> None:
    """A PUT of an existing group in another location is ARM's 409 InvalidResourceLocation."""
    store.put_group(SUB, "rg", "web", "westus", body(), {})
    with pytest.raises(InvalidResourceLocation) as caught:
        store.put_group(SUB, "rg", "web", "eastus", body(), {})
    assert caught.value.status == 409
    assert caught.value.target == "web"


def test_update_tags(store: Store) -> None:
    """PATCH replaces the tags and keeps the generation; an unknown group gives None."""
    record, _ = store.put_group(SUB, "rg", "web", "westus", body(), {"a": "1"})
    updated = store.update_tags(SUB, "RG", "Web", {"b": "2"})
    assert updated is not None
    assert updated.tags == {"b": "2"}
    assert updated.generation == record.generation
    assert updated.body == record.body
    assert store.update_tags(SUB, "rg", "nothing", {}) is None


def test_set_desired(store: Store) -> None:
    """Stop, start and delete each bump the generation; delete also says Deleting; a group
    being deleted refuses anything but delete, which is then a no-op."""
    record, _ = store.put_group(SUB, "rg", "web", "westus", body(), {})
    stopped = store.set_desired(SUB, "rg", "web", "stopped")
    assert stopped is not None
    assert (stopped.desired, stopped.generation) == ("stopped", 2)
    assert stopped.provisioning_state == record.provisioning_state
    running = store.set_desired(SUB, "rg", "web", "running")
    assert running is not None
    assert (running.desired, running.generation) == ("running", 3)
    deleted = store.set_desired(SUB, "rg", "web", "deleted")
    assert deleted is not None
    assert (deleted.desired, deleted.provisioning_state, deleted.generation) == (
        "deleted", "Deleting", 4)
    assert store.set_desired(SUB, "rg", "web", "deleted") == deleted
    assert store.count_groups(SUB) == 0
    with pytest.raises(ContainerGroupBeingDeleted) as caught:
        store.set_desired(SUB, "rg", "web", "running")
    assert caught.value.status == 409
    with pytest.raises(ContainerGroupBeingDeleted):
        store.put_group(SUB, "rg", "web", "westus", body(), {})
    with pytest.raises(ContainerGroupBeingDeleted):
        store.update_tags(SUB, "rg", "web", {})
    assert store.get_group(SUB, "rg", "web") == deleted
    assert store.set_desired(SUB, "rg", "nothing", "stopped") is None
    with pytest.raises(ValueError, match="desired"):
        store.set_desired(SUB, "rg", "web", "paused")
    store.remove_group(record.uid)
    again, created = store.put_group(SUB, "rg", "web", "westus", body(), {})
    assert created
    assert again.uid != record.uid
    assert again.generation == 1


def test_set_provisioning_ignores_a_stale_generation(store: Store) -> None:
    """A reconcile result for an older generation cannot overwrite newer desired state."""
    record, _ = store.put_group(SUB, "rg", "web", "westus", body(), {})
    assert store.set_provisioning(record.uid, "Creating", generation=1)
    store.put_group(SUB, "rg", "web", "westus", body("nginx"), {})  # generation 2
    assert not store.set_provisioning(record.uid, "Failed", error={"code": "Old"}, generation=1)
    current = store.get_group_by_uid(record.uid)
    assert current is not None
    assert (current.provisioning_state, current.error, current.generation) == ("Pending", None, 2)
    assert store.set_provisioning(record.uid, "Failed", error={"code": "Pull"}, generation=2)
    failed = store.get_group_by_uid(record.uid)
    assert failed is not None
    assert (failed.provisioning_state, failed.error) == (
        "Failed", {"code": "Pull"})
    assert store.set_provisioning(record.uid, "Succeeded")  # no generation: always applies
    assert not store.set_provisioning("0" * 32, "Succeeded")


def test_pending_work_holds_every_group(store: Store) -> None:
    """At start-up the reconcile loop gets every group, those being deleted included."""
    uids = {store.put_group(SUB, "rg", f"g{i}", "westus", body(), {})[0].uid for i in range(3)}
    store.set_desired(SUB, "rg", "g0", "deleted")
    store.set_provisioning(sorted(uids)[0], "Succeeded")
    assert {g.uid for g in store.pending_work()} == uids


def test_records_are_values(store: Store) -> None:
    """Records are frozen: a caller cannot change the store's answer by accident."""
    record, _ = store.put_group(SUB, "rg", "web", "westus", body(), {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.name = "other"  # type: ignore[misc]
    assert isinstance(record, GroupRecord)


# --- listing -----------------------------------------------------------------------------------


def test_listing_orders_by_resource_group_then_name(store: Store) -> None:
    """Lists are in (resource group, name) order without regard to case, per subscription or
    resource group, or across subscriptions for the admin."""
    for sub, rg, name in [(SUB, "b", "x"), (SUB, "A", "z"), (SUB, "a", "Y"), (OTHER, "a", "w")]:
        store.put_group(sub, rg, name, "westus", body(), {})
    page, marker = store.list_groups(SUB)
    assert [(g.resource_group, g.name) for g in page] == [("A", "Y"), ("A", "z"), ("b", "x")]
    assert marker is None
    page, _ = store.list_groups(SUB, "a")
    assert [g.name for g in page] == ["Y", "z"]
    page, _ = store.list_groups(None)
    assert [g.name for g in page] == ["Y", "z", "x", "w"]
    assert store.list_groups(OTHER, "nothing") == ([], None)


def test_paging_markers_chain(store: Store) -> None:
    """Pages chain through their markers without gaps or repeats, even when groups come and
    go between two pages."""
    for i in range(25):
        store.put_group(SUB, f"rg{i % 3}", f"g{i:02}", "westus", body(), {})
    seen: list[str] = []
    page, marker = store.list_groups(SUB, limit=10)
    seen += [g.name for g in page]
    store.put_group(SUB, "rg0", "a-new-first", "westus", body(), {})  # before the marker
    store.put_group(SUB, "rg2", "zz-new-last", "westus", body(), {})  # after it
    while marker is not None:
        page, marker = store.list_groups(SUB, limit=10, after=marker)
        seen += [g.name for g in page]
    assert len(seen) == len(set(seen)) == 26
    assert set(seen) == {f"g{i:02}" for i in range(25)} | {"zz-new-last"}


@pytest.mark.parametrize("marker", ["", "garbage!", "bm90IGpzb24", "WzEsMiwzXQ"])
def test_a_foreign_marker_is_refused(store: Store, marker: str) -> None:
    """A marker the store did not hand out is a 400, not a crash."""
    with pytest.raises(InvalidSkipToken) as caught:
        store.list_groups(SUB, after=marker)
    assert caught.value.status == 400


def test_a_marker_from_another_listing_is_refused(store: Store) -> None:
    """A marker only continues the listing it came from (same subscription, resource group)."""
    for i in range(3):
        store.put_group(SUB, "rg", f"g{i}", "westus", body(), {})
        store.put_group(OTHER, "rg", f"g{i}", "westus", body(), {})
    _, marker = store.list_groups(SUB, "rg", limit=1)
    assert marker is not None
    page, _ = store.list_groups(SUB, "RG", limit=1, after=marker)
    assert [g.name for g in page] == ["g1"]
    for sub, rg in [(OTHER, "rg"), (SUB, "rg2")]:
        with pytest.raises(InvalidSkipToken):
            store.list_groups(sub, rg, after=marker)
    _, all_marker = store.list_groups(None, limit=4)
    assert all_marker is not None
    page, _ = store.list_groups(None, after=all_marker)
    assert [(g.subscription, g.name) for g in page] == [(OTHER, "g1"), (OTHER, "g2")]


def test_page_size_is_bounded(store: Store) -> None:
    """A page of 0 or of more than 1,000 groups is a programming error."""
    for limit in (0, 1001):
        with pytest.raises(ValueError, match="limit"):
            store.list_groups(SUB, limit=limit)


# --- DNS labels --------------------------------------------------------------------------------


def test_dns_labels(store: Store) -> None:
    """A label has one holder (any case); claiming one's own is fine; removal releases."""
    a, _ = store.put_group(SUB, "rg", "a", "westus", body(), {})
    b, _ = store.put_group(SUB, "rg", "b", "westus", body(), {})
    assert store.claim_dns_label("MyApp", a.uid)
    assert store.claim_dns_label("myapp", a.uid)
    assert not store.claim_dns_label("MYAPP", b.uid)
    assert store.dns_label_holder("myApp") == a.uid
    store.release_dns_labels(a.uid)
    assert store.dns_label_holder("myapp") is None
    assert store.claim_dns_label("myapp", b.uid)
    assert store.claim_dns_label("other", b.uid)
    store.remove_group(b.uid)
    assert store.dns_label_holder("myapp") is None
    assert store.dns_label_holder("other") is None
    assert store.claim_dns_label("myapp", a.uid)
    with pytest.raises(GroupNotFound):
        store.claim_dns_label("free", "0" * 32)


# --- the file ----------------------------------------------------------------------------------


def test_state_survives_reopening(tmp_path: Path) -> None:
    """What one store committed, the next one opened on the file reads back."""
    with Store(tmp_path / "s.db") as first:
        record, _ = first.put_group(SUB, "rg", "web", "westus", body(), {"k": "v"})
    with Store(tmp_path / "s.db") as second:
        assert second.get_group(SUB, "rg", "web") == record


def test_a_closed_store_refuses_work(tmp_path: Path) -> None:
    """After close, reads and writes raise StoreError instead of touching a closed handle."""
    store = Store(tmp_path / "s.db")
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get_group(SUB, "rg", "web")
    with pytest.raises(StoreError, match="closed"):
        store.put_group(SUB, "rg", "web", "westus", body(), {})


def test_the_file_is_private(tmp_path: Path) -> None:
    """The store holds secrets: its file and WAL are readable by their owner only."""
    path = tmp_path / "deep" / "s.db"
    with Store(path) as store:
        store.put_group(SUB, "rg", "web", "westus", body(), {})
        for name in ("s.db", "s.db-wal"):
            assert (path.parent / name).stat().st_mode & 0o077 == 0, name


# --- subscriptions -----------------------------------------------------------------------------


def test_every_call_takes_a_subscription_id_in_any_case(store: Store) -> None:
    """Subscription ids compare without case, as ARM's: whatever spelling made a resource,
    every other spelling finds, lists, changes and deletes the same one, and records show
    the key (lower case)."""
    made, created = store.put_resource_group("ACME", "rg", "westus", {})
    assert (made.subscription, created) == ("acme", True)
    assert store.put_resource_group("acme", "rg", "westus", {"k": "v"})[1] is False
    group, created = store.put_group("Acme", "rg", "web", "westus", body(), {})
    assert created
    assert group.subscription == "acme"
    assert group.resource_id.startswith("/subscriptions/acme/")
    assert store.put_group("aCmE", "rg", "web", "westus", body(), {})[1] is False
    assert store.get_resource_group("acme", "rg") is not None
    assert [r.name for r in store.list_resource_groups("ACME")] == ["rg"]
    assert store.get_group("ACME", "rg", "web") == store.get_group("acme", "rg", "web")
    page, _ = store.list_groups("ACME")
    assert [r.uid for r in page] == [group.uid]
    assert store.count_groups("acme") == 1
    assert store.update_tags("ACME", "rg", "web", {"t": "1"}) is not None
    assert store.set_desired("Acme", "rg", "web", "stopped") is not None
    op = store.create_operation("ACME", "westus", group.resource_id, "create")
    assert op.subscription == "acme"
    assert [g.uid for g in store.delete_resource_group("aCME", "rg")] == [group.uid]
