"""Standby pool members made claimable once they serve, not merely once they started.

A claim answers its PUT with a member already ``Running``, and the tenant expects its
declared port to answer right after (ACI's promise of a standby pool). A member's
provisioning state turns ``Succeeded`` when its containers started, which is a moment
before the server in them listens (a shell that execs httpd, a runtime that loads its
application); a claim then would hand out a group whose port refuses connections for
that moment. So the member is marked ready (:meth:`skiff.store.Store.mark_ready`), and
only then claimable, once the engine says it serves (:meth:`Engine.serving
<skiff.core.engine.Engine.serving>`: each declared TCP port accepts a connection).

:class:`Readiness` asks, in a thread of its own (a claim never waits on it), about each
member that runs but was not seen serving: at once when the reconcile loop is done with
it, then again after 50 ms, 100 ms, ... up to every 2 s (:func:`next_delay`), as long as
it does not serve. A member that never serves is never claimed; past
:data:`STALLED_AFTER_S` its pool's runtime view says so.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from skiff.core.engine import Engine
from skiff.errors import GroupNotFound, SkiffError
from skiff.store import Store

log = logging.getLogger(__name__)

#: Seconds before the second look at a member that does not serve yet: a server
#: usually listens within milliseconds of its process's start.
FIRST_DELAY_S = 0.05
#: The longest wait between two looks at a member that still does not serve (one whose
#: application takes its time to start, or never listens).
LONGEST_DELAY_S = 2.0
#: Seconds between two reads of the store while no member is waiting to serve: a member
#: the reconcile loop finished without telling (after a restart of skiff, say).
IDLE_S = 2.0
#: Seconds a member may run without serving before its pool's runtime view says so.
STALLED_AFTER_S = 60.0


def next_delay(delay: float, longest: float = LONGEST_DELAY_S) -> float:
    """The wait after ``delay`` between two looks at a member still not serving: twice
    as long, up to ``longest``."""
    return min(delay * 2, longest)


@dataclass
class _Waiting:
    """A member that runs but was not seen serving yet."""

    pool_key: str
    #: When it was first seen waiting (the readiness' clock).
    since: float
    #: When it is to be asked again.
    next_at: float
    #: The wait after the next look, if it still does not serve.
    delay: float = FIRST_DELAY_S


class Readiness:
    """Marks the pools' members ready once the engine says they serve."""

    def __init__(self, store: Store, engine: Engine, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.engine = engine
        self.clock = clock
        self._waiting: dict[str, _Waiting] = {}
        self._lock = threading.Lock()  # _waiting (the thread's) and stalled() (the API's)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> float | None:
        """One pass: ask the engine about each waiting member that is due, mark those
        that serve ready. Returns the seconds until the next one is due (None: no member
        waits)."""
        unready = self.store.unready_members()
        now = self.clock()
        with self._lock:
            for uid in [uid for uid in self._waiting if uid not in unready]:
                del self._waiting[uid]  # marked, claimed, deleted or failed meanwhile
            due = [uid for uid, key in unready.items()
                   if self._waiting.setdefault(uid, _Waiting(key, now, now)).next_at <= now]
        served = [uid for uid in due if self._serves(uid)]
        for uid in served:
            if self.store.mark_ready(uid):
                log.debug("standby member %s serves: ready to be claimed", uid)
        now = self.clock()
        with self._lock:
            for uid in due:
                waiting = self._waiting.get(uid)
                if waiting is None:
                    continue
                if uid in served:
                    del self._waiting[uid]
                else:
                    waiting.next_at, waiting.delay = now + waiting.delay, next_delay(
                        waiting.delay)
            if not self._waiting:
                return None
            return max(0.0, min(w.next_at for w in self._waiting.values()) - now)

    def _serves(self, uid: str) -> bool:
        try:
            return self.engine.serving(uid)
        except GroupNotFound:
            return False  # not run yet on this engine, or deleted meanwhile
        except SkiffError as exc:
            log.warning("standby member %s: cannot tell whether it serves: %s", uid,
                        exc.message)
            return False

    def stalled(self, pool_key: str) -> int:
        """How many members of the pool of ``pool_key`` run but have not served for
        :data:`STALLED_AFTER_S` or more."""
        now = self.clock()
        with self._lock:
            return sum(1 for w in self._waiting.values()
                       if w.pool_key == pool_key and now - w.since >= STALLED_AFTER_S)

    def wake(self) -> None:
        """Look at the waiting members now (the thread is started on the first call): a
        member was made, or the reconcile loop is done with one. Quick: called from the
        reconcile loop's workers."""
        if self._stop.is_set():
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="skiff-standby-ready",
                                                daemon=True)
                self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        """Stop the thread, waiting a few seconds for the pass in flight."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # a wake during the pass makes the next one at once
            try:
                wait = self.check()
            except Exception:  # the thread must outlive anything one pass meets
                log.exception("checking whether standby members serve failed")
                wait = None
            self._wake.wait(IDLE_S if wait is None else min(wait, IDLE_S))
