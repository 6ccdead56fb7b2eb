"""A Pod's status and Events read back as ACI's instance view (a :class:`GroupView`).

Pure functions of the objects the API server answers (``Pod`` with its ``status``,
``core/v1`` ``Event`` objects, the group's ``Service``): the engine that watches them is
a later increment, and these were written and tested against objects built from the
Kubernetes API reference and checked against its schema, with no cluster to record from.

How Kubernetes' words become ACI's:

- **Group state** from the Pod's ``phase``: Pending, Running, Succeeded and Failed are
  ACI's own; Unknown (the node lost) reads Pending; a Pod being deleted is still its
  phase. A group the user stopped is Stopped whatever remains of its Pod.
- **Containers** from ``containerStatuses`` (``initContainerStatuses`` for init ones):
  ``state`` → ``currentState``, ``lastState`` → ``previousState``, ``restartCount`` as
  is, the waiting or terminated ``reason`` as ``detailStatus`` (CrashLoopBackOff,
  Completed, Error, OOMKilled), exit codes and times. A container with no status yet
  is Waiting.
- **Events**: each Event about the Pod goes to the container its ``fieldPath`` names
  (``spec.containers{web}``), else to the group; reason, message, type, count and the
  first and last times are ACI's fields already.
- **The IP**: a public group's address is its Service's load balancer ingress (none
  while the cloud has not given one: ACI shows no ``ip`` until then either); a private
  group's is the Pod's ``podIP``.
- **Unschedulable**: a Pod no node can take yet (``PodScheduled`` False, reason
  ``Unschedulable``: ``0/3 nodes are available: 3 Insufficient nvidia.com/gpu``) is a
  group waiting, not a failed one: Pending, its containers Waiting, and the scheduler's
  words as a ``FailedScheduling`` Warning event of the group, from the scheduler's Event
  or, where that has expired (an Event lives an hour), from the condition itself. A
  node freed or added (an autoscaler's) places it, as a node engine starts a group
  once it fits.
- **Failure**: an image that cannot be pulled or a container that cannot be created
  (``ErrImagePull``, ``ImagePullBackOff``, ``InvalidImageName``,
  ``CreateContainerConfigError``, ``CreateContainerError``), a Pod the kubelet
  evicted, or a Failed Pod whose init container exited non-zero (as the local engine
  words it), is the group's failure, with Kubernetes' message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from skiff.core.view import ContainerView, Event, GroupView, State

Obj = Mapping[str, Any]

_PHASES = {"Pending": "Pending", "Running": "Running", "Succeeded": "Succeeded",
           "Failed": "Failed", "Unknown": "Pending"}
#: Waiting reasons that mean the group cannot start as defined.
FAILING_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName",
                   "CreateContainerConfigError", "CreateContainerError")
_FIELD_PATH = re.compile(r"spec\.(?:initContainers|containers)\{([^}]+)\}")


def timestamp(text: str | None) -> float | None:
    """An RFC 3339 time as the API server writes it (``2026-01-02T03:04:05Z``), as UNIX
    time; None for none."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def container_state(state: Obj | None) -> State:
    """A ``ContainerState`` (one of waiting, running, terminated) as ACI's state."""
    if not state:
        return State()
    if "running" in state:
        return State("Running", start_time=timestamp(state["running"].get("startedAt")))
    if "terminated" in state:
        ended = state["terminated"]
        return State("Terminated", start_time=timestamp(ended.get("startedAt")),
                     exit_code=ended.get("exitCode"),
                     finish_time=timestamp(ended.get("finishedAt")),
                     detail_status=ended.get("reason") or "")
    waiting = state.get("waiting") or {}
    return State("Waiting", detail_status=waiting.get("reason") or "")


def container_view(name: str, status: Obj | None, *, init: bool = False) -> ContainerView:
    """Container ``name`` from its ``ContainerStatus`` (None: none reported yet)."""
    if status is None:
        return ContainerView(name=name, cid="", init=init)
    previous = status.get("lastState")
    return ContainerView(
        name=name, cid=status.get("containerID") or "", init=init,
        restart_count=int(status.get("restartCount") or 0),
        current=container_state(status.get("state")),
        previous=container_state(previous) if previous else None,
        ready=bool(status.get("ready")))


def event_of(event: Obj) -> Event:
    """A ``core/v1`` Event as an instance view's event."""
    first = timestamp(event.get("firstTimestamp") or event.get("eventTime")) or 0.0
    last = timestamp(event.get("lastTimestamp")) or first
    return Event(name=event.get("reason") or "", message=event.get("message") or "",
                 type=event.get("type") or "Normal", count=int(event.get("count") or 1),
                 first_timestamp=first, last_timestamp=last)


def unschedulable(pod: Obj) -> str | None:
    """The scheduler's message when no node can take the Pod yet (its ``PodScheduled``
    condition False with reason ``Unschedulable``); None otherwise."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False" \
                and condition.get("reason") == "Unschedulable":
            return str(condition.get("message") or "no node can take the Pod")
    return None


def _failure(pod: Obj, views: Iterable[tuple[ContainerView, Obj | None]]) -> str | None:
    status = pod.get("status") or {}
    if status.get("phase") == "Failed" and status.get("reason") == "Evicted":
        return f"Evicted: {status.get('message') or 'the node ran short of resources'}"
    views = list(views)
    if status.get("phase") == "Failed":
        for view, _ in views:
            ended = view.current
            if view.init and ended.state == "Terminated" and ended.exit_code:
                return f"init container {view.name} failed with exit code {ended.exit_code}"
    for view, raw in views:
        waiting = ((raw or {}).get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in FAILING_REASONS:
            message = waiting.get("message") or waiting["reason"]
            return f"container {view.name!r}: {waiting['reason']}: {message}"
    return None


def group_view(pod: Obj, *, group_id: str, name: str, events: Iterable[Obj] = (),
               service: Obj | None = None, stopped: bool = False) -> GroupView:
    """The group's instance view from its Pod, the Events about it, and (a public group)
    its Service."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    found: list[tuple[ContainerView, Obj | None]] = []
    for key, status_key, init in (("initContainers", "initContainerStatuses", True),
                                  ("containers", "containerStatuses", False)):
        statuses = {s["name"]: s for s in status.get(status_key) or []}
        for container in spec.get(key) or []:
            if init and "--" in container["name"]:
                continue  # skiff's own (a gitRepo clone), not the tenant's
            raw = statuses.get(container["name"])
            found.append((container_view(container["name"], raw, init=init), raw))
    phase = _PHASES.get(str(status.get("phase")), "Pending")
    view = GroupView(group_id=group_id, name=name, state="Stopped" if stopped else phase,
                     ip=_address(status, service), stopped=stopped,
                     containers=[v for v, _ in found if not v.init],
                     init_containers=[v for v, _ in found if v.init])
    by_name = {v.name: v for v, _ in found}
    for raw_event in sorted(events, key=lambda e: timestamp(
            e.get("lastTimestamp") or e.get("eventTime")) or 0.0):
        event = event_of(raw_event)
        match = _FIELD_PATH.fullmatch((raw_event.get("involvedObject") or {})
                                      .get("fieldPath") or "")
        target = by_name.get(match.group(1)) if match else None
        (target.events if target is not None else view.events).append(event)
    waiting = unschedulable(pod) if not stopped else None
    if waiting is not None and not any(e.name == "FailedScheduling" for e in view.events):
        since = next((timestamp(c.get("lastTransitionTime")) for c in status.get("conditions")
                      or [] if c.get("type") == "PodScheduled"), None) or 0.0
        view.events.append(Event(name="FailedScheduling", message=waiting, type="Warning",
                                 first_timestamp=since, last_timestamp=since))
    view.failure = _failure(pod, found)
    return view


def _address(status: Obj, service: Obj | None) -> str | None:
    if service is None:
        return status.get("podIP") or None
    return service_address(service)


def service_address(service: Obj | None) -> str | None:
    """A Service's load-balancer IP (its first ingress with one), None while pending."""
    ingress = (((service or {}).get("status") or {}).get("loadBalancer") or {}).get(
        "ingress") or []
    return next((i["ip"] for i in ingress if i.get("ip")), None)
