"""What the store hands out: frozen records, and the keys it compares names by.

Records are values: a caller may keep one, pass it to another thread or
compare two, and nothing changes under it; the store's tables stay its own
business. Each record is built from one row here, so the column lists and
the JSON columns are decoded in one place.

ARM compares resource group names, container group names, locations and
resource ids without regard to case, but shows names in the case they were
created with. The store therefore keeps two columns per name: the display
name, and a *key* (:func:`name_key`) that every lookup and UNIQUE constraint
uses. Keys are computed in Python, not with SQLite's ``lower()``, which only
folds ASCII while resource group names may hold any Unicode letter. Subscription
ids are the exception: ARM shows them in lower case too, so the store keeps only
their key (:func:`subscription_key`), the one place where two are compared.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, cast

#: What a container group should be: the reconcile loop moves it there.
Desired = Literal["running", "stopped", "deleted"]
#: An ARM long-running operation's status, as the SDK's poller reads it.
OperationStatus = Literal["InProgress", "Succeeded", "Failed", "Canceled"]

DESIRED_STATES: frozenset[str] = frozenset(("running", "stopped", "deleted"))
OPERATION_STATUSES: frozenset[str] = frozenset(("InProgress", "Succeeded", "Failed", "Canceled"))
TERMINAL_STATUSES: frozenset[str] = OPERATION_STATUSES - {"InProgress"}

GROUP_TYPE = "Microsoft.ContainerInstance/containerGroups"
VNET_TYPE = "Microsoft.Network/virtualNetworks"


def name_key(name: str) -> str:
    """The key two ARM names compare by: equal keys name the same resource."""
    return name.lower()


def subscription_key(subscription: str) -> str:
    """The key two subscription ids compare by, and the form the store keeps them in.

    ARM compares a subscription id as it compares every id, without case:
    ``/subscriptions/ACME`` and ``/subscriptions/acme`` are one subscription, one
    set of resources. Every table stores this key, never the text of a request,
    so that a lookup in any case finds the same rows; ARM also shows subscription
    ids in lower case (a GUID's canonical form).
    """
    return name_key(subscription)


def location_key(location: str) -> str:
    """The key two locations compare by: ARM takes "West US" and "westus" as one."""
    return location.replace(" ", "").lower()


def dumps(value: object) -> str:
    """Canonical JSON: equal documents give equal text, whatever their keys' order."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _loads_dict(text: str | None) -> dict[str, Any] | None:
    return None if text is None else cast(dict[str, Any], json.loads(text))


@dataclass(frozen=True)
class ResourceGroupRecord:
    """A resource group: a named folder of resources in a subscription."""

    subscription: str
    name: str  # as first created: the display case
    location: str
    tags: dict[str, str]
    created_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ResourceGroupRecord:
        return cls(row["subscription"], row["name"], row["location"],
                   json.loads(row["tags"]), row["created_at"])


#: A Spot group's eviction, as ``container_groups.evicted`` tells it.
EVICTING = 1
EVICTED = 2


@dataclass(frozen=True)
class GroupRecord:
    """A container group's desired state, and what the reconcile loop last made of it."""

    uid: str  # uuid4 hex: the engine's group id, stable for the group's whole life
    subscription: str
    resource_group: str  # display case of the resource group
    name: str  # display case, as first created
    location: str
    body: dict[str, Any]  # the stored ARM body, secrets included, top-level "tags" left out
    tags: dict[str, str]
    provisioning_state: str
    desired: Desired
    generation: int  # bumped by every change the engine must act on
    error: dict[str, Any] | None
    created_at: float
    updated_at: float
    #: The key of the subnet a private group is placed in (its ARM id, lower case).
    subnet_key: str | None = None
    #: ``priority: Spot``: admitted on spare capacity only, evicted for a Regular group.
    spot: bool = False
    #: 0: not evicted; :data:`EVICTING`: evicted, its containers are to be stopped;
    #: :data:`EVICTED`: stopped, waiting for spare capacity to run again.
    evicted: int = 0
    #: When the group was last evicted (None: never), and how many times.
    evicted_at: float | None = None
    evictions: int = 0
    #: The name the engine knows the group by (its containers' hostname), where it is
    #: not ``name``: a group claimed from a standby pool keeps its member's, since a
    #: new name would redeploy it (None: ``name``).
    host_name: str | None = None

    @property
    def resource_id(self) -> str:
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
                f"/providers/{GROUP_TYPE}/{self.name}")

    @property
    def engine_name(self) -> str:
        """The group's name as its engine spec has it."""
        return self.host_name or self.name

    @classmethod
    def from_row(cls, row: sqlite3.Row, body: dict[str, Any]) -> GroupRecord:
        """The record of ``row``, with ``body``: the row's, its secrets unsealed."""
        return cls(
            uid=row["uid"], subscription=row["subscription"],
            resource_group=row["resource_group"], name=row["name"], location=row["location"],
            body=body, tags=json.loads(row["tags"]),
            provisioning_state=row["provisioning_state"], desired=row["desired"],
            generation=row["generation"], error=_loads_dict(row["error"]),
            created_at=row["created_at"], updated_at=row["updated_at"],
            subnet_key=row["subnet_key"], spot=bool(row["spot"]), evicted=row["evicted"],
            evicted_at=row["evicted_at"], evictions=row["evictions"],
            host_name=row["host_name"],
        )


class GroupStamp(NamedTuple):
    """What tells two versions of a container group apart, short of its body (a new body
    is a new generation): its state, desired state, tags and last change."""

    uid: str
    generation: int
    updated_at: float
    provisioning_state: str
    desired: str
    tags: str  # the JSON text


@dataclass(frozen=True)
class VnetRecord:
    """A virtual network: its address space and subnets, as ARM's body holds them."""

    subscription: str
    resource_group: str
    name: str
    location: str
    body: dict[str, Any]  # {"properties": {"addressSpace": ..., "subnets": [...]}}
    tags: dict[str, str]
    guid: str
    created_at: float

    @property
    def resource_id(self) -> str:
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
                f"/providers/{VNET_TYPE}/{self.name}")

    def subnets(self) -> dict[str, tuple[str, str]]:
        """Subnet name key → (name, address prefix)."""
        found = {}
        for subnet in self.body.get("properties", {}).get("subnets", []):
            props = subnet.get("properties", {})
            prefix = props.get("addressPrefix") or (props.get("addressPrefixes") or [""])[0]
            found[name_key(subnet["name"])] = (subnet["name"], prefix)
        return found

    def subnet_key(self, subnet: str) -> str:
        return name_key(f"{self.resource_id}/subnets/{subnet}")

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> VnetRecord:
        return cls(row["subscription"], row["resource_group"], row["name"], row["location"],
                   json.loads(row["body"]), json.loads(row["tags"]), row["guid"],
                   row["created_at"])


@dataclass(frozen=True)
class OperationRecord:
    """An ARM long-running operation, polled through its Azure-AsyncOperation URL."""

    id: str
    subscription: str
    location: str
    resource_id: str
    kind: str  # what started it: "create", "update", "delete", "start", "restart", ...
    status: OperationStatus
    error: dict[str, Any] | None
    started_at: float
    ended_at: float | None
    generation: int | None  # the group generation whose reaching ends it, if any

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> OperationRecord:
        return cls(
            id=row["id"], subscription=row["subscription"], location=row["location"],
            resource_id=row["resource_id"], kind=row["kind"], status=row["status"],
            error=_loads_dict(row["error"]), started_at=row["started_at"],
            ended_at=row["ended_at"], generation=row["generation"],
        )


@dataclass(frozen=True)
class TokenRecord:
    """An API token: who may call. The secret itself is never stored."""

    id: str
    subscription: str | None  # None: an admin token, which sees every subscription
    name: str
    created_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> TokenRecord:
        return cls(row["id"], row["subscription"], row["name"], row["created_at"])
