"""A Supervisor for tests and benchmarks, and everything it made removed after.

Every test or benchmark that runs groups needs the same clean-up: its groups,
the sandboxes skiff may have lost track of, the network pool, bridge and host
guard, the idmapped views, the cgroups and the run directory. Each step runs
even when one before it fails, so nothing leaks from a failed run.
:func:`cached_busybox` gives such a Supervisor a busybox image pulled from a
local registry, as the benchmarks start from (:func:`bench_node`: both, on a data
root of its own); :func:`wait_view` waits for a group's instance view to show what a
test expects; :func:`remove_everything` deletes a node's groups all at once, for the
clean-ups.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from skiff.core.view import GroupView
from skiff.engine.group.supervisor import Supervisor
from skiff.engine.network import firewall
from skiff.engine.network.networks import Networks
from skiff.engine.runtime import cgroups, rundir
from skiff.engine.runtime.gvisor import GvisorDriver
from skiff.settings import NetworkSettings, Settings
from skiff.testing.images import ImageSpec, Layout, busybox_layer, push
from skiff.testing.registry import running_registry
from skiff.testing.waiting import NeverHappened, eventually


def runsc_pids(root: Path) -> list[int]:
    """Processes of runsc (sandboxes, gofers) whose state lives under ``root``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if argv[0].startswith(b"runsc") and f"--root={root}".encode() in argv:
                found.append(int(entry.name))
    return found


def runsc_roots(supervisor: Supervisor) -> list[Path]:
    """The state directories (``--root``) of the supervisor's gVisor sandboxes."""
    return [driver.sandboxes.root for driver in supervisor.drivers.values()
            if isinstance(driver, GvisorDriver)]


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def remove_everything(supervisor: Supervisor) -> None:
    """Every group the supervisor runs deleted, all at once (a container that ignores
    SIGTERM holds its group's delete for the whole stop grace: one after the other, a
    test's groups cost a grace each), then whatever else is on the node swept, as
    :meth:`Supervisor.sweep` finds it. A group that fails to go is left to the sweep."""
    groups = supervisor.group_ids()
    if groups:
        with ThreadPoolExecutor(max_workers=min(16, len(groups)),
                                thread_name_prefix="skiff-test-delete") as pool:
            for done in [pool.submit(supervisor.delete, group) for group in groups]:
                with contextlib.suppress(Exception):
                    done.result()
    supervisor.sweep(())


@contextlib.contextmanager
def supervising(settings: Settings, *, pool_size: int = 1, allow: Sequence[str] = (),
                **options: Any) -> Iterator[Supervisor]:
    """A Supervisor on ``settings`` (``options`` go to it: backoff, monitor
    interval) whose fetches may reach the local endpoints ``allow`` too (the tests'
    registries); everything it made goes after."""
    if allow:
        network = replace(settings.network, allow_local_endpoints=(
            *settings.network.allow_local_endpoints, *allow))
        settings = replace(settings, network=network)
    networks = Networks(settings.data_root, NetworkSettings(pool_size=pool_size))
    supervisor = Supervisor(settings, networks=networks, **options)
    try:
        yield supervisor
    finally:
        with contextlib.ExitStack() as cleanup:
            cleanup.callback(supervisor.images.rootfs.unmount_views)
            cleanup.callback(rundir.remove, supervisor.runtime.run_dir)
            cleanup.callback(cgroups.remove, f"/{supervisor.runtime.run_dir.name}")
            cleanup.callback(subprocess.run, ["ip", "link", "del", networks.bridge],
                             capture_output=True, check=False)
            cleanup.callback(firewall.remove_host_guard, networks.bridge)
            cleanup.callback(networks.close)
            cleanup.callback(networks.drain_pool)
            for root in runsc_roots(supervisor):
                for pid in runsc_pids(root):  # sandboxes skiff lost
                    cleanup.callback(kill, pid)
            cleanup.callback(supervisor.close)
            # Every group on the node, those it knows only from disk included (run by
            # another Supervisor on this data root), and any container no group owns.
            cleanup.callback(remove_everything, supervisor)


@contextlib.contextmanager
def cached_busybox(engine: Supervisor, work: Path) -> Iterator[str]:
    """A busybox-static image pushed to a registry on loopback and pulled by
    ``engine`` (its pool warm too); yields its reference while the registry runs."""
    layout = Layout(work / "layout")
    layout.tag("1", layout.image(ImageSpec(layers=[busybox_layer])))
    with running_registry(work / "registry") as registry:
        engine.fetching.allow(registry.host)
        push(work / "layout", "1", registry.host, "bench/busybox")
        image = f"{registry.host}/bench/busybox:1"
        engine.images.pull(image)
        engine.networks.prewarm()
        yield image


@contextlib.contextmanager
def bench_node(*, pool_size: int = 4, **fields: Any) -> Iterator[tuple[Supervisor, str]]:
    """A benchmark's node: a Supervisor on a temporary data root (``fields`` go to its
    Settings) and the reference of a cached busybox image; all of it removed after."""
    work = Path(tempfile.mkdtemp(prefix="skiff-bench-"))
    try:
        settings = Settings(data_root=work / "root", **fields)
        with supervising(settings, pool_size=pool_size) as engine, \
                cached_busybox(engine, work) as image:
            yield engine, image
    finally:
        shutil.rmtree(work, ignore_errors=True)


def wait_view(engine: Supervisor, group_id: str, condition: Callable[[GroupView], object],
              timeout_s: float = 20) -> GroupView:
    """The group's view once ``condition`` holds for it; NeverHappened, with the last view
    seen, if it does not within ``timeout_s``."""
    seen: list[GroupView] = []

    def check() -> GroupView | None:
        seen[:] = [engine.view(group_id)]
        return seen[0] if condition(seen[0]) else None

    try:
        found = eventually(check, what=f"group {group_id}'s view to match", timeout_s=timeout_s)
    except NeverHappened as exc:
        raise NeverHappened(f"{exc}; its last view: {seen[0] if seen else None}") from None
    assert found is not None  # eventually() returns a truthy value
    return found
