"""Unit tests for skiff.engine.group.restarts: restart policies, backoff and group states."""

from __future__ import annotations

import time

import pytest

from skiff.core.spec import RestartPolicy
from skiff.engine.group.restarts import (
    Action,
    ContainerExit,
    ContainerState,
    Decision,
    GroupState,
    RestartState,
    decide,
    group_state,
)
from skiff.settings import BackoffSettings

ALWAYS, ON_FAILURE, NEVER = RestartPolicy.ALWAYS, RestartPolicy.ON_FAILURE, RestartPolicy.NEVER


def quick(code: int = 1, *, oom: bool = False, at: float = 1000.0,
          ran: float = 2.0) -> ContainerExit:
    """An exit ``ran`` seconds after its start, finishing at ``at``."""
    return ContainerExit(exit_code=code, started_at=at - ran, finished_at=at, oom=oom)


# --- the policy: restart or not ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "code", "oom", "action", "reason"),
    [
        (ALWAYS, 0, False, "restart", "first restart: no backoff"),
        (ALWAYS, 1, False, "restart", "first restart: no backoff"),
        (ALWAYS, 137, True, "restart", "OOM-killed; first restart: no backoff"),
        (ON_FAILURE, 0, False, "stay_stopped", "exited 0 under OnFailure"),
        (ON_FAILURE, 1, False, "restart", "first restart: no backoff"),
        (ON_FAILURE, 255, False, "restart", "first restart: no backoff"),
        (ON_FAILURE, 137, True, "restart", "OOM-killed; first restart: no backoff"),
        (ON_FAILURE, 0, True, "restart", "OOM-killed; first restart: no backoff"),
        (NEVER, 0, False, "stay_stopped", "policy Never"),
        (NEVER, 1, False, "stay_stopped", "policy Never"),
        (NEVER, 137, True, "stay_stopped", "policy Never"),
    ],
)
def test_policy_decides_whether_an_exit_restarts(
    policy: RestartPolicy, code: int, oom: bool, action: Action, reason: str
) -> None:
    """Always restarts on any exit, OnFailure on a failure (OOM included), Never never."""
    decision, _ = decide(policy, quick(code, oom=oom))
    assert decision == Decision(action, 0.0, reason)


@pytest.mark.parametrize(("policy", "code"), [(NEVER, 1), (ON_FAILURE, 0)])
def test_staying_stopped_keeps_the_state(policy: RestartPolicy, code: int) -> None:
    """A container that stays stopped keeps its restart count and backoff as they were."""
    state = RestartState(restart_count=4, next_backoff_s=80.0)
    decision, after = decide(policy, quick(code), state)
    assert decision.action == "stay_stopped"
    assert decision.delay_s == 0.0
    assert after is state


# --- the backoff ladder ------------------------------------------------------------------------


def test_quick_failures_climb_the_ladder_to_its_cap() -> None:
    """Crash after crash waits 0, 10, 20, 40, ... seconds, capped at 300, counting restarts."""
    state = RestartState()
    seen: list[tuple[float, str, int]] = []
    for i in range(9):
        decision, state = decide(ALWAYS, quick(at=1000.0 + 1000 * i), state)
        seen.append((decision.delay_s, decision.reason, state.restart_count))
    assert seen == [
        (0.0, "first restart: no backoff", 1),
        (10.0, "backoff 10 s after 1 restart", 2),
        (20.0, "backoff 20 s after 2 restarts", 3),
        (40.0, "backoff 40 s after 3 restarts", 4),
        (80.0, "backoff 80 s after 4 restarts", 5),
        (160.0, "backoff 160 s after 5 restarts", 6),
        (300.0, "backoff 300 s after 6 restarts", 7),
        (300.0, "backoff 300 s after 7 restarts", 8),
        (300.0, "backoff 300 s after 8 restarts", 9),
    ]


@pytest.mark.parametrize(
    ("ran", "delay", "reason", "next_backoff"),
    [
        (599.0, 160.0, "backoff 160 s after 5 restarts", 300.0),
        (600.0, 0.0, "ran 10 minutes: backoff reset", 10.0),
        (12 * 60 + 30, 0.0, "ran 12 minutes: backoff reset", 10.0),
        (5 * 3600, 0.0, "ran 5 hours: backoff reset", 10.0),
    ],
)
def test_a_long_run_resets_the_backoff_but_not_the_count(
    ran: float, delay: float, reason: str, next_backoff: float
) -> None:
    """A container that ran 10 minutes or more restarts at once; its restart count goes on."""
    state = RestartState(restart_count=5, next_backoff_s=160.0)
    decision, after = decide(ON_FAILURE, quick(2, ran=ran), state)
    assert decision == Decision("restart", delay, reason)
    assert after == RestartState(restart_count=6, next_backoff_s=next_backoff)


def test_after_a_reset_quick_failures_climb_again_from_the_start() -> None:
    """The crash after a reset waits the initial 10 s, then 20 s: the ladder starts over."""
    state = RestartState(restart_count=7, next_backoff_s=300.0)
    _, state = decide(ALWAYS, quick(ran=3600.0), state)
    delays = []
    for _ in range(2):
        decision, state = decide(ALWAYS, quick(), state)
        delays.append(decision.delay_s)
    assert delays == [10.0, 20.0]
    assert state.restart_count == 10


def test_oom_kills_back_off_like_any_failure() -> None:
    """An OOM kill climbs the same ladder, and its reason says it was one."""
    decision, _ = decide(ON_FAILURE, quick(137, oom=True),
                         RestartState(restart_count=2, next_backoff_s=20.0))
    assert decision == Decision("restart", 20.0, "OOM-killed; backoff 20 s after 2 restarts")


def test_settings_shape_the_ladder() -> None:
    """Another initial delay, factor and cap give another ladder: 0, 1, 3, 5, 5."""
    settings = BackoffSettings(initial_s=1.0, factor=3.0, max_s=5.0, reset_after_s=60.0)
    state = RestartState()
    delays = []
    for _ in range(5):
        decision, state = decide(ALWAYS, quick(), state, settings)
        delays.append(decision.delay_s)
    assert delays == [0.0, 1.0, 3.0, 5.0, 5.0]
    decision, _ = decide(ALWAYS, quick(ran=60.0), state, settings)
    assert decision == Decision("restart", 0.0, "ran 60 s: backoff reset")


def test_clocks_that_disagree_count_as_a_short_run() -> None:
    """A finish before the start (clock skew) is a zero-length run, not a reset."""
    exited = ContainerExit(exit_code=1, started_at=2000.0, finished_at=1000.0)
    assert exited.ran_s == 0.0
    decision, _ = decide(ALWAYS, exited, RestartState(restart_count=1, next_backoff_s=10.0))
    assert decision.delay_s == 10.0


def test_zero_initial_delay_restarts_at_once_every_time() -> None:
    """With no initial delay every restart is immediate, and the reason says so."""
    settings = BackoffSettings(initial_s=0.0)
    decision, state = decide(ALWAYS, quick(), RestartState(restart_count=3), settings)
    assert decision == Decision("restart", 0.0, "restart at once after 3 restarts")
    assert state == RestartState(restart_count=4, next_backoff_s=0.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial_s": -1.0},
        {"factor": 0.5},
        {"initial_s": 10.0, "max_s": 5.0},
        {"reset_after_s": 0.0},
    ],
)
def test_inconsistent_backoff_settings_are_refused(kwargs: dict[str, float]) -> None:
    """Settings that would make delays negative or shrinking fail where they are made."""
    with pytest.raises(ValueError, match="inconsistent backoff settings"):
        BackoffSettings(**kwargs)


def test_defaults_are_the_documented_ones() -> None:
    """The defaults are 10 s doubling to 300 s, reset after 600 s of running."""
    assert BackoffSettings() == BackoffSettings(initial_s=10.0, factor=2.0, max_s=300.0,
                                                reset_after_s=600.0)


def test_deciding_reads_no_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """decide() is pure: it works with the clocks broken, and the same inputs decide the same."""

    def broken() -> float:
        raise AssertionError("a clock was read")

    for name in ("time", "monotonic", "time_ns", "monotonic_ns", "perf_counter"):
        monkeypatch.setattr(time, name, broken)
    state = RestartState(restart_count=3, next_backoff_s=40.0)
    first = decide(ALWAYS, quick(), state)
    assert first == decide(ALWAYS, quick(), state)
    assert state == RestartState(restart_count=3, next_backoff_s=40.0)


# --- group states ------------------------------------------------------------------------------

W0 = ContainerState("Waiting")  # never started
W2 = ContainerState("Waiting", restart_count=2)  # waiting out a backoff
R = ContainerState("Running")
R1 = ContainerState("Running", restart_count=1)
T0 = ContainerState("Terminated", exit_code=0)
T1 = ContainerState("Terminated", exit_code=1)
TX = ContainerState("Terminated")  # exit code unknown


@pytest.mark.parametrize(
    ("policy", "states", "expected"),
    [
        # Pending: nothing yet, or a container that never started
        (ALWAYS, [], "Pending"),
        (NEVER, [W0], "Pending"),
        (ALWAYS, [R, W0], "Pending"),
        (ON_FAILURE, [T0, W0], "Pending"),
        # Running: a container runs, whatever the others did
        (ALWAYS, [R], "Running"),
        (NEVER, [R, T1], "Running"),
        (NEVER, [R, T0], "Running"),
        (ON_FAILURE, [R1, T0], "Running"),
        # Always: exited containers come back
        (ALWAYS, [T0], "Running"),
        (ALWAYS, [T1, T0], "Running"),
        (ALWAYS, [W2], "Running"),
        # a backoff in progress
        (ON_FAILURE, [W2, T0], "Running"),
        (ON_FAILURE, [T1], "Running"),
        (ON_FAILURE, [TX, T0], "Running"),
        # all done
        (NEVER, [T0, T0], "Succeeded"),
        (ON_FAILURE, [T0, T0], "Succeeded"),
        (NEVER, [T0, T1], "Failed"),
        (NEVER, [TX], "Failed"),
    ],
)
def test_group_state_follows_the_documented_rules(
    policy: RestartPolicy, states: list[ContainerState], expected: GroupState
) -> None:
    """Each mix of container states maps to the group state the rules name."""
    assert group_state(policy, states) == expected


@pytest.mark.parametrize("states", [[R], [T1], [W0], []])
def test_a_stopped_group_is_stopped(states: list[ContainerState]) -> None:
    """A group the user stopped reports Stopped, whatever its containers show."""
    for policy in RestartPolicy:
        assert group_state(policy, states, stopped=True) == "Stopped"
