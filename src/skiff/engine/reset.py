"""``skiff node reset``: take everything a data root's node put on the host away again.

A node leaves things on the host beyond its data root, on purpose: containers
outlive ``skiff serve`` (conmon holds them, the next server adopts them), and
so do the warm pool's network namespaces, the bridges, the firewall's tables
and rules, the node's cgroups, the mounts (root filesystems, idmapped views of
the image store, secret volumes' tmpfs) and ``/run/skiff-<hash>``. A reset
removes all of them, so the host's network, firewall, cgroups, mounts and
``/run`` are as they were before skiff; the data root (store, CA, tokens,
images, logs, the groups' records) stays, unless purged, and the next
``skiff serve`` starts the groups its store holds again, as after a reboot.

It refuses while a server runs on the data root (the serve lock,
:func:`~skiff.engine.locking.claim_node`) or while groups run (a conmon of the
node, or any process in the node's cgroup), unless forced: then their
containers get SIGTERM and, after ``grace_s``, SIGKILL. The order matters:

1. containers (members before gVisor sandboxes' holders, whose runsc calls
   need the group's namespace), their root filesystems;
2. networks through their records (CNI DEL, pools drained, virtual networks
   removed), then by name whatever no record names
   (:mod:`~skiff.engine.network.leftovers`), then the records themselves;
3. the node's cgroup in every hierarchy, whatever is still in it killed;
4. every mount below the data root and the run directory, deepest first, and
   loop devices backed by files below the data root;
5. the run directory; with ``purge``, the data root (only once nothing is
   mounted below it, so a file share's content is never deleted through it).

Then it looks again: what is still there is reported, not hidden.

What stays, on purpose: IP forwarding (the bridge plugin turns it on, and other
software on the host may rely on it), proxy ARP on a ``--public-interface``, and
``/run/netns`` as a shared mount point (as ``ip netns`` leaves it: another
skiff or ``ip netns`` may be making namespaces there at that very moment).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from skiff.engine import mounts
from skiff.engine.images import ImageStore
from skiff.engine.locking import claim_node
from skiff.engine.network import leftovers
from skiff.engine.network.fetching import FetchNamespace
from skiff.engine.network.networks import Networks
from skiff.engine.runtime import cgroups, rundir
from skiff.engine.runtime.conmon import ConmonRuntime, run_dir_for
from skiff.errors import InvalidInput, NodeBusy, SkiffError
from skiff.settings import Settings

#: How long a reset waits for detached loop devices to be released by the kernel.
LOOP_RELEASE_S = 5.0

log = logging.getLogger(__name__)

#: What a data root holds (any of it): a purge refuses a directory with none of these
#: and other files, so that a mistyped ``--data-root`` never deletes someone's data.
DATA_ROOT_MARKS = frozenset({"skiff.db", "ca.pem", "admin.token", "serve.lock", "network",
                             "images", "containers", "groups", "volumes", "sandbox",
                             "shares", "configmaps"})


@dataclass(frozen=True)
class Monitor:
    """A conmon of the node: it watches one container."""

    pid: int
    cid: str
    #: conmon's ``-n``: ``<group name>_<container name>``.
    name: str

    @property
    def group(self) -> str:
        return self.name.rpartition("_")[0] or self.name


def _argument(argv: list[str], flag: str) -> str | None:
    with contextlib.suppress(ValueError, IndexError):
        return argv[argv.index(flag) + 1]
    return None


def monitors(run_dirs: tuple[Path, ...]) -> list[Monitor]:
    """The conmon processes whose exit directory is in one of ``run_dirs``."""
    exits = {str(d / "exits") for d in run_dirs}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = [a.decode(errors="replace")
                    for a in (entry / "cmdline").read_bytes().split(b"\0")]
        except OSError:
            continue  # gone meanwhile
        if Path(argv[0]).name != "conmon" or _argument(argv, "--exit-dir") not in exits:
            continue
        cid = _argument(argv, "-c") or "?"
        found.append(Monitor(int(entry.name), cid, _argument(argv, "-n") or cid))
    return sorted(found, key=lambda m: m.cid)


@dataclass
class Outcome:
    """What a reset did, and what it could not undo (each one line)."""

    removed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class NodeReset:
    """The reset of one data root's node."""

    def __init__(self, settings: Settings, *, grace_s: float | None = None) -> None:
        self.settings = settings
        self.data_root = settings.data_root
        self.grace_s = settings.runtime.stop_grace_s if grace_s is None else grace_s
        # The server names it from the data root as given; the tag hashes it resolved.
        given = settings.runtime.run_dir
        dirs = [given] if given else [run_dir_for(self.data_root),
                                      run_dir_for(self.data_root.resolve())]
        self.run_dirs = tuple(dict.fromkeys(dirs))
        self.cgroups = tuple(f"/{d.name}" for d in self.run_dirs)
        self.outcome = Outcome()

    # ---- what runs --------------------------------------------------------------------

    def busy(self) -> str | None:
        """Why a reset without force must refuse (groups run), or None."""
        running = monitors(self.run_dirs)
        if running:
            groups = sorted({m.group for m in running})
            return (f"{len(groups)} group(s) still run on {self.data_root}: "
                    f"{', '.join(groups[:10])}{' ...' if len(groups) > 10 else ''} "
                    f"({len(running)} container(s)); delete or stop them first "
                    "(skiff container delete/stop, with the server running), or pass "
                    "--force to stop them")
        stray = set().union(*(cgroups.pids(path) for path in self.cgroups))
        if stray:
            return (f"{len(stray)} process(es) still run in the node's cgroup "
                    f"{self.cgroups[0]}; pass --force to kill them")
        return None

    # ---- the reset --------------------------------------------------------------------

    def run(self, *, force: bool = False, purge: bool = False) -> Outcome:
        """Reset the node (see the module's docstring); NodeBusy if a server or, without
        ``force``, groups run; InvalidInput if ``purge`` names no data root."""
        with claim_node(self.data_root):
            if not force and (why := self.busy()) is not None:
                raise NodeBusy(why)
            if purge:
                check_purgeable(self.data_root)
            node = leftovers.node_network(self.data_root)
            existed = [d for d in self.run_dirs if d.exists()]  # the runtime makes its own
            self._containers()
            self._networks(node)
            self._cgroups()
            self._mounts()
            for run_dir in self.run_dirs:
                rundir.remove(run_dir)  # its tmpfs too
                if run_dir in existed:
                    self._removed(f"the run directory {run_dir}")
            if purge:
                self._purge()
            left = self.remaining(node)
        self.outcome.removed = [line for line in self.outcome.removed if line not in left]
        self.outcome.failed += [f"still there: {line}" for line in left]
        return self.outcome

    def _removed(self, what: str) -> None:
        self.outcome.removed.append(what)

    def _containers(self) -> None:
        """Stop and delete every container of the node (members first, holders last),
        remove their root filesystems, and kill conmons no container directory names."""
        if (self.data_root / "containers").is_dir():
            # The run directory the server used (the data root as given, or resolved).
            run_dir = next((d for d in self.run_dirs if d.is_dir()), self.run_dirs[0])
            runtime = ConmonRuntime(self.data_root, replace(self.settings.runtime,
                                                            run_dir=run_dir))
            names = {m.cid: m.group for m in monitors(self.run_dirs)}
            cids = runtime.ids()
            holders = [c for c in cids if runtime.oci(c).shim and not runtime.oci(c).member]
            for batch in ([c for c in cids if c not in holders], holders):
                with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
                    list(pool.map(lambda cid: self._stop(runtime, cid, names), batch))
            self._rootfses(cids)
        for monitor in monitors(self.run_dirs):  # its directory was gone
            with contextlib.suppress(ProcessLookupError):
                os.kill(monitor.pid, signal.SIGKILL)
            self._removed(f"conmon {monitor.pid} of container {monitor.cid}")

    def _stop(self, runtime: ConmonRuntime, cid: str, names: dict[str, str]) -> None:
        try:
            ran = runtime.stop(cid, self.grace_s).state != "missing" and cid in names
            runtime.delete(cid)
        except SkiffError as exc:  # the cgroup's kill and the run directory's removal follow
            log.warning("container %s: %s", cid, exc.message)
            return
        if ran:
            self._removed(f"container {cid} of group {names[cid]} (stopped)")

    def _rootfses(self, cids: list[str]) -> None:
        if not (self.settings.images_root / "rootfs").is_dir():
            return
        images = ImageStore(self.settings.images_root, self.settings.images)
        for cid in cids:
            if (self.settings.images_root / "rootfs" / cid).exists():
                with contextlib.suppress(SkiffError):  # what stays mounted is swept below
                    images.remove_rootfs(cid)
                    self._removed(f"root filesystem of container {cid}")

    def _networks(self, node: leftovers.NodeNetwork) -> None:
        """The networks through their records (CNI DEL), then by name what is left,
        then the records; what was there at first is what the reset removed."""
        netns_dir = self.settings.network.netns_dir
        fetching = FetchNamespace(self.data_root, self.settings.network)
        if fetching.path.exists():
            self._quietly(fetching.close)
            self._removed(f"the fetch namespace {fetching.path.name}, its veth {fetching.veth} "
                          f"and its table {fetching.table}")
        there = leftovers.find(node, netns_dir)
        root = self.data_root / "network"
        if root.is_dir():
            networks = Networks(self.data_root, replace(self.settings.network, pool_size=0))
            try:
                for group_id in networks.list():
                    self._quietly(networks.teardown, group_id)
                self._quietly(networks.drain_pool)
                for vnet in networks.vnets():
                    self._quietly(networks.remove_vnet, vnet)
            finally:
                networks.close()
        self.outcome.failed += leftovers.remove(leftovers.find(node, netns_dir))
        if root.is_dir():
            forget_slots(root)
        for line in there.describe():
            self._removed(line)

    @staticmethod
    def _quietly(step: Callable[..., None], *args: str) -> None:
        try:
            step(*args)
        except (SkiffError, OSError) as exc:  # the sweep by name comes next
            log.warning("%s: %s", getattr(step, "__name__", step), exc)

    def _cgroups(self) -> None:
        for path in self.cgroups:
            if not cgroups.exists(path):
                continue
            left = cgroups.kill(path)
            if left:
                self.outcome.failed.append(f"processes {sorted(left)} of {path} do not die")
            cgroups.remove(path)
            self._removed(f"cgroup {path}")

    def _mounts(self) -> None:
        for top in (self.data_root, *self.run_dirs):
            if not top.exists():
                continue
            done, failed = mounts.unmount_below(top)
            for point in done:
                self._removed(f"mount {point}")
            self.outcome.failed += failed
        for device, file in mounts.loop_devices_below(self.data_root):
            err = mounts.detach_loop(device)
            if err:
                self.outcome.failed.append(f"cannot detach {device}: {os.strerror(err)}")
            else:
                self._removed(f"loop device {device} ({file})")
        self._await_loops_released()

    def _await_loops_released(self, timeout_s: float = LOOP_RELEASE_S) -> None:
        """Wait (bounded) for the loop devices just detached to go: a device still held
        open (an unmount the kernel finishes lazily) is only marked to clear itself when
        its last user closes it, so it may outlive its detach for a moment."""
        deadline = time.monotonic() + timeout_s
        while mounts.loop_devices_below(self.data_root) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _purge(self) -> None:
        root = self.data_root
        if not root.exists():
            return
        if mounts.strictly_below(root):
            self.outcome.failed.append(f"{root} stays: something is still mounted below it")
            return
        if root.resolve() in mounts.mount_points():  # its own filesystem: empty it
            for child in root.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        else:
            shutil.rmtree(root)
        self._removed(f"the data root {root}")

    # ---- what is left ---------------------------------------------------------------

    def remaining(self, node: leftovers.NodeNetwork) -> list[str]:
        """What of the node is still on the host, one line each."""
        left = [f"conmon {m.pid} of container {m.cid}" for m in monitors(self.run_dirs)]
        left += leftovers.find(node, self.settings.network.netns_dir).describe()
        left += [f"cgroup {path}" for path in self.cgroups if cgroups.exists(path)]
        for top in (self.data_root, *self.run_dirs):
            left += [f"mount {p}" for p in mounts.strictly_below(top)]
        left += [f"loop device {d}" for d, _ in mounts.loop_devices_below(self.data_root)]
        left += [f"run directory {d}" for d in self.run_dirs if d.exists()]
        return left


def check_purgeable(data_root: Path) -> None:
    """InvalidInput unless ``data_root`` is missing, empty or holds skiff's files: a purge
    deletes it whole."""
    if not data_root.exists():
        return
    resolved = data_root.resolve()
    if resolved == Path("/") or not data_root.is_dir():
        raise InvalidInput(f"{data_root} is no skiff data root: not purging it")
    names = set(os.listdir(data_root))
    if names and not names & DATA_ROOT_MARKS:
        raise InvalidInput(f"{data_root} holds no skiff data (no skiff.db, images, ...): "
                           "not purging it")


def forget_slots(root: Path) -> None:
    """Drop the network records of ``<data root>/network`` once their namespaces are
    gone: slots of pools, work and groups, their locks and the address leases. The
    remembered subnet (``network.json``) stays."""
    for name in ("pool", "pools", "work", "groups", "locks", "ipam", "vnets"):
        directory = root / name
        if directory.is_dir():
            for child in directory.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
