"""skiff serve's start-up heap, put out of the cyclic collector's reach once made: what it
froze is no longer walked by a full collection; what is made after still is."""

from __future__ import annotations

import gc

from skiff.server import settle_heap


class Cycle:
    """An object that refers to itself: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_settle_heap_freezes_what_is_made_and_later_cycles_are_still_freed() -> None:
    """After settle_heap, what existed is frozen (not walked by gc.collect); a cycle made
    after is still collected."""
    kept = Cycle()
    try:
        settle_heap()
        assert gc.get_freeze_count() > 0
        assert not any(o is kept for o in gc.get_objects())
        Cycle()
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
    assert any(o is kept for o in gc.get_objects())
