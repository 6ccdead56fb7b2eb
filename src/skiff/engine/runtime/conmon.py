"""Containers on an OCI runtime (runc), each watched by its own conmon.

Why conmon: it holds the container's stdio, writes its log (k8s-file
format) and its exit code, and outlives skiff's own process, so containers
keep running when skiff dies and skiff adopts them again when it starts (as
CRI-O and Podman do). skiff never waits on a container process itself: the
exit code lands in a file, which is what :meth:`ConmonRuntime.status` reads.

Start-up: conmon returns before ``runc create`` has finished; it reports the
container's pid, or the runtime's error (command not found, bad mount), on
its sync pipe (``_OCI_SYNCPIPE``), which :meth:`create` reads. Then ``runc
start`` runs the process.

Where things live::

    <data root>/containers/<cid>/   what outlives an instance: logs, conmon's files
        ctr.log -> ctr.log.1|2      this instance's output (cut by conmon, kept by skiff)
        prev.log                    the previous instance's output
        persist/                    conmon's exit and oom files (they outlive a reboot)
        runtime.json                the OCI runtime that made it
    /run/skiff-<hash>/              a 0700 tmpfs (see skiff.engine.runtime.rundir):
        bundles/<cid>/              the bundle: config.json (secure values in clear, as
                                    runc needs them), conmon's fifos and attach socket
        runtime/, runsc/            runc's and runsc's state
        sock/, exits/               conmon's sockets and exit files

The bundle lives as long as the runtime's container: :meth:`ConmonRuntime.create`
writes it from the spec, :meth:`~ConmonRuntime.delete` removes it, so a stopped
container leaves no copy of its environment anywhere.

A container may run on another OCI runtime than the node's runc: its
:class:`~skiff.engine.runtime.oci.OciRuntime` (kept in ``runtime.json`` beside its
spec, so a restarted skiff still kills and deletes it right) says which
program, with which flags, in which network namespace; gVisor sandboxes use
that (see :mod:`skiff.engine.runtime.sandbox`). How such a program is called, and
where runc and runsc differ, is :mod:`skiff.engine.runtime.oci`'s; reading,
following conmon's logs is :mod:`skiff.engine.runtime.logs`'s, keeping them within
their limit :mod:`skiff.engine.runtime.logfiles`'s. This
module keeps the container's lifecycle: conmon, its files, and the state
they tell.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skiff.engine.runtime import rundir
from skiff.engine.runtime.logfiles import LOG, keep, prepare, retire_log, watch
from skiff.engine.runtime.logs import follow_log, read_log
from skiff.engine.runtime.oci import (
    ExecSession,
    OciRuntime,
    json_log_message,
    release_fifo,
    runtime_message,
    signal_fifo,
)
from skiff.errors import ContainerCreateFailed, RuntimeFailure
from skiff.settings import RuntimeSettings

#: What a container id may be (it names directories and sockets).
_CID = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}")


def run_dir_for(data_root: Path) -> Path:
    """A short per-data-root directory on /run: unix socket paths are limited to 108 bytes."""
    return Path("/run") / ("skiff-" + hashlib.sha256(str(data_root).encode()).hexdigest()[:8])


@dataclass(frozen=True)
class ContainerStatus:
    """What the runtime knows of one container instance."""

    cid: str
    state: str  # "running" | "exited" | "missing"
    pid: int | None = None
    exit_code: int | None = None
    oom_killed: bool = False
    finished_at: float | None = None


class ConmonRuntime:
    """runc (or another OCI runtime CLI) through conmon."""

    def __init__(self, data_root: Path, settings: RuntimeSettings | None = None) -> None:
        self.settings = settings or RuntimeSettings()
        self.data_root = data_root
        self.root = data_root / "containers"
        self.run_dir = self.settings.run_dir or run_dir_for(data_root)
        self.runtime_root = self.run_dir / "runtime"
        self.sockets = self.run_dir / "sock"
        self.exits = self.run_dir / "exits"
        self.bundles = self.run_dir / "bundles"
        for d in (self.root, self.runtime_root, self.sockets, self.exits):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)  # logs may hold what containers print
        #: The node's default: runc, as configured.
        self.default_oci = OciRuntime(program=self.settings.runtime, root=self.runtime_root)
        self._prepared = False
        self._prepare_lock = threading.Lock()

    def prepare(self) -> None:
        """Make the run directory a root-only tmpfs (:mod:`~skiff.engine.runtime.rundir`),
        before the first container's bundle or state is written there. Once a process;
        not at construction, which needs no root."""
        with self._prepare_lock:
            if self._prepared:
                return
            rundir.prepare(self.run_dir, self.settings.run_dir_bytes)
            for d in (self.runtime_root, self.sockets, self.exits, self.bundles):
                d.mkdir(mode=0o700, parents=True, exist_ok=True)
            # An earlier skiff kept bundles on the data root: runc and runsc read a spec
            # at create only, so the copies of running containers go now.
            for legacy in self.root.glob("*/config.json"):
                with contextlib.suppress(FileNotFoundError):
                    legacy.unlink()
            self._prepared = True

    # ---- paths ------------------------------------------------------------

    def dir(self, cid: str) -> Path:
        """What is kept of ``cid`` on the data root: logs, conmon's files."""
        if not _CID.fullmatch(cid):
            raise RuntimeFailure(f"invalid container id {cid!r}")
        return self.root / cid

    def bundle(self, cid: str) -> Path:
        """``cid``'s OCI bundle, on the run directory's tmpfs."""
        return self.bundles / self.dir(cid).name

    def oci(self, cid: str) -> OciRuntime:
        """The OCI runtime of ``cid``: as recorded at its creation, else the default."""
        try:
            data = json.loads((self.dir(cid) / "runtime.json").read_text())
            return OciRuntime.from_json(data)
        except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
            return self.default_oci

    def _runtime(self, *args: str, check: bool = True, timeout: float = 30,
                 oci: OciRuntime | None = None) -> subprocess.CompletedProcess[str]:
        return (oci or self.default_oci).run(*args, check=check, timeout=timeout)

    # ---- lifecycle ----------------------------------------------------------

    def create(self, cid: str, spec: dict[str, Any], *, name: str = "",
               stdin: bool = False, oci: OciRuntime | None = None) -> int:
        """Create the container ``cid`` from the OCI ``spec`` under a new conmon,
        on ``oci`` (default: the node's runc); returns the pid conmon watches.
        Its process waits for :meth:`start`.

        A previous instance of ``cid`` must have been deleted; its output is
        kept as the previous log.
        """
        self.prepare()
        base = self.dir(cid)
        base.mkdir(parents=True, exist_ok=True)
        bundle = self.bundle(cid)
        bundle.mkdir(mode=0o700, exist_ok=True)
        self._retire_instance(cid)
        prepare(base)  # conmon cuts its log at log_max_bytes: into the other of two files
        watch(base)
        # The spec holds the environment, secure values included: root only, in memory.
        fd = os.open(bundle / "config.json",
                     os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(spec))
        record = base / "runtime.json"
        if oci is None:
            with contextlib.suppress(FileNotFoundError):
                record.unlink()
            oci = self.default_oci
        else:
            record.write_text(json.dumps(oci.to_json()))
        conmon_cmd, runtime_options = oci.conmon(self.settings.conmon)
        argv = [
            *conmon_cmd, "--api-version", "1", "-c", cid, "-u", cid, "-n", name or cid,
            *runtime_options, "-b", str(bundle), "-p", str(base / "pidfile"),
            "-l", f"k8s-file:{base / LOG}", "--log-size-max", str(self.settings.log_max_bytes),
            "--exit-dir", str(self.exits),
            "--socket-dir-path", str(self.sockets), "--conmon-pidfile", str(base / "conmon.pid"),
            "-0", str(base / "persist"), "--log-level", "error",
        ]
        if stdin:
            argv += ["-i", "--leave-stdin-open"]
        read_end, write_end = os.pipe()
        # conmon's own messages go to a file: a pipe closed behind it would kill it (SIGPIPE);
        # in the bundle, since they may quote the runtime's error, and that the spec.
        errors = open(bundle / "conmon.err", "wb")  # noqa: SIM115 -- closed below
        try:
            try:
                conmon = subprocess.Popen(
                    argv, env={"_OCI_SYNCPIPE": str(write_end),
                               "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")},
                    pass_fds=(write_end,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=errors, start_new_session=True)
            except OSError as exc:
                raise RuntimeFailure(f"cannot start conmon: {exc}") from exc
            os.close(write_end)
            write_end = -1
            # No timeout: Popen polls with sleeps then, costing milliseconds; conmon's
            # first process only forks its monitor and leaves.
            if conmon.wait() != 0:
                err = (bundle / "conmon.err").read_text(errors="replace").strip()
                raise RuntimeFailure(f"conmon failed: {err[-500:]}")
            report = self._read_sync(read_end, self.settings.create_timeout_s)
        finally:
            errors.close()
            os.close(read_end)
            if write_end >= 0:
                os.close(write_end)
        pid = report.get("data")
        if not isinstance(pid, int) or pid <= 0:
            message = runtime_message(str(report.get("message", "unknown error")))
            self._cleanup_failed(cid)
            raise ContainerCreateFailed(message)
        return pid

    @staticmethod
    def _read_sync(fd: int, timeout_s: float) -> dict[str, Any]:
        data = b""
        deadline = time.monotonic() + timeout_s
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise RuntimeFailure("the runtime did not report on the container in time")
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
        try:
            report: dict[str, Any] = json.loads(data.split(b"\n", 1)[0] or b"{}")
        except json.JSONDecodeError as exc:
            raise RuntimeFailure(f"conmon reported garbage: {data[:200]!r}") from exc
        return report

    def _retire_instance(self, cid: str) -> None:
        """Clear what a previous instance left, keeping its output as prev.log."""
        base = self.dir(cid)
        retire_log(base, self.settings.log_max_bytes)
        for stale in (self.exits / cid, base / "pidfile", base / "conmon.pid"):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        shutil.rmtree(base / "persist", ignore_errors=True)
        (base / "persist").mkdir()  # conmon writes its exit and oom files there, if it exists
        with contextlib.suppress(FileNotFoundError):  # an earlier skiff's bundle was here
            (base / "config.json").unlink()

    def _cleanup_failed(self, cid: str) -> None:
        self._runtime("delete", "--force", cid, check=False, oci=self.oci(cid))
        with contextlib.suppress(FileNotFoundError):
            (self.exits / cid).unlink()
        shutil.rmtree(self.bundle(cid), ignore_errors=True)

    def start(self, cid: str) -> None:
        """Run the created container's process.

        runc's created container waits in its init process, writing to the
        ``exec.fifo`` in runc's state directory; ``runc start`` only reads that
        fifo and removes it. Doing so here saves starting a runc process (≈ 5 ms
        of a ≈ 55 ms group start); any other runtime, or any surprise, goes
        through ``<runtime> start``.
        """
        oci = self.oci(cid)
        if oci.member:
            self._start_member(cid)
            return
        fifo = oci.root / cid / "exec.fifo"
        if Path(oci.program).name == "runc" and release_fifo(fifo):
            return
        self._runtime("start", cid, oci=oci)

    def _start_member(self, cid: str) -> None:
        """Give a sandbox member's waiter the go and wait for ``runsc start``'s outcome:
        as with runc, a command that cannot run fails here, with runsc's reason."""
        base = self.bundle(cid)
        if not signal_fifo(base / "start", b"start\n"):
            raise RuntimeFailure(f"container {cid} cannot be started: its waiter is gone")
        deadline = time.monotonic() + self.settings.create_timeout_s
        delay = 0.001
        while not (text := _read_or_empty(base / "started").strip()):
            if time.monotonic() >= deadline:
                raise RuntimeFailure(f"runsc did not start container {cid} in time")
            if self._conmon_pid(cid) is None and not (base / "started").exists():
                raise RuntimeFailure(f"container {cid} is gone: its monitor left")
            time.sleep(delay)
            delay = min(delay * 2, 0.002)  # a read of a missing file costs microseconds
        if text != "0":
            message = json_log_message(_read_or_empty(base / "start.log"))
            self._cleanup_failed(cid)
            raise ContainerCreateFailed(message or f"runsc start failed ({text})")

    def _conmon_pid(self, cid: str) -> int | None:
        try:
            pid = int((self.dir(cid) / "conmon.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"conmon" not in f.read().split(b"\0", 1)[0]:
                    return None
        except OSError:
            return None
        return pid

    def _exited(self, cid: str) -> ContainerStatus | None:
        """The container's exit, from conmon's exit file on /run or, if the node restarted
        since (a tmpfs, emptied), from the one it keeps in the container's persist/."""
        for exit_file in (self.exits / cid, self.dir(cid) / "persist" / "exit"):
            try:
                text = exit_file.read_text().strip()
                finished = exit_file.stat().st_mtime
            except FileNotFoundError:
                continue
            break
        else:
            return None
        code = int(text) if text.lstrip("-").isdigit() else -1
        oom = (self.dir(cid) / "persist" / "oom").exists()
        return ContainerStatus(cid, "exited", exit_code=code, oom_killed=oom,
                               finished_at=finished)

    def status(self, cid: str) -> ContainerStatus:
        """The container's state, from conmon's files: cheap enough to poll."""
        exited = self._exited(cid)
        if exited is not None:
            return exited
        if self._conmon_pid(cid) is None:
            # conmon writes the exit file, then leaves: look again before calling it lost.
            return self._exited(cid) or ContainerStatus(cid, "missing")
        try:
            pid = int((self.dir(cid) / "pidfile").read_text().strip())
        except (FileNotFoundError, ValueError):
            pid = None
        return ContainerStatus(cid, "running", pid=pid)

    def wait(self, cid: str, timeout_s: float) -> ContainerStatus:
        """Wait until the container is no longer running, or the timeout passes."""
        deadline = time.monotonic() + timeout_s
        delay = 0.002
        while True:
            status = self.status(cid)
            if status.state != "running" or time.monotonic() >= deadline:
                return status
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def kill(self, cid: str, sig: int = signal.SIGTERM, *, all_processes: bool = False) -> None:
        args = ["kill", *(["--all"] if all_processes else []), cid, str(int(sig))]
        self._runtime(*args, check=False, oci=self.oci(cid))

    def stop(self, cid: str, grace_s: float | None = None) -> ContainerStatus:
        """SIGTERM, then SIGKILL after the grace period; returns the final status."""
        grace = self.settings.stop_grace_s if grace_s is None else grace_s
        status = self.status(cid)
        if status.state != "running":
            return status
        self.kill(cid, signal.SIGTERM)
        status = self.wait(cid, grace)
        if status.state == "running":
            self.kill(cid, signal.SIGKILL, all_processes=True)
            status = self.wait(cid, 10)
        return status

    def delete(self, cid: str) -> None:
        """Remove the runtime's container (stopping it at once); keeps logs. Idempotent."""
        oci = self.oci(cid)
        if oci.member:  # a member created but never started: its waiter leaves
            signal_fifo(self.bundle(cid) / "start", b"delete\n")
        # runc's state: skip the call when there is none (runsc names its files otherwise)
        if oci.program != self.default_oci.program or (oci.root / cid).exists():
            self._runtime("delete", "--force", cid, check=False, oci=oci)
        pid = self._conmon_pid(cid)
        if pid is not None:  # conmon leaves once the container is gone
            deadline = time.monotonic() + 5
            while self._conmon_pid(cid) is not None and time.monotonic() < deadline:
                time.sleep(0.01)
            if self._conmon_pid(cid) is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for done in (self.exits / cid, self.dir(cid) / "persist" / "exit", self.sockets / cid):
            with contextlib.suppress(FileNotFoundError):
                done.unlink()
        shutil.rmtree(self.bundle(cid), ignore_errors=True)  # its spec: secrets included

    def remove(self, cid: str) -> None:
        """Delete the container and everything skiff kept of it, logs included."""
        self.delete(cid)
        shutil.rmtree(self.dir(cid), ignore_errors=True)

    def ids(self) -> list[str]:
        """Every container this runtime holds state of: its directory, or runc's state
        alone (a removal cut short leaves that). What a start-up sweep looks through."""
        found = {p.name for p in self.root.iterdir() if p.is_dir()}
        for state in (self.runtime_root, self.bundles):
            with contextlib.suppress(FileNotFoundError):
                found.update(p.name for p in state.iterdir() if p.is_dir())
        return sorted(cid for cid in found if _CID.fullmatch(cid))

    def list(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    # ---- logs ---------------------------------------------------------------

    def rotate_logs(self, cid: str) -> bool:
        """Keep the container's output within ``log_max_bytes`` a file, two files (see
        :mod:`~skiff.engine.runtime.logfiles`): lay the link a cut of conmon's used up,
        if the watcher has not yet, or cut a conmon without a limit of its own. True if
        something was to be done. Cheap enough for every monitor tick (≈ 20 µs)."""
        base = self.dir(cid)
        watch(base)  # a container an earlier skiff started, or one created before a restart
        return keep(base, self.settings.log_max_bytes,
                    lambda: self._conmon_pid(cid) is not None)

    def logs(self, cid: str, *, tail: int | None = None, timestamps: bool = False,
             previous: bool = False) -> str:
        """The container's output, stdout and stderr interleaved as written."""
        return read_log(self.dir(cid), tail=tail, timestamps=timestamps, previous=previous)

    def follow(self, cid: str, *, timestamps: bool = False,
               poll_s: float = 0.05) -> Iterator[str]:
        """Attach to the container's output: each line as it is written, across
        log rotations, until the container has exited and all is read."""
        yield from follow_log(self.dir(cid) / LOG,
                              lambda: self.status(cid).state == "running",
                              timestamps=timestamps, poll_s=poll_s)

    # ---- exec ---------------------------------------------------------------

    def exec(self, cid: str, args: Sequence[str], *, tty: bool = False,
             env: Sequence[str] = (), cwd: str | None = None,
             terminal_size: tuple[int, int] | None = None) -> ExecSession:
        """Run ``args`` in the running container ``cid``. Without a TTY the
        session's process has stdin, stdout and stderr pipes; with one, its
        ``terminal`` is the master end of the pty, for input and output."""
        if self.status(cid).state != "running":
            raise RuntimeFailure(f"container {cid} is not running")
        return self.oci(cid).exec(cid, args, tty=tty, env=env, cwd=cwd,
                                  terminal_size=terminal_size)


def _read_or_empty(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
