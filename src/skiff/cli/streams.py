"""``skiff container logs``, ``exec`` and ``attach``: a container's streams on the terminal.

These three commands do not print a resource: they copy a container's
output, and for ``exec`` the user's input, over the API's websocket, as az's
do. What they share is that copying (:func:`stream`): output written as it
comes, stdin sent from a thread, the terminal in raw mode for an interactive
``exec`` and restored however the command ends, end-of-input (Ctrl-D) sent
after piped input, a stream that breaks off reported as an error. They sit
apart from :mod:`skiff.cli.container` because none of that is about
container groups; the ``container`` group adds them.
"""

from __future__ import annotations

import codecs
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext, suppress
from typing import TYPE_CHECKING, Any, cast

import click

from skiff.cli.common import InvalidArgument, handle_errors, new_client, rg_name
from skiff.client import ApiError, SkiffClient, WebSocketTarget
from skiff.client.containers import exit_code

if TYPE_CHECKING:
    from websockets.sync.client import ClientConnection

# What a terminal sends for Ctrl-D: ACI's exec is a terminal, so at the end
# of piped input this is how the process learns that its input is over.
_EOT = "\x04"


def _container_name(group: Mapping[str, Any], name: str | None, *, single: bool = False) -> str:
    """The container a command is about: the one named, else the group's first
    (with ``single``, its only one)."""
    if name:
        return name
    containers = (group.get("properties") or {}).get("containers") or []
    if not containers:
        raise InvalidArgument(f"the container group {group.get('name')} has no containers")
    if single and len(containers) > 1:
        raise InvalidArgument("--container-name required when container group has more than "
                              "one container.")
    return str(containers[0].get("name"))


def _stdin_pump(ws: ClientConnection, read: Callable[[], bytes], *, eot: bool) -> None:
    """Send what stdin gives, as text messages, until it ends or the stream closes.

    With ``eot``, input that ended is followed by Ctrl-D, the end of input for
    the container's terminal; not after no input at all, so that a command
    run with nothing on stdin prints nothing but its own output."""
    from websockets.exceptions import ConnectionClosed

    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    sent = False
    try:
        while chunk := read():
            text = decoder.decode(chunk)
            if text:
                ws.send(text)
                sent = True
        if eot and sent:
            ws.send(_EOT)
    except (ConnectionClosed, OSError, ValueError):
        return  # the process ended, or stdin went away: nothing left to say


@contextmanager
def _raw_terminal(fd: int) -> Iterator[None]:
    """The terminal in raw mode, as az's exec sets it, restored however we leave."""
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _stdin_reader(stdin: str) -> Callable[[], bytes]:
    """What reads the next bytes of input: the terminal's keys, or the pipe's chunks."""
    if stdin == "tty":
        fd = sys.stdin.fileno()
        return lambda: os.read(fd, 4096)
    source: Any = click.get_binary_stream("stdin")
    reader = getattr(source, "read1", source.read)
    return lambda: cast(bytes, reader(4096))


def stream(client: SkiffClient, target: WebSocketTarget, *, stdin: str = "none") -> int | None:
    """Copy a websocket's output to stdout until the server closes it; the exit code the
    close carries (an exec's), if any.

    ``stdin`` is ``"none"`` (attach, logs --follow), ``"pipe"`` (stdin's bytes
    are sent, then end-of-input) or ``"tty"`` (the terminal in raw mode, every
    key sent as typed)."""
    # websockets only here (exec, attach, logs --follow): every other command starts without.
    from websockets.exceptions import ConnectionClosedError

    out = click.get_binary_stream("stdout")
    raw = _raw_terminal(sys.stdin.fileno()) if stdin == "tty" else nullcontext()
    with client.websocket(target) as ws, raw:
        if stdin != "none":
            threading.Thread(target=_stdin_pump, args=(ws, _stdin_reader(stdin)),
                             kwargs={"eot": stdin == "pipe"}, daemon=True).start()
        try:
            for message in ws:
                out.write(message.encode() if isinstance(message, str) else message)
                out.flush()
        except ConnectionClosedError as exc:
            raise ApiError(0, "ConnectionFailed", f"the stream broke off: {exc}") from exc
        return exit_code(ws)


@click.command("logs")
@rg_name
@click.option("--container-name",
              help="The container name to tail the logs. If omitted, the first container in "
                   "the container group will be chosen.")
@click.option("--follow", is_flag=True, help="Indicate to stream the tailing logs.")
@click.option("--tail", type=click.IntRange(min=0),
              help="Show only the last N lines (skiff extension).")
@click.option("--timestamps", is_flag=True,
              help="Prefix each line with the time it was written (skiff extension).")
@click.option("--previous", is_flag=True,
              help="Show the logs of the container's previous instance, the one before its "
                   "last restart (skiff extension).")
@handle_errors
def logs(resource_group: str, name: str, container_name: str | None, follow: bool,
         tail: int | None, timestamps: bool, previous: bool) -> None:
    """Examine the logs for a container in a container group."""
    if follow and (tail is not None or previous or timestamps):
        raise click.UsageError("--follow streams the container's whole output: it cannot be "
                               "combined with --tail, --timestamps or --previous.")
    with new_client() as client:
        container_name = _container_name(client.get(resource_group, name), container_name)
        if follow:
            stream(client, client.attach(resource_group, name, container_name))
            return
        content = client.logs(resource_group, name, container_name, tail=tail,
                              timestamps=timestamps, previous=previous)
    click.echo(content, nl=not content.endswith("\n"))


@click.command("exec")
@rg_name
@click.option("--exec-command", required=True,
              help="The command to run from within the container.")
@click.option("--container-name",
              help="The container name where to execute the command. Can be omitted for "
                   "container groups with only one container.")
@click.option("--terminal-row-size", type=click.IntRange(min=1),
              help="The row size for the command output.  Default: the terminal's, else 20.")
@click.option("--terminal-col-size", type=click.IntRange(min=1),
              help="The col size for the command output.  Default: the terminal's, else 80.")
@handle_errors
def exec_(resource_group: str, name: str, exec_command: str, container_name: str | None,
          terminal_row_size: int | None, terminal_col_size: int | None) -> None:
    """Execute a command from within a running container of a container group.

    On a terminal the session is interactive (raw mode: keys go to the
    container as typed); otherwise standard input is sent, then end-of-input
    (Ctrl-D) if there was any. Exits with the command's exit code (az exits 0).

    \b
    Examples:
      skiff container exec -g MyResourceGroup --name mynginx --container-name nginx --exec-command "/bin/bash"
    """  # noqa: E501
    tty = click.get_text_stream("stdin").isatty()
    rows, cols = 20, 80
    if tty:
        with suppress(OSError):
            size = os.get_terminal_size(sys.stdin.fileno())
            if size.lines and size.columns:  # a new pseudo-terminal says 0x0
                rows, cols = size.lines, size.columns
    with new_client() as client:
        container_name = _container_name(client.get(resource_group, name), container_name,
                                         single=True)
        target = client.exec(resource_group, name, container_name, exec_command,
                             rows=terminal_row_size or rows, cols=terminal_col_size or cols)
        code = stream(client, target, stdin="tty" if tty else "pipe")
    if code:
        raise SystemExit(code)


@click.command("attach")
@rg_name
@click.option("--container-name",
              help="The container to attach to. If omitted, the first container in the "
                   "container group will be chosen.")
@handle_errors
def attach(resource_group: str, name: str, container_name: str | None) -> None:
    """Attach local standard output and error streams to a container in a container group.

    Streams the container's output, from its start, until the container exits.
    """
    with new_client() as client:
        container_name = _container_name(client.get(resource_group, name), container_name)
        stream(client, client.attach(resource_group, name, container_name))
