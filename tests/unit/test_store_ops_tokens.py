"""Unit tests for skiff.store's long-running operations and API tokens."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff.store import TOKEN_PREFIX, Store

SUB = "00000000-0000-0000-0000-000000000001"
RID = (f"/subscriptions/{SUB}/resourceGroups/rg/providers/"
       "Microsoft.ContainerInstance/containerGroups/web")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    with Store(tmp_path / "store.db", clock=clock) as s:
        yield s


# --- operations --------------------------------------------------------------------------------


def test_operation_lifecycle(store: Store, clock: Clock) -> None:
    """An operation starts InProgress, finishes once with its error, and reads back."""
    op = store.create_operation(SUB, "westus", RID, "create", generation=3)
    assert (op.status, op.error, op.ended_at, op.generation, op.kind) == (
        "InProgress", None, None, 3, "create")
    assert store.get_operation(op.id) == op
    clock.t += 5
    assert store.finish_operation(op.id, "Failed", {"code": "InaccessibleImage", "message": "m"})
    assert not store.finish_operation(op.id, "Succeeded")  # the first outcome stays
    done = store.get_operation(op.id)
    assert done is not None
    assert (done.status, done.error, done.ended_at) == (
        "Failed", {"code": "InaccessibleImage", "message": "m"}, clock.t)
    assert store.get_operation("no-such-op") is None
    assert not store.finish_operation("no-such-op", "Succeeded")


def test_operations_for_a_resource(store: Store, clock: Clock) -> None:
    """A resource's operations are found by id in any case and status, oldest first."""
    first = store.create_operation(SUB, "westus", RID, "create", 1)
    clock.t += 1
    second = store.create_operation(SUB, "westus", RID.upper(), "restart", 2)
    store.create_operation(SUB, "westus", RID + "2", "create")
    assert [o.id for o in store.operations_for(RID.lower())] == [first.id, second.id]
    store.finish_operation(first.id, "Succeeded")
    assert [o.id for o in store.operations_for(RID)] == [second.id]
    assert [o.id for o in store.operations_for(RID, "Succeeded")] == [first.id]
    assert [o.id for o in store.operations_for(RID, None)] == [first.id, second.id]


def test_finished_operations_are_pruned_after_a_day(store: Store, clock: Clock) -> None:
    """Finished operations go after their retention; running ones stay however old."""
    old = store.create_operation(SUB, "westus", RID, "create")
    running = store.create_operation(SUB, "westus", RID, "restart")
    store.finish_operation(old.id, "Succeeded")
    clock.t += 3600
    assert store.prune_operations() == 0
    recent = store.create_operation(SUB, "westus", RID, "stop")
    store.finish_operation(recent.id, "Succeeded")
    assert store.prune_operations(older_than_s=1800) == 1
    assert store.get_operation(old.id) is None
    clock.t += 86400 + 1
    store.create_operation(SUB, "westus", RID, "start")  # prunes as it goes
    assert store.get_operation(recent.id) is None
    assert store.get_operation(running.id) is not None


def test_operation_statuses_are_checked(store: Store) -> None:
    """Finishing with a non-terminal status is a programming error."""
    op = store.create_operation(SUB, "westus", RID, "create")
    with pytest.raises(ValueError, match="terminal"):
        store.finish_operation(op.id, "InProgress")
    with pytest.raises(ValueError, match="status"):
        store.operations_for(RID, "Done")


# --- tokens ------------------------------------------------------------------------------------


def test_token_lifecycle(store: Store) -> None:
    """A token's secret checks until it is revoked; the listing shows no secrets."""
    admin, admin_secret = store.create_token(None, "admin")
    user, user_secret = store.create_token(SUB, "ci")
    assert admin_secret.startswith(TOKEN_PREFIX)
    assert len(admin_secret) >= len(TOKEN_PREFIX) + 43
    assert admin_secret != user_secret
    assert store.check_token(admin_secret) == admin
    assert admin.subscription is None
    assert store.check_token(user_secret) == user
    assert user.subscription == SUB
    assert store.list_tokens() == [admin, user]
    assert store.revoke_token(user.id)
    assert not store.revoke_token(user.id)
    assert store.check_token(user_secret) is None
    assert store.list_tokens() == [admin]


@pytest.mark.parametrize("guess", ["", "skf_", "nope", "skf_" + "A" * 43])
def test_wrong_secrets_are_refused(store: Store, guess: str) -> None:
    """Empty, malformed and made-up secrets match no token."""
    store.create_token(None, "admin")
    assert store.check_token(guess) is None


def test_a_wrong_case_or_a_truncated_secret_is_refused(store: Store) -> None:
    """A secret matches only exactly: not in another case, not one character short."""
    _, secret = store.create_token(SUB, "ci")
    assert store.check_token(secret[:-1]) is None
    assert store.check_token(TOKEN_PREFIX + secret[4:].swapcase()) is None


def test_secrets_are_not_stored(store: Store, tmp_path: Path) -> None:
    """The file holds the secret's SHA-256 only, never the secret."""
    _, secret = store.create_token(SUB, "ci")
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("store.db*"))
    assert secret.encode() not in raw
    conn = sqlite3.connect(tmp_path / "store.db")
    stored = conn.execute("SELECT secret_sha256 FROM tokens").fetchone()[0]
    conn.close()
    assert stored == hashlib.sha256(secret.encode()).hexdigest()
