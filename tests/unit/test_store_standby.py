"""The store's standby pool members: a member is claimable only once it was seen serving
(``pool_ready``), and the pool's count calls a started, not yet serving member Creating."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skiff.store import Store
from skiff.store.standby import PoolRecord

SUB = "sub-1"
BODY: dict[str, Any] = {"location": "local", "properties": {"containers": [
    {"name": "web", "properties": {"image": "img", "resources": {"requests": {
        "cpu": 0.5, "memoryInGB": 0.5}}}}]}}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "s.db") as opened:
        yield opened


@pytest.fixture
def pool(store: Store) -> PoolRecord:
    made, _ = store.put_pool(SUB, "rg", "pool", "local", {}, {
        "elasticityProfile": {"maxReadyCapacity": 2}})
    return made


def started(store: Store, pool: PoolRecord) -> str:
    """A new member of ``pool`` whose containers started (Succeeded); its uid."""
    record = store.add_pool_member(pool, BODY)
    store.set_provisioning(record.uid, "Succeeded", generation=record.generation)
    return record.uid


def claim(store: Store, pool: PoolRecord, name: str) -> str | None:
    record = store.claim_member(pool.key, SUB, "mine", name, body=lambda body: body, tags={})
    return None if record is None else record.uid


def test_a_claim_skips_members_not_seen_serving(store: Store, pool: PoolRecord) -> None:
    """Started members are not claimed until marked ready; then the ready one is, even
    when an older one still does not serve."""
    older = started(store, pool)
    newer = started(store, pool)
    assert claim(store, pool, "a") is None
    assert store.unready_members() == {older: pool.key, newer: pool.key}
    assert store.mark_ready(newer)
    assert store.unready_members() == {older: pool.key}
    assert claim(store, pool, "a") == newer
    assert claim(store, pool, "b") is None
    assert not store.mark_ready(newer)  # claimed: no pool's member any more
    assert store.unready_members() == {older: pool.key}


def test_only_a_started_member_is_marked_ready(store: Store, pool: PoolRecord) -> None:
    """mark_ready refuses a member still being created, one being deleted, and a tenant's
    group."""
    creating = store.add_pool_member(pool, BODY)
    assert not store.mark_ready(creating.uid)
    assert store.unready_members() == {}
    retired = started(store, pool)
    store.retire_members(pool.key, [retired])
    assert not store.mark_ready(retired)
    tenant, _ = store.put_group(SUB, "rg", "tenant", "local", BODY, {})
    store.set_provisioning(tenant.uid, "Succeeded", generation=tenant.generation)
    assert not store.mark_ready(tenant.uid)
    assert store.unready_members() == {}


def test_the_pool_counts_a_started_member_creating_until_it_serves(
        store: Store, pool: PoolRecord) -> None:
    """Member.state: Creating while Pending, and while Succeeded but not serving;
    Running once ready."""
    store.add_pool_member(pool, BODY)
    uid = started(store, pool)
    assert [m.state for m in store.pool_members(pool.key)] == ["Creating", "Creating"]
    store.mark_ready(uid)
    states = {m.uid: m.state for m in store.pool_members(pool.key)}
    assert states[uid] == "Running"
    assert sorted(states.values()) == ["Creating", "Running"]
