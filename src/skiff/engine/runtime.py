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

    <data root>/containers/<cid>/   bundle (config.json, conmon's fifos), logs:
        ctr.log, ctr.log.1          this instance's output (rotated by skiff)
        prev.log                    the previous instance's output
        persist/                    conmon's exit and oom files
    /run/skiff-<hash>/              runc's state, conmon's sockets, exit files

A container may run on another OCI runtime than the node's runc: its
:class:`OciRuntime` (kept in ``runtime.json`` beside its spec, so a
restarted skiff still kills and deletes it right) says which program, with
which flags, in which network namespace; gVisor sandboxes use that (see
:mod:`skiff.engine.sandbox`).
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
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skiff.errors import ContainerCreateFailed, RuntimeFailure
from skiff.settings import RuntimeSettings

_LOG_LINE = re.compile(r"^(\S+) (stdout|stderr) ([PF]) ?(.*)$")
_RUNC_MSG = re.compile(r'msg="((?:[^"\\]|\\.)*)"')
_REOPEN_LOGS = b"2 0 0\n"  # conmon's ctl fifo: message type 2 reopens the log file


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


@dataclass
class ExecSession:
    """A command running in a container: its process and, with a TTY, the terminal."""

    process: subprocess.Popen[bytes]
    terminal: int | None = None  # the pty master's fd when a TTY was asked for

    def close(self) -> None:
        if self.terminal is not None:
            with contextlib.suppress(OSError):
                os.close(self.terminal)
            self.terminal = None
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@dataclass(frozen=True)
class OciRuntime:
    """How the OCI runtime is called for one container."""

    #: The OCI runtime CLI (runc, runsc).
    program: str
    #: Its state directory (``--root``).
    root: Path
    #: Global flags after ``--root``.
    flags: tuple[str, ...] = ()
    #: The network namespace every call (conmon's included) runs in: runsc's
    #: control sockets are abstract, so only there does it find its sandboxes.
    netns: Path | None = None
    #: The program conmon runs as the runtime, with its own leading flags;
    #: None: ``program`` itself.
    shim: str | None = None
    shim_args: tuple[str, ...] = ()
    #: A sandbox member: its process starts when skiff writes ``start`` on the
    #: bundle's ``start`` fifo (the shim's waiter runs ``runsc start``).
    member: bool = False

    def _enter(self) -> list[str]:
        return ["nsenter", f"--net={self.netns}"] if self.netns is not None else []

    def argv(self, *args: str) -> list[str]:
        """A command line of the runtime, inside the namespace if there is one."""
        return [*self._enter(), self.program, f"--root={self.root}", *self.flags, *args]

    def conmon(self, conmon: str) -> tuple[list[str], list[str]]:
        """(what conmon runs as, conmon's ``-r`` and ``--runtime-arg`` options)."""
        args = [*self.shim_args, f"--root={self.root}", *self.flags]
        options = ["-r", self.shim or self.program]
        for arg in args:
            options += ["--runtime-arg", arg]
        return [*self._enter(), conmon], options

    def to_json(self) -> dict[str, Any]:
        return {"program": self.program, "root": str(self.root), "flags": list(self.flags),
                "netns": None if self.netns is None else str(self.netns),
                "shim": self.shim, "shim_args": list(self.shim_args), "member": self.member}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OciRuntime:
        return cls(program=str(data["program"]), root=Path(data["root"]),
                   flags=tuple(data.get("flags", ())),
                   netns=Path(data["netns"]) if data.get("netns") else None,
                   shim=data.get("shim"), shim_args=tuple(data.get("shim_args", ())),
                   member=bool(data.get("member", False)))


def _runtime_message(text: str) -> str:
    """runc's error without its log decoration."""
    messages = [m.group(1).replace('\\"', '"').replace("\\\\", "\\")
                for m in _RUNC_MSG.finditer(text)]
    message = messages[-1] if messages else text.strip()
    return message.replace('\\"', '"')[:500]


class ConmonRuntime:
    """runc (or another OCI runtime CLI) through conmon."""

    def __init__(self, data_root: Path, settings: RuntimeSettings | None = None) -> None:
        self.settings = settings or RuntimeSettings()
        self.root = data_root / "containers"
        self.run_dir = self.settings.run_dir or run_dir_for(data_root)
        self.runtime_root = self.run_dir / "runtime"
        self.sockets = self.run_dir / "sock"
        self.exits = self.run_dir / "exits"
        for d in (self.root, self.runtime_root, self.sockets, self.exits):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)  # specs and logs may hold secrets
        #: The node's default: runc, as configured.
        self.default_oci = OciRuntime(program=self.settings.runtime, root=self.runtime_root)

    # ---- paths ------------------------------------------------------------

    def dir(self, cid: str) -> Path:
        if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}", cid):
            raise RuntimeFailure(f"invalid container id {cid!r}")
        return self.root / cid

    def oci(self, cid: str) -> OciRuntime:
        """The OCI runtime of ``cid``: as recorded at its creation, else the default."""
        try:
            data = json.loads((self.dir(cid) / "runtime.json").read_text())
            return OciRuntime.from_json(data)
        except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
            return self.default_oci

    def _runtime(self, *args: str, check: bool = True, timeout: float = 30,
                 oci: OciRuntime | None = None) -> subprocess.CompletedProcess[str]:
        oci = oci or self.default_oci
        try:
            done = subprocess.run(oci.argv(*args), capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeFailure(f"{oci.program} {args[0]} failed: {exc}") from exc
        if check and done.returncode != 0:
            raise RuntimeFailure(f"{oci.program} {args[0]} failed: "
                                 f"{_runtime_message(done.stderr or done.stdout)}")
        return done

    # ---- lifecycle ----------------------------------------------------------

    def create(self, cid: str, spec: dict[str, Any], *, name: str = "",
               stdin: bool = False, oci: OciRuntime | None = None) -> int:
        """Create the container ``cid`` from the OCI ``spec`` under a new conmon,
        on ``oci`` (default: the node's runc); returns the pid conmon watches.
        Its process waits for :meth:`start`.

        A previous instance of ``cid`` must have been deleted; its output is
        kept as the previous log.
        """
        base = self.dir(cid)
        base.mkdir(parents=True, exist_ok=True)
        self._retire_instance(cid)
        # The spec holds the environment, secure values included: root only.
        fd = os.open(base / "config.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                     0o600)
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
            *runtime_options, "-b", str(base), "-p", str(base / "pidfile"),
            "-l", f"k8s-file:{base / 'ctr.log'}", "--exit-dir", str(self.exits),
            "--socket-dir-path", str(self.sockets), "--conmon-pidfile", str(base / "conmon.pid"),
            "-0", str(base / "persist"), "--log-level", "error",
        ]
        if stdin:
            argv += ["-i", "--leave-stdin-open"]
        read_end, write_end = os.pipe()
        # conmon's own messages go to a file: a pipe closed behind it would kill it (SIGPIPE).
        errors = open(base / "conmon.err", "wb")  # noqa: SIM115 -- closed below
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
                err = (base / "conmon.err").read_text(errors="replace").strip()
                raise RuntimeFailure(f"conmon failed: {err[-500:]}")
            report = self._read_sync(read_end, self.settings.create_timeout_s)
        finally:
            errors.close()
            os.close(read_end)
            if write_end >= 0:
                os.close(write_end)
        pid = report.get("data")
        if not isinstance(pid, int) or pid <= 0:
            message = _runtime_message(str(report.get("message", "unknown error")))
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
        log, rotated = base / "ctr.log", base / "ctr.log.1"
        if log.exists() or rotated.exists():
            with open(base / "prev.log", "wb") as out:
                for part in (rotated, log):
                    with contextlib.suppress(FileNotFoundError), open(part, "rb") as f:
                        shutil.copyfileobj(f, out)
            for part in (rotated, log):
                with contextlib.suppress(FileNotFoundError):
                    part.unlink()
        for stale in (self.exits / cid, base / "pidfile", base / "conmon.pid"):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        shutil.rmtree(base / "persist", ignore_errors=True)
        (base / "persist").mkdir()  # conmon writes its exit and oom files there, if it exists

    def _cleanup_failed(self, cid: str) -> None:
        self._runtime("delete", "--force", cid, check=False, oci=self.oci(cid))
        with contextlib.suppress(FileNotFoundError):
            (self.exits / cid).unlink()

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
        if Path(oci.program).name == "runc" and _release_fifo(fifo):
            return
        self._runtime("start", cid, oci=oci)

    def _start_member(self, cid: str) -> None:
        """Give a sandbox member's waiter the go and wait for ``runsc start``'s outcome:
        as with runc, a command that cannot run fails here, with runsc's reason."""
        base = self.dir(cid)
        if not _signal_fifo(base / "start", b"start\n"):
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
            message = _json_log_message(_read_or_empty(base / "start.log"))
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
        exit_file = self.exits / cid
        try:
            text = exit_file.read_text().strip()
            finished = exit_file.stat().st_mtime
        except FileNotFoundError:
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
            _signal_fifo(self.dir(cid) / "start", b"delete\n")
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
        with contextlib.suppress(FileNotFoundError):
            (self.exits / cid).unlink()
        with contextlib.suppress(FileNotFoundError):
            (self.sockets / cid).unlink()

    def remove(self, cid: str) -> None:
        """Delete the container and everything skiff kept of it, logs included."""
        self.delete(cid)
        shutil.rmtree(self.dir(cid), ignore_errors=True)

    def list(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    # ---- logs ---------------------------------------------------------------

    def rotate_logs(self, cid: str) -> bool:
        """Keep at most ``log_max_bytes`` of output: past half of it, the log moves
        to ctr.log.1 (replacing the older part) and conmon reopens ctr.log.

        conmon reopens asynchronously, so output written meanwhile still lands
        in ctr.log.1; once nothing writes there any more, its head is trimmed."""
        base = self.dir(cid)
        log, older = base / "ctr.log", base / "ctr.log.1"
        half = self.settings.log_max_bytes // 2
        if older.exists() and (log.exists() or self._conmon_pid(cid) is None):
            _trim_head(older, half)
        try:
            if log.stat().st_size < half:
                return False
        except FileNotFoundError:
            return False
        os.replace(log, older)
        if self._conmon_pid(cid) is None:
            _trim_head(older, half)  # nothing writes any more: cut it to size now
            return True
        try:
            fd = os.open(base / "ctl", os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            _trim_head(older, half)  # conmon just left
            return True
        try:
            os.write(fd, _REOPEN_LOGS)
        finally:
            os.close(fd)
        return True

    def logs(self, cid: str, *, tail: int | None = None, timestamps: bool = False,
             previous: bool = False) -> str:
        """The container's output, stdout and stderr interleaved as written."""
        base = self.dir(cid)
        parts = [base / "prev.log"] if previous else [base / "ctr.log.1", base / "ctr.log"]
        lines = list(_parse_k8s_log(parts, timestamps))
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        return "".join(lines)

    def follow(self, cid: str, *, timestamps: bool = False,
               poll_s: float = 0.05) -> Iterator[str]:
        """Attach to the container's output: each line as it is written, across
        log rotations, until the container has exited and all is read."""
        path = self.dir(cid) / "ctr.log"
        f: Any = None
        inode = None
        buffered = ""
        partial = ""
        try:
            while True:
                if f is None:
                    try:
                        f = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
                        inode = os.fstat(f.fileno()).st_ino
                    except FileNotFoundError:
                        f = None
                chunk = f.readline() if f is not None else ""
                if chunk:
                    buffered += chunk
                    if not buffered.endswith("\n"):
                        continue  # conmon is mid-write: wait for the rest of the record
                    match = _LOG_LINE.match(buffered.rstrip("\n"))
                    buffered = ""
                    if match:
                        stamp, _stream, tag, text = match.groups()
                        if tag == "P":
                            partial += text
                            continue
                        line, partial = partial + text, ""
                        yield f"{stamp} {line}\n" if timestamps else f"{line}\n"
                    continue
                try:
                    rotated = path.stat().st_ino != inode
                except FileNotFoundError:
                    rotated = f is not None
                if rotated and f is not None:
                    f.close()  # the rest of this file was read: go on in the new one
                    f = None
                    continue
                if self.status(cid).state != "running":
                    if f is not None and (more := f.read()):
                        buffered += more
                        continue
                    return
                time.sleep(poll_s)
        finally:
            if f is not None:
                f.close()

    # ---- exec ---------------------------------------------------------------

    def exec(self, cid: str, args: Sequence[str], *, tty: bool = False,
             env: Sequence[str] = (), cwd: str | None = None,
             terminal_size: tuple[int, int] | None = None) -> ExecSession:
        """Run ``args`` in the running container ``cid``. Without a TTY the
        session's process has stdin, stdout and stderr pipes; with one, its
        ``terminal`` is the master end of the pty, for input and output."""
        if self.status(cid).state != "running":
            raise RuntimeFailure(f"container {cid} is not running")
        oci = self.oci(cid)
        argv = oci.argv("exec")
        for item in env:
            argv += ["--env", item]
        if cwd:
            argv += ["--cwd", cwd]
        if not tty:
            argv += [cid, *args]
            process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE)
            return ExecSession(process)
        # runsc has no --tty and (this 2022 build) shows the pty to the command as a
        # plain file: the session still talks through a terminal (echo and line
        # editing on the host's side), but isatty() is false inside the sandbox.
        tty_flag = [] if Path(oci.program).name == "runsc" else ["--tty"]
        # runc relays a terminal it allocates to its own stdio when that is a
        # terminal itself, and copies that terminal's size: so it gets the slave
        # end of a pty of ours, and the session keeps the master.
        master, slave = os.openpty()
        if terminal_size is not None:
            _set_window(master, *terminal_size)
        try:
            process = subprocess.Popen([*argv, *tty_flag, cid, *args], stdin=slave, stdout=slave,
                                       stderr=slave, start_new_session=True)
        except OSError as exc:
            os.close(master)
            raise RuntimeFailure(f"exec failed: {exc}") from exc
        finally:
            os.close(slave)
        return ExecSession(process, master)


def _release_fifo(fifo: Path, timeout_s: float = 5.0) -> bool:
    """Read runc's exec fifo as ``runc start`` does; False if that was not possible."""
    try:
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if not select.select([fd], [], [], timeout_s)[0]:
            return False
        if not os.read(fd, 16):
            return False
    except OSError:
        return False
    finally:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        fifo.unlink()
    return True


def _json_log_message(text: str) -> str:
    """The last message of a JSON-lines log (runsc's ``--log``)."""
    for line in reversed(text.splitlines()):
        with contextlib.suppress(json.JSONDecodeError, AttributeError):
            message = json.loads(line).get("msg")
            if isinstance(message, str):
                return message[:500]
    return text.strip()[-500:]


def _read_or_empty(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _signal_fifo(fifo: Path, message: bytes) -> bool:
    """Write ``message`` to a fifo someone reads; False if nobody does."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        os.write(fd, message)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def _trim_head(path: Path, keep: int) -> None:
    """Cut ``path`` to its last ``keep`` bytes or less, at a line boundary."""
    size = path.stat().st_size
    if size <= keep:
        return
    with open(path, "rb") as f:
        f.seek(size - keep)
        tail = f.read()
    tail = tail[tail.find(b"\n") + 1:]
    tmp = path.with_name(path.name + ".trim")
    tmp.write_bytes(tail)
    os.replace(tmp, path)


def _parse_k8s_log(paths: Sequence[Path], timestamps: bool) -> Iterator[str]:
    partial = ""
    for path in paths:
        try:
            f = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 -- closed below
        except FileNotFoundError:
            continue
        with f:
            for raw in f:
                match = _LOG_LINE.match(raw.rstrip("\n"))
                if not match:
                    continue
                stamp, _stream, tag, text = match.groups()
                if tag == "P":  # a partial line: the rest follows in the next record
                    partial += text
                    continue
                line = partial + text
                partial = ""
                yield f"{stamp} {line}\n" if timestamps else f"{line}\n"
    if partial:
        yield partial


def _set_window(fd: int, rows: int, cols: int) -> None:
    import fcntl
    import struct
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
