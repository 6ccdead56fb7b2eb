"""Usage metering and its cost: the store's spans, the meter beside the reconcile loop (a
real store, the fake engine, a clock moved by hand), the cost query's parsing and pricing,
the Microsoft.CostManagement/query routes and ``skiff usage show``, in process."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal
from click.testing import CliRunner
from fastapi import FastAPI

from skiff.api.context import ControlPlane
from skiff.cli.main import main
from skiff.client import SkiffClient
from skiff.control.metering import Meter
from skiff.control.pricing import cost_rows, price_sheet
from skiff.control.reconciler import Reconciler
from skiff.errors import ArmError
from skiff.models.costs import CostQuery, parse_query, period
from skiff.settings import PriceSheet
from skiff.store import Store
from skiff.store.usage import Requests, requests_of
from skiff.testing.fake import FakeEngine
from skiff.testing.inprocess import BASE, InProcessClient
from tests.unit import test_metrics_api
from tests.unit.test_api_routes import GROUPS, RG, SUB, create
from tests.unit.test_cli_storage import PortalTransport
from tests.unit.test_control_converge import Clock, current, desire, put

# The in-process plane and API of the metrics tests, a token of SUB's in ``http``.
plane, portal, app, http = (test_metrics_api.plane, test_metrics_api.portal,
                            test_metrics_api.app, test_metrics_api.http)

T0 = 1_700_000_000.0  # the converge tests' clock: 2023-11-14T22:13:20Z
COSTS = "providers/Microsoft.CostManagement/query?api-version=2023-03-01"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    with Store(tmp_path / "skiff.db", clock=clock) as s:
        yield s


@pytest.fixture
def engine(clock: Clock) -> FakeEngine:
    return FakeEngine(clock=clock)


@pytest.fixture
def meter(store: Store, engine: FakeEngine, clock: Clock) -> Meter:
    return Meter(store, engine, interval_s=0, clock=clock)


@pytest.fixture
def reconciler(store: Store, engine: FakeEngine, meter: Meter) -> Reconciler:
    return Reconciler(store, engine, meter=meter)  # not started: converged by hand


def billed(store: Store, now: float) -> float:
    """Seconds billed of every span, all time."""
    return sum(s.seconds(0, 1e12, now) for s in store.spans_between(SUB, 0, 1e12))


def test_requests_are_summed_over_the_containers() -> None:
    """A group's requests are its containers' sums (GPUs by count)."""
    body = {"properties": {"containers": [
        {"properties": {"resources": {"requests": {"cpu": 0.5, "memoryInGB": 1.5}}}},
        {"properties": {"resources": {"requests": {"cpu": 1, "memoryInGB": 0.25,
                                                   "gpu": {"count": 1, "sku": "V100"}}}}}]}}
    assert requests_of(body) == Requests(1.5, 1.75, 1)


def test_a_running_group_is_billed_from_its_deployment_to_its_stop(
        store: Store, reconciler: Reconciler, meter: Meter, clock: Clock) -> None:
    """Deployed at T0, running 10 s (the meter's rounds advance last_seen), stopped: a
    closed span of exactly 10 s; 20 s stopped accrue nothing; started again for 5 s and
    deleted: 15 s in all, the second span ending at the delete."""
    record = put(store)
    reconciler.converge(record.uid)
    [span] = store.open_spans()
    assert (span.started_at, span.requests) == (T0, Requests(0.5, 0.5))
    clock.advance(5)
    meter.tick()
    assert store.open_spans()[0].last_seen == T0 + 5
    clock.advance(5)
    desire(store, "stopped", "stop")
    reconciler.converge(record.uid)
    assert store.open_spans() == []
    assert billed(store, clock.now) == 10
    clock.advance(20)
    meter.tick()
    assert billed(store, clock.now) == 10
    desire(store, "running", "start")
    reconciler.converge(record.uid)
    clock.advance(5)
    desire(store, "deleted", "delete")
    reconciler.converge(record.uid)
    assert billed(store, clock.now) == 15
    assert [s.ended_at for s in store.spans_between(SUB, 0, 1e12)] == [T0 + 10, T0 + 35]


def test_a_group_that_ends_by_itself_is_billed_until_its_last_container_ends(
        store: Store, reconciler: Reconciler, meter: Meter, clock: Clock) -> None:
    """``sleep 3; exit 0`` under Never: the meter's round after it ended closes the span
    at the container's end (3 s), not at the round's time."""
    record = put(store, "sleep 3; exit 0", restartPolicy="Never")
    reconciler.converge(record.uid)
    clock.advance(10)
    meter.tick()
    assert store.open_spans() == []
    assert billed(store, clock.now) == 3


def test_a_group_the_engine_fails_on_its_own_is_billed_until_the_round_that_sees_it(
        store: Store, reconciler: Reconciler, meter: Meter, clock: Clock) -> None:
    """An init container that fails under Never fails the group as a whole, with no end
    time the engine tells: the meter's next round closes the span, so a Failed group
    accrues nothing after it (at most the meter's period late)."""
    init = [{"name": "i", "properties": {"image": "registry.test/busybox:1",
                                         "command": ["sh", "-c", "sleep 2; exit 1"]}}]
    record = put(store, restartPolicy="Never", initContainers=init)
    reconciler.converge(record.uid)
    clock.advance(3)
    meter.tick()
    assert store.open_spans() == []
    clock.advance(100)
    assert billed(store, clock.now) == 3


def test_a_failed_deployment_is_billed_until_it_failed(
        store: Store, engine: FakeEngine, reconciler: Reconciler, clock: Clock) -> None:
    """A pull that fails ends the span at once: a zero-length span, nothing billed."""
    from skiff.errors import ImageNotFound

    engine.fail("run", ImageNotFound("registry.test/busybox:1"))
    record = put(store)
    reconciler.converge(record.uid)
    assert current(store, record.uid).provisioning_state == "Failed"
    assert store.open_spans() == []
    assert billed(store, clock.now + 100) == 0


def test_a_restarted_server_goes_on_with_a_group_that_kept_running(
        store: Store, engine: FakeEngine, clock: Clock) -> None:
    """A new process (a new meter and loop over the same store and engine) adopts a
    group whose containers kept running: its span goes on, so the time the server was
    down is billed (it ran), and nothing twice."""
    first = Reconciler(store, engine, meter=Meter(store, engine, interval_s=0, clock=clock))
    record = put(store)
    first.converge(record.uid)
    clock.advance(4)
    assert first.meter is not None
    first.meter.tick()
    clock.advance(30)  # SIGKILL, 30 s down, containers under conmon
    meter = Meter(store, engine, interval_s=0, clock=clock)
    meter.tick()  # the engine knows it, this process has not run it yet: left as it is
    assert store.open_spans()[0].last_seen == T0 + 4
    Reconciler(store, engine, meter=meter).converge(record.uid)
    assert len(store.spans_between(SUB, 0, 1e12)) == 1
    assert billed(store, clock.now) == 34


def test_a_group_that_did_not_survive_the_crash_loses_at_most_the_meter_period(
        store: Store, clock: Clock) -> None:
    """After a reboot (a new engine: the containers were gone and start again), the old
    span ends at its last_seen and a new one begins: the seconds between the last round
    and the crash are lost (the crash window), the downtime is not billed."""
    engine = FakeEngine(clock=clock)
    first = Reconciler(store, engine, meter=Meter(store, engine, interval_s=0, clock=clock))
    record = put(store)
    first.converge(record.uid)
    clock.advance(5)
    assert first.meter is not None
    first.meter.tick()
    clock.advance(3)  # the crash: 3 s after the last round
    clock.advance(60)  # the reboot
    rebooted = FakeEngine(clock=clock)
    Reconciler(store, rebooted, meter=Meter(store, rebooted, interval_s=0,
                                            clock=clock)).converge(record.uid)
    spans = store.spans_between(SUB, 0, 1e12)
    assert [(s.started_at, s.ended_at) for s in spans] == [(T0, T0 + 5), (T0 + 68, None)]
    clock.advance(2)
    assert billed(store, clock.now) == 7


def test_a_put_that_changes_the_requests_starts_a_new_span(
        store: Store, reconciler: Reconciler, clock: Clock) -> None:
    """Requests are copied into the span: a redeployment with more CPU bills the new
    requests from its deployment on, the old ones before."""
    record = put(store)
    reconciler.converge(record.uid)
    clock.advance(10)
    doc = {"location": "local", "properties": {"osType": "Linux", "containers": [
        {"name": "c", "properties": {"image": "registry.test/busybox:1",
                                     "command": ["sh", "-c", "sleep 300"],
                                     "resources": {"requests": {"cpu": 2,
                                                                "memoryInGB": 1}}}}]}}
    from skiff.models import parse_container_group

    stored = parse_container_group(doc, name="g", default_location="local",
                                   known_locations=["local"]).to_stored()
    again, _ = store.put_group(SUB, "rg", "g", "local", stored, {})
    reconciler.converge(again.uid)
    clock.advance(10)
    spans = store.spans_between(SUB, 0, 1e12)
    assert [(s.requests.cpu, s.seconds(0, 1e12, clock.now)) for s in spans] == [
        (0.5, 10), (2.0, 10)]


# ---- the query ---------------------------------------------------------------------------


def query(**dataset: Any) -> dict[str, Any]:
    return {"type": "Usage", "timeframe": "Custom",
            "timePeriod": {"from": "2023-11-14", "to": "2023-11-15"},
            "dataset": {"granularity": "None", **dataset}}


@pytest.mark.parametrize(("body", "fragment"), [
    ([], "JSON object"),
    ({"type": "Bill", "timeframe": "MonthToDate"}, "Invalid type"),
    ({"type": "Usage", "timeframe": "Yesterday"}, "Invalid timeframe"),
    ({"type": "Usage", "timeframe": "Custom"}, "timePeriod"),
    (query() | {"timePeriod": {"from": "2023-11-15", "to": "2023-11-01"}}, "before"),
    (query() | {"timePeriod": {"from": "2020-01-01", "to": "2023-11-01"}}, "366 days"),
    (query() | {"timePeriod": {"from": "soon", "to": "2023-11-01"}}, "not a valid"),
    (query(granularity="Hourly"), "Invalid granularity"),
    (query(aggregation={"x": {"name": "PreTaxCost", "function": "Avg"}}), "function"),
    (query(aggregation={"x": {"name": "Tax", "function": "Sum"}}), "aggregation name"),
    (query(grouping=[{"type": "Dimension", "name": "Tenant"}]), "grouping dimension"),
    (query(grouping=[{"type": "TagKey", "name": "x"}]), "grouping type"),
    (query(filter={"dimensions": {"name": "ResourceGroup"}}), "filter is not supported"),
    (query(configuration={"columns": ["x"]}), "configuration is not supported"),
])
def test_a_bad_query_is_a_400_naming_what_is_wrong(body: Any, fragment: str) -> None:
    """What Cost Management refuses is an ARM 400 BadRequest saying why."""
    with pytest.raises(ArmError) as caught:
        parse_query(body, T0)
    assert (caught.value.status, caught.value.code) == (400, "BadRequest")
    assert fragment in str(caught.value), str(caught.value)


def test_timeframes_are_utc_days() -> None:
    """MonthToDate: the 1st to the end of today; TheLastMonth: the month before; Custom:
    a date alone includes its whole day."""
    day = 86400.0

    def iso(ts: float) -> str:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")

    start, end = period("MonthToDate", T0)
    assert (iso(start), iso(end)) == ("2023-11-01", "2023-11-15")
    start, end = period("TheLastMonth", T0)
    assert (iso(start), iso(end)) == ("2023-10-01", "2023-11-01")
    start, end = period("WeekToDate", T0)  # a Tuesday: the week began on Sunday the 12th
    assert (iso(start), iso(end)) == ("2023-11-12", "2023-11-15")
    start, end = period("Custom", T0, {"from": "2023-11-14", "to": "2023-11-14"})
    assert end - start == day


def test_costs_are_priced_per_meter_cut_by_day_and_grouped(store: Store,
                                                           clock: Clock) -> None:
    """A 1-vCPU 2-GB group running across midnight for 2 h: two daily rows per meter, its
    quantities in vCPU-s and GB-s, its cost at the sheet's prices, ids in lower case."""
    from skiff.store.records import GroupRecord

    midnight = datetime(2023, 11, 15, tzinfo=UTC).timestamp()
    body = {"properties": {"containers": [{"properties": {"resources": {"requests": {
        "cpu": 1, "memoryInGB": 2}}}}]}}
    record = GroupRecord("u1", SUB, "RG", "Web", "local", body, {}, "Succeeded", "running",
                         1, None, 0, 0)
    store.open_span(record, midnight - 3600)
    store.close_span("u1", midnight + 3600)
    prices = PriceSheet(vcpu_second=0.001, gb_second=0.0001)
    parsed = parse_query({"type": "Usage", "timeframe": "Custom", "timePeriod": {
        "from": "2023-11-14", "to": "2023-11-15"}, "dataset": {
        "granularity": "Daily",
        "aggregation": {"c": {"name": "PreTaxCost", "function": "Sum"},
                        "q": {"name": "UsageQuantity", "function": "Sum"}},
        "grouping": [{"type": "Dimension", "name": "ResourceId"},
                     {"type": "Dimension", "name": "Meter"}]}}, T0)
    rows = cost_rows(parsed, store.spans_between(SUB, parsed.start, parsed.end), prices,
                     midnight + 7200)
    rid = f"/subscriptions/{SUB}/resourcegroups/rg/providers/microsoft.containerinstance/" \
          "containergroups/web"
    assert rows == [
        [0.72, 7200.0, 20231114, rid, "Memory Duration", "USD"],
        [3.6, 3600.0, 20231114, rid, "vCPU Duration", "USD"],
        [0.72, 7200.0, 20231115, rid, "Memory Duration", "USD"],
        [3.6, 3600.0, 20231115, rid, "vCPU Duration", "USD"],
    ]
    whole = CostQuery(parsed.start, parsed.end, "None", ("PreTaxCost",), ("ResourceGroup",))
    assert cost_rows(whole, store.spans_between(SUB, 0, 1e12), prices, 0) == [
        [8.64, "rg", "USD"]]


def test_a_gpu_group_is_metered_in_gpu_seconds(store: Store, clock: Clock) -> None:
    """A group of two containers with 2 and 1 H100s running 100 s: 300 GPU-seconds on the
    GPU Duration meter, at the sheet's gpuSecond price."""
    from skiff.store.records import GroupRecord

    def container(gpus: int) -> dict[str, Any]:
        return {"properties": {"resources": {"requests": {
            "cpu": 1, "memoryInGB": 1, "gpu": {"count": gpus, "sku": "H100"}}}}}

    body = {"properties": {"containers": [container(2), container(1)]}}
    record = GroupRecord("u1", SUB, "RG", "Gpu", "local", body, {}, "Succeeded", "running",
                         1, None, 0, 0)
    store.open_span(record, T0)
    store.close_span("u1", T0 + 100)
    [span] = store.spans_between(SUB, 0, 1e12)
    assert span.requests == Requests(2.0, 2.0, 3)
    parsed = parse_query({"type": "Usage", "timeframe": "Custom", "timePeriod": {
        "from": "2023-11-14", "to": "2023-11-14"}, "dataset": {
        "granularity": "None",
        "aggregation": {"q": {"name": "UsageQuantity", "function": "Sum"}},
        "grouping": [{"type": "Dimension", "name": "Meter"}]}}, T0)
    rows = cost_rows(parsed, store.spans_between(SUB, parsed.start, parsed.end),
                     PriceSheet(gpu_second=0.01), T0 + 100)
    assert ["GPU Duration"] in [row[1:2] for row in rows], rows
    gpu = next(row for row in rows if row[1] == "GPU Duration")
    assert gpu[0] == 300.0


def test_a_spot_group_s_usage_is_priced_at_the_spot_prices(store: Store,
                                                          clock: Clock) -> None:
    """A Spot group and a Regular one of the same requests, for the same hour: the same
    quantities under the same meters, the Spot group's at the sheet's Spot prices (by
    default 70% off the regular ones, as ACI documents Spot containers)."""
    from dataclasses import replace

    from skiff.store.records import GroupRecord

    body = {"properties": {"containers": [{"properties": {"resources": {"requests": {
        "cpu": 1, "memoryInGB": 2}}}}]}}
    regular = GroupRecord("u1", SUB, "rg", "regular", "local", body, {}, "Succeeded",
                          "running", 1, None, 0, 0)
    for record in (regular, replace(regular, uid="u2", name="spot", spot=True)):
        store.open_span(record, T0)
        store.close_span(record.uid, T0 + 3600)
    query = CostQuery(T0 - 1, T0 + 7200, "None", ("PreTaxCost", "UsageQuantity"),
                      ("ResourceId", "Meter"))
    prices = PriceSheet(vcpu_second=0.001, gb_second=0.0001, spot_vcpu_second=0.0002,
                        spot_gb_second=0.00003)
    rows = cost_rows(query, store.spans_between(SUB, 0, 1e12), prices, T0 + 7200)
    ids = [f"/subscriptions/{SUB}/resourcegroups/rg/providers/microsoft.containerinstance/"
           f"containergroups/{name}" for name in ("regular", "spot")]
    assert rows == [
        [0.72, 7200.0, ids[0], "Memory Duration", "USD"],
        [3.6, 3600.0, ids[0], "vCPU Duration", "USD"],
        [0.216, 7200.0, ids[1], "Memory Duration", "USD"],
        [0.72, 3600.0, ids[1], "vCPU Duration", "USD"],
    ]
    sheet = PriceSheet()
    assert sheet.spot_vcpu_second == pytest.approx(sheet.vcpu_second * 0.3)
    assert sheet.spot_gb_second == pytest.approx(sheet.gb_second * 0.3)
    assert price_sheet({"spotVcpuSecond": 0.5}).spot_vcpu_second == 0.5


# ---- the routes and the CLI ----------------------------------------------------------------


def test_the_cost_query_answers_as_cost_management(http: InProcessClient,
                                                   plane: ControlPlane) -> None:
    """A running group's cost, at the subscription and at its resource group, in
    Cost Management's columns and rows; another resource group's query is empty; the
    paths' words in any case reach the route; a bad body is a 400."""
    create(http, "g")
    [span] = plane.store.open_spans()
    body = {"type": "ActualCost", "timeframe": "MonthToDate", "dataset": {
        "granularity": "Daily", "aggregation": {
            "totalCost": {"name": "Cost", "function": "Sum"}},
        "grouping": [{"type": "Dimension", "name": "ResourceGroupName"}]}}
    answer = http.post(f"/subscriptions/{SUB}/{COSTS}", json=body)
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["type"] == "Microsoft.CostManagement/query"
    assert [c["name"] for c in doc["properties"]["columns"]] == [
        "Cost", "UsageDate", "ResourceGroupName", "Currency"]
    [row] = doc["properties"]["rows"]
    assert row[0] > 0
    assert row[2:] == ["rg", "USD"]
    assert row[1] == int(datetime.fromtimestamp(plane.store.now(), UTC).strftime("%Y%m%d"))
    at_rg = http.post(f"{RG}/{COSTS}".replace("resourceGroups", "resourcegroups").replace(
        "Microsoft.CostManagement", "microsoft.costmanagement"), json=body)
    assert at_rg.status_code == 200, at_rg.text
    assert len(at_rg.json()["properties"]["rows"]) == 1
    other = http.post(f"/subscriptions/{SUB}/resourceGroups/other/{COSTS}", json=body)
    assert other.json()["properties"]["rows"] == []
    bad = http.post(f"/subscriptions/{SUB}/{COSTS}", json={"type": "Usage"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "BadRequest"
    assert span.group_uid == plane.store.get_group(SUB, "rg", "g").uid  # type: ignore[union-attr]


def test_skiff_usage_show_prints_each_groups_seconds_and_cost(
        plane: ControlPlane, app: FastAPI, portal: BlockingPortal,
        http: InProcessClient) -> None:
    """``skiff usage show``: a table, JSON and CSV of each group's vCPU-seconds,
    GB-seconds and cost; ``-g`` narrows to a resource group; a bad date is a usage error."""
    create(http, "g")
    record = plane.store.get_group(SUB, "rg", "g")
    assert record is not None
    plane.store.close_span(record.uid, plane.store.open_spans()[0].started_at + 10)
    _, secret = plane.store.create_token(SUB, "cli")
    transport = PortalTransport(portal, app)

    def factory() -> SkiffClient:
        return SkiffClient(BASE, secret, subscription=SUB, transport=transport)

    def run(*args: str) -> str:
        result = CliRunner().invoke(main, ["usage", "show", *args], obj=factory)
        assert result.exit_code == 0, result.output
        return result.output

    [line] = json.loads(run("-o", "json"))
    assert (line["ResourceGroup"], line["Name"]) == ("rg", "g")
    assert (line["vCPUSeconds"], line["GBSeconds"]) == (5.0, 5.0)  # 0.5 vCPU, 0.5 GB, 10 s
    prices = PriceSheet()
    assert line["Cost"] == pytest.approx(5 * prices.vcpu_second + 5 * prices.gb_second,
                                         abs=1e-6)
    [row] = list(csv.DictReader(io.StringIO(run("-g", "rg", "-o", "csv"))))
    assert (row["Name"], row["vCPUSeconds"]) == ("g", "5.0")
    table = run("--granularity", "daily")
    assert "vCPUSeconds" in table.splitlines()[0]
    assert "Date" in table
    assert json.loads(run("-g", "other", "-o", "json")) == []
    bad = CliRunner().invoke(main, ["usage", "show", "--start", "soon"], obj=factory)
    assert bad.exit_code == 2
    assert "--start" in bad.output


def test_skiff_usage_show_help_says_how_usage_is_metered() -> None:
    """``skiff usage show --help`` names its options and the output formats."""
    result = CliRunner().invoke(main, ["usage", "show", "--help"])
    assert result.exit_code == 0
    for word in ("--resource-group", "--start", "--end", "--granularity", "csv"):
        assert word in result.output
    assert GROUPS  # the routes' module is shared with the API tests


def test_serve_takes_a_price_sheet_and_a_meter_interval(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    """``skiff serve --prices FILE --meter-interval 2`` reaches UsageSettings (a key left
    out keeps its default); a sheet with an unknown key or a price that is no number is a
    usage error naming --prices."""
    import skiff.server
    from skiff.settings import Settings

    started: list[Settings] = []
    monkeypatch.setattr(skiff.server, "serve", started.append)
    sheet = tmp_path / "prices.json"
    sheet.write_text(json.dumps({"currency": "EUR", "vcpuSecond": 0.00001}))
    result = CliRunner().invoke(main, ["serve", "--prices", str(sheet),
                                       "--meter-interval", "2"])
    assert result.exit_code == 0, result.output
    usage = started[0].usage
    assert (usage.interval_s, usage.prices.currency, usage.prices.vcpu_second) == (
        2.0, "EUR", 0.00001)
    assert usage.prices.gb_second == PriceSheet().gb_second
    sheets: list[object] = [{"vcpuSecond": "free"}, {"cost": 1}, {"gbSecond": -1}, []]
    for bad in sheets:
        sheet.write_text(json.dumps(bad))
        refused = CliRunner().invoke(main, ["serve", "--prices", str(sheet)])
        assert refused.exit_code == 2, bad
        assert "--prices" in refused.output
    assert len(started) == 1
