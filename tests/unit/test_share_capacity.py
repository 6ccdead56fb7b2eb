"""The overcommit arithmetic of the node's file shares (skiff.engine.shares.capacity)."""

from __future__ import annotations

import pytest

from skiff.engine.shares.capacity import GIB, Capacity
from skiff.errors import NodeStorageFull
from skiff.settings import ShareSettings


def test_the_default_overcommit_lets_20_gib_free_hold_one_default_share() -> None:
    capacity = Capacity(free_bytes=20 * GIB, shares_bytes=0,
                        overcommit=ShareSettings().overcommit)
    assert capacity.limit_gib == 5120
    capacity.check(0, 5120)
    with pytest.raises(NodeStorageFull):
        capacity.check(0, 5121)


def test_what_the_shares_take_counts_as_theirs_and_the_promised_quota_is_spent() -> None:
    capacity = Capacity(free_bytes=8 * GIB, shares_bytes=2 * GIB, overcommit=2)
    assert capacity.limit_gib == 20
    capacity.check(15, 5)
    with pytest.raises(NodeStorageFull) as info:
        capacity.check(15, 6)
    assert info.value.code == "InsufficientStorageCapacity"
    assert "6 GiB" in info.value.message
    assert "15" not in info.value.message  # what others hold is not told


def test_an_overcommit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ShareSettings(overcommit=0.5)
