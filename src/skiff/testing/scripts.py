"""The tiny shell language of the fake engine's containers, read alike by real busybox.

A test that runs on both the fake engine and the real one gives its containers
commands both understand: ``sh -c "echo hello; sleep 1; exit 3"``, statements
separated by ``;`` or newlines:

- ``echo WORDS``: one line of output (the words as the shell would print them);
- ``sleep N``: N seconds pass (``sleep infinity``, or no end at all: the container
  runs until it is stopped);
- ``exit N``: the container ends with exit code N; the end of the script is ``exit 0``;
- ``httpd -f -p PORT`` (busybox's web server in the foreground; ``exec`` before it is
  read alike) listens on PORT from then on and runs until stopped; ``httpd -p PORT``
  (in the background) listens and the script goes on; ``nc -l -p PORT`` (or ``nc -lk
  PORT``) listens and runs until stopped. A port left out is httpd's 80. What a
  container listens on makes its group serve (:meth:`FakeEngine.serving
  <skiff.testing.fake.FakeEngine.serving>`).

Any other statement succeeds at once and prints nothing: the fake runs no
program. A command that is not ``sh -c SCRIPT`` is read as one statement
(``["sleep", "300"]``), and no command at all (the image's own) runs until
stopped. :func:`parse` turns a command into a :class:`Program`: what it prints
at which offset from its start, and when and how it ends.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

_SHELLS = ("sh", "/bin/sh", "bash", "/bin/bash")


@dataclass(frozen=True)
class Program:
    """What a container's command does, in time from its start."""

    #: (seconds after the start, line printed), in order.
    lines: tuple[tuple[float, str], ...] = ()
    #: Seconds after the start at which it exits; None: it runs until stopped.
    end: float | None = None
    exit_code: int = 0
    #: (seconds after the start, TCP port) each server of the script listens from.
    listens: tuple[tuple[float, int], ...] = ()


def statements(script: str) -> list[list[str]]:
    """The script's statements, each as its words (quotes removed, as sh reads them)."""
    lexer = shlex.shlex(script.replace("\n", ";"), posix=True, punctuation_chars=";")
    lexer.whitespace_split = True
    found: list[list[str]] = [[]]
    try:
        for token in lexer:
            if token and set(token) == {";"}:
                found.append([])
            else:
                found[-1].append(token)
    except ValueError:  # an unclosed quote: sh would refuse it, so does the fake
        return [["exit", "2"]]
    return [words for words in found if words]


def _seconds(word: str) -> float:
    if word in ("inf", "infinity"):
        return math.inf
    try:
        value = float(word.rstrip("s"))
    except ValueError:
        return 0.0
    return value if value >= 0 else 0.0


def _listener(words: list[str]) -> tuple[int, bool] | None:
    """(port, whether it runs until stopped) of a server statement; None for another."""
    verb, args = words[0], words[1:]
    if verb == "httpd":
        port = args[args.index("-p") + 1] if "-p" in args[:-1] else "80"
        return (int(port), "-f" in args) if port.isdigit() else None
    if verb == "nc" and any(a.startswith("-") and "l" in a for a in args):
        port = args[args.index("-p") + 1] if "-p" in args[:-1] else args[-1]
        return (int(port), True) if port.isdigit() else None
    return None


def parse(command: Sequence[str] | None) -> Program:
    """The program a container's ``command`` runs (None: the image's, which runs on)."""
    if command is None:
        return Program(end=None)
    if len(command) >= 3 and command[0] in _SHELLS and command[1] == "-c":
        script = statements(command[2])
    else:
        script = [list(command)]
    offset = 0.0
    lines: list[tuple[float, str]] = []
    listens: list[tuple[float, int]] = []
    for words in script:
        if words[0] == "exec" and len(words) > 1:
            words = words[1:]
        verb, args = words[0], words[1:]
        server = _listener(words)
        if server is not None:
            listens.append((offset, server[0]))
            if server[1]:
                return Program(tuple(lines), None, 0, tuple(listens))
        elif verb == "echo":
            lines.append((offset, " ".join(args)))
        elif verb == "sleep" and args:
            offset += _seconds(args[0])
            if math.isinf(offset):
                return Program(tuple(lines), None, 0, tuple(listens))
        elif verb == "exit":
            code = int(args[0]) if args and args[0].isdigit() else 0
            return Program(tuple(lines), offset, code % 256, tuple(listens))
    return Program(tuple(lines), offset, 0, tuple(listens))


def run_at_once(command: Sequence[str]) -> tuple[list[str], int]:
    """An exec'd command's output lines and exit code, its sleeps skipped."""
    program = parse(command)
    return [line for _, line in program.lines], program.exit_code


@dataclass
class FakeExec:
    """An :class:`~skiff.core.engine.ExecStream` whose command already ran: its output is
    read, then ``b""``; what is written is kept in :attr:`written` (nothing reads it)."""

    output: bytes
    exit_code: int
    written: bytearray
    closed: bool = False

    @classmethod
    def of(cls, command: Sequence[str], *, tty: bool) -> FakeExec:
        lines, code = run_at_once(command)
        newline = "\r\n" if tty else "\n"  # a terminal writes CR LF, as runc's pty does
        return cls("".join(line + newline for line in lines).encode(), code, bytearray())

    def read(self, size: int = 65536) -> bytes:
        chunk, self.output = self.output[:size], self.output[size:]
        return b"" if self.closed else chunk

    def write(self, data: bytes) -> None:
        self.written += data

    def wait(self, timeout_s: float | None = None) -> int | None:
        return self.exit_code

    def close(self) -> None:
        self.closed = True
