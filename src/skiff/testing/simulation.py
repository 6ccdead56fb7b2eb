"""A fake group's containers in time: their scripts' exits and the restart policy, played
up to a moment, for :class:`skiff.testing.fake.FakeEngine`.

Nothing here waits: :func:`catch_up` plays every exit and restart due by the time it
is given, in the order of their times, with the real engine's restart rules
(:func:`skiff.engine.group.restarts.decide`) and group states
(:func:`~skiff.engine.group.restarts.group_state`). Init containers run one at a
time, each to exit 0, before the app containers start.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import cast

from skiff.core.spec import Container, GroupSpec
from skiff.core.view import ContainerView, GroupView, State
from skiff.engine.group.restarts import (
    ContainerExit,
    ContainerState,
    ContainerStateName,
    RestartState,
    decide,
    group_state,
)
from skiff.settings import BackoffSettings
from skiff.testing.scripts import Program

#: Events a simulation may process in one call: a guard against a spinning container.
MAX_STEPS = 10_000


@dataclass
class Box:
    """One container of a fake group: its definition, its view, its current instance."""

    container: Container
    view: ContainerView
    program: Program
    started_at: float | None = None  # of the current instance
    killed_at: float | None = None  # the current instance was stopped then
    restart: RestartState = field(default_factory=RestartState)
    restart_at: float | None = None
    previous: list[tuple[float, str]] = field(default_factory=list)

    def ends_at(self) -> float | None:
        """When the running instance exits by itself (None: not running, or never)."""
        if self.view.current.state != "Running" or self.started_at is None:
            return None
        return None if self.program.end is None else self.started_at + self.program.end

    def output(self, now: float) -> list[tuple[float, str]]:
        """The current instance's lines so far, stamped with their time."""
        if self.started_at is None:
            return []
        until = min(t for t in (now, self.ends_at(), self.killed_at) if t is not None)
        return [(self.started_at + o, line) for o, line in self.program.lines
                if self.started_at + o <= until]


@dataclass
class FakeGroup:
    """A group of the fake engine: its spec, its view, its containers' boxes."""

    spec: GroupSpec
    view: GroupView
    fingerprint: str
    boxes: list[Box] = field(default_factory=list)  # init containers first
    init_index: int = 0
    prepared: bool = False
    #: The config maps' files as the containers see them: container → key → value.
    config_maps: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def inits(self) -> list[Box]:
        return [b for b in self.boxes if b.view.init]

    @property
    def apps(self) -> list[Box]:
        return [b for b in self.boxes if not b.view.init]


def advance(group: FakeGroup, when: float) -> None:
    """Start what comes next at ``when``: the next init container, or the app ones."""
    inits = group.inits
    while group.init_index < len(inits):
        box = inits[group.init_index]
        current = box.view.current
        if current.state == "Terminated" and current.exit_code == 0:
            group.init_index += 1
            continue
        if current.state == "Waiting" and box.restart_at is None:
            start(box, when)
        return
    for box in group.apps:
        if box.view.current.state == "Waiting" and box.restart_at is None:
            start(box, when)


def start(box: Box, when: float) -> None:
    """A new instance of ``box``'s container, started at ``when``."""
    if box.started_at is not None:
        box.previous = box.output(when)
    box.started_at, box.killed_at = when, None
    name = box.view.name
    box.view.event("Created", f"created container {name}", now=when)
    box.view.transition(State("Running", when))
    box.view.ready = True
    box.view.event("Started", f"started container {name}", now=when)


def catch_up(group: FakeGroup, now: float, backoff: BackoffSettings) -> bool:
    """Play every exit and restart due by ``now``, in the order of their times (an exit
    before a restart due at the same time); returns whether anything happened."""
    changed = False
    for _ in range(MAX_STEPS):
        if group.view.stopped or not group.prepared or group.view.failure is not None:
            break
        due = [(t, 0, b) for b in group.boxes if (t := b.ends_at()) is not None]
        due += [(b.restart_at, 1, b) for b in group.boxes if b.restart_at is not None]
        if not due:
            break
        when, kind, box = min(due, key=lambda d: (d[0], d[1]))
        if when > now:
            break
        changed = True
        if kind == 1:
            box.restart_at = None
            start(box, when)
        else:
            exited(group, box, when, backoff)
    return changed


def exited(group: FakeGroup, box: Box, when: float, backoff: BackoffSettings) -> None:
    """The current instance of ``box`` ended at ``when``: the restart policy decides."""
    code, started = box.program.exit_code, box.started_at or when
    box.view.transition(State("Terminated", started, code, when,
                              "Completed" if code == 0 else "Error"))
    if box.view.init and code == 0:
        advance(group, when)
        return
    decision, state = decide(group.spec.restart_policy,
                             ContainerExit(exit_code=code, started_at=started,
                                           finished_at=when), box.restart, backoff)
    if decision.action == "stay_stopped":
        if box.view.init:
            group.view.failure = f"init container {box.view.name} failed with exit " \
                                 f"code {code}"
        return
    box.restart = state
    box.view.restart_count = state.restart_count
    box.restart_at = when + decision.delay_s
    if decision.delay_s > 0:
        box.view.event("BackOff", f"back-off restarting failed container "
                                  f"{box.view.name}: {decision.reason}", warning=True,
                       now=when)


def snapshot(group: FakeGroup) -> GroupView:
    """The group's view with its state brought up to date, as a copy for callers."""
    view = group.view
    if view.failure is not None:
        view.state = "Failed"
    else:
        states = [ContainerState(cast(ContainerStateName, b.view.current.state),
                                 b.view.current.exit_code, b.view.restart_count)
                  for b in group.apps]
        view.state = group_state(group.spec.restart_policy, states, stopped=view.stopped)
    return copy.deepcopy(view)


def stamp(ts: float) -> str:
    """A line's time as conmon's k8s-file log writes it: RFC 3339 with nanoseconds."""
    seconds = int(ts)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + \
        f".{int((ts - seconds) * 1e9):09d}+00:00"
