"""The instance view: what the engine reports of a group and its containers.

ACI's shapes in the engine's terms: per container a restart count, the
current and previous state, and events that collapse repeats into a count
with first and last timestamps. Values here are plain, JSON-friendly and
persisted with the group, so a restarted skiff still tells the history.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any


def iso(ts: float | None) -> str | None:
    """A UNIX time as ARM writes it: ISO 8601 in UTC with a Z."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


@dataclass
class State:
    """A container's ``currentState`` / ``previousState``."""

    state: str = "Waiting"  # Waiting | Running | Terminated
    start_time: float | None = None
    exit_code: int | None = None
    finish_time: float | None = None
    detail_status: str = ""


@dataclass
class Event:
    name: str  # Pulling, Pulled, Created, Started, Killing, BackOff, Failed, OOMKilled, Unhealthy
    message: str
    type: str = "Normal"  # Normal | Warning
    count: int = 1
    first_timestamp: float = 0.0
    last_timestamp: float = 0.0


def record_event(events: list[Event], name: str, message: str, *, warning: bool = False,
                 now: float | None = None) -> None:
    """Add an event to ``events``; a repeat of the last one of the same name and message
    counts up."""
    now = time.time() if now is None else now
    for existing in reversed(events):
        if existing.name == name and existing.message == message:
            existing.count += 1
            existing.last_timestamp = now
            return
    events.append(Event(name, message, "Warning" if warning else "Normal", 1, now, now))
    del events[:-50]  # the newest 50 kinds of event are plenty to tell the story


@dataclass
class ContainerView:
    name: str
    cid: str
    init: bool = False
    restart_count: int = 0
    current: State = field(default_factory=State)
    previous: State | None = None
    events: list[Event] = field(default_factory=list)
    ready: bool = False

    def event(self, name: str, message: str, *, warning: bool = False,
              now: float | None = None) -> None:
        """Record an event; a repeat of the last one of the same name and message counts up."""
        record_event(self.events, name, message, warning=warning, now=now)

    def transition(self, new: State) -> None:
        """Move to ``new``. A terminated instance becomes ``previous`` when the next
        one begins (Waiting or Running), as ACI reports it."""
        if self.current.state == "Terminated" and new.state != "Terminated":
            self.previous = self.current
        self.current = new


@dataclass
class GroupView:
    group_id: str
    name: str
    state: str = "Pending"  # Pending | Running | Stopped | Succeeded | Failed
    ip: str | None = None
    containers: list[ContainerView] = field(default_factory=list)
    init_containers: list[ContainerView] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    stopped: bool = False  # the user stopped the group
    #: Why the group as a whole failed (image, volume or network), if it did:
    #: the control plane's provisioningState Failed, beside the containers' fates.
    failure: str | None = None

    def event(self, name: str, message: str, *, warning: bool = False,
              now: float | None = None) -> None:
        """Record an event of the group as a whole (as a container's: repeats count up)."""
        record_event(self.events, name, message, warning=warning, now=now)

    def all_containers(self) -> list[ContainerView]:
        return [*self.init_containers, *self.containers]

    def container(self, name: str) -> ContainerView | None:
        for view in self.all_containers():
            if view.name == name:
                return view
        return None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> GroupView:
        def container(raw: dict[str, Any]) -> ContainerView:
            raw = dict(raw)
            raw["current"] = State(**raw["current"])
            raw["previous"] = State(**raw["previous"]) if raw.get("previous") else None
            raw["events"] = [Event(**e) for e in raw.get("events", [])]
            return ContainerView(**raw)

        doc = dict(doc)
        doc["containers"] = [container(c) for c in doc.get("containers", [])]
        doc["init_containers"] = [container(c) for c in doc.get("init_containers", [])]
        doc["events"] = [Event(**e) for e in doc.get("events", [])]
        return cls(**doc)
