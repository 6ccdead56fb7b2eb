"""When an exited container comes back, and what the group's state is meanwhile.

ACI applies one ``restartPolicy`` to every container of a group: ``Always``
restarts on any exit, ``OnFailure`` on a non-zero exit, ``Never`` never.
Restarts back off the way Kubernetes' CrashLoopBackOff does, so that a
container that dies at once does not spin the node: the first restart is
immediate, the next ones wait 10 s, 20 s, 40 s, ... up to 5 minutes, and a
container that ran for 10 minutes before it exited starts over from the
beginning of that ladder.

This module decides and nothing else, like Nomad's ``RestartTracker``: no
clock is read, no process is touched. The supervisor hands it an exit (with
the times it observed) and the container's :class:`RestartState`, and gets a
:class:`Decision` with a reason meant for events and logs ("backoff 40 s
after 3 restarts"), plus the state to keep. Everything here is a frozen
value, so tests are tables.

Time is in seconds on any one clock the caller picks (epoch or monotonic):
only differences matter. A restart's delay counts from the exit's
``finished_at``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from skiff.core.spec import RestartPolicy
from skiff.settings import BackoffSettings

#: What to do with a container that exited.
Action = Literal["restart", "stay_stopped"]
#: A container's ``currentState.state`` in the instance view.
ContainerStateName = Literal["Waiting", "Running", "Terminated"]
#: A group's ``instanceView.state``.
GroupState = Literal["Pending", "Running", "Stopped", "Succeeded", "Failed"]




@dataclass(frozen=True, kw_only=True)
class ContainerExit:
    """One exit of a container, as the runtime observed it."""

    exit_code: int
    started_at: float
    finished_at: float
    #: Killed by the kernel's OOM killer (exit code 137 alone does not prove it).
    oom: bool = False

    @property
    def failed(self) -> bool:
        return self.exit_code != 0 or self.oom

    @property
    def ran_s(self) -> float:
        """How long it ran; never negative, even if the clocks disagree."""
        return max(0.0, self.finished_at - self.started_at)


@dataclass(frozen=True, kw_only=True)
class RestartState:
    """What is remembered of one container between its exits."""

    #: Restarts so far, for ever: ACI's ``instanceView.restartCount``.
    restart_count: int = 0
    #: Seconds the next restart waits if the container exits again quickly.
    #: Zero until a first restart happened: the first one is immediate.
    next_backoff_s: float = 0.0


@dataclass(frozen=True)
class Decision:
    """What to do with an exited container, and why, in words."""

    action: Action
    #: Seconds to wait after the exit's ``finished_at`` (0 when staying stopped).
    delay_s: float
    reason: str


def decide(
    policy: RestartPolicy,
    exited: ContainerExit,
    state: RestartState | None = None,
    settings: BackoffSettings | None = None,
) -> tuple[Decision, RestartState]:
    """Whether and when the container that made ``exited`` restarts.

    Returns the decision and the state to keep for the container's next exit
    (``state`` itself when it stays stopped).
    """
    state = state or RestartState()
    settings = settings or BackoffSettings()
    if policy is RestartPolicy.NEVER:
        return Decision("stay_stopped", 0.0, "policy Never"), state
    if policy is RestartPolicy.ON_FAILURE and not exited.failed:
        return Decision("stay_stopped", 0.0, "exited 0 under OnFailure"), state

    restarted = state.restart_count
    if exited.ran_s >= settings.reset_after_s:
        delay, reason = 0.0, f"ran {_duration(exited.ran_s)}: backoff reset"
    elif state.next_backoff_s <= 0:
        delay = 0.0
        reason = "first restart: no backoff" if restarted == 0 else \
            f"restart at once after {_restarts(restarted)}"
    else:
        delay = state.next_backoff_s
        reason = f"backoff {delay:g} s after {_restarts(restarted)}"
    if exited.oom:
        reason = f"OOM-killed; {reason}"
    following = settings.initial_s if delay == 0 else min(delay * settings.factor, settings.max_s)
    return (Decision("restart", delay, reason),
            RestartState(restart_count=restarted + 1, next_backoff_s=following))


def _restarts(n: int) -> str:
    return f"{n} restart" if n == 1 else f"{n} restarts"


def _duration(seconds: float) -> str:
    """A run's length as people say it: "95 s", "12 minutes", "3 hours"."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60:.0f} minutes"
    return f"{seconds // 3600:.0f} hours"


@dataclass(frozen=True)
class ContainerState:
    """What :func:`group_state` needs of one container's instance view."""

    state: ContainerStateName
    #: The last exit's code, for a ``Terminated`` container (None: unknown).
    exit_code: int | None = None
    #: A ``Waiting`` container with restarts is waiting out a backoff; one
    #: without has never started (image pull, init containers).
    restart_count: int = 0


def group_state(
    policy: RestartPolicy,
    container_states: Sequence[ContainerState],
    *,
    stopped: bool = False,
) -> GroupState:
    """The group's ``instanceView.state`` from its (app) containers' states.

    The rules, first match wins (Kubernetes' pod phases, in ACI's words):

    1. ``stopped`` (the user stopped the group): **Stopped**.
    2. No container yet, or one that has never started (``Waiting`` with no
       restarts: pulling, init containers running): **Pending**.
    3. A container runs: **Running**, whatever the others did.
    4. Under ``Always`` every exited container comes back: **Running**.
    5. A container waits out a backoff before its restart: **Running**.
    6. All have terminated. A failure (non-zero or unknown exit code) is
       **Failed** under ``Never``; under ``OnFailure`` it is about to be
       restarted: **Running**. Otherwise all exited 0: **Succeeded**.

    So a group under ``Never`` whose first container failed stays Running
    while another still runs, and becomes Failed when the last one exits.
    """
    if stopped:
        return "Stopped"
    if not container_states or any(c.state == "Waiting" and c.restart_count == 0
                                   for c in container_states):
        return "Pending"
    if any(c.state in ("Running", "Waiting") for c in container_states):
        return "Running"  # rules 3 and 5: every Waiting one has restarts here
    if policy is RestartPolicy.ALWAYS:
        return "Running"
    if any(c.exit_code != 0 for c in container_states):
        return "Failed" if policy is RestartPolicy.NEVER else "Running"
    return "Succeeded"
