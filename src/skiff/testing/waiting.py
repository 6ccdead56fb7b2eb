"""Waiting for a condition, not for a guessed time: the one polling loop of the tests.

``eventually(check, what=...)`` calls ``check`` until it returns something truthy
and returns that value; at the timeout it fails with ``what`` and the last value
or error seen, so a slow machine makes a test slower, never wrong, and a failure
says what never happened. With ``until``, ``check`` fetches a value (logs, a
resource) and ``until(value)`` says whether it is the awaited one: the value is
returned, and the last one fetched is in the failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class NeverHappened(AssertionError):
    """A condition was still false at its timeout (an assertion failure in a test)."""


def eventually(check: Callable[[], T], *, what: str, timeout_s: float = 10.0,
               interval_s: float = 0.05, ignore: tuple[type[BaseException], ...] = (),
               until: Callable[[T], object] | None = None) -> T:
    """``check()``'s first truthy value (or, with ``until``, its first value that
    ``until`` holds for), polling every ``interval_s``; NeverHappened after
    ``timeout_s``. Exceptions of the ``ignore`` types count as "not yet"."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while True:
        try:
            value = check()
        except ignore as exc:
            last = exc
        else:
            if until(value) if until is not None else value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise NeverHappened(f"{what}: not after {timeout_s:g} s (last: {last!r})")
        time.sleep(interval_s)
