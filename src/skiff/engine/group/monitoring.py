"""What the monitor makes of what it sees: exits, the restart policy, probes.

The supervisor's monitor thread looks at every running container a few
times a second. The decisions it takes are here, as functions of a group's
record: how an exit is recorded (OOM kills included, as the kernel reports
them in the memory cgroup), whether and when the restart policy brings a
container back (:func:`skiff.engine.group.restarts.decide` holds the backoff
rules), which restarts a new skiff process must resume, and what probe
results mean. Probes run on the supervisor's pool so the monitor never waits
on one. The loop itself, and starting containers, stay in the supervisor.
"""

from __future__ import annotations

import concurrent.futures
import signal
import time
from pathlib import Path

from skiff.core.spec import RestartPolicy
from skiff.core.view import ContainerView, State
from skiff.engine.group.probes import run_probe
from skiff.engine.group.record import Group, pairs
from skiff.engine.group.restarts import ContainerExit, decide
from skiff.engine.runtime.conmon import ContainerStatus
from skiff.engine.runtime.driver import RuntimeDriver
from skiff.settings import BackoffSettings


def terminated(view: ContainerView, status: ContainerStatus, oom: bool) -> ContainerExit:
    """Record that ``view``'s container exited as ``status`` says; returns the exit."""
    code = status.exit_code if status.exit_code is not None else 255
    finished = status.finished_at or time.time()
    started = view.current.start_time or finished
    detail = "OOMKilled" if oom else ("Completed" if code == 0 else "Error")
    if status.state == "missing":
        detail = "lost: its monitor is gone (node restarted?)"
    view.transition(State("Terminated", started, code, finished, detail))
    if oom:
        view.event("OOMKilled", f"container {view.name} ran out of memory and was killed",
                   warning=True)
    return ContainerExit(exit_code=code, started_at=started, finished_at=finished, oom=oom)


def after_exit(group: Group, view: ContainerView, exited: ContainerExit,
               backoff: BackoffSettings) -> str | None:
    """Apply the restart policy to an exit: schedule the restart, if any; returns
    why the group fails when a failed init container stays stopped."""
    if view.init and exited.exit_code == 0 and not exited.oom:
        return None  # done: the supervisor starts the next one
    decision, state = decide(group.spec.restart_policy, exited,
                             group.restart_states.get(view.name), backoff)
    if decision.action == "stay_stopped":
        if view.init:
            return f"init container {view.name} failed with exit code {exited.exit_code}"
        return None
    group.restart_states[view.name] = state
    view.restart_count = state.restart_count
    group.restart_at[view.name] = exited.finished_at + decision.delay_s
    if decision.delay_s > 0:
        view.event("BackOff", f"back-off restarting failed container {view.name}: "
                              f"{decision.reason}", warning=True)
    return None


def resume_restarts(group: Group) -> None:
    """After a restart of skiff, restart what was waiting to restart: its
    timer was in the previous process's memory (a restart already scheduled,
    for an exit seen on adoption, keeps its time)."""
    now = time.time()
    for _container, view in pairs(group):
        current = view.current
        if current.state != "Terminated":
            continue
        failed = current.exit_code != 0
        policy = group.spec.restart_policy
        if view.init and not failed:
            continue
        if policy is RestartPolicy.ALWAYS or (policy is RestartPolicy.ON_FAILURE and failed):
            group.restart_at.setdefault(view.name, now)


def run_probes(group: Group, pool: concurrent.futures.Executor, driver: RuntimeDriver,
               now: float) -> bool:
    """Start the probes that are due, take the results of those done; True when a
    container was killed for failing its liveness probe."""
    changed = False
    for container, view in pairs(group):
        if view.current.state != "Running":
            continue
        for kind in ("liveness", "readiness"):
            probe = getattr(container, kind)
            state = group.probes.get((container.name, kind))
            if probe is None or state is None:
                continue
            if state.due(probe, now):  # checks run on the pool: the monitor never waits
                state.pending = pool.submit(run_probe, probe, driver, view.cid,
                                            group.attachment)
            if state.pending is None or not state.pending.done():
                continue
            ok, message = state.pending.result()
            state.pending = None
            verdict = state.record(probe, ok, now)
            if kind == "readiness" and verdict is not None:
                view.ready = verdict
            if not ok:
                view.event("Unhealthy", f"{kind.capitalize()} probe failed: {message}",
                           warning=True)
            if kind == "liveness" and verdict is False:
                view.event("Killing", f"container {container.name} failed its liveness "
                                      "probe and will be restarted")
                driver.kill(view.cid, signal.SIGKILL, all_processes=True)
                changed = True
    return changed


def oom_in_cgroup(cgroup: str) -> bool:
    """Whether the kernel's OOM killer struck in the memory cgroup (v1)."""
    try:
        text = Path(f"/sys/fs/cgroup/memory{cgroup}/memory.oom_control").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip() not in ("", "0"):
            return True
    return False
