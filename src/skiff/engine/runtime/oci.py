"""How an OCI runtime's command line is called, for one container.

A container may run on another OCI runtime than the node's runc: gVisor
sandboxes run on runsc (see :mod:`skiff.engine.runtime.sandbox`). An
:class:`OciRuntime` says which program, with which ``--root`` and global
flags, in which network namespace (runsc's control sockets are abstract unix
sockets, bound to the namespace, so every call runs there), and what conmon
runs in its place (a shim, for a sandbox's members). skiff keeps it in
``runtime.json`` beside the container's spec, so a restarted skiff still
kills, execs into and deletes the container on the runtime that made it.

The rest is what these CLIs have in common, or where they differ, kept here
so that :mod:`skiff.engine.runtime.conmon` speaks of containers, not of programs:

- their errors: runc logs ``msg="..."`` lines, runsc JSON lines; a caller
  wants the message alone (:func:`runtime_message`,
  :func:`json_log_message`);
- ``exec``, with or without a terminal (runsc has no ``--tty``);
- the start handshakes that save a process: runc's created container waits
  on its ``exec.fifo``, which skiff reads as ``runc start`` would
  (:func:`release_fifo`); a sandbox member's waiter waits for a word on the
  bundle's ``start`` fifo (:func:`signal_fifo`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import subprocess
import tty as termios_modes
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skiff.errors import RuntimeFailure

_RUNC_MSG = re.compile(r'msg="((?:[^"\\]|\\.)*)"')


@dataclass
class ExecSession:
    """A command running in a container: its process and, with a TTY, the terminal."""

    process: subprocess.Popen[bytes]
    terminal: int | None = None  # the pty master's fd when a TTY was asked for

    def read(self, size: int = 65536) -> bytes:
        """The terminal's next output; ``b""`` once the command ended (EIO on the pty)."""
        if self.terminal is None:
            return b""
        try:
            return os.read(self.terminal, size)
        except OSError:  # EIO: the command ended and the terminal closed
            return b""

    def write(self, data: bytes) -> None:
        if self.terminal is not None:
            os.write(self.terminal, data)

    def wait(self, timeout_s: float | None = None) -> int | None:
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

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

    def run(self, *args: str, check: bool = True,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run the runtime with ``args``; with ``check``, its failure is a RuntimeFailure
        carrying the runtime's own message."""
        try:
            done = subprocess.run(self.argv(*args), capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeFailure(f"{self.program} {args[0]} failed: {exc}") from exc
        if check and done.returncode != 0:
            raise RuntimeFailure(f"{self.program} {args[0]} failed: "
                                 f"{runtime_message(done.stderr or done.stdout)}")
        return done

    def exec(self, cid: str, args: Sequence[str], *, tty: bool = False,
             env: Sequence[str] = (), cwd: str | None = None,
             terminal_size: tuple[int, int] | None = None) -> ExecSession:
        """Run ``args`` in the container ``cid``. Without a TTY the session's
        process has stdin, stdout and stderr pipes; with one, its ``terminal``
        is the master end of the pty, for input and output."""
        argv = self.argv("exec")
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
        runsc = Path(self.program).name == "runsc"
        tty_flag = [] if runsc else ["--tty"]
        # runc relays a terminal it allocates to its own stdio when that is a
        # terminal itself, and copies that terminal's size: so it gets the slave
        # end of a pty of ours, and the session keeps the master.
        master, slave = os.openpty()
        if not runsc:
            # runc's own terminal does the line discipline (echo, CR before LF); ours
            # only carries its bytes. runc makes ours raw too, but only once the command
            # runs, so output written at once went through both (b"\r\r\n").
            termios_modes.setraw(slave)
        if terminal_size is not None:
            _set_window(master, *terminal_size)
        # runc copies that size only once the command runs, and a command that asks
        # at once (stty size) may see 0x0: so runc gets the size in the process spec
        # too, and sets it on the pty before the command starts.
        spec = None if runsc or terminal_size is None else self._process_spec(
            cid, args, env=env, cwd=cwd, terminal_size=terminal_size)
        command = [*argv, *tty_flag, cid, *args]
        pass_fds: tuple[int, ...] = ()
        if spec is not None:
            command = [*self.argv("exec"), "--process", f"/proc/self/fd/{spec}", cid]
            pass_fds = (spec,)
        try:
            process = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave,
                                       start_new_session=True, pass_fds=pass_fds)
        except OSError as exc:
            os.close(master)
            raise RuntimeFailure(f"exec failed: {exc}") from exc
        finally:
            os.close(slave)
            if spec is not None:
                os.close(spec)
        return ExecSession(process, master)

    def _process_spec(self, cid: str, args: Sequence[str], *, env: Sequence[str],
                      cwd: str | None, terminal_size: tuple[int, int]) -> int | None:
        """A memfd holding the container's own process spec with ``args``, ``env``
        added, ``cwd``, a terminal and its size: what ``runc exec`` builds from its
        flags, plus ``consoleSize``. The spec never touches a disk (it holds the
        group's secrets). None where the bundle cannot be read: plain flags then."""
        try:
            state = json.loads(self.run("state", cid, timeout=10).stdout)
            config = json.loads((Path(state["bundle"]) / "config.json").read_text())
            process = dict(config["process"])
        except (RuntimeFailure, OSError, ValueError, KeyError, TypeError):
            return None
        process["args"] = list(args)
        process["env"] = [*process.get("env", []), *env]
        if cwd:
            process["cwd"] = cwd
        process["terminal"] = True
        rows, cols = terminal_size
        process["consoleSize"] = {"height": rows, "width": cols}
        fd = os.memfd_create("skiff-exec", os.MFD_CLOEXEC)
        os.write(fd, json.dumps(process).encode())
        os.lseek(fd, 0, os.SEEK_SET)
        return fd

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


def runtime_message(text: str) -> str:
    """runc's error without its log decoration."""
    messages = [m.group(1).replace('\\"', '"').replace("\\\\", "\\")
                for m in _RUNC_MSG.finditer(text)]
    message = messages[-1] if messages else text.strip()
    return message.replace('\\"', '"')[:500]


def json_log_message(text: str) -> str:
    """The last message of a JSON-lines log (runsc's ``--log``)."""
    for line in reversed(text.splitlines()):
        with contextlib.suppress(json.JSONDecodeError, AttributeError):
            message = json.loads(line).get("msg")
            if isinstance(message, str):
                return message[:500]
    return text.strip()[-500:]


def release_fifo(fifo: Path, timeout_s: float = 5.0) -> bool:
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


def signal_fifo(fifo: Path, message: bytes) -> bool:
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


def _set_window(fd: int, rows: int, cols: int) -> None:
    import fcntl
    import struct
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
