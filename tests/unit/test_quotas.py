"""Quotas and capacity through the API, in process (the app over a real store, a running
reconcile loop and the FakeEngine): ACI's quotas per subscription and their refusals,
``usages``, capacity held only by what runs, ``start`` admitted, and admission and DNS
labels decided atomically under concurrent PUTs."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from skiff.api.app import create_app
from skiff.api.context import ControlPlane
from skiff.core.engine import NodeCapacity
from skiff.settings import ApiSettings, QuotaSettings, Settings
from skiff.testing.fake import FakeEngine
from skiff.testing.inprocess import InProcessClient, fake_plane
from skiff.testing.waiting import eventually

SUB = "sub-1"
API = "?api-version=2023-05-01"
GROUPS = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerInstance/" \
         "containerGroups"
USAGES = f"/subscriptions/{SUB}/providers/Microsoft.ContainerInstance/locations/westeurope/" \
         f"usages{API}"
T = TypeVar("T")


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as running:
        yield running


def plane_with(tmp_path: Path, quotas: QuotaSettings | None = None, cores: float = 4.0,
               page_size: int = 100) -> Callable[[], Any]:
    """A fake plane whose node has ``cores`` CPUs (4 GB of memory each) and ``quotas``,
    listing ``page_size`` groups a page."""
    settings = Settings(data_root=tmp_path, quotas=quotas or QuotaSettings(),
                        api=ApiSettings(page_size=page_size))

    def start() -> Any:
        context = fake_plane(tmp_path, settings)
        plane = context.__enter__()
        assert isinstance(plane.engine, FakeEngine)
        plane.engine.node_capacity = NodeCapacity(cpu_cores=cores, memory_gb=4.0 * cores)
        return context, plane
    return start


@pytest.fixture
def node(request: pytest.FixtureRequest, tmp_path: Path,
         portal: BlockingPortal) -> Iterator[tuple[ControlPlane, InProcessClient]]:
    """A plane (quotas and cores from the test's parameter, if any) and a client of
    ``SUB``."""
    context, plane = plane_with(tmp_path, **getattr(request, "param", {}))()
    try:
        _, secret = plane.store.create_token(SUB, "tests")
        yield plane, InProcessClient(portal, create_app(plane), secret)
    finally:
        context.__exit__(None, None, None)


def on(**node: Any) -> pytest.MarkDecorator:
    """The test's node: ``quotas``, ``cores``, ``page_size`` for :func:`plane_with`."""
    return pytest.mark.parametrize("node", [node], indirect=True)


def body(cpu: float = 1.0, script: str = "sleep 300", policy: str = "Always",
         **props: Any) -> dict[str, Any]:
    return {"location": "westeurope", "properties": {
        "osType": "Linux", "restartPolicy": policy, **props, "containers": [{
            "name": "c", "properties": {
                "image": "registry.test/busybox:1", "command": ["sh", "-c", script],
                "resources": {"requests": {"cpu": cpu, "memoryInGB": 1.0}}}}]}}


def put(http: InProcessClient, name: str, doc: dict[str, Any]) -> httpx.Response:
    return http.put(f"{GROUPS}/{name}{API}", json=doc)


def error(answer: httpx.Response, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    found: dict[str, Any] = answer.json()["error"]
    assert found["code"] == code, found
    return str(found["message"])


def state(http: InProcessClient, name: str) -> str | None:
    doc = http.get(f"{GROUPS}/{name}{API}").json()
    view = doc["properties"].get("instanceView") or {}
    return view.get("state")


def deployed(http: InProcessClient, name: str) -> bool:
    """Whether the reconcile loop has finished the group's deployment (either way)."""
    doc = http.get(f"{GROUPS}/{name}{API}").json()
    return doc["properties"]["provisioningState"] in ("Succeeded", "Failed")


def usages(http: InProcessClient) -> dict[str, tuple[float, int]]:
    answer = http.get(USAGES)
    assert answer.status_code == 200, answer.text
    return {u["name"]["value"]: (u["currentValue"], u["limit"]) for u in answer.json()["value"]}


@on(quotas=QuotaSettings(container_groups=2))
def test_the_container_groups_quota_is_refused_with_acis_error(
        node: tuple[ControlPlane, InProcessClient]) -> None:
    """A third group past ContainerGroups=2 is ACI's 400 ContainerGroupQuotaReached, in
    ACI's words; an update of an existing group is no new group."""
    _, http = node
    for name in ("a", "b"):
        assert put(http, name, body(0.1)).status_code == 201
    message = error(put(http, "c", body(0.1)), 400, "ContainerGroupQuotaReached")
    assert message == ("Resource type 'Microsoft.ContainerInstance/containerGroups' container "
                       "group quota 'ContainerGroups' exceeded in region 'westeurope'. Limit: "
                       "'2', Usage: '2' Requested: '1'.")
    assert put(http, "a", body(0.2)).status_code == 200
    assert http.get(f"{GROUPS}/c{API}").status_code == 404


@on(quotas=QuotaSettings(standard_cores=2))
def test_standard_cores_count_what_runs(node: tuple[ControlPlane, InProcessClient]) -> None:
    """StandardCores=2 refuses a third core; a stopped group's cores are free again, and its
    start is then refused while the cores are taken."""
    _, http = node
    assert put(http, "a", body(1.5)).status_code == 201
    message = error(put(http, "b", body(1)), 400, "ContainerGroupQuotaReached")
    assert "quota 'StandardCores'" in message
    assert "Usage: '1.5' Requested: '1'" in message
    assert http.post(f"{GROUPS}/a/stop{API}").status_code == 204
    assert put(http, "b", body(1)).status_code == 201
    message = error(http.post(f"{GROUPS}/a/start{API}"), 400, "ContainerGroupQuotaReached")
    assert "Usage: '1' Requested: '1.5'" in message


@on(quotas=QuotaSettings(creates_per_5_minutes=2, deletes_per_5_minutes=1))
def test_creates_and_deletes_are_counted_per_window(
        node: tuple[ControlPlane, InProcessClient]) -> None:
    """Past 2 creates in 5 minutes a create is refused, even after a delete; past 1
    delete, a delete is refused and the group stays."""
    _, http = node
    for name in ("a", "b"):
        assert put(http, name, body(0.1)).status_code == 201
    assert http.delete(f"{GROUPS}/a{API}").status_code in (200, 202)
    message = error(put(http, "c", body(0.1)), 400, "ContainerGroupQuotaReached")
    assert "quota 'ContainerGroupCreatesPer5Minutes'" in message
    message = error(http.delete(f"{GROUPS}/b{API}"), 400, "ContainerGroupQuotaReached")
    assert "quota 'ContainerGroupDeletesPer5Minutes'" in message
    assert http.get(f"{GROUPS}/b{API}").status_code == 200


@on(quotas=QuotaSettings(subscriptions=((SUB.upper(), "ContainerGroups", 0),)))
def test_a_subscription_has_its_own_limit(node: tuple[ControlPlane, InProcessClient]) -> None:
    """An operator's limit for one subscription (any case) replaces the default there."""
    plane, http = node
    error(put(http, "a", body(0.1)), 400, "ContainerGroupQuotaReached")
    assert usages(http)["ContainerGroups"] == (0, 0)
    assert plane.settings.quotas.limits("sub-2")["ContainerGroups"] == 100


def test_usages_show_current_values_and_limits(
        node: tuple[ControlPlane, InProcessClient]) -> None:
    """``usages``: ACI's defaults as limits, and groups, running cores, creates and
    deletes as they are; a stopped group counts as a group, not in cores."""
    _, http = node
    assert put(http, "a", body(1)).status_code == 201
    assert put(http, "b", body(0.5)).status_code == 201
    assert http.post(f"{GROUPS}/b/stop{API}").status_code == 204
    found = usages(http)
    assert found == {"ContainerGroups": (2, 100), "StandardCores": (1, 100),
                     "ContainerGroupCreatesPer5Minutes": (2, 100),
                     "ContainerGroupCreatesPerHour": (2, 300),
                     "ContainerGroupDeletesPer5Minutes": (0, 100),
                     "ContainerGroupDeletesPerHour": (0, 300), "StandardSpotCores": (0, 100)}
    assert http.post(f"{GROUPS}/b/start{API}").status_code == 202
    assert usages(http)["StandardCores"] == (1.5, 100)


@on(cores=2)
def test_ended_groups_release_the_node(node: tuple[ControlPlane, InProcessClient]) -> None:
    """On a 2-core node, a Failed and a Succeeded group (1 core each, restart policy Never)
    hold nothing once their containers have exited (usages count no core of theirs): two
    more groups fit."""
    _, http = node
    assert put(http, "failed", body(1, "exit 1", "Never")).status_code == 201
    assert put(http, "done", body(1, "exit 0", "Never")).status_code == 201
    eventually(lambda: state(http, "failed") == "Failed", what="group 'failed' to fail")
    eventually(lambda: state(http, "done") == "Succeeded", what="group 'done' to succeed")
    for name in ("failed", "done"):  # the loop has recorded its deployment: it may be released
        eventually(lambda n=name: deployed(http, n), what=f"group {name!r} deployed")  # type: ignore[misc]
    assert usages(http)["StandardCores"] == (0, 100)
    assert put(http, "x", body(1)).status_code == 201
    assert put(http, "y", body(1)).status_code == 201
    error(put(http, "z", body(0.5)), 409, "ServiceUnavailable")
    # A restart of an ended group is a new run: it is admitted again.
    message = error(http.post(f"{GROUPS}/failed/restart{API}"), 409, "ServiceUnavailable")
    assert message.endswith("Resource requested: '1' CPU '1' GB memory 'Linux' OS")


@on(cores=2)
def test_a_failed_deployment_releases_at_once(
        node: tuple[ControlPlane, InProcessClient]) -> None:
    """A group whose deployment failed (its image cannot be pulled) holds nothing."""
    plane, http = node
    from skiff.errors import ImageNotFound

    assert isinstance(plane.engine, FakeEngine)
    plane.engine.pull_errors["registry.test/missing:1"] = ImageNotFound("no such image")
    broken = body(2)
    broken["properties"]["containers"][0]["properties"]["image"] = "registry.test/missing:1"
    assert put(http, "broken", broken).status_code == 201
    eventually(lambda: http.get(f"{GROUPS}/broken{API}").json()["properties"]
               ["provisioningState"] == "Failed", what="the deployment to fail")
    assert put(http, "next", body(2)).status_code == 201


@on(cores=2)
def test_start_of_a_stopped_group_is_admitted(
        node: tuple[ControlPlane, InProcessClient]) -> None:
    """A stopped group frees its cores; its start, once they are taken, is ACI's 409
    ServiceUnavailable, and the group stays stopped."""
    _, http = node
    assert put(http, "a", body(1.2)).status_code == 201
    assert http.post(f"{GROUPS}/a/stop{API}").status_code == 204
    assert put(http, "b", body(1.2)).status_code == 201
    error(http.post(f"{GROUPS}/a/start{API}"), 409, "ServiceUnavailable")
    assert state(http, "a") == "Stopped"


@on(cores=1)
def test_validation_errors_come_before_capacity(
        node: tuple[ControlPlane, InProcessClient]) -> None:
    """On a full node, a body that is wrong gets its own 400, not the capacity's 409."""
    _, http = node
    assert put(http, "a", body(1)).status_code == 201
    wrong = body(1)
    wrong["properties"]["containers"][0]["properties"]["resources"]["limits"] = {"cpu": 3}
    error(put(http, "b", wrong), 400, "ContainerLimitGreaterThanContainerGroupTotalRequest")


def race(n: int, work: Callable[[int], T]) -> list[T]:
    """``work(i)`` for i in 0..n-1, each in its own thread, released together."""
    barrier = threading.Barrier(n)
    results: list[T | None] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        results[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [r for r in results if r is not None]


@on(cores=2)
def test_racing_puts_cannot_both_take_the_last_cores(
        node: tuple[ControlPlane, InProcessClient]) -> None:
    """Eight PUTs of 1.5 cores at once on a 2-core node: one is created, seven refused."""
    _, http = node
    answers = race(8, lambda i: put(http, f"g{i}", body(1.5)).status_code)
    assert sorted(answers) == [201] + [409] * 7


def test_racing_puts_cannot_both_take_one_label(
        node: tuple[ControlPlane, InProcessClient]) -> None:
    """Eight groups asking for one DNS label at once: one holds it, seven are refused
    and not created."""
    _, http = node

    def labelled(i: int) -> int:
        doc = body(0.1, ipAddress={"type": "Public", "dnsNameLabel": "shared-label",
                                   "ports": [{"port": 80}]})
        doc["properties"]["containers"][0]["properties"]["ports"] = [{"port": 80}]
        return put(http, f"g{i}", doc).status_code

    answers = race(8, labelled)
    assert sorted(answers) == [201] + [409] * 7
    listed = http.get(f"{GROUPS}{API}").json()["value"]
    assert len(listed) == 1


# ---- lists: each group's answer kept per version -------------------------------------------


def listed(http: InProcessClient, path: str = f"{GROUPS}{API}") -> dict[str, dict[str, Any]]:
    """Every group a list shows (every page), by name."""
    found: dict[str, dict[str, Any]] = {}
    link: str | None = path
    while link:
        doc = http.get(link).json()
        found.update({g["name"]: g for g in doc["value"]})
        link = doc.get("nextLink")
    return found


@on(page_size=2)
def test_a_list_shows_every_change_of_a_group(
        node: tuple[ControlPlane, InProcessClient]) -> None:
    """Lists keep each group's answer per version, yet show each change at once (tags, a
    new body, a stop, a deletion), and pages of 2 chain through nextLink to all 5."""
    _, http = node
    for i in range(5):
        assert put(http, f"g{i}", body(0.1)).status_code == 201
    eventually(lambda: all(g["properties"]["provisioningState"] == "Succeeded"
                           for g in listed(http).values()), what="every group deployed")
    page = http.get(f"{GROUPS}{API}").json()
    assert len(page["value"]) == 2
    assert "%24skipToken=" in page["nextLink"]
    assert set(listed(http)) == {f"g{i}" for i in range(5)}
    assert http.request("PATCH", f"{GROUPS}/g0{API}", json={"tags": {"k": "v"}}).status_code \
        == 200
    assert put(http, "g1", body(0.2)).status_code == 200
    assert http.post(f"{GROUPS}/g2/stop{API}").status_code == 204
    assert http.delete(f"{GROUPS}/g3{API}").status_code == 200
    after = listed(http)
    assert after["g0"]["tags"] == {"k": "v"}
    resources = after["g1"]["properties"]["containers"][0]["properties"]["resources"]
    assert resources["requests"]["cpu"] == 0.2
    assert set(after) == {"g0", "g1", "g2", "g4"}
    assert listed(http, f"/subscriptions/{SUB}/providers/Microsoft.ContainerInstance/"
                        f"containerGroups{API}") == after
