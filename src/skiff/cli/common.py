"""What every API-backed ``skiff`` command shares: its client, its errors, its flags.

``skiff container`` and ``skiff network`` are az's commands against skiff's
API, and they must behave alike: each failure prints one line,
``ERROR: (Code) message``, on stderr and exits 1 (3 when the API answered
404, as az does), never a traceback; secrets given on the command line (secure
environment variables, the registry password) are never printed, not even
inside an error message the server sent back; list options take
space-separated values (``--ports 80 443``); a long operation shows az's
spinner on a terminal. This module holds those pieces, so that neither
command group imports the other.

The commands get their client from a factory in ``ctx.obj``
(``SkiffClient.from_env`` unless the caller passed another: tests pass one
whose transport is a fake server), so pointing the CLI at a server is a
matter of ``SKIFF_URL``, ``SKIFF_TOKEN`` and ``SKIFF_CA``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import IO, Any, NoReturn, TypeVar, cast

import click

from skiff.client import ApiError, SkiffClient
from skiff.errors import SkiffError

F = TypeVar("F", bound=Callable[..., Any])
ClientFactory = Callable[[], SkiffClient]

_SECRETS_KEY = "skiff.secrets"
# az's exit code for a resource that is not there (ResourceNotFoundError).
_EXIT_NOT_FOUND = 3


class InvalidArgument(SkiffError):
    """A flag, a file or an answer the command cannot use; ``detail``, if any, is printed
    under the error line as it is (a parser's report: its lines, a caret under a column)."""

    code = "InvalidArgumentValue"

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


def _scrub(message: str, *, lines: bool = False) -> str:
    """``message`` without this command's secrets, on one line (with ``lines``, its own
    lines kept as they are)."""
    ctx = click.get_current_context(silent=True)
    secrets: list[str] = ctx.meta.get(_SECRETS_KEY, []) if ctx is not None else []
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            message = message.replace(secret, "***")
    return message.rstrip() if lines else " ".join(message.split())


def _die(code: str, message: str, status: int = 1, detail: str = "") -> NoReturn:
    click.echo(f"ERROR: ({code}) {_scrub(message)}", err=True)
    if detail:
        click.echo(_scrub(detail, lines=True), err=True)
    sys.exit(status)


def handle_errors(func: F) -> F:
    """Print every failure as ``ERROR: (Code) message`` and exit non-zero; never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except ApiError as exc:
            _die(exc.code, exc.message, _EXIT_NOT_FOUND if exc.status == 404 else 1)
        except InvalidArgument as exc:
            _die(exc.code, exc.message, detail=exc.detail)
        except SkiffError as exc:
            _die(exc.code, exc.message)
        except KeyboardInterrupt:
            click.echo("", err=True)
            sys.exit(130)
        except BrokenPipeError:
            sys.exit(1)
        except Exception as exc:  # a bug of ours or an answer of an unexpected shape
            _die("InternalError", f"{type(exc).__name__}: {exc}")

    return wrapper  # type: ignore[return-value]


def keep_secret(*values: str | None) -> None:
    """Values never to be printed, by this command's errors included."""
    ctx = click.get_current_context()
    ctx.meta.setdefault(_SECRETS_KEY, []).extend(v for v in values if v)


class AzCommand(click.Command):
    """A command whose list options take space-separated values, as az's do
    (``--ports 80 443``, ``-e A=1 B=2``): click wants the flag before each
    value, so the flag is repeated before click parses."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        lists = {opt for p in self.params if isinstance(p, click.Option) and p.multiple
                 for opt in p.opts}
        out: list[str] = []
        flag: str | None = None
        first = False
        for i, arg in enumerate(args):
            if arg == "--":
                out.extend(args[i:])
                break
            if flag is not None and not (arg.startswith("-") and len(arg) > 1):
                out.extend([arg] if first else [flag, arg])
                first = False
                continue
            flag = arg if arg in lists else None
            first = flag is not None
            out.append(arg)
        return super().parse_args(ctx, out)


def new_client() -> SkiffClient:
    """A client from the context's factory (``SkiffClient.from_env`` by default)."""
    obj = click.get_current_context().obj
    factory = cast(ClientFactory, obj if callable(obj) else SkiffClient.from_env)
    return factory()


class Progress:
    """az's progress while it waits, on stderr and only on a terminal: a spinner,
    the operation's status, the time spent."""

    _FRAMES = "|/-\\"

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else click.get_text_stream("stderr")
        self.tty = self.stream.isatty()
        self.start = time.monotonic()
        self.ticks = 0

    def __call__(self, status: str) -> None:
        if not self.tty:
            return
        frame = self._FRAMES[self.ticks % len(self._FRAMES)]
        self.ticks += 1
        elapsed = time.monotonic() - self.start
        detail = f" {status}" if status else ""
        self.stream.write(f"\r{frame} Running .. {elapsed:.0f}s{detail}\x1b[K")
        self.stream.flush()

    def done(self) -> None:
        if self.tty and self.ticks:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


@contextmanager
def show_progress() -> Iterator[Progress]:
    """A :class:`Progress` for the length of a wait, its line cleared after."""
    progress = Progress()
    progress("")
    try:
        yield progress
    finally:
        progress.done()


def rg_and_name(what: str) -> Callable[[F], F]:
    """The ``-g/--resource-group`` and ``-n/--name`` of the commands on a ``what``."""
    def options(func: F) -> F:
        func = click.option("--name", "-n", required=True, help=f"The name of the {what}.")(func)
        return click.option("--resource-group", "-g", "resource_group", required=True,
                            help="Name of resource group.")(func)
    return options


#: The ``-g``/``-n`` of a container group's commands.
rg_name = rg_and_name("container group")


def confirm_delete(yes: bool) -> None:
    """az's confirmation of a delete: asked on a terminal unless ``--yes``; refused
    without a terminal to ask on."""
    if yes:
        return
    if not click.get_text_stream("stdin").isatty():
        raise InvalidArgument("Unable to prompt for confirmation as no tty available. "
                              "Use --yes.")
    if not click.confirm("Are you sure you want to perform this operation?"):
        raise InvalidArgument("Operation cancelled.")
