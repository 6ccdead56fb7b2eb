"""Waiting for a long-running operation, as ARM's contract and the SDK's poller do.

One loop (:class:`Poller`) serves every kind of operation; what differs is
where it looks and what an answer means:

- ``Azure-AsyncOperation``: the operation's ``status`` (its ``error`` when it
  ended Failed or Canceled); the answer's ``Retry-After``, if any, sets the
  next wait;
- else ``Location``: 202 while it runs, anything else once it is done; each
  202's ``Retry-After`` (1 s without one) sets the next wait;
- else, for a PUT: the resource's ``provisioningState`` (none: Succeeded);
- else, for a DELETE answered 202: the resource, until it answers 404.

Anything else (a 200 or 204 without an operation) is done already.

When to poll is the client's choice; ``Retry-After`` is the server's advice on
how often at most. The SDK sleeps it before every poll, so a group Running in
0.5 s is seen after 1 s. skiff's server holds a poll of an operation in
progress until the operation ends (up to 0.5 s), so this poller asks at once
and again at once after each held answer: it hears of the end as it happens,
at a couple of requests a second. An answer that comes back at once while the
operation runs (a server that does not hold polls, or one with nothing to wait
for) starts a backoff: :data:`_FIRST_BACKOFF_S`, doubled after each such answer,
never more than the latest ``Retry-After``. A poll that fails in a way worth
another try (no connection, 429, 5xx) is tried again after ``Retry-After``, up
to :data:`_POLL_FAILURES` in a row. A ``timeout`` that the next wait would
overrun ends it with ``OperationTimedOut``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import httpx

from skiff.client.errors import ApiError, OperationFailed, json_object

_TERMINAL = frozenset({"succeeded", "failed", "canceled"})
# Without Retry-After the SDK waits 30 s; skiff always sends 1, so 1 is the
# fallback, and a server asking for more than a minute is not believed.
_DEFAULT_RETRY_S = 1.0
_MAX_RETRY_S = 60.0
# Polls that fail in a row (connection lost, 5xx) before waiting gives up:
# a restarting server comes back within a few seconds.
_POLL_FAILURES = 5
# An answer that took this long was held by the server (skiff holds a poll up to 0.5 s
# while the operation runs; an answer not held takes a few milliseconds): poll again at once.
_HELD_S = 0.2
# The first wait after an answer that was not held: short enough that an operation ending
# within it costs no more than this, doubled each time so that a server that never holds
# polls gets at most a handful more requests before the waits reach its Retry-After.
_FIRST_BACKOFF_S = 0.05

#: Called with the operation's status ("InProgress", a provisioningState) at each poll.
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Operation:
    """A long-running operation as the API started it."""

    #: The verb that started it (PUT, DELETE, POST).
    method: str
    #: The resource it works on (its ARM URL, without query).
    resource_url: str
    #: The HTTP status of the first answer (200, 201, 202, 204).
    status_code: int
    #: The body of the first answer ({} when there was none).
    body: dict[str, Any]
    #: The ``Azure-AsyncOperation`` URL to poll, if the API gave one.
    async_url: str | None = None
    #: The ``Location`` URL to poll, if the API gave one (and no async URL).
    location_url: str | None = None
    #: The longest wait between polls (the first answer's ``Retry-After``).
    retry_after: float = _DEFAULT_RETRY_S


def retry_after(response: httpx.Response) -> float:
    """The answer's ``Retry-After`` in seconds, within reason (1 s without one)."""
    try:
        value = float(response.headers.get("Retry-After", _DEFAULT_RETRY_S))
    except ValueError:  # an HTTP date: not worth parsing for a one-second poll
        return _DEFAULT_RETRY_S
    return min(max(value, 0.0), _MAX_RETRY_S)


def started(method: str, url: str, response: httpx.Response) -> Operation:
    """The operation a first answer (to ``method`` on ``url``) started."""
    async_url = response.headers.get("Azure-AsyncOperation")
    location = response.headers.get("Location")
    return Operation(method=method, resource_url=url, status_code=response.status_code,
                     body=json_object(response), async_url=async_url or None,
                     location_url=None if async_url else (location or None),
                     retry_after=retry_after(response))


def operation_failed(status: str, error: Any) -> OperationFailed:
    """The error of an operation that ended ``status`` (Failed, Canceled)."""
    if isinstance(error, dict) and (error.get("code") or error.get("message")):
        return OperationFailed(200, str(error.get("code") or status),
                               str(error.get("message") or f"the operation ended {status}"))
    return OperationFailed(200, "Canceled" if status.lower() == "canceled" else "OperationFailed",
                           f"the operation ended {status}")


class _Reading(NamedTuple):
    """What one answer says about the operation."""

    #: Reported to ``progress``.
    status: str
    done: bool
    #: What :meth:`Poller.wait` answers once done.
    result: dict[str, Any]
    #: The operation's error, if it ended badly.
    error: Any = None
    #: The longest wait between polls (its ``Retry-After``), if the answer sets one.
    delay: float | None = None


def _async_status(response: httpx.Response) -> _Reading:
    data = json_object(response)
    status = str(data.get("status") or "InProgress")
    delay = retry_after(response) if "Retry-After" in response.headers else None
    return _Reading(status, status.lower() in _TERMINAL, data, data.get("error"), delay)


def _location_status(response: httpx.Response) -> _Reading:
    if response.status_code != 202:
        return _Reading("Succeeded", True, {"status": "Succeeded"})
    return _Reading("InProgress", False, {}, delay=retry_after(response))


def _provisioning(body: dict[str, Any]) -> _Reading:
    state = str(body.get("properties", {}).get("provisioningState") or "Succeeded")
    return _Reading(state, state.lower() in _TERMINAL, {"status": state})


def _resource_status(response: httpx.Response) -> _Reading:
    return _provisioning(json_object(response))


def _still_there(response: httpx.Response) -> _Reading:
    return _Reading("Deleting", False, {})


def _outcome(reading: _Reading) -> dict[str, Any]:
    if reading.status.lower() != "succeeded":
        raise operation_failed(reading.status, reading.error)
    return reading.result


def _worth_another_try(exc: ApiError) -> bool:
    return exc.status == 0 or exc.status >= 500 or exc.status == 429


class Poller:
    """Polls operations through ``get`` (one GET, its errors as :class:`ApiError`);
    ``local`` puts a link the server handed out on the API's own origin."""

    def __init__(self, get: Callable[[str | httpx.URL], httpx.Response],
                 local: Callable[[str], httpx.URL], *,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._get = get
        self._local = local
        self._sleep = sleep
        self._clock = clock

    def wait(self, operation: Operation | str, *, progress: Progress | None = None,
             timeout: float | None = None) -> dict[str, Any]:
        """Poll until the operation ends; its last status body (``{"status": ...}``).

        ``operation`` is what started it, or an ``Azure-AsyncOperation`` URL.
        Raises :class:`OperationFailed` when it ended Failed or Canceled, and
        ``ApiError`` ``OperationTimedOut`` after ``timeout`` seconds."""
        if isinstance(operation, str):  # a bare URL
            operation = Operation(method="GET", resource_url="", status_code=202, body={},
                                  async_url=operation)
        deadline = None if timeout is None else self._clock() + timeout
        retry = operation.retry_after
        if operation.async_url:
            return self._poll(self._local(operation.async_url), _async_status, retry,
                              progress, deadline)
        if operation.location_url:
            return self._poll(self._local(operation.location_url), _location_status, retry,
                              progress, deadline)
        if operation.method == "PUT":
            first = _provisioning(operation.body)
            if first.done:
                return _outcome(first)
            return self._poll(operation.resource_url, _resource_status, retry, progress,
                              deadline)
        if operation.method == "DELETE" and operation.status_code == 202:
            return self._poll(operation.resource_url, _still_there, retry, progress, deadline,
                              gone_is_done=True)
        return {"status": "Succeeded"}

    def _poll(self, url: str | httpx.URL, read: Callable[[httpx.Response], _Reading],
              retry: float, progress: Progress | None, deadline: float | None, *,
              gone_is_done: bool = False) -> dict[str, Any]:
        """The loop: GET ``url`` (at once the first time), ``read`` the answer, until it
        says done; between polls, no wait after a held answer, else a backoff up to
        ``retry`` (the latest ``Retry-After``)."""
        failures = 0
        delay, backoff = 0.0, _FIRST_BACKOFF_S
        while True:
            self._pause(delay, deadline)
            asked = self._clock()
            try:
                response = self._get(url)
            except ApiError as exc:
                if gone_is_done and exc.status == 404:
                    return {"status": "Succeeded"}
                failures += 1
                if _worth_another_try(exc) and failures < _POLL_FAILURES:
                    delay = retry
                    continue
                raise
            failures = 0
            reading = read(response)
            if reading.delay is not None:
                retry = reading.delay
            if progress is not None:
                progress(reading.status)
            if reading.done:
                return _outcome(reading)
            if self._clock() - asked >= _HELD_S:
                delay, backoff = 0.0, _FIRST_BACKOFF_S
            else:
                delay, backoff = min(backoff, retry), backoff * 2

    def _pause(self, seconds: float, deadline: float | None) -> None:
        if deadline is not None and self._clock() + seconds > deadline:
            raise ApiError(0, "OperationTimedOut", "the operation did not end in time")
        self._sleep(seconds)
