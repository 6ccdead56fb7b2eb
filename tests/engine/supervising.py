"""The engine tests' Supervisor: fast restarts, a 50 ms monitor, nothing left behind."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from skiff.engine.group.supervisor import Supervisor
from skiff.settings import BackoffSettings, Settings
from skiff.testing import engine as testing

#: Restarts within a test's patience: 0.2 s doubling to 1 s.
FAST_BACKOFF = BackoffSettings(initial_s=0.2, factor=2, max_s=1, reset_after_s=600)
runsc_pids = testing.runsc_pids


@contextlib.contextmanager
def supervising(settings: Settings) -> Iterator[Supervisor]:
    """A Supervisor on ``settings``; everything it made goes after, pass or fail."""
    with testing.supervising(settings, backoff=FAST_BACKOFF,
                             monitor_interval_s=0.05) as supervisor:
        yield supervisor
