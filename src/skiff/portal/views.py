"""What the portal's pages show, from the API's answers: pure functions, no I/O.

A row of the groups list is made from the list answer (name, place, address, size),
which every group has, and, for the rows of the page shown, from the group's own answer
(its instance view: state, restarts, when it started). Filtering and sorting run on the
list answer's fields only, so a page of 1,000 groups reads 1,000 list items and the
instance views of one page's rows, never 1,000 instance views.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

#: Rows per page of the groups list.
PAGE_SIZE = 50


@dataclass(frozen=True)
class Row:
    """A container group, as its list answer tells it."""

    id: str
    name: str
    subscription: str
    resource_group: str
    location: str
    provisioning_state: str
    ip: str
    fqdn: str
    cpu: float
    memory_gb: float
    images: tuple[str, ...]
    #: From the group's own answer, for the rows of the page shown ('' / None: unknown).
    state: str = ""
    restarts: int | None = None
    started: datetime | None = None

    @property
    def path(self) -> str:
        """The group page's path under the portal's groups."""
        return f"{self.subscription}/{self.resource_group}/{self.name}"


def _parts(resource_id: str) -> tuple[str, str]:
    parts = resource_id.split("/")
    lowered = [p.lower() for p in parts]
    sub = parts[lowered.index("subscriptions") + 1] if "subscriptions" in lowered else ""
    rg = parts[lowered.index("resourcegroups") + 1] if "resourcegroups" in lowered else ""
    return sub, rg


def _containers(group: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = group.get("properties", {}).get("containers") or []
    return found


def row_of(group: dict[str, Any]) -> Row:
    """A list item (or a GET answer) as a row."""
    props = group.get("properties", {})
    sub, rg = _parts(str(group.get("id", "")))
    address = props.get("ipAddress") or {}
    cpu = memory = 0.0
    images = []
    for container in _containers(group):
        cprops = container.get("properties", {})
        requests = (cprops.get("resources") or {}).get("requests") or {}
        cpu += float(requests.get("cpu") or 0)
        memory += float(requests.get("memoryInGB") or 0)
        images.append(str(cprops.get("image", "")))
    return Row(id=str(group.get("id", "")), name=str(group.get("name", "")), subscription=sub,
               resource_group=rg, location=str(group.get("location", "")),
               provisioning_state=str(props.get("provisioningState", "")),
               ip=str(address.get("ip") or ""), fqdn=str(address.get("fqdn") or ""),
               cpu=round(cpu, 3), memory_gb=round(memory, 3), images=tuple(images))


def with_instance(row: Row, group: dict[str, Any] | None) -> Row:
    """``row`` with what the group's own answer adds: its state, its containers' restarts
    and the earliest time it tells of (its age)."""
    if group is None:
        return row
    view = group.get("properties", {}).get("instanceView") or {}
    restarts = 0
    times: list[datetime] = [t for t in map(parse_time, (e.get("firstTimestamp")
                                                          for e in view.get("events") or []))
                             if t is not None]
    for container in _containers(group):
        cview = container.get("properties", {}).get("instanceView") or {}
        restarts += int(cview.get("restartCount") or 0)
        for state in (cview.get("currentState") or {}, cview.get("previousState") or {}):
            started = parse_time(state.get("startTime"))
            if started is not None:
                times.append(started)
        times.extend(t for t in map(parse_time, (e.get("firstTimestamp")
                                                 for e in cview.get("events") or []))
                     if t is not None)
    return replace(row, state=str(view.get("state") or ""), restarts=restarts,
                   started=min(times) if times else None)


def parse_time(text: Any) -> datetime | None:
    """An ARM timestamp (ISO 8601, ``Z`` or an offset), or None."""
    if not isinstance(text, str) or not text:
        return None
    try:
        found = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def age(started: datetime | None, now: datetime) -> str:
    """How long ago, in the largest whole unit (``3d``, ``5h``, ``12m``, ``40s``)."""
    if started is None:
        return ""
    seconds = max(0, int((now - started).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


#: The columns a list sorts by: their keys (the list answer's fields only).
SORTS: dict[str, Callable[[Row], Any]] = {
    "name": lambda r: (r.name.lower(), r.id.lower()),
    "resourceGroup": lambda r: (r.resource_group.lower(), r.name.lower()),
    "subscription": lambda r: (r.subscription.lower(), r.name.lower()),
    "location": lambda r: (r.location.lower(), r.name.lower()),
    "provisioningState": lambda r: (r.provisioning_state.lower(), r.name.lower()),
    "cpu": lambda r: (r.cpu, r.name.lower()),
    "memory": lambda r: (r.memory_gb, r.name.lower()),
}


@dataclass(frozen=True)
class Query:
    """What the list page was asked for (its URL's query), checked."""

    text: str = ""
    sort: str = "name"
    descending: bool = False
    page: int = 1

    @classmethod
    def of(cls, params: dict[str, str]) -> Query:
        """From a URL's query; unknown or malformed values fall back to the defaults."""
        sort = params.get("sort", "name")
        try:
            page = max(1, min(int(params.get("page", "1")), 1_000_000))
        except ValueError:
            page = 1
        return cls(text=params.get("q", "").strip()[:200],
                   sort=sort if sort in SORTS else "name",
                   descending=params.get("order") == "desc", page=page)

    def link(self, **changes: Any) -> dict[str, str]:
        """The query of a link to this list with ``changes`` (for ``urlencode``)."""
        query = replace(self, **changes)
        found = {"q": query.text, "sort": query.sort,
                 "order": "desc" if query.descending else "asc", "page": str(query.page)}
        return {k: v for k, v in found.items() if v and (k, v) not in (
            ("sort", "name"), ("order", "asc"), ("page", "1"))}


@dataclass(frozen=True)
class Page:
    """A page of rows, and where it lies among them."""

    rows: tuple[Row, ...]
    total: int
    number: int
    pages: int
    query: Query = field(default_factory=Query)


def matches(row: Row, text: str) -> bool:
    """Whether the filter ``text`` (words, all of them, case ignored) is in the row's name,
    place, state, address or images."""
    haystack = " ".join((row.name, row.resource_group, row.subscription, row.location,
                         row.provisioning_state, row.ip, row.fqdn, *row.images)).lower()
    return all(word in haystack for word in text.lower().split())


def page_of(rows: Sequence[Row], query: Query, size: int = PAGE_SIZE) -> Page:
    """The rows ``query`` asks for: filtered, sorted, and its page (the last one, when it
    asks for a page past the end)."""
    chosen = [r for r in rows if matches(r, query.text)] if query.text else list(rows)
    chosen.sort(key=SORTS[query.sort], reverse=query.descending)
    pages = max(1, math.ceil(len(chosen) / size))
    number = min(query.page, pages)
    start = (number - 1) * size
    return Page(tuple(chosen[start:start + size]), len(chosen), number, pages,
                replace(query, page=number))
