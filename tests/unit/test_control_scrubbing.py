"""The control plane relies on no engine to keep secrets out of what users and logs read:
views, engine errors and unforeseen tracebacks are scrubbed of the group's secrets in the
reconciler and the routes (skiff.control.scrubbing, skiff.api.failures), whatever the
engine (here the FakeEngine, which scrubs nothing) put in them."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import start_blocking_portal

from skiff.api.app import create_app
from skiff.api.context import ControlPlane
from skiff.control.scrubbing import (
    WITHHELD,
    describe_failure,
    scrub_view,
    scrubbing_errors,
    secrets_in_body,
)
from skiff.core.secrets import MASK
from skiff.core.spec import GroupSpec
from skiff.core.view import ContainerView, Event, GroupView, State
from skiff.errors import ImageNotFound, RuntimeFailure
from skiff.testing.fake import FakeEngine
from skiff.testing.inprocess import InProcessClient, fake_plane
from skiff.testing.waiting import eventually

API = "?api-version=2023-05-01"
SECRET = "hunter2-s3cret"
FILE_SECRET = "file-s3cret-text"
GROUP = ("/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.ContainerInstance/"
         "containerGroups/g")
IMAGE = "registry.test/busybox:1"
LEAKY_IMAGE = "registry.test/leaky:1"


def document(image: str = IMAGE) -> dict[str, Any]:
    return {"location": "local", "properties": {
        "osType": "Linux", "restartPolicy": "Never",
        "containers": [{"name": "c", "properties": {
            "image": image, "command": ["sleep", "300"],
            "environmentVariables": [{"name": "TOKEN", "secureValue": SECRET}],
            "volumeMounts": [{"name": "s", "mountPath": "/s"}],
            "resources": {"requests": {"cpu": 0.1, "memoryInGB": 0.1}}}}],
        "volumes": [{"name": "s", "secret": {
            "f": base64.b64encode(FILE_SECRET.encode()).decode()}}]}}


# ---- the pieces ------------------------------------------------------------------------------


def leaky_view() -> GroupView:
    def container(name: str, init: bool) -> ContainerView:
        return ContainerView(
            name, f"cid-{name}", init=init,
            current=State("Waiting", detail_status=f"runc: {SECRET!r}"),
            previous=State("Terminated", exit_code=1, detail_status=f"exit {SECRET}"),
            events=[Event("Failed", f'exec "{SECRET}" failed', "Warning")])

    return GroupView("g1", "g", "Failed", "10.0.0.2", containers=[container("c", False)],
                     init_containers=[container("i", True)],
                     events=[Event("Note", f"group {SECRET}")], failure=f"c: {SECRET}")


def test_scrub_view_scrubs_every_text_an_engine_writes() -> None:
    """States' details (current and previous), container, init container and group events,
    the failure: each scrubbed; the rest of the view is kept, the original untouched."""
    view = leaky_view()
    clean = scrub_view(view, (SECRET,))
    assert SECRET not in repr(clean)
    assert clean.containers[0].current.detail_status == f"runc: '{MASK}'"
    assert clean.failure == f"c: {MASK}"
    previous = clean.containers[0].previous
    assert previous is not None
    assert (clean.ip, clean.state, previous.exit_code) == ("10.0.0.2", "Failed", 1)
    assert SECRET in repr(view)


def test_scrub_view_without_secrets_is_the_view_and_unknown_ones_withhold_texts() -> None:
    """No secret: the very view (no copy); secrets unknown (None): every text withheld."""
    view = leaky_view()
    assert scrub_view(view, ()) is view
    withheld = scrub_view(view, None)
    assert SECRET not in repr(withheld)
    assert withheld.events[0].message == WITHHELD
    assert withheld.init_containers[0].previous.detail_status == WITHHELD  # type: ignore[union-attr]


def test_secrets_in_body_finds_secrets_wherever_a_raw_body_nests_them() -> None:
    """secureValue, password, storageAccountKey (any case) and secret volume contents, as
    given and decoded, even in a body the rules would refuse."""
    doc = document()
    doc["properties"]["imageRegistryCredentials"] = [{"server": "r", "username": "u",
                                                      "password": "pa55"}]
    doc["properties"]["volumes"].append({"name": "f", "azureFile": {"STORAGEACCOUNTKEY": "k3y"}})
    doc["junk"] = [[{"secureValue": "deep"}], {"secureValue": 7}]
    found: set[object] = set(secrets_in_body(doc))
    assert {SECRET, "pa55", "k3y", "deep", FILE_SECRET} <= found
    assert 7 not in found


def test_scrubbing_errors_masks_an_engine_errors_message_or_withholds_it() -> None:
    """Known secrets: the SkiffError raised inside leaves with them masked (message and
    str); unknown (None): with its code only."""
    with pytest.raises(RuntimeFailure) as caught, scrubbing_errors((SECRET,)):
        raise RuntimeFailure(f"exec {SECRET} failed")
    assert caught.value.message == f"exec {MASK} failed"
    assert SECRET not in str(caught.value)
    with pytest.raises(RuntimeFailure) as caught, scrubbing_errors(None):
        raise RuntimeFailure(f"exec {SECRET} failed")
    assert caught.value.message == "the engine failed (ContainerRuntimeFailed)"


def raise_chained() -> None:
    try:
        raise KeyError(f"value {SECRET}")
    except KeyError as exc:
        raise RuntimeError(f"while reading {SECRET!r}") from exc


def test_describe_failure_scrubs_every_message_of_the_chain() -> None:
    """Both messages of a chained exception are masked; types and frames stay."""
    try:
        raise_chained()
    except RuntimeError as exc:
        text = describe_failure(exc, (SECRET,))
    assert SECRET not in text
    assert "KeyError" in text
    assert "RuntimeError" in text
    assert "raise_chained" in text
    assert "direct cause" in text


def test_describe_failure_with_unknown_secrets_leaves_messages_out() -> None:
    """Secrets unknown: no message at all, still the types, the chain and the frames."""
    try:
        raise_chained()
    except RuntimeError as exc:
        text = describe_failure(exc, None)
    assert SECRET not in text
    assert text.count("message withheld") == 2
    assert "builtins.KeyError" in text
    assert "builtins.RuntimeError" in text
    assert "raise_chained" in text
    assert "direct cause" in text


# ---- through the API -------------------------------------------------------------------------


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    with fake_plane(tmp_path) as running:
        yield running


@pytest.fixture
def api(plane: ControlPlane) -> Iterator[InProcessClient]:
    _, token = plane.store.create_token("sub-1", "tenant")
    with start_blocking_portal() as portal:
        yield InProcessClient(portal, create_app(plane), token, suffix=API)


def fake(plane: ControlPlane) -> FakeEngine:
    assert isinstance(plane.engine, FakeEngine)
    return plane.engine


def test_a_views_texts_quoting_a_secret_never_reach_a_get(plane: ControlPlane,
                                                          api: InProcessClient) -> None:
    """An engine whose pull error quotes the group's secureValue and its secret file (in
    the container's event and detailStatus, and the group's failure): the GET, the list
    and the operation show the mask, never the secrets."""
    fake(plane).pull_errors[LEAKY_IMAGE] = ImageNotFound(
        f"manifest unknown: token={SECRET} file={FILE_SECRET}")
    made = api.put(GROUP, json=document(LEAKY_IMAGE))
    assert made.status_code == 201, made.text

    def failed() -> dict[str, Any] | None:
        doc: dict[str, Any] = api.get(GROUP).json()
        return doc if doc["properties"]["provisioningState"] == "Failed" else None

    doc = eventually(failed, what="the group failed")
    assert doc is not None
    view = doc["properties"]["containers"][0]["properties"]["instanceView"]
    assert MASK in view["currentState"]["detailStatus"]
    assert any(MASK in event["message"] for event in view["events"])
    assert MASK in doc["properties"]["instanceView"]["detailStatus"]
    operation = api.get(made.headers["Azure-AsyncOperation"].split("skiff.test", 1)[1]
                        .split("?")[0])
    listing = api.get("/subscriptions/sub-1/providers/Microsoft.ContainerInstance/"
                      "containerGroups")
    for text in (api.get(GROUP).text, operation.text, listing.text):
        assert SECRET not in text
        assert FILE_SECRET not in text


def test_an_engine_error_a_route_answers_is_scrubbed(plane: ControlPlane,
                                                     api: InProcessClient) -> None:
    """A logs request the engine refuses with a message quoting the secret: the error
    answered carries the mask."""
    assert api.put(GROUP, json=document()).status_code == 201
    eventually(lambda: api.get(GROUP).json()["properties"]["provisioningState"] == "Succeeded",
               what="the group runs")
    fake(plane).fail("logs", RuntimeFailure(f"conmon: cannot read {SECRET}"))
    answer = api.get(f"{GROUP}/containers/c/logs")
    assert answer.status_code == 503, answer.text  # a runtime failure may pass
    assert SECRET not in answer.text
    assert MASK in answer.json()["error"]["message"]


def logged(caplog: pytest.LogCaptureFixture) -> str:
    return caplog.text + "".join(r.getMessage() for r in caplog.records)


def test_an_unforeseen_error_in_a_route_is_logged_without_the_groups_secrets(
    plane: ControlPlane, api: InProcessClient, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A GET whose engine raises an exception quoting the stored secret: a 500 that says
    nothing, and a logged traceback with the secret masked."""
    assert api.put(GROUP, json=document()).status_code == 201

    def view(_: str) -> GroupView:
        raise ValueError(f"cannot read {SECRET}")

    monkeypatch.setattr(plane.engine, "view", view)
    with caplog.at_level(logging.ERROR):
        answer = api.get(GROUP)
    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == "InternalServerError"
    assert SECRET not in answer.text
    text = logged(caplog)
    assert "ValueError" in text
    assert MASK in text
    assert SECRET not in text


def test_an_unforeseen_error_quoting_the_request_body_is_logged_without_it(
    plane: ControlPlane, api: InProcessClient, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A PUT that fails unforeseen with the body's secrets in the message (the group is
    not stored yet): they are found in the body and masked in the log."""
    def capacity() -> None:
        raise KeyError(f"{SECRET} / {FILE_SECRET}")

    monkeypatch.setattr(plane.engine, "capacity", capacity)
    with caplog.at_level(logging.ERROR):
        answer = api.put(GROUP, json=document())
    assert answer.status_code == 500
    text = logged(caplog)
    assert "KeyError" in text
    assert SECRET not in text
    assert FILE_SECRET not in text


def test_an_unforeseen_error_in_a_reconcile_worker_is_logged_without_secrets(
    plane: ControlPlane, api: InProcessClient, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An engine raising something no one handles, quoting the secret (and chained to
    another that does): the worker logs the traceback masked, and goes on."""
    def run(spec: GroupSpec) -> GroupView:
        try:
            raise OSError(f"spawn {SECRET}")
        except OSError as exc:
            raise RuntimeError(f"run failed for {SECRET!r}") from exc

    monkeypatch.setattr(plane.engine, "run", run)
    with caplog.at_level(logging.ERROR):
        assert api.put(GROUP, json=document()).status_code == 201
        eventually(lambda: "reconciling" in logged(caplog), what="the failure logged")
    text = logged(caplog)
    assert "RuntimeError" in text
    assert "OSError" in text
    assert MASK in text
    assert SECRET not in text
