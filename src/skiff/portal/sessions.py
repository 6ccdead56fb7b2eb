"""The portal's sign-in sessions: a random id in a cookie, the token behind it on the server.

The browser holds only the session's id, in a cookie it never shows to scripts
(``HttpOnly``), sends only over HTTPS (``Secure``) and only with requests that start on
the portal's own pages (``SameSite=Strict``): the token a person signed in with stays in
this process's memory, never in a URL, a page, or the browser's storage. Each session
has a CSRF token of its own, which every form that changes something carries and the
server compares (constant time) before it acts. A session ends when signed out, after
its idle time or its lifetime, when the token behind it expires (a service principal's
access token lives an hour; the portal keeps no secret to renew it with), and with the
process (signing in again is one paste).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: The cookie's name. ``__Host-``: the browser keeps it only if Secure, set by this host
#: with ``Path=/`` and no Domain, so no other host or path can plant or read one.
COOKIE = "__Host-skiff-portal"


@dataclass
class Session:
    """One signed-in browser."""

    #: The bearer token the API is called with (never sent back to the browser).
    token: str = field(repr=False)
    #: Who signed in, as the API named it (shown in the header).
    who: str
    #: The token forms carry to prove they came from a page of this session.
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    started: float = 0.0
    seen: float = 0.0
    #: When the token expires, on the sessions' clock (None: it does not say).
    expires: float | None = None

    def checks(self, csrf: str) -> bool:
        """Whether ``csrf`` (a form's) is this session's."""
        return hmac.compare_digest(self.csrf.encode(), csrf.encode())


class Sessions:
    """The sessions of one server, by id; thread-safe."""

    def __init__(self, *, idle_s: float = 8 * 3600, lifetime_s: float = 24 * 3600,
                 capacity: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_s, self.lifetime_s, self.capacity = idle_s, lifetime_s, capacity
        self._clock = clock
        self._lock = threading.Lock()
        self._items: dict[str, Session] = {}

    def start(self, token: str, who: str, *, expires_in: float | None = None
              ) -> tuple[str, Session]:
        """A new session for ``token``: its id (the cookie's value) and itself.
        ``expires_in``: the token's remaining life in seconds; the session ends with it."""
        now = self._clock()
        session_id = secrets.token_urlsafe(32)
        session = Session(token=token, who=who, started=now, seen=now,
                          expires=None if expires_in is None else now + expires_in)
        with self._lock:
            if len(self._items) >= self.capacity:
                self._items = {k: v for k, v in self._items.items() if self._alive(v, now)}
                while len(self._items) >= self.capacity:  # the oldest go first
                    del self._items[min(self._items, key=lambda k: self._items[k].seen)]
            self._items[session_id] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of ``session_id`` (its idle time restarts), else None."""
        if not session_id:
            return None
        now = self._clock()
        with self._lock:
            session = self._items.get(session_id)
            if session is None:
                return None
            if not self._alive(session, now):
                del self._items[session_id]
                return None
            session.seen = now
            return session

    def end(self, session_id: str | None) -> None:
        """Sign out: the session is gone (an unknown id: nothing)."""
        with self._lock:
            self._items.pop(session_id or "", None)

    def _alive(self, session: Session, now: float) -> bool:
        return (now - session.seen < self.idle_s and now - session.started < self.lifetime_s
                and (session.expires is None or now < session.expires))
