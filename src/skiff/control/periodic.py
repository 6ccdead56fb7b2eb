"""A round of work every few seconds, in a daemon thread: the sampler's and the meter's.

Both do one round at a time (a caller's own :meth:`Periodic.run_round` and the thread's
never overlap), keep going whatever one round meets (logged), and stop when told,
waiting a few seconds for the round in flight.
"""

from __future__ import annotations

import logging
import threading
from typing import Generic, TypeVar

from skiff.errors import SkiffError

log = logging.getLogger(__name__)

#: What one round gives back.
R = TypeVar("R")


class Periodic(Generic[R]):
    """Runs :meth:`_round` every ``interval_s`` once :meth:`start` ed (0: never)."""

    #: The thread's name, and what a failed round's log line says was being done.
    thread_name = "skiff-periodic"
    doing = "a periodic round"

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._round_lock = threading.Lock()  # one round at a time (the thread's, or a caller's)
        self._thread: threading.Thread | None = None

    def _round(self) -> R:
        raise NotImplementedError

    def run_round(self) -> R:
        """One round, now, in the caller's thread."""
        with self._round_lock:
            return self._round()

    def start(self) -> None:
        """Run rounds in a thread until :meth:`stop`."""
        if self.interval_s <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.run_round()
            except SkiffError as exc:
                log.warning("%s failed: %s", self.doing, exc)
            except Exception:  # the thread must outlive anything one round meets
                log.exception("%s failed", self.doing)
