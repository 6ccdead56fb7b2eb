"""The reconcile loop's converge(), one group at a time, on a real store and the fake engine.

No root, no thread: each test calls :meth:`Reconciler.converge` itself and reads
what it left in the store and in the engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skiff.control.reconciler import Reconciler
from skiff.core.engine import Engine
from skiff.core.spec import GroupSpec
from skiff.core.view import GroupView
from skiff.errors import ImageNotFound, RuntimeFailure
from skiff.models import parse_container_group
from skiff.store import GroupRecord, OperationRecord, Store
from skiff.testing.fake import FakeEngine

SUB = "sub-1"
IMAGE = "registry.test/busybox:1"


class Clock:
    """A clock that moves when told: start times tell instances apart exactly."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "skiff.db") as s:
        yield s


@pytest.fixture
def engine(clock: Clock) -> FakeEngine:
    return FakeEngine(clock=clock)


@pytest.fixture
def reconciler(store: Store, engine: FakeEngine) -> Reconciler:
    return Reconciler(store, engine)  # not started: the tests converge by hand


def body(script: str = "echo hello; sleep 300", *, image: str = IMAGE,
         **props: Any) -> dict[str, Any]:
    """A container group's stored body: one busybox-style container running ``script``."""
    doc = {"location": "local", "properties": {
        "osType": "Linux", **props, "containers": [{"name": "c", "properties": {
            "image": image, "command": ["sh", "-c", script],
            "resources": {"requests": {"cpu": 0.5, "memoryInGB": 0.5}}}}]}}
    return parse_container_group(doc, name="g", default_location="local",
                                 known_locations=["local"]).to_stored()


def put(store: Store, script: str = "echo hello; sleep 300", **fields: Any) -> GroupRecord:
    """PUT as the route does: the definition, and an operation for its generation."""
    record, created = store.put_group(SUB, "rg", "g", "local", body(script, **fields), {})
    operation(store, record, "create" if created else "update")
    return record


def operation(store: Store, record: GroupRecord, kind: str) -> OperationRecord:
    return store.create_operation(SUB, "local", record.resource_id, kind,
                                  generation=record.generation)


def desire(store: Store, desired: str, kind: str) -> GroupRecord:
    """Stop, start, restart or delete as the routes do."""
    record = store.set_desired(SUB, "rg", "g", desired)
    assert record is not None
    operation(store, record, kind)
    return record


def current(store: Store, uid: str) -> GroupRecord:
    record = store.get_group_by_uid(uid)
    assert record is not None
    return record


def statuses(store: Store, record: GroupRecord) -> list[str]:
    return [op.status for op in store.operations_for(record.resource_id, status=None)]


def started(view: GroupView) -> float:
    """When the (first) container's current instance started."""
    value = view.containers[0].current.start_time
    assert value is not None
    return value


def test_the_fake_is_an_engine() -> None:
    """FakeEngine satisfies the Engine protocol (checked statically and at run time)."""
    engine: Engine = FakeEngine()
    assert isinstance(engine, Engine)


def test_a_new_group_succeeds_and_runs(store: Store, engine: FakeEngine,
                                       reconciler: Reconciler) -> None:
    """Pending → converge → provisioning Succeeded, the group Running, its operation done."""
    record = put(store)
    assert record.provisioning_state == "Pending"
    reconciler.converge(record.uid)
    assert current(store, record.uid).provisioning_state == "Succeeded"
    view = engine.view(record.uid)
    assert view.state == "Running"
    assert view.name == "g"
    assert engine.logs(record.uid, "c") == "hello\n"
    assert statuses(store, record) == ["Succeeded"]


def test_converging_again_changes_nothing(store: Store, engine: FakeEngine,
                                          reconciler: Reconciler, clock: Clock) -> None:
    """A second converge of the same generation (a resync, a restart of skiff) leaves the
    containers as they are."""
    record = put(store)
    reconciler.converge(record.uid)
    first = started(engine.view(record.uid))
    clock.advance(5)
    reconciler.converge(record.uid)
    assert started(engine.view(record.uid)) == first
    assert engine.view(record.uid).containers[0].restart_count == 0


def test_a_changed_definition_redeploys(store: Store, engine: FakeEngine,
                                        reconciler: Reconciler, clock: Clock) -> None:
    """A new body makes new containers (a new start time, the new command's output)."""
    record = put(store)
    reconciler.converge(record.uid)
    first = started(engine.view(record.uid))
    clock.advance(5)
    changed = put(store, "echo again; sleep 300")
    assert changed.generation == record.generation + 1
    assert changed.provisioning_state == "Pending"
    reconciler.converge(record.uid)
    assert current(store, record.uid).provisioning_state == "Succeeded"
    view = engine.view(record.uid)
    assert view.state == "Running"
    assert started(view) == first + 5
    assert engine.logs(record.uid, "c") == "again\n"
    assert statuses(store, record) == ["Succeeded", "Succeeded"]


def test_stop_then_start(store: Store, engine: FakeEngine, reconciler: Reconciler,
                         clock: Clock) -> None:
    """Stop kills the containers (the group stays, Stopped); start runs them anew."""
    record = put(store)
    reconciler.converge(record.uid)
    first = started(engine.view(record.uid))
    store.set_desired(SUB, "rg", "g", "stopped")
    reconciler.converge(record.uid)
    stopped = engine.view(record.uid)
    assert (stopped.state, stopped.stopped) == ("Stopped", True)
    assert stopped.containers[0].current.state == "Terminated"
    assert current(store, record.uid).provisioning_state == "Succeeded"
    clock.advance(3)
    desire(store, "running", "start")
    reconciler.converge(record.uid)
    view = engine.view(record.uid)
    assert (view.state, view.stopped) == ("Running", False)
    assert started(view) == first + 3
    assert statuses(store, record)[-1] == "Succeeded"


def test_a_restart_operation_restarts_the_containers(store: Store, engine: FakeEngine,
                                                     reconciler: Reconciler,
                                                     clock: Clock) -> None:
    """A restart operation restarts the running containers in place and then ends."""
    record = put(store)
    reconciler.converge(record.uid)
    first = started(engine.view(record.uid))
    clock.advance(2)
    desire(store, "running", "restart")
    reconciler.converge(record.uid)
    view = engine.view(record.uid)
    assert view.state == "Running"
    assert started(view) == first + 2
    assert "Killing" in [e.name for e in view.containers[0].events]
    assert ("restart", record.uid) in engine.calls
    assert statuses(store, record) == ["Succeeded", "Succeeded"]


def test_delete_removes_the_group_from_store_and_engine(store: Store, engine: FakeEngine,
                                                       reconciler: Reconciler) -> None:
    """A deleted group leaves the engine, then the store; its operation succeeds."""
    record = put(store)
    reconciler.converge(record.uid)
    deleting = desire(store, "deleted", "delete")
    assert deleting.provisioning_state == "Deleting"
    reconciler.converge(record.uid)
    assert store.get_group_by_uid(record.uid) is None
    assert store.get_group(SUB, "rg", "g") is None
    assert engine.group_ids() == []
    assert statuses(store, record) == ["Succeeded", "Succeeded"]
    reconciler.converge(record.uid)  # nothing left to do, and no error
    assert engine.group_ids() == []


def test_an_image_that_cannot_be_pulled_fails_the_group(store: Store, engine: FakeEngine,
                                                        reconciler: Reconciler) -> None:
    """The engine's view.failure becomes provisioning Failed, with the reason recorded on
    the group and on its operation."""
    engine.pull_errors["registry.test/nope:1"] = ImageNotFound("manifest unknown")
    record = put(store, image="registry.test/nope:1")
    reconciler.converge(record.uid)
    failed = current(store, record.uid)
    assert failed.provisioning_state == "Failed"
    assert failed.error is not None
    assert failed.error["code"] == "ContainerGroupDeploymentFailed"
    assert "manifest unknown" in failed.error["message"]
    [op] = store.operations_for(record.resource_id, status=None)
    assert op.status == "Failed"
    assert op.error == failed.error


def test_an_engine_error_fails_the_group_with_its_code(store: Store, engine: FakeEngine,
                                                       reconciler: Reconciler) -> None:
    """A SkiffError the engine raises is recorded with its own code and message; the next
    generation may succeed."""
    engine.fail("run", RuntimeFailure("conmon vanished"))
    record = put(store)
    reconciler.converge(record.uid)
    failed = current(store, record.uid)
    assert failed.provisioning_state == "Failed"
    assert failed.error == {"code": "ContainerRuntimeFailed", "message": "conmon vanished"}
    put(store, "echo second; sleep 300")
    reconciler.converge(record.uid)
    assert current(store, record.uid).provisioning_state == "Succeeded"
    assert current(store, record.uid).error is None


def test_an_old_generations_result_does_not_overwrite_a_newer_one(
    store: Store, engine: FakeEngine, reconciler: Reconciler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PUT that lands while the engine runs the previous definition keeps the group
    Pending (its operation in progress) until that newer definition is converged."""
    record = put(store)
    run = engine.run

    def run_while_a_put_lands(spec: GroupSpec) -> GroupView:
        monkeypatch.setattr(engine, "run", run)
        put(store, "echo newer; sleep 300")
        return run(spec)

    monkeypatch.setattr(engine, "run", run_while_a_put_lands)
    reconciler.converge(record.uid)
    newer = current(store, record.uid)
    assert newer.generation == record.generation + 1
    assert newer.provisioning_state == "Pending"
    assert statuses(store, record) == ["Succeeded", "InProgress"]
    reconciler.converge(record.uid)
    assert current(store, record.uid).provisioning_state == "Succeeded"
    assert statuses(store, record) == ["Succeeded", "Succeeded"]
    assert engine.logs(record.uid, "c") == "newer\n"


def test_every_pending_operation_up_to_the_generation_is_finished(
    store: Store, reconciler: Reconciler
) -> None:
    """Operations of older generations that were never finished (two PUTs before one
    converge) end with the generation that supersedes them."""
    record = put(store)
    put(store, "echo second; sleep 300")
    put(store, "echo third; sleep 300")
    assert statuses(store, record) == ["InProgress"] * 3
    reconciler.converge(record.uid)
    assert statuses(store, record) == ["Succeeded"] * 3


def test_a_group_under_never_that_exits_still_provisions(store: Store, engine: FakeEngine,
                                                         reconciler: Reconciler,
                                                         clock: Clock) -> None:
    """A job's exit is the group's state (Failed, exit code 3), not a failed deployment."""
    record = put(store, "echo working; sleep 1; exit 3", restartPolicy="Never")
    reconciler.converge(record.uid)
    assert current(store, record.uid).provisioning_state == "Succeeded"
    clock.advance(1)
    view = engine.view(record.uid)
    assert view.state == "Failed"
    assert view.containers[0].current.exit_code == 3
    assert view.failure is None
