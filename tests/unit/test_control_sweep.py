"""The reconcile loop's start sweeps the engine with the store's groups, before running any."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skiff.control.reconciler import Reconciler
from skiff.core.spec import Container, GroupSpec, Resources
from skiff.errors import RuntimeFailure
from skiff.models import parse_container_group
from skiff.store import GroupRecord, Store
from skiff.testing.fake import FakeEngine
from skiff.testing.waiting import eventually

SUB = "sub-1"
IMAGE = "registry.test/busybox:1"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "skiff.db") as s:
        yield s


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def reconciler(store: Store, engine: FakeEngine) -> Iterator[Reconciler]:
    loop = Reconciler(store, engine, workers=2)
    yield loop
    loop.stop()


def put_group(store: Store, name: str) -> GroupRecord:
    doc: dict[str, Any] = {"location": "local", "properties": {
        "osType": "Linux", "containers": [{"name": "c", "properties": {
            "image": IMAGE, "command": ["sh", "-c", "sleep 300"],
            "resources": {"requests": {"cpu": 0.5, "memoryInGB": 0.5}}}}]}}
    stored = parse_container_group(doc, name=name, default_location="local",
                                   known_locations=["local"]).to_stored()
    record, _ = store.put_group(SUB, "rg", name, "local", stored, {})
    return record


def left_by_an_earlier_run(engine: FakeEngine) -> str:
    """A group the engine runs that no store knows (its deletion was lost)."""
    spec = GroupSpec(id="0ld", name="old", containers=(Container(
        name="c", image=IMAGE, command=("sleep", "300"), resources=Resources(cpu=0.5,
                                                                             memory_gb=0.5)),))
    engine.run(spec)
    engine.calls.clear()
    return spec.id


def test_start_sweeps_with_every_group_of_the_store_before_running_any(
    store: Store, engine: FakeEngine, reconciler: Reconciler
) -> None:
    """The engine is told the store's groups first thing; what else it runs goes, what
    the store has runs."""
    first, second = put_group(store, "g1"), put_group(store, "g2")
    orphan = left_by_an_earlier_run(engine)
    reconciler.start()
    assert engine.calls[0] == ("sweep", ",".join(sorted([first.uid, second.uid])))
    assert orphan not in engine.group_ids()
    eventually(lambda: engine.group_ids() == sorted([first.uid, second.uid]),
               what="the store's groups run")


def test_a_sweep_that_fails_does_not_keep_the_loop_from_starting(
    store: Store, engine: FakeEngine, reconciler: Reconciler
) -> None:
    """A sweep the engine cannot do is logged; the store's groups still converge."""
    record = put_group(store, "g1")
    engine.fail("sweep", RuntimeFailure("the node is busy"))
    reconciler.start()
    eventually(lambda: engine.group_ids() == [record.uid], what="the group runs")
    assert ("sweep", record.uid) in engine.calls
