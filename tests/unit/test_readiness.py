"""The standby members' readiness (skiff.control.readiness): a member is marked ready,
claimable, only once the engine says it serves, asked again with a growing delay."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skiff.control.readiness import FIRST_DELAY_S, STALLED_AFTER_S, Readiness, next_delay
from skiff.core.spec import Container, GroupSpec, Port
from skiff.store import Store
from skiff.store.standby import PoolRecord
from skiff.testing.fake import FakeEngine

SUB = "sub-1"
BODY: dict[str, Any] = {"location": "local", "properties": {"containers": [
    {"name": "web", "properties": {"image": "img", "resources": {"requests": {
        "cpu": 0.5, "memoryInGB": 0.5}}}}]}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "s.db") as opened:
        yield opened


@pytest.fixture
def pool(store: Store) -> PoolRecord:
    made, _ = store.put_pool(SUB, "rg", "pool", "local", {}, {
        "elasticityProfile": {"maxReadyCapacity": 1}})
    return made


def member(store: Store, pool: PoolRecord, engine: FakeEngine, script: str) -> str:
    """A member of ``pool`` started on ``engine`` (under its uid, as the reconcile loop
    runs it), running ``script`` and declaring port 80; its uid."""
    record = store.add_pool_member(pool, BODY)
    engine.run(GroupSpec(id=record.uid, name=record.name, containers=(
        Container("web", "img", ("sh", "-c", script), ports=(Port(80),)),),
        ip_ports=(Port(80),)))
    store.set_provisioning(record.uid, "Succeeded", generation=record.generation)
    return record.uid


def claim(store: Store, pool: PoolRecord) -> str | None:
    record = store.claim_member(pool.key, SUB, "mine", "mine", body=lambda b: b, tags={})
    return None if record is None else record.uid


def test_delays_double_up_to_the_longest() -> None:
    """50 ms, then twice as long each time, never more than 2 s."""
    delays = [FIRST_DELAY_S]
    for _ in range(7):
        delays.append(next_delay(delays[-1]))
    assert delays == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0])


def test_a_member_is_marked_ready_only_once_it_serves(store: Store, pool: PoolRecord) -> None:
    """A member whose server listens 3 s after its start: asked at once, then after 50,
    100, 200 ms ... (each pass says when the next is due), not claimable meanwhile;
    ready, and claimed, at the first look after its server listens."""
    clock = Clock()
    engine = FakeEngine(clock=clock)
    uid = member(store, pool, engine, "sleep 3; httpd -f -p 80")
    readiness = Readiness(store, engine, clock=clock)
    waits = []
    while (wait := readiness.check()) is not None:
        assert claim(store, pool) is None
        waits.append(wait)
        clock.now += wait
    assert waits == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8, 1.6])  # 3.15 s in all
    assert store.unready_members() == {}
    assert claim(store, pool) == uid


def test_a_member_that_never_serves_stays_unready_and_stalls(store: Store,
                                                            pool: PoolRecord) -> None:
    """A member whose declared port nobody listens on is never marked ready, asked every
    2 s at most, and counted stalled after a minute; a new member is asked at once."""
    clock = Clock()
    engine = FakeEngine(clock=clock)
    deaf = member(store, pool, engine, "sleep 300")
    readiness = Readiness(store, engine, clock=clock)
    start = clock.now
    while clock.now - start < STALLED_AFTER_S:
        wait = readiness.check()
        assert wait is not None
        assert wait < 2.0 + 1e-6
        clock.now += wait
    assert readiness.check() == pytest.approx(2.0)
    assert readiness.stalled(pool.key) == 1
    assert readiness.stalled("another/pool") == 0
    assert claim(store, pool) is None
    web = member(store, pool, engine, "httpd -f -p 80")
    assert readiness.check() == pytest.approx(2.0)  # the new one served at its first look
    assert store.unready_members() == {deaf: pool.key}
    assert claim(store, pool) == web


def test_a_member_gone_meanwhile_is_forgotten(store: Store, pool: PoolRecord) -> None:
    """A member deleted from the engine and the pool is no longer asked about."""
    clock = Clock()
    engine = FakeEngine(clock=clock)
    uid = member(store, pool, engine, "sleep 300")
    readiness = Readiness(store, engine, clock=clock)
    assert readiness.check() == pytest.approx(FIRST_DELAY_S)
    engine.delete(uid)
    clock.now += 1
    assert readiness.check() == pytest.approx(0.1)  # not found: not serving, asked later
    store.retire_members(pool.key, [uid])
    assert readiness.check() is None
