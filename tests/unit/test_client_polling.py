"""Unit tests for skiff.client.polling: the one loop that waits for long-running
operations, on httpx.MockTransport and a fake clock (nothing really sleeps)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from skiff.client import ApiError, Operation, OperationFailed, Poller, error_from

BASE = "https://skiff.test:8443"
OP = "/subscriptions/s/providers/Microsoft.ContainerInstance/locations/l/operations/op1"
RESOURCE = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/web"  # noqa: E501


class Clock:
    """A monotonic clock that moves only when the poller sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


class Api:
    """Answers GETs of each path from a list (the last one repeats), counting them; with a
    ``clock``, each answer takes ``held`` seconds of it (a server holding the poll)."""

    def __init__(self, answers: dict[str, list[httpx.Response]], *, clock: Clock | None = None,
                 held: float = 0.0) -> None:
        self.answers = answers
        self.paths: list[str] = []
        self.clock, self.held = clock, held
        self.http = httpx.Client(base_url=BASE, transport=httpx.MockTransport(self.answer))

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        if self.clock is not None:
            self.clock.now += self.held
        queue = self.answers.get(request.url.path)
        if not queue:
            return httpx.Response(404, json={"error": {"code": "ResourceNotFound",
                                                       "message": request.url.path}})
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def get(self, url: str | httpx.URL) -> httpx.Response:
        response = self.http.get(url)
        if response.status_code >= 400:
            raise error_from(response)
        return response


def poller(api: Api, clock: Clock) -> Poller:
    local: Callable[[str], httpx.URL] = lambda link: httpx.URL(BASE).join(link)  # noqa: E731
    return Poller(api.get, local, sleep=clock.sleep, clock=clock)


def status(value: str, *, retry: str | None = "2", **extra: Any) -> httpx.Response:
    """An Azure-AsyncOperation answer."""
    headers = {} if retry is None else {"Retry-After": retry}
    return httpx.Response(200, json={"id": "op1", "status": value, **extra}, headers=headers)


def started(**fields: Any) -> Operation:
    defaults: dict[str, Any] = {"method": "PUT", "resource_url": RESOURCE, "status_code": 201,
                                "body": {}, "retry_after": 1.0}
    return Operation(**{**defaults, **fields})


def test_async_operation_succeeds_after_reporting_each_status() -> None:
    """InProgress twice, then Succeeded: each status reported, the last body answered; the
    first poll at once, not after the operation's Retry-After."""
    api, clock = Api({OP: [status("InProgress"), status("InProgress", retry="3"),
                           status("Succeeded")]}), Clock()
    seen: list[str] = []
    answer = poller(api, clock).wait(started(async_url=OP), progress=seen.append)
    assert answer == {"id": "op1", "status": "Succeeded"}
    assert seen == ["InProgress", "InProgress", "Succeeded"]
    assert clock.sleeps == [0.0, 0.05, 0.1]


def test_held_polls_are_followed_at_once() -> None:
    """A server that holds each poll (0.5 s) is asked again as soon as it answers: the end
    is heard as it happens, never a Retry-After later."""
    clock = Clock()
    api = Api({OP: [status("InProgress", retry="1")] * 3 + [status("Succeeded")]},
              clock=clock, held=0.5)
    assert poller(api, clock).wait(started(async_url=OP))["status"] == "Succeeded"
    assert clock.sleeps == [0.0] * 4
    assert clock.now == 2.0


def test_answers_not_held_back_off_up_to_retry_after() -> None:
    """A server that answers InProgress at once (as ARM does) is polled after 0.05 s, then
    twice as long each time, never longer than its latest Retry-After."""
    api, clock = Api({OP: [status("InProgress", retry="1")] * 7 + [status("Succeeded")]}), Clock()
    poller(api, clock).wait(started(async_url=OP))
    assert clock.sleeps == [0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_an_async_answer_without_retry_after_keeps_the_last_one() -> None:
    """An operation answer without Retry-After leaves the longest wait between polls as
    the last one set it."""
    answers = [status("InProgress", retry="0.1"), status("InProgress", retry=None),
               status("InProgress", retry=None), status("Succeeded")]
    api, clock = Api({OP: answers}), Clock()
    poller(api, clock).wait(started(async_url=OP))
    assert clock.sleeps == [0.0, 0.05, 0.1, 0.1]


def test_an_arm_error_in_the_operation_is_operation_failed() -> None:
    """An operation that ends Failed raises OperationFailed with its ARM code and message."""
    error = {"code": "InaccessibleImage", "message": "no such image: nginx:nope"}
    api, clock = Api({OP: [status("InProgress"), status("Failed", error=error)]}), Clock()
    seen: list[str] = []
    with pytest.raises(OperationFailed) as info:
        poller(api, clock).wait(started(async_url=OP), progress=seen.append)
    assert (info.value.code, info.value.message) == ("InaccessibleImage",
                                                     "no such image: nginx:nope")
    assert seen == ["InProgress", "Failed"]


def test_a_canceled_operation_without_error_is_canceled() -> None:
    """Canceled with no error body raises code Canceled."""
    api = Api({OP: [status("Canceled")]})
    with pytest.raises(OperationFailed) as info:
        poller(api, Clock()).wait(started(async_url=OP))
    assert info.value.code == "Canceled"


def test_an_operation_that_never_ends_times_out() -> None:
    """With Retry-After 1 and a 3.5 s timeout: polls at 0, 0.05, 0.15, 0.35, 0.75, 1.55 and
    2.55 s, then OperationTimedOut before a wait that would overrun the deadline."""
    api, clock = Api({OP: [status("InProgress", retry="1")]}), Clock()
    with pytest.raises(ApiError) as info:
        poller(api, clock).wait(started(async_url=OP), timeout=3.5)
    assert info.value.code == "OperationTimedOut"
    assert info.value.status == 0
    assert len(api.paths) == 7
    assert clock.now == pytest.approx(2.55)


def test_transient_failures_are_retried_up_to_five_in_a_row() -> None:
    """Four 503s in a row are outlived, each retried after Retry-After; the fifth is
    raised."""
    busy = httpx.Response(503, json={"error": {"code": "ServiceUnavailable", "message": "busy"}})
    api, clock = Api({OP: [busy] * 4 + [status("Succeeded")]}), Clock()
    assert poller(api, clock).wait(started(async_url=OP))["status"] == "Succeeded"
    assert clock.sleeps == [0.0, 1.0, 1.0, 1.0, 1.0]
    api = Api({OP: [busy] * 5 + [status("Succeeded")]})
    with pytest.raises(ApiError) as info:
        poller(api, Clock()).wait(started(async_url=OP))
    assert info.value.status == 503
    assert len(api.paths) == 5


def test_a_client_error_while_polling_is_raised_at_once() -> None:
    """A 404 on the operation is not transient: raised after one poll."""
    api = Api({})
    with pytest.raises(ApiError) as info:
        poller(api, Clock()).wait(OP)
    assert info.value.status == 404
    assert len(api.paths) == 1


def test_a_bare_operation_url_is_polled_at_once() -> None:
    """wait() of a URL polls without waiting first."""
    api, clock = Api({OP: [status("Succeeded")]}), Clock()
    assert poller(api, clock).wait(OP)["status"] == "Succeeded"
    assert clock.sleeps == [0]


def test_location_is_polled_until_it_stops_answering_202() -> None:
    """A Location answers 202 while running (its Retry-After, else 1 s, caps the next wait);
    anything else means Succeeded."""
    running = httpx.Response(202, headers={"Retry-After": "0.06"})
    answers = [running, httpx.Response(202), httpx.Response(202), httpx.Response(204)]
    api, clock = Api({OP: answers}), Clock()
    seen: list[str] = []
    answer = poller(api, clock).wait(started(method="DELETE", status_code=202, location_url=OP),
                                     progress=seen.append)
    assert answer == {"status": "Succeeded"}
    assert seen == ["InProgress", "InProgress", "InProgress", "Succeeded"]
    assert clock.sleeps == [0.0, 0.05, 0.1, 0.2]


def test_a_put_without_operation_follows_the_provisioning_state() -> None:
    """A PUT with no operation URL polls the resource until its provisioningState ends."""
    def group(state: str) -> httpx.Response:
        return httpx.Response(200, json={"properties": {"provisioningState": state}})

    api = Api({RESOURCE: [group("Creating"), group("Succeeded")]})
    seen: list[str] = []
    operation = started(body={"properties": {"provisioningState": "Creating"}})
    assert poller(api, Clock()).wait(operation, progress=seen.append) == {"status": "Succeeded"}
    assert seen == ["Creating", "Succeeded"]
    failed = Api({RESOURCE: [group("Failed")]})
    with pytest.raises(OperationFailed) as info:
        poller(failed, Clock()).wait(operation)
    assert info.value.code == "OperationFailed"


def test_a_put_answered_done_is_not_polled() -> None:
    """A PUT whose answer is already Succeeded (or names no state) needs no poll."""
    api, clock = Api({}), Clock()
    assert poller(api, clock).wait(started()) == {"status": "Succeeded"}
    assert api.paths == []
    assert clock.sleeps == []


def test_a_delete_202_without_operation_polls_until_404() -> None:
    """A DELETE answered 202 with no operation polls the resource until it is gone."""
    api = Api({RESOURCE: [httpx.Response(200, json={}), httpx.Response(404)]})
    seen: list[str] = []
    operation = started(method="DELETE", status_code=202)
    assert poller(api, Clock()).wait(operation, progress=seen.append) == {"status": "Succeeded"}
    assert seen == ["Deleting"]


def test_an_answer_without_operation_is_done() -> None:
    """A POST answered 204 (or a DELETE answered 200) has nothing to wait for."""
    api = Api({})
    assert poller(api, Clock()).wait(started(method="POST", status_code=204)) == {
        "status": "Succeeded"}
    assert poller(api, Clock()).wait(started(method="DELETE", status_code=200)) == {
        "status": "Succeeded"}
    assert api.paths == []
