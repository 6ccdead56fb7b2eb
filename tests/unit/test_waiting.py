"""The tests' one waiting loop."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from skiff.testing.waiting import NeverHappened, eventually


def test_eventually_returns_the_first_truthy_value() -> None:
    """It polls until the check holds and hands back what the check returned."""
    counter = itertools.count()
    assert eventually(lambda: next(counter) >= 3 and "done", what="count", interval_s=0) == "done"


def test_eventually_fails_naming_what_never_happened() -> None:
    """At the timeout it fails with the caller's words and the last value seen."""
    with pytest.raises(NeverHappened, match=r"the sky falls: not after 0.05 s \(last: 0\)"):
        eventually(lambda: 0, what="the sky falls", timeout_s=0.05, interval_s=0.01)


def test_eventually_treats_ignored_errors_as_not_yet() -> None:
    """An ignored exception is retried; any other propagates at once."""
    calls: Iterator[OSError | int] = iter([OSError("refused"), OSError("refused"), 7])

    def check() -> int:
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    assert eventually(check, what="port", ignore=(OSError,), interval_s=0) == 7
    empty: dict[str, int] = {}
    with pytest.raises(KeyError):
        eventually(lambda: empty["x"], what="key", ignore=(OSError,))


def test_eventually_until_returns_the_awaited_value_and_shows_the_last_one() -> None:
    """With ``until`` the fetched value itself is returned once it holds, and a failure
    shows the last value fetched (logs, a resource), not a bare False."""
    logs = iter(["", "starting\n", "starting\nready\n"])
    assert eventually(lambda: next(logs), until=lambda text: "ready" in text, what="ready",
                      interval_s=0) == "starting\nready\n"
    with pytest.raises(NeverHappened, match=r"ready: not after 0.05 s \(last: 'starting\\n'\)"):
        eventually(lambda: "starting\n", until=lambda text: "ready" in text, what="ready",
                   timeout_s=0.05, interval_s=0.01)
