"""Spot container groups through the API, in process (the app over a real store, a running
reconcile loop and the FakeEngine): admitted on spare capacity only, evicted (newest
first, an event on the group, billed no more) when a Regular group needs their cores,
run again once capacity is spare, ACI's StandardSpotCores quota, and the Confidential
sku refused without SEV-SNP."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from skiff.api.context import ControlPlane
from skiff.settings import QuotaSettings
from skiff.testing.inprocess import InProcessClient, service_writes
from skiff.testing.waiting import eventually
from tests.unit import test_quotas
from tests.unit.test_quotas import API, GROUPS, body, error, on, put, state, usages

PROFILES = GROUPS.replace("/containerGroups", "/containerGroupProfiles")

# The quotas tests' fixtures: a plane over the FakeEngine (cores and quotas per test) and
# a client of its subscription.
portal, node = test_quotas.portal, test_quotas.node


def spot(cpu: float = 1.0) -> dict[str, Any]:
    return body(cpu, priority="Spot")


def group(http: InProcessClient, name: str) -> dict[str, Any]:
    answer = http.get(f"{GROUPS}/{name}{API}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def evictions(http: InProcessClient, name: str) -> list[dict[str, Any]]:
    events = group(http, name)["properties"].get("instanceView", {}).get("events", [])
    return [e for e in events if e["name"] == "Evicted"]


def uid(plane: ControlPlane, name: str) -> str:
    record = plane.store.get_group("sub-1", "rg", name)
    assert record is not None
    return record.uid


def running(http: InProcessClient, *names: str) -> None:
    for name in names:
        eventually(lambda n=name: state(http, n) == "Running",  # type: ignore[misc]
                   what=f"group {name!r} to run")


@on(cores=2)
def test_a_regular_group_evicts_the_newest_spot_group(
        node: tuple[ControlPlane, InProcessClient]) -> None:
    """On a 2-core node full of two 1-core Spot groups, a 1-core Regular group is admitted:
    the newer Spot group is evicted (Stopped, a Warning event, its usage span closed, its
    cores no longer counted), the older one runs on, and the Regular group runs."""
    plane, http = node
    assert put(http, "old", spot()).status_code == 201
    assert put(http, "new", spot()).status_code == 201
    running(http, "old", "new")
    assert usages(http)["StandardSpotCores"] == (2, 100)
    assert put(http, "regular", body(1)).status_code == 201
    running(http, "regular")
    assert state(http, "new") == "Stopped"  # stopped before the Regular group ran
    assert state(http, "old") == "Running"
    [event] = evictions(http, "new")
    assert (event["type"], event["count"]) == ("Warning", 1)
    assert "a Regular container group needed its capacity" in event["message"]
    assert evictions(http, "old") == evictions(http, "regular") == []
    assert group(http, "new")["properties"]["provisioningState"] == "Succeeded"
    assert plane.store.open_span_of(uid(plane, "new")) is None  # billed no more
    assert plane.store.open_span_of(uid(plane, "old")) is not None
    assert usages(http)["StandardSpotCores"] == (1, 100)
    assert usages(http)["StandardCores"] == (1, 100)


@on(cores=2)
def test_a_spot_group_takes_only_spare_capacity(
        node: tuple[ControlPlane, InProcessClient]) -> None:
    """A Spot group never evicts anything: on a node the Regular groups fill, it is ACI's
    409 ServiceUnavailable; in what is left, it runs. Nor does a Regular group that would
    not fit even with every Spot group evicted evict any."""
    _, http = node
    assert put(http, "r1", body(1.5)).status_code == 201
    error(put(http, "s1", spot(1)), 409, "ServiceUnavailable")
    assert put(http, "s2", spot(0.5)).status_code == 201
    running(http, "r1", "s2")
    error(put(http, "r2", body(1)), 409, "ServiceUnavailable")
    assert state(http, "s2") == "Running"
    assert evictions(http, "s2") == []


@on(cores=2)
def test_an_evicted_group_runs_again_once_capacity_is_spare(
        node: tuple[ControlPlane, InProcessClient]) -> None:
    """ACI restarts an evicted Spot group on its own: once the Regular group that took its
    place stops, the evicted group is admitted again and runs, its event kept."""
    plane, http = node
    assert put(http, "s", spot(2)).status_code == 201
    running(http, "s")
    assert put(http, "r", body(1)).status_code == 201
    running(http, "r")
    assert state(http, "s") == "Stopped"
    assert "runs again once capacity is spare" in evictions(http, "s")[0]["message"]
    assert http.post(f"{GROUPS}/r/stop{API}").status_code == 204
    running(http, "s")
    [event] = evictions(http, "s")
    assert event["count"] == 1
    assert "runs again" not in event["message"]
    assert plane.store.open_span_of(uid(plane, "s")) is not None  # billed again
    assert usages(http)["StandardSpotCores"] == (2, 100)
    # The eviction and the restart are in the activity log, as the provider's own work.
    [stop] = service_writes(plane.store, "sub-1", "Microsoft.ContainerInstance",
                            "Microsoft.ContainerInstance/containerGroups/stop/action")
    [start] = service_writes(plane.store, "sub-1", "Microsoft.ContainerInstance",
                             "Microsoft.ContainerInstance/containerGroups/start/action")
    assert stop["resourceId"] == start["resourceId"] == f"{GROUPS}/s"
    assert "evicted" in stop["description"]
    assert "after its eviction" in start["description"]
    assert stop["eventTimestamp"] <= start["eventTimestamp"]


@on(cores=2)
def test_a_start_evicts_as_a_create_does(node: tuple[ControlPlane, InProcessClient]) -> None:
    """A stopped Regular group's start, on a node Spot groups took meanwhile, evicts one;
    the evicted group's own start is then refused until capacity is spare."""
    _, http = node
    assert put(http, "r", body(1)).status_code == 201
    assert http.post(f"{GROUPS}/r/stop{API}").status_code == 204
    assert put(http, "s", spot(2)).status_code == 201
    running(http, "s")
    assert http.post(f"{GROUPS}/r/start{API}").status_code == 202
    running(http, "r")
    assert state(http, "s") == "Stopped"
    assert len(evictions(http, "s")) == 1
    error(http.post(f"{GROUPS}/s/start{API}"), 409, "ServiceUnavailable")


@on(cores=2)
def test_two_regular_groups_racing_for_one_spot_groups_cores(
        node: tuple[ControlPlane, InProcessClient]) -> None:
    """A Regular group holds one core, a Spot group the other; two Regular PUTs at once:
    exactly one is admitted (evicting the Spot group once), the other is refused."""
    _, http = node
    assert put(http, "base", body(1)).status_code == 201
    assert put(http, "s", spot(1)).status_code == 201
    running(http, "base", "s")
    answers: dict[str, httpx.Response] = {}
    barrier = threading.Barrier(2)

    def create(name: str) -> None:
        barrier.wait()
        answers[name] = put(http, name, body(1))

    threads = [threading.Thread(target=create, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    codes = sorted(answer.status_code for answer in answers.values())
    assert codes == [201, 409], {n: a.text for n, a in answers.items()}
    [winner] = [name for name, answer in answers.items() if answer.status_code == 201]
    running(http, winner)
    assert state(http, "s") == "Stopped"
    assert evictions(http, "s")[0]["count"] == 1


@on(quotas=QuotaSettings(spot_cores=1))
def test_spot_cores_are_a_quota_of_their_own(
        node: tuple[ControlPlane, InProcessClient]) -> None:
    """StandardSpotCores=1: a second Spot core is ACI's 400 ContainerGroupQuotaReached
    naming that quota; Regular cores are counted apart."""
    _, http = node
    assert put(http, "s1", spot(1)).status_code == 201
    message = error(put(http, "s2", spot(0.5)), 400, "ContainerGroupQuotaReached")
    assert "quota 'StandardSpotCores'" in message
    assert "Limit: '1', Usage: '1' Requested: '0.5'" in message
    assert put(http, "r", body(2)).status_code == 201
    assert usages(http)["StandardCores"] == (2, 100)
    assert usages(http)["StandardSpotCores"] == (1, 1)


def test_the_confidential_sku_is_refused_on_every_node(
        node: tuple[ControlPlane, InProcessClient]) -> None:
    """A Confidential group is refused with ACI's answer for a resource the location has
    not (409 ServiceUnavailable), naming why (no SEV-SNP utility VM), and so is a profile
    of that sku; Dedicated is admitted. A Spot group of the Confidential sku is ACI's own
    refusal."""
    _, http = node
    message = error(put(http, "c", body(0.5, sku="Confidential")), 409, "ServiceUnavailable")
    assert "is not available in the location" in message
    assert "SEV-SNP" in message
    assert "Standard or Dedicated" in message
    assert http.get(f"{GROUPS}/c{API}").status_code == 404
    profile = http.put(f"{PROFILES}/conf?api-version=2025-09-01",
                       json=body(0.5, sku="Confidential"))
    assert (profile.status_code, profile.json()["error"]["code"]) == (409, "ServiceUnavailable")
    assert put(http, "d", body(0.5, sku="Dedicated")).status_code == 201
    error(put(http, "cs", body(0.5, sku="Confidential", priority="Spot")), 400,
          "SpotPriorityContainerGroupNotSupportedInSku")


@on(cores=2)
def test_readmitting_asks_the_capacity_once_per_place_and_outside_the_write(
        node: tuple[ControlPlane, InProcessClient]) -> None:
    """readmit_evicted asks what a subscription's groups must fit in once per
    (subscription, location), before its write transaction (an engine's capacity may be a
    request to a cluster's API server, which must not hold the store's writers); an
    engine that cannot answer leaves the evicted groups evicted and raises nothing into
    the write."""
    from skiff.errors import ClusterError

    plane, http = node
    for name in ("s1", "s2"):
        assert put(http, name, spot(1)).status_code == 201
    running(http, "s1", "s2")
    assert put(http, "r", body(2)).status_code == 201
    running(http, "r")
    assert (state(http, "s1"), state(http, "s2")) == ("Stopped", "Stopped")
    store = plane.store
    asked: list[tuple[str, str, bool]] = []

    def unanswered(subscription: str, location: str) -> Any:
        asked.append((subscription, location, store._write_lock.locked()))
        raise ClusterError("the API server did not answer")

    with pytest.raises(ClusterError):
        store.readmit_evicted(unanswered)
    assert len(asked) == 1
    assert not asked[0][2]
    assert (state(http, "s1"), state(http, "s2")) == ("Stopped", "Stopped")
