"""The ``skiff`` command: ``az container``-style commands that talk to the API
(:mod:`~skiff.cli.container`, :mod:`~skiff.cli.network`,
:mod:`~skiff.cli.storage`, :mod:`~skiff.cli.access`), and the node's own
commands (``skiff serve``, ``skiff token``, ``skiff image``, ``skiff node``), which import the
server, store or engine inside the command.

Each top-level command's module is imported only when that command runs (or its own help
is asked for): ``skiff container create`` does not pay for ``skiff image``'s settings, nor
``skiff --help`` for any of them; :data:`COMMANDS` holds the short help that lists them.
:func:`run` is the installed entry point (and ``python3 -m skiff``'s).
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from typing import Any

import click

from skiff import __version__

#: name: (module, attribute, short help). A unit test holds the help to the command's own.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "ad": ("skiff.cli.access", "ad",
           "Manage service principals, as `az ad` does (the node's admin token)."),
    "container": ("skiff.cli.container", "container",
                  "Manage container groups, as `az container` does, through skiff's API."),
    "identity": ("skiff.cli.identity", "identity",
                 "Manage user-assigned managed identities, as `az identity` does, through "
                 "skiff's API."),
    "image": ("skiff.cli.image", "image",
              "Manage the images of this node: pull, import, list, inspect, remove, prune."),
    "kube": ("skiff.cli.kube", "kube",
             "The Kubernetes backend: see what container groups become on a cluster."),
    "monitor": ("skiff.cli.monitor", "monitor",
                "Read container groups' metrics and the activity log, as `az monitor` does."),
    "network": ("skiff.cli.network", "network",
                "Manage virtual networks, as `az network` does, through skiff's API."),
    "node": ("skiff.cli.node", "node", "Manage this node itself (on the node, as root)."),
    "role": ("skiff.cli.access", "role",
             "Manage role assignments and see role definitions, as `az role` does."),
    "serve": ("skiff.cli.node", "serve", "Run the ACI API and the local engine on embedded "
              "defaults."),
    "standby-container-group-pool": (
        "skiff.cli.standby", "standby_pool",
        "Manage standby container group pools, as `az standby-container-group-pool` does, "
        "through skiff's API."),
    "storage": ("skiff.cli.storage", "storage",
                "Manage storage accounts and file shares, as `az storage` does, through "
                "skiff's API."),
    "token": ("skiff.cli.node", "token", "Manage API tokens (on the node, in its store)."),
    "usage": ("skiff.cli.usage", "usage",
              "Show container groups' usage and its cost (Microsoft.CostManagement), "
              "through skiff's API."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported when one is run or its help is shown; listing
    them (``skiff --help``) takes their short help from :data:`COMMANDS`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [(name, click.Command(name, help=COMMANDS[name][2]).get_short_help_str(limit))
                for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="skiff")
def main() -> None:
    """skiff: a self-hosted Azure Container Instances."""


def run(argv: list[str] | None = None) -> None:
    """The ``skiff`` command as a process runs it: :func:`main` without trio, then a quick
    exit.

    The process's objects are left to the operating system (no collection at exit, no
    module teardown, no atexit hooks: skiff registers none): logging, stdout and
    stderr are flushed, then the process ends with the command's exit code, as ``main``
    set it."""
    # httpcore (httpx's transport) imports trio, when it is installed, for the locks of its
    # async pools (~60 ms of every command that sends a request); the CLI is synchronous, and
    # httpcore takes a failed import as "no trio". Only here, in the command's own process.
    sys.modules.setdefault("trio", None)  # type: ignore[arg-type]
    code: Any
    try:
        main.main(args=argv, prog_name="skiff")
        code = 0
    except SystemExit as exc:
        code = exc.code
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    if any(thread.is_alive() and not thread.daemon for thread in threading.enumerate()
           if thread is not threading.main_thread()):
        sys.exit(code)  # a thread still at work (none of skiff's commands leave one): wait
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.shutdown()  # the node's commands' handlers: flushed and closed
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        code = code or 1  # stdout went away (a closed pipe): the exit says it
    os._exit(code)
