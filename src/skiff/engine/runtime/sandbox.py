"""gVisor sandboxes: one runsc sandbox per container group, its containers inside.

A group with ``isolation="sandbox"`` runs on runsc in multi-container mode
(its runtime driver is :class:`~skiff.engine.runtime.gvisor.GvisorDriver`),
as containerd's runsc shim runs a Kubernetes pod: a *holder* (a static
busybox sleeping in a tiny read-only rootfs under the data root, the
"pause" container) is the sandbox's first container, annotated
``io.kubernetes.cri.container-type=sandbox``; every container of the group
joins it (``container-type=container``, same ``sandbox-id``). The sandbox
lives as long as the holder, so an app container restarts inside the same
sandbox; the group's memory and CPU limits are the holder's cgroup's, which
holds gVisor's kernel (the sentry) and so everything the group runs.

Two facts of these hosts shape it (see DESIGN.md): runsc's netstack refuses
to start here, so runsc runs with ``--network=host`` *inside the group's
network namespace*, which leaves the namespace, its firewall and its DNS as
with runc; and runsc's control sockets are abstract unix sockets, bound to
the namespace, so every runsc command (conmon too) runs in it: the
:class:`~skiff.engine.runtime.oci.OciRuntime` of a sandboxed container says so.

conmon watches a container by waiting for the pid ``<runtime> create`` wrote,
which must become its child. runsc writes the *sandbox's* pid for every
container, which is no child of a member's conmon; and runsc gives a member
the stdio of ``runsc start``, not of ``runsc create``. So conmon runs a
member through :data:`SHIM`: ``create`` creates the member, then leaves
behind a waiter process (the pid conmon watches) that holds conmon's pipes,
waits for skiff's go on a fifo (``runc start``'s exec fifo, in reverse),
runs ``runsc start`` with those pipes as stdio (its outcome in ``started``,
its error in ``start.log``) and ends with the member's exit status from
``runsc wait``.

What differs from runc, per container:

- CPU and memory limits hold for the group as a whole (the sum of its
  containers', or its largest init container's, plus
  :data:`SANDBOX_OVERHEAD_BYTES` for gVisor itself), not per container: one
  container may use what another leaves. The pids limit stays per container.
- An OOM kill ends the sandbox, so every container of the group ends
  (137, ``OOMKilled``); the restart policy then starts them in a new one.
- ``exec`` with a TTY talks through a terminal on the host's side, but this
  runsc build (2022) shows it to the command as a plain file (isatty() is
  false inside); without a TTY, exec is as with runc.
- User namespaces (``RuntimeSettings.userns``) and seccomp profiles do not
  apply: gVisor's kernel stands between the containers and the host's.
- The containers share one kernel: loopback works between them (busybox's
  wget over loopback fails with EAGAIN under hostinet; nc works).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from skiff.core.spec import GroupSpec
from skiff.engine.runtime import cgroups
from skiff.engine.runtime.conmon import ConmonRuntime
from skiff.engine.runtime.oci import OciRuntime
from skiff.engine.spec import options as oci
from skiff.errors import RuntimeFailure
from skiff.settings import RuntimeSettings

#: gVisor's pod annotations (what containerd's CRI plugin writes).
CONTAINER_TYPE = "io.kubernetes.cri.container-type"
SANDBOX_ID = "io.kubernetes.cri.sandbox-id"
#: Memory the sandbox needs beyond its containers': gVisor's kernel (the
#: sentry) and its page tables live in the same cgroup. ≈ 40 MiB measured at
#: idle here; 64 MiB leaves room for its caches.
SANDBOX_OVERHEAD_BYTES = 64 << 20
#: The holder sleeps "for ever": 68 years, busybox's sleep takes no "infinity".
_SLEEP_S = "2147483647"
#: Where the holder's static busybox comes from (Debian's busybox-static).
HOST_BUSYBOX = Path("/bin/busybox")

#: conmon's runtime for a sandbox's members (see the module's docstring).
#: Called as ``shim --runsc=PATH --mode=holder|member [runsc flags] create
#: --bundle B --pid-file P [other create flags] ID``, already in the netns.
SHIM = r"""#!/bin/sh
# skiff's runsc shim for conmon (generated; see skiff.engine.runtime.sandbox).
runsc=runsc mode=member flags=
while [ $# -gt 0 ]; do
  case $1 in
    --runsc=*) runsc=${1#--runsc=} ;;
    --mode=*) mode=${1#--mode=} ;;
    create) shift; break ;;
    *) flags="$flags $1" ;;
  esac
  shift
done
bundle=. pidfile= id=
while [ $# -gt 0 ]; do
  case $1 in
    --bundle|-b) bundle=$2; shift ;;
    --pid-file) pidfile=$2; shift ;;
    --console-socket) shift ;;
    -*) ;;
    *) id=$1 ;;
  esac
  shift
done
if [ "$mode" = holder ]; then
  exec "$runsc" $flags create --bundle "$bundle" --pid-file "$pidfile" "$id"
fi
"$runsc" $flags create --bundle "$bundle" --pid-file "$bundle/sandbox.pid" "$id" \
  </dev/null >/dev/null || exit $?
fifo=$bundle/start
rm -f "$fifo" "$bundle/started" "$bundle/start.log" && mkfifo -m 600 "$fifo" || exit 1
exec 3<>"$fifo"
(
  read -r go <&3
  exec 3<&-
  [ "$go" = start ] || exit 137
  "$runsc" $flags --log="$bundle/start.log" start "$id"
  rc=$?
  echo "$rc" > "$bundle/started"
  [ "$rc" = 0 ] || exit 128
  result=$("$runsc" $flags wait "$id" </dev/null 2>/dev/null)
  code=${result##*\"exitStatus\":}
  code=${code%%[!0-9]*}
  exit "${code:-137}"
) &
echo $! > "$pidfile"
"""


def holder_id(group_id: str) -> str:
    """The holder's container id, which is also the sandbox's id (short: socket paths)."""
    return "sb" + hashlib.sha256(f"{group_id}\0sandbox".encode()).hexdigest()[:14]


def group_resources(spec: GroupSpec) -> tuple[float, int]:
    """(CPU cores, memory bytes) for the whole sandbox: the app containers' sum,
    or the largest init container's if more (they run alone, before the apps)."""
    cpu = sum(c.resources.effective_cpu for c in spec.containers)
    memory = sum(c.resources.effective_memory_bytes for c in spec.containers)
    for init in spec.init_containers:
        cpu = max(cpu, init.resources.effective_cpu)
        memory = max(memory, init.resources.effective_memory_bytes)
    return cpu, memory


def member_spec(spec: dict[str, Any], sandbox_id: str) -> dict[str, Any]:
    """A container's OCI spec, made a member of the sandbox ``sandbox_id``.

    Its CPU and memory limits go: the host enforces the sandbox's (the
    group's total) on the holder's cgroup, where gVisor runs every member;
    a member's own cgroup holds only its file proxy (gofer), which must not
    be starved. The pids limit stays, for the gofer.
    """
    oci.with_annotations({CONTAINER_TYPE: "container", SANDBOX_ID: sandbox_id})(spec)
    resources = spec["linux"].get("resources", {})
    resources.pop("cpu", None)
    resources.pop("memory", None)
    return spec


class Sandboxes:
    """The node's gVisor sandboxes: their holders and how runsc is called for them."""

    def __init__(self, data_root: Path, runtime: ConmonRuntime,
                 settings: RuntimeSettings | None = None) -> None:
        self.settings = settings or RuntimeSettings()
        self.runtime = runtime
        self.root = runtime.run_dir / "runsc"  # runsc's state (its --root)
        self.shim = runtime.run_dir / "runsc-shim"
        self.rootfs = data_root / "sandbox" / "rootfs"
        self._lock = threading.Lock()
        self._group_locks: dict[str, threading.Lock] = {}
        #: Holders being started, per group (see :meth:`ensure`).
        self._starting: dict[str, concurrent.futures.Future[None]] = {}
        self._ready = False

    def _setup(self) -> None:
        """The shim and the holder's rootfs, made once (and again if removed)."""
        if self._ready and self.shim.exists() and (self.rootfs / "bin" / "busybox").exists():
            return
        self.runtime.prepare()  # the run directory's tmpfs: runsc's state holds the specs
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.shim.with_name(self.shim.name + ".tmp")
        tmp.write_text(SHIM)
        os.chmod(tmp, 0o700)  # only root (conmon) runs it
        os.replace(tmp, self.shim)
        busybox = self.rootfs / "bin" / "busybox"
        if not busybox.exists():
            for sub in ("bin", "proc", "dev", "sys", "etc"):
                (self.rootfs / sub).mkdir(parents=True, exist_ok=True)
            try:
                shutil.copy2(HOST_BUSYBOX, busybox.with_suffix(".tmp"))
            except OSError as exc:
                raise RuntimeFailure(f"cannot make the sandbox holder: {exc}") from exc
            os.replace(busybox.with_suffix(".tmp"), busybox)
        self._ready = True

    def oci_runtime(self, netns: Path, *, holder: bool = False) -> OciRuntime:
        """How runsc is called for a container of the sandbox in ``netns``."""
        return OciRuntime(
            program=self.settings.runsc, root=self.root,
            flags=("--network=host", *self.settings.runsc_flags), netns=netns,
            shim=str(self.shim), shim_args=(f"--runsc={self.settings.runsc}",
                                            f"--mode={'holder' if holder else 'member'}"),
            member=not holder)

    def _group_lock(self, group_id: str) -> threading.Lock:
        with self._lock:
            return self._group_locks.setdefault(group_id, threading.Lock())

    def ensure(self, spec: GroupSpec, netns: Path, cgroup_parent: str) -> str:
        """The group's sandbox: adopted if it runs, else (re)made. Returns its id,
        which members name in their annotations.

        A new holder is created here and started on a thread of its own: runsc
        lets members be created meanwhile (≈ 45 ms saved of a ≈ 350 ms start);
        :meth:`wait_started` comes before a member's start."""
        sid = holder_id(spec.id)
        with self._group_lock(spec.id):
            if self.runtime.status(sid).state == "running":
                return sid
            self._setup()
            self.runtime.delete(sid)  # a dead one's leftovers
            cpu, memory = group_resources(spec)
            holder = oci.default_spec(
                oci.with_process(["/bin/busybox", "sleep", _SLEEP_S], ["PATH=/bin"]),
                oci.with_root(self.rootfs, readonly=True),
                oci.with_hostname(spec.name[:63]),
                oci.with_resources(max(cpu, self.settings.sandbox_startup_cpu),
                                   memory + SANDBOX_OVERHEAD_BYTES, 4096),
                oci.with_cgroups_path(f"{cgroup_parent}/{sid}"),
                oci.with_annotations({CONTAINER_TYPE: "sandbox", SANDBOX_ID: sid}),
                network_path=str(netns))
            runtime = self.oci_runtime(netns, holder=True)
            self.runtime.create(sid, holder, name=f"{spec.name}_sandbox", oci=runtime)
            started: concurrent.futures.Future[None] = concurrent.futures.Future()
            self._starting[spec.id] = started
            threading.Thread(target=self._start_holder, name=f"skiff-sandbox-{sid}",
                             args=(sid, f"{cgroup_parent}/{sid}", cpu, started),
                             daemon=True).start()
            return sid

    def _start_holder(self, sid: str, cgroup: str, cpu: float,
                      started: concurrent.futures.Future[None]) -> None:
        try:
            self.runtime.start(sid)
            if cpu < self.settings.sandbox_startup_cpu:
                with contextlib.suppress(OSError):
                    cgroups.set_cpu_quota(cgroup, cpu)
        except Exception as exc:  # the members' start reports it
            self.runtime.delete(sid)  # the next ensure() makes a new one
            started.set_exception(exc)
        else:
            started.set_result(None)

    def wait_started(self, group_id: str) -> None:
        """Return once the group's sandbox runs; raise what kept it from it."""
        with self._lock:
            started = self._starting.get(group_id)
        if started is not None:
            try:
                started.result(timeout=self.settings.create_timeout_s)
            except concurrent.futures.TimeoutError as exc:
                raise RuntimeFailure("the sandbox did not start in time") from exc

    def cgroup(self, group_id: str, cgroup_parent: str) -> str:
        """The sandbox's cgroup: where the group's limits and OOM kills are."""
        return f"{cgroup_parent}/{holder_id(group_id)}"

    def remove(self, group_id: str, *, remove_logs: bool) -> None:
        """Stop the group's sandbox and remove its state. Idempotent; members first."""
        sid = holder_id(group_id)
        with self._lock:
            started = self._starting.get(group_id)
        if started is not None:
            with contextlib.suppress(Exception):
                started.result(timeout=self.settings.create_timeout_s)
        with self._group_lock(group_id):
            if remove_logs:
                self.runtime.remove(sid)
            elif self.runtime.dir(sid).exists():
                self.runtime.delete(sid)
        with self._lock:
            self._group_locks.pop(group_id, None)
            self._starting.pop(group_id, None)
