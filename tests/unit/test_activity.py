"""The activity log and request ids, in process (the app over a real store and the
FakeEngine): what a write records and who may read it, az's ``$filter``, ``$select`` and
paging, a long-running operation's outcome, sign-ins, the store's bounds, request ids on
answers and in JSON logs, and ``skiff monitor activity-log list``."""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal
from click.testing import CliRunner
from fastapi import FastAPI

from skiff.api import activity as activity_api
from skiff.api.context import ControlPlane
from skiff.api.logs import RequestContext, configure, mask
from skiff.api.tracing import REQUEST_IDS, RequestIds, client_id
from skiff.cli.main import main
from skiff.cli.monitor import activity_filter
from skiff.client import SkiffClient
from skiff.errors import ArmError
from skiff.models.activity import (
    RequestFacts,
    iso,
    parse_filter,
    parse_select,
    request_events,
)
from skiff.store import Store, StoreSettings
from skiff.testing.inprocess import InProcessClient
from skiff.testing.waiting import eventually
from tests.unit import test_metrics_api
from tests.unit.test_api_routes import API, GROUPS, SUB, body, create
from tests.unit.test_cli_storage import PortalTransport

VALUES = f"/subscriptions/{SUB}/providers/microsoft.insights/eventtypes/management/values"
GROUP_ID = f"{GROUPS}/g"


# The in-process plane and API of the metrics tests, a token of SUB's in ``http``.
plane, portal, app, http = (test_metrics_api.plane, test_metrics_api.portal,
                            test_metrics_api.app, test_metrics_api.http)


def since(seconds: float = 600) -> str:
    """az's filter: the last ``seconds``, its times as az writes them (no zone)."""
    now = time.time()
    def naive(ts: float) -> str:
        return iso(ts).rstrip("Z")
    return f"eventTimestamp ge {naive(now - seconds)} and eventTimestamp le {naive(now + 5)}"


def events(http: InProcessClient, extra: str = "", **params: str) -> list[dict[str, Any]]:
    answer = http.get(VALUES, params={"api-version": "2015-04-01",
                                      "$filter": since() + extra, **params})
    assert answer.status_code == 200, answer.text
    value: list[dict[str, Any]] = answer.json()["value"]
    return value


def test_a_create_is_recorded_with_its_caller_ids_and_outcome(http: InProcessClient) -> None:
    """A PUT: BeginRequest Started, EndRequest Accepted (its LRO), then Succeeded when the
    operation ends; caller, action, resource, correlation id, client request id."""
    correlation, client = str(uuid.uuid4()), str(uuid.uuid4())
    answer = http.put(f"{GROUP_ID}{API}", json=body(), headers={
        "x-ms-correlation-request-id": correlation, "x-ms-client-request-id": client})
    assert answer.status_code == 201
    assert answer.headers["x-ms-correlation-request-id"] == correlation
    assert answer.headers["x-ms-client-request-id"] == client
    request_id = answer.headers["x-ms-request-id"]
    uuid.UUID(request_id)

    def three() -> list[dict[str, Any]] | None:
        found = events(http, f" and resourceId eq '{GROUP_ID.upper()}'")
        return found if len(found) == 3 else None

    recorded = eventually(three, what="the create's outcome is recorded")
    assert recorded is not None
    final, accepted, began = recorded
    assert [e["eventName"]["value"] for e in (began, accepted, final)] == [
        "BeginRequest", "EndRequest", "EndRequest"]
    assert [e["status"]["value"] for e in (began, accepted, final)] == [
        "Started", "Accepted", "Succeeded"]
    for event in (began, accepted, final):
        assert event["caller"] == "tests"
        assert event["operationName"]["value"] == \
            "Microsoft.ContainerInstance/containerGroups/write"
        assert event["authorization"] == {
            "action": "Microsoft.ContainerInstance/containerGroups/write", "scope": GROUP_ID}
        assert event["resourceId"] == GROUP_ID
        assert event["resourceGroupName"] == "rg"
        assert event["resourceType"]["value"] == "Microsoft.ContainerInstance/containerGroups"
        assert event["subscriptionId"] == SUB
        assert event["correlationId"] == correlation
        assert event["httpRequest"] == {"clientRequestId": client, "method": "PUT",
                                        "clientIpAddress": "127.0.0.1"}
        assert event["category"]["value"] == "Administrative"
        assert event["properties"]["serviceRequestId"] == request_id
    assert accepted["subStatus"]["value"] == "Created"
    assert len({e["operationId"] for e in (began, accepted, final)}) == 1
    assert accepted["operationId"] in answer.headers["Azure-AsyncOperation"]


def test_a_bad_client_id_is_replaced_never_echoed(http: InProcessClient) -> None:
    """A correlation id that is no GUID-like token gets a new one; a bad client request id
    is not echoed; every answer, a 404 too, carries the ids."""
    answer = http.get(f"/nowhere{API}", headers={
        "x-ms-correlation-request-id": "<script>" + "a" * 100,
        "x-ms-client-request-id": "x" * 65})
    assert answer.status_code == 404
    uuid.UUID(answer.headers["x-ms-correlation-request-id"])
    uuid.UUID(answer.headers["x-ms-request-id"])
    assert "x-ms-client-request-id" not in answer.headers
    assert client_id("8a7c1f0e-aaaa-bbbb-cccc-0123456789ab") is not None
    assert client_id("a b") is None


def test_a_failed_write_is_recorded_with_its_error(http: InProcessClient) -> None:
    """A PUT refused 400 ends Failed (level Error) with the error's code in the event; the
    client still gets the answer whole."""
    bad = body()
    bad["properties"]["containers"][0]["properties"]["resources"]["requests"]["cpu"] = -1
    answer = http.put(f"{GROUP_ID}{API}", json=bad)
    assert answer.status_code == 400
    code = answer.json()["error"]["code"]
    end = [e for e in events(http) if e["eventName"]["value"] == "EndRequest"]
    assert [e["status"]["value"] for e in end] == ["Failed"]
    assert end[0]["level"] == "Error"
    assert end[0]["subStatus"]["value"] == "BadRequest"
    assert json.loads(end[0]["properties"]["statusMessage"])["error"]["code"] == code


def test_reads_and_refused_requests_are_not_recorded(plane: ControlPlane, app: FastAPI,
                                                     portal: BlockingPortal,
                                                     http: InProcessClient) -> None:
    """A GET, a write without a token (401) and another tenant's write (403) leave no
    event: nothing was done, and no tenant writes into another's log."""
    http.get(f"{GROUPS}{API}")
    assert InProcessClient(portal, app, None).put(f"{GROUP_ID}{API}",
                                                  json=body()).status_code == 401
    _, other = plane.store.create_token("sub-2", "intruder")
    intruder = InProcessClient(portal, app, other)
    assert intruder.put(f"{GROUP_ID}{API}", json=body()).status_code == 403
    assert events(http) == []
    assert plane.store.count_events(SUB) == plane.store.count_events("sub-2") == 0


def test_a_tenant_reads_only_its_own_log(plane: ControlPlane, app: FastAPI,
                                         portal: BlockingPortal,
                                         http: InProcessClient) -> None:
    """Another subscription's token: 403 on this log; its own log is empty of this one's
    events."""
    create(http)
    _, other = plane.store.create_token("sub-2", "other")
    intruder = InProcessClient(portal, app, other)
    refused = intruder.get(VALUES, params={"api-version": "2015-04-01", "$filter": since()})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "AuthorizationFailed"
    own = intruder.get(VALUES.replace(SUB, "sub-2"),
                       params={"api-version": "2015-04-01", "$filter": since()})
    assert own.status_code == 200
    assert own.json()["value"] == []


def test_filters_select_and_pages(http: InProcessClient,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """resourceGroupName, resourceId (any case), caller, status; $select as az joins it;
    nextLink pages that together hold every event once, newest first."""
    create(http, "a")
    create(http, "b")
    assert http.put(f"/subscriptions/{SUB}/resourceGroups/other{API}",
                    json={"location": "local"}).status_code == 201
    everything = events(http)
    assert len(everything) == 2 * 3 + 2
    stamps = [e["eventTimestamp"] for e in everything]
    assert stamps == sorted(stamps, reverse=True)
    assert {e["resourceGroupName"] for e in events(http, " and resourceGroupName eq 'RG'")} \
        == {"rg"}
    assert len(events(http, f" and resourceUri eq '{GROUPS.lower()}/a'")) == 3
    assert len(events(http, " and status eq 'Succeeded'")) == 3
    assert len(events(http, " and caller eq 'tests' and resourceProvider eq "
                            "'Microsoft.Resources'")) == 2
    assert events(http, " and caller eq 'someone else'") == []
    picked = events(http, **{"$select": "caller , status"})
    assert all(set(e) == {"caller", "status"} for e in picked)

    monkeypatch.setattr(activity_api, "PAGE", 3)
    seen: list[str] = []
    url: str | None = VALUES
    params: dict[str, str] | None = {"api-version": "2015-04-01", "$filter": since()}
    while url:
        page = http.get(url, params=params).json()
        seen.extend(e["eventDataId"] for e in page["value"])
        url, params = page.get("nextLink"), None
    assert seen == [e["eventDataId"] for e in everything]


@pytest.mark.parametrize(("filter_", "why"), [
    (None, "required"),
    ("resourceGroupName eq 'rg'", "start time"),
    ("eventTimestamp ge yesterday", "not a date"),
    ("eventTimestamp ge 2026-01-01 or caller eq 'x'", "joined with 'and'"),
    ("eventTimestamp ge 2026-01-01 and resourceGroupName eq 'a' and correlationId eq 'b'",
     "cannot be combined"),
    ("eventTimestamp ge 2026-01-01 and level eq 'Error'", "not supported"),
])
def test_a_bad_filter_is_a_400_that_says_why(http: InProcessClient, filter_: str | None,
                                             why: str) -> None:
    """Only Azure's filter patterns are read; anything else is 400 BadRequest."""
    params = {"api-version": "2015-04-01"} | ({"$filter": filter_} if filter_ else {})
    answer = http.get(VALUES, params=params)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "BadRequest"
    assert why in answer.json()["error"]["message"]


def test_a_bad_skip_token_or_select_is_a_400(http: InProcessClient) -> None:
    """$skipToken is skiff's own marker; $select names only EventData's properties."""
    for extra, code in (({"$skipToken": "abc"}, "InvalidSkipToken"),
                        ({"$skipToken": "0x1p+0_" + "9" * 40}, "InvalidSkipToken"),
                        ({"$select": "caller,password"}, "BadRequest")):
        answer = http.get(VALUES, params={"api-version": "2015-04-01", "$filter": since(),
                                          **extra})
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == code


def test_filters_read_as_az_and_the_rest_reference_write_them() -> None:
    """az's unquoted zone-less times (UTC) and the reference's quoted ``Z`` times with 7
    fractional digits read the same."""
    az = parse_filter("eventTimestamp ge 2026-01-01T00:00:00.123456 and eventTimestamp le "
                      "2026-01-02T00:00:00 and resourceId eq '/SUBSCRIPTIONS/S/x/'", 0)
    rest = parse_filter("eventTimestamp ge '2026-01-01T00:00:00.1234567Z' and eventTimestamp "
                        "le '2026-01-02T00:00:00Z' and resourceUri eq '/subscriptions/s/X'", 0)
    assert az.start == pytest.approx(rest.start, abs=1e-3)
    assert az.end == rest.end
    assert az.resource_id == rest.resource_id == "/subscriptions/s/x"
    assert parse_filter("eventTimestamp ge 2026-01-01", 1e10).end == 1e10
    assert parse_select(None) is None
    assert parse_select("Caller,eventtimestamp") == ("caller", "eventTimestamp")
    with pytest.raises(ArmError):
        parse_filter("eventTimestamp ge 2026-01-02 and eventTimestamp le 2026-01-01", 0)


def test_a_reader_of_a_resource_group_sees_its_events_only(
        plane: ControlPlane, app: FastAPI, portal: BlockingPortal,
        http: InProcessClient) -> None:
    """A Reader of one resource group reads the subscription's log filtered to it."""
    create(http)
    assert http.put(f"/subscriptions/{SUB}/resourceGroups/other{API}",
                    json={"location": "local"}).status_code == 201
    principal, _ = plane.store.create_principal("reader")
    plane.store.put_assignment(str(uuid.uuid4()), f"/subscriptions/{SUB}/resourceGroups/rg",
                               "acdd72a7-3d97-46b9-8ea0-e9b62cb98f8c", principal.object_id,
                               "ServicePrincipal")
    token, _ = plane.issuer.issue(oid=principal.object_id, appid=principal.app_id,
                                  aud="https://management.azure.com", iss="skiff",
                                  name="reader")
    reader = InProcessClient(portal, app, token)
    seen = events(reader)
    assert len(seen) == 3
    assert {e["resourceGroupName"] for e in seen} == {"rg"}


def test_a_delete_and_a_restart_are_recorded(http: InProcessClient) -> None:
    """DELETE and a POST action are writes too, each with its ARM action."""
    create(http)
    assert http.post(f"{GROUP_ID}/restart{API}").status_code == 204
    assert http.delete(f"{GROUP_ID}{API}").status_code in (200, 202)
    names = {e["operationName"]["value"] for e in events(http)}
    assert {"Microsoft.ContainerInstance/containerGroups/restart/action",
            "Microsoft.ContainerInstance/containerGroups/delete"} <= names


def test_sign_ins_are_the_tenants_events_for_the_admin_only(
        plane: ControlPlane, app: FastAPI, portal: BlockingPortal,
        http: InProcessClient, tmp_path: Path) -> None:
    """A sign-in, issued and refused, is in the tenant's log with the client id, never the
    secret; only the admin token reads that log."""
    _, admin_secret = plane.store.create_token(None, "admin")
    admin = InProcessClient(portal, app, admin_secret)
    made = admin.post("/skiff/servicePrincipals", json={"displayName": "ci"}).json()
    anonymous = InProcessClient(portal, app, None)
    tenant = made["tenant"]
    for secret in (made["password"], "wrong-secret-value"):
        anonymous.post(f"/{tenant}/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": made["appId"],
            "client_secret": secret, "scope": "https://management.azure.com/.default"})
    tenant_values = "/providers/Microsoft.Insights/eventtypes/management/values"
    answer = admin.get(tenant_values, params={"api-version": "2015-04-01",
                                              "$filter": since()})
    assert answer.status_code == 200
    sign_ins = [e for e in answer.json()["value"]
                if e["operationName"]["value"] == "Microsoft.Authorization/signIns/action"]
    assert [e["status"]["value"] for e in sign_ins] == ["Failed", "Succeeded"]
    assert {e["caller"] for e in sign_ins} == {made["appId"]}
    assert any(e["operationName"]["value"] == "Microsoft.Skiff/servicePrincipals/write"
               for e in answer.json()["value"])
    assert http.get(tenant_values, params={"api-version": "2015-04-01",
                                           "$filter": since()}).status_code == 403
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("skiff.db*"))
    assert made["password"].encode() not in raw
    assert b"wrong-secret-value" not in raw


def facts(at: float, lro: str | None = None) -> RequestFacts:
    return RequestFacts(caller="c", object_id="o", tenant_id="t",
                        action="Microsoft.ContainerInstance/containerGroups/write",
                        scope="/subscriptions/s/resourceGroups/rg/providers/"
                              "Microsoft.ContainerInstance/containerGroups/g",
                        method="PUT", status_code=201, request_id="r", correlation_id="x",
                        client_request_id="", client_ip="::1", began=at, ended=at,
                        lro_id=lro)


@pytest.mark.parametrize("operation_ends_first", [True, False])
def test_an_operations_outcome_is_recorded_once_whoever_comes_first(
        tmp_path: Path, operation_ends_first: bool) -> None:
    """The operation may end before or after its write is recorded: one outcome event
    either way, with the operation's error."""
    with Store(tmp_path / "s.db") as store:
        op = store.create_operation("s", "local", "/subscriptions/s/x", "create")
        error = {"code": "Boom", "message": "it failed"}
        if operation_ends_first:
            store.finish_operation(op.id, "Failed", error)
        store.record_events("s", request_events(facts(time.time(), op.id)), op.id)
        if not operation_ends_first:
            store.finish_operation(op.id, "Failed", error)
        query = parse_filter(f"eventTimestamp ge '{iso(time.time() - 60)}'", time.time() + 5)
        found, _ = store.list_events("s", query)
    assert [e["status"]["value"] for e in found] == ["Failed", "Accepted", "Started"]
    assert json.loads(found[0]["properties"]["statusMessage"])["error"] == error
    assert found[0]["operationId"] == op.id


def test_the_log_is_bounded_by_age_and_by_count(tmp_path: Path) -> None:
    """Events older than the retention go; a subscription keeps at most its cap (checked
    every few rows), another subscription's events untouched."""
    now = [time.time()]
    settings = StoreSettings(activity_retention_s=3600, activity_max_events=50)
    with Store(tmp_path / "s.db", settings=settings, clock=lambda: now[0]) as store:
        store.record_events("other", request_events(facts(now[0] - 1800)))
        for _ in range(100):
            store.record_events("s", request_events(facts(now[0])))
        assert 50 <= store.count_events("s") < 50 + 64
        assert store.count_events("other") == 2
        now[0] += 1800 + 1
        for _ in range(40):
            store.record_events("s", request_events(facts(now[0])))
        assert store.count_events("other") == 0


def test_json_logs_carry_the_request_ids_and_no_token() -> None:
    """--log-format json: one JSON object a line, with the request's ids; a bearer token
    or JWT in a message is masked."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    installed = configure("json", verbose=True)
    handler.setFormatter(installed.formatter)
    handler.addFilter(RequestContext())
    logger = logging.getLogger("skiff.test.activity")
    logger.addHandler(handler)
    reset = REQUEST_IDS.set(RequestIds("req-1", "corr-1"))
    try:
        logger.warning("called with Bearer abc.def and eyJhbGciOi.eyJzdWIiOi.c2ln")
    finally:
        REQUEST_IDS.reset(reset)
        logger.removeHandler(handler)
        logging.getLogger().handlers.clear()
    line = json.loads(stream.getvalue().splitlines()[0])
    assert line["request_id"] == "req-1"
    assert line["correlation_id"] == "corr-1"
    assert line["level"] == "WARNING"
    assert "abc.def" not in line["message"]
    assert "eyJ" not in line["message"]
    assert mask("skf_0123abc") == "***"


def test_skiff_monitor_activity_log_list(plane: ControlPlane, app: FastAPI,
                                         portal: BlockingPortal,
                                         http: InProcessClient) -> None:
    """The CLI sends az's filter and prints the events, newest first, --max-events many."""
    create(http)
    _, secret = plane.store.create_token(SUB, "cli")

    def client() -> SkiffClient:
        return SkiffClient("https://skiff.test", secret, subscription=SUB,
                           transport=PortalTransport(portal, app))

    result = CliRunner().invoke(main, ["monitor", "activity-log", "list", "-g", "rg",
                                       "--max-events", "2", "--select", "caller", "status"],
                                obj=client, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed == [{"caller": "tests", "status": {"value": "Succeeded",
                                                       "localizedValue": "Succeeded"}},
                       {"caller": "tests", "status": {"value": "Accepted",
                                                       "localizedValue": "Accepted"}}]
    text = activity_filter(start=None, end=None, offset=timedelta(hours=1),
                           correlation_id=None, resource_group="rg", resource_id="/x",
                           namespace=None, caller="me", status=None)
    assert text.endswith("and resourceGroupName eq 'rg' and caller eq 'me'")
