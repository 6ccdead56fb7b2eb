"""The activity log's shapes: Azure Monitor's ``EventData``, and the queries az sends.

Every write to the API (PUT, PATCH, DELETE, a POST action) and every sign-in is
an event of Azure's activity log (``Microsoft.Insights/eventtypes/management/
values``, api-version 2015-04-01). This module is pure: it builds an event's
body from what the API saw (:func:`request_events`, :func:`outcome_event` for a
long-running operation's end), and reads the ``$filter`` and ``$select`` a
client sends. The filter is as restricted as Azure's: ``eventTimestamp ge T``
(required) ``and eventTimestamp le T``, and at most one of ``resourceGroupName``,
``resourceUri``/``resourceId``, ``resourceProvider`` and ``correlationId``
``eq '...'``, with ``caller`` and ``status`` ``eq`` too (az's ``--caller`` and
``--status``). Times come as az writes them (``2026-01-01T00:00:00.123456``, no
zone: UTC) or as the REST reference does (quoted, with ``Z``).

An event names only what the request named and who sent it: never a body, a
header's value other than the request ids, nor a token.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from skiff.errors import ArmError

#: Azure keeps the activity log 90 days; so does skiff (:mod:`skiff.store.activity`).
RETENTION_S = 90 * 86400.0
#: The ``$select`` names az offers (``--select``), as the REST reference lists them.
SELECTABLE = ("authorization", "caller", "category", "claims", "correlationId", "description",
              "eventDataId", "eventName", "eventTimestamp", "httpRequest", "id", "level",
              "operationId", "operationName", "properties", "resourceGroupName",
              "resourceId", "resourceProviderName", "resourceType", "status", "subStatus",
              "submissionTimestamp", "subscriptionId", "tenantId")
_SELECTABLE = {name.lower(): name for name in SELECTABLE}
#: A filter's values (names, ids, times) are short; a longer filter is refused unread.
MAX_FILTER = 2048


def _localized(value: str, localized: str | None = None) -> dict[str, str]:
    return {"value": value, "localizedValue": localized if localized is not None else value}


def iso(ts: float) -> str:
    """A timestamp as Azure's events write it: UTC, microseconds, ``Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Target:
    """What an event is about, read from the ARM id of the resource a request named."""

    resource_id: str
    subscription: str
    resource_group: str
    provider: str
    type: str


def target_of(resource_id: str) -> Target:
    """The subscription, resource group, provider and type an ARM id names
    (``/subscriptions/s/resourceGroups/rg``: Microsoft.Resources' resource group)."""
    parts = [p for p in resource_id.split("/") if p]
    lowered = [p.lower() for p in parts]
    sub = parts[1] if len(parts) > 1 and lowered[0] == "subscriptions" else ""
    rg = parts[3] if len(parts) > 3 and lowered[2] == "resourcegroups" else ""
    if "providers" in lowered:
        at = lowered.index("providers")
        provider = parts[at + 1] if len(parts) > at + 1 else ""
        types = parts[at + 2::2]
        kind = "/".join([provider, *types]) if types else provider
    elif rg:
        provider, kind = "Microsoft.Resources", "Microsoft.Resources/subscriptions/resourceGroups"
    elif sub:
        provider, kind = "Microsoft.Resources", "Microsoft.Resources/subscriptions"
    else:
        provider = kind = ""
    return Target(resource_id, sub, rg, provider, kind)


@dataclass(frozen=True)
class RequestFacts:
    """What the API saw of one write: who, what, where, and how it was answered."""

    caller: str
    object_id: str
    tenant_id: str
    action: str
    scope: str
    method: str
    status_code: int
    #: ``x-ms-request-id`` (skiff's), ``x-ms-correlation-request-id`` and the client's
    #: ``x-ms-client-request-id`` ('' if it sent none).
    request_id: str
    correlation_id: str
    client_request_id: str
    client_ip: str
    began: float
    ended: float
    #: The long-running operation the answer points at (its Azure-AsyncOperation), if any.
    lro_id: str | None = None
    #: An error answer's ARM code and message (secret-free by the API's rules).
    error: dict[str, Any] | None = None
    #: Why the write was made, for skiff's own work (:mod:`skiff.control.servicelog`).
    description: str = ""


def _status_of(code: int, lro: bool) -> str:
    if code >= 400:
        return "Failed"
    return "Accepted" if lro else "Succeeded"


def _sub_status(code: int) -> dict[str, str]:
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:
        return _localized(str(code))
    return _localized(phrase.replace(" ", ""), f"{phrase} (HTTP Status Code: {code})")


def _event(facts: RequestFacts, target: Target, *, name: str, status: str, at: float,
           operation_id: str, sub_status: dict[str, str] | None,
           properties: dict[str, Any]) -> dict[str, Any]:
    event_id = str(uuid.uuid4())
    return {
        "authorization": {"action": facts.action, "scope": facts.scope or "/"},
        "caller": facts.caller,
        "category": _localized("Administrative"),
        "claims": {"appid": facts.caller,
                   "http://schemas.microsoft.com/identity/claims/objectidentifier":
                       facts.object_id},
        "correlationId": facts.correlation_id,
        "description": facts.description,
        "eventDataId": event_id,
        "eventName": _localized(name, "Begin request" if name == "BeginRequest"
                                else "End request"),
        "eventTimestamp": iso(at),
        "httpRequest": {"clientRequestId": facts.client_request_id,
                        "clientIpAddress": facts.client_ip, "method": facts.method},
        "id": f"{target.resource_id}/events/{event_id}/ticks/{int(at * 10_000_000)}",
        "level": "Error" if status == "Failed" else "Informational",
        "operationId": operation_id,
        "operationName": _localized(facts.action),
        "properties": {"eventCategory": "Administrative", "entity": target.resource_id,
                       "message": facts.action, "serviceRequestId": facts.request_id,
                       **properties},
        "resourceGroupName": target.resource_group,
        "resourceId": target.resource_id,
        "resourceProviderName": _localized(target.provider),
        "resourceType": _localized(target.type),
        "status": _localized(status),
        "subStatus": sub_status or _localized(""),
        "submissionTimestamp": iso(at),
        "subscriptionId": target.subscription,
        "tenantId": facts.tenant_id,
    }


def request_events(facts: RequestFacts) -> list[dict[str, Any]]:
    """A write's two events, as ARM writes them: ``BeginRequest`` (Started) when it came,
    ``EndRequest`` when it was answered (Succeeded, Accepted for a long-running
    operation, Failed for an error, with the error's code and message)."""
    target = target_of(facts.scope)
    operation_id = facts.lro_id or facts.request_id
    begin = _event(facts, target, name="BeginRequest", status="Started", at=facts.began,
                   operation_id=operation_id, sub_status=None, properties={})
    status = _status_of(facts.status_code, facts.lro_id is not None)
    properties: dict[str, Any] = {"statusCode": _sub_status(facts.status_code)["value"]}
    if facts.error is not None:
        properties["statusMessage"] = _dumps({"error": facts.error})
    end = _event(facts, target, name="EndRequest", status=status, at=facts.ended,
                 operation_id=operation_id, sub_status=_sub_status(facts.status_code),
                 properties=properties)
    return [begin, end]


def outcome_event(accepted: dict[str, Any], status: str, error: dict[str, Any] | None,
                  at: float) -> dict[str, Any]:
    """The event that ends a long-running operation, from the ``EndRequest`` event that
    accepted it: the same caller, correlation and operation, its final status
    (Succeeded, Failed, Canceled) and the error it ended with."""
    event_id = str(uuid.uuid4())
    properties = {k: v for k, v in accepted.get("properties", {}).items()
                  if k not in ("statusCode", "statusMessage")}
    if error is not None:
        properties["statusMessage"] = _dumps({"error": error})
    resource_id = str(accepted.get("resourceId", ""))
    return {**accepted, "eventDataId": event_id, "eventName": _localized("EndRequest",
                                                                         "End request"),
            "eventTimestamp": iso(at), "submissionTimestamp": iso(at),
            "id": f"{resource_id}/events/{event_id}/ticks/{int(at * 10_000_000)}",
            "level": "Error" if status == "Failed" else "Informational",
            "status": _localized(status), "subStatus": _localized(""),
            "properties": properties}


def sign_in_event(*, client_id: str, object_id: str, tenant_id: str, succeeded: bool,
                  error_code: str, request_id: str, correlation_id: str,
                  client_request_id: str, client_ip: str, at: float) -> dict[str, Any]:
    """A sign-in (the token endpoint's client-credentials grant) as a tenant-level event:
    who (the client id, never a secret), and whether a token was issued."""
    facts = RequestFacts(
        caller=client_id, object_id=object_id, tenant_id=tenant_id,
        action="Microsoft.Authorization/signIns/action", scope=f"/tenants/{tenant_id}",
        method="POST", status_code=200 if succeeded else 401, request_id=request_id,
        correlation_id=correlation_id, client_request_id=client_request_id,
        client_ip=client_ip, began=at, ended=at)
    target = Target(f"/tenants/{tenant_id}", "", "", "Microsoft.Authorization",
                    "Microsoft.Authorization/signIns")
    properties: dict[str, Any] = {"statusCode": "OK" if succeeded else "Unauthorized"}
    if error_code:
        properties["statusMessage"] = error_code
    return _event(facts, target, name="EndRequest",
                  status="Succeeded" if succeeded else "Failed", at=at,
                  operation_id=request_id,
                  sub_status=_sub_status(200 if succeeded else 401), properties=properties)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# ---- the queries ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EventQuery:
    """A ``$filter`` read: the time range, and what the events must match (lower case)."""

    start: float
    end: float
    resource_group: str | None = None
    resource_id: str | None = None
    provider: str | None = None
    correlation_id: str | None = None
    caller: str | None = None
    status: str | None = None


def _bad_filter(message: str) -> ArmError:
    return ArmError(400, "BadRequest", f"The $filter is not valid: {message} Allowed: "
                    "eventTimestamp ge 'T' and eventTimestamp le 'T' [and resourceGroupName "
                    "eq 'RG' | resourceUri eq 'ID' | resourceProvider eq 'NS' | "
                    "correlationId eq 'ID'] [and caller eq 'C'] [and status eq 'S'].")


_CONDITION = re.compile(r"\s*([A-Za-z]+)\s+(eq|ge|le)\s+('(?:[^']|'')*'|[^\s']+)\s*",
                        re.IGNORECASE)
_EQUALS = {"resourcegroupname": "resource_group", "resourceuri": "resource_id",
           "resourceid": "resource_id", "resourceprovider": "provider",
           "correlationid": "correlation_id", "caller": "caller", "status": "status"}
_ONE_OF = ("resource_group", "resource_id", "provider", "correlation_id")


def _time(text: str) -> float:
    try:
        when = datetime.fromisoformat(text)
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    except (ValueError, OverflowError):  # not a time; one off the calendar's ends
        raise _bad_filter(f"'{text[:40]}' is not a date and time.") from None


def parse_filter(text: str | None, now: float) -> EventQuery:
    """The query a ``$filter`` asks, or 400 ``BadRequest`` saying what is allowed."""
    if not text or not text.strip():
        raise _bad_filter("it is required, with at least eventTimestamp ge.")
    if len(text) > MAX_FILTER:
        raise _bad_filter(f"it is longer than {MAX_FILTER} characters.")
    found: dict[str, str] = {}
    start = end = None
    rest = text
    while True:
        match = _CONDITION.match(rest)
        if match is None:
            raise _bad_filter(f"cannot read '{rest.strip()[:80]}'.")
        name, op, raw = match.group(1).lower(), match.group(2).lower(), match.group(3)
        value = raw[1:-1].replace("''", "'") if raw.startswith("'") else raw
        if name == "eventtimestamp" and op in ("ge", "le"):
            if op == "ge":
                start = _time(value)
            else:
                end = _time(value)
        elif name in _EQUALS and op == "eq":
            key = _EQUALS[name]
            if key in found:
                raise _bad_filter(f"'{match.group(1)}' is given twice.")
            found[key] = value.strip().lower().rstrip("/")
        else:
            raise _bad_filter(f"'{match.group(0).strip()}' is not supported.")
        rest = rest[match.end():]
        if not rest.strip():
            break
        joined = re.match(r"and\s+", rest, re.IGNORECASE)
        if joined is None:
            raise _bad_filter("conditions must be joined with 'and'.")
        rest = rest[joined.end():]
    if start is None:
        raise _bad_filter("it must give the start time (eventTimestamp ge).")
    if sum(key in found for key in _ONE_OF) > 1:
        raise _bad_filter("resourceGroupName, resourceUri, resourceProvider and "
                          "correlationId cannot be combined.")
    end = now if end is None else end
    if end < start:
        raise _bad_filter("the end time is before the start time.")
    return EventQuery(start=start, end=end, **found)


def parse_select(text: str | None) -> tuple[str, ...] | None:
    """The event properties a ``$select`` keeps (az joins them with ' , '); None: all."""
    if text is None or not text.strip():
        return None
    names = []
    for piece in text.split(","):
        name = piece.strip()
        if not name:
            continue
        known = _SELECTABLE.get(name.lower())
        if known is None:
            raise ArmError(400, "BadRequest", f"The $select property '{name[:80]}' is not "
                           f"known. Possible values: {', '.join(SELECTABLE)}.")
        names.append(known)
    return tuple(names) or None


def select(event: dict[str, Any], names: tuple[str, ...] | None) -> dict[str, Any]:
    """``event`` with only the properties ``names`` (all when None)."""
    if names is None:
        return event
    return {name: event[name] for name in names if name in event}
