"""Taking up a group an earlier skiff ran: what happened to it while no skiff watched.

skiff may stop (a crash, an upgrade) while conmon keeps its containers running,
and the node itself may restart, which takes everything held in memory or on a
tmpfs: the processes and their conmons, runc's and runsc's state and conmon's
exit files on /run, the network namespaces under /run/netns, the root
filesystems' and secret volumes' mounts, the cgroups. What stays is on the data
root: each group's instance view, its network slot's record (CNI's result, for
DEL and the address lease), its containers' logs and the exit files conmon
keeps in their ``persist/`` directories.

The first time a skiff process runs a group
(:meth:`~skiff.engine.group.supervisor.Supervisor.run`), before it prepares it,
the supervisor brings the group's record up to date, as if it had watched:

- a container its view records Running that no longer runs exited meanwhile:
  its exit is recorded as conmon wrote it (code and time; one whose conmon is
  gone with no exit file, as after a reboot, is recorded as lost, with 255) and
  the restart policy applies as the monitor would have applied it: Never keeps
  it Terminated, OnFailure restarts it after a failure, Always after any exit,
  with the restart count and backoff the monitor would have used
  (:func:`~skiff.engine.group.monitoring.after_exit`);
- a group whose network namespace is gone gets a new one. Containers still
  running in the old one (its mount was removed, by ``ip netns delete`` say)
  are unreachable there: they are stopped, the namespace first mounted again
  from one of them so that runsc and CNI's DEL find it (:func:`remount`), and
  restarted in the new one whatever the policy, since they never exited on
  their own (:func:`restart_moved`). A gVisor sandbox lives in the namespace:
  it goes with it and the next start makes a new one. A namespace that vanishes
  under a running skiff is replaced the same way, once the monitor sees it.

Each of these leaves an event saying why. What else a reboot took comes back
with the next start of each container, as any start makes it: a root
filesystem's mount (made anew each time), a secret volume's tmpfs (preparing
the volumes remakes one that is not in place), the cgroups (the runtime makes
them), the shim and holder of a sandbox (made when missing).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from skiff.core.view import ContainerView, State, iso
from skiff.engine.group.record import Group
from skiff.engine.group.restarts import RestartState
from skiff.engine.network.networks import Attachment, Networks
from skiff.engine.runtime.conmon import ContainerStatus
from skiff.engine.runtime.driver import RuntimeDriver
from skiff.errors import SkiffError

#: Why containers are stopped and the group's network made anew (events, detailStatus).
NETWORK_LOST = "the group's network namespace was lost"


def exited_meanwhile(group: Group,
                     driver: RuntimeDriver) -> Iterator[tuple[ContainerView, ContainerStatus]]:
    """The containers recorded Running that no longer run, with what the runtime knows
    of them; an event on each says what was found."""
    for view in group.view.all_containers():
        if view.current.state != "Running":
            continue
        status = driver.status(view.cid)
        if status.state == "running":
            continue
        if status.state == "missing":
            view.event("Lost", f"container {view.name} is gone with its monitor while skiff "
                               "was down (the node restarted?)", warning=True)
        else:
            when = iso(status.finished_at) or "an unknown time"
            view.event("Exited", f"container {view.name} exited with code "
                                 f"{status.exit_code} at {when}, while skiff was down",
                       warning=status.exit_code != 0)
        yield view, status


def running_pids(group: Group, driver: RuntimeDriver) -> list[int]:
    """The processes the runtime knows of the group's containers (a sandbox's first)."""
    cids = [*driver.group_containers(group.spec.id),
            *(view.cid for view in group.view.all_containers())]
    pids = []
    for cid in cids:
        status = driver.status(cid)
        if status.state == "running" and status.pid is not None:
            pids.append(status.pid)
    return pids


def remount(group: Group, attachment: Attachment, networks: Networks,
            driver: RuntimeDriver) -> bool:
    """Mount the group's lost namespace again from a process still in it, if one is;
    True if done. Then runsc reaches the group's sandbox to stop it, and CNI's DEL the
    namespace to take its interface away."""
    for pid in running_pids(group, driver):
        with contextlib.suppress(SkiffError):  # gone meanwhile, say: the next one
            networks.remount(attachment, pid)
            return True
    return False


def restart_moved(group: Group, view: ContainerView, stopped: ContainerStatus,
                  reason: str, now: float | None = None) -> None:
    """Record that skiff stopped ``view``'s container for ``reason`` and have it restart
    at once, whatever the policy: it did not exit on its own. Counted as a restart."""
    now = time.time() if now is None else now
    code = stopped.exit_code if stopped.exit_code is not None else 137
    view.transition(State("Terminated", view.current.start_time, code,
                          stopped.finished_at or now, f"Killed: {reason}"))
    state = group.restart_states.get(view.name) or RestartState(
        restart_count=view.restart_count)
    state = RestartState(restart_count=state.restart_count + 1,
                         next_backoff_s=state.next_backoff_s)
    group.restart_states[view.name] = state
    view.restart_count = state.restart_count
    group.restart_at[view.name] = now
