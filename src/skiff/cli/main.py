"""The ``skiff`` command: ``az container``-style commands that talk to the API
(:mod:`~skiff.cli.container`, :mod:`~skiff.cli.network`,
:mod:`~skiff.cli.storage`), and the node's own
commands (``skiff serve``, ``skiff token``, ``skiff image``, ``skiff node``), which import the
server, store or engine inside the command, so ``skiff --help`` stays light.
"""

from __future__ import annotations

import click

from skiff import __version__
from skiff.cli.container import container
from skiff.cli.image import image
from skiff.cli.network import network
from skiff.cli.node import node, serve, token
from skiff.cli.storage import storage


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="skiff")
def main() -> None:
    """skiff: a self-hosted Azure Container Instances."""


main.add_command(container)
main.add_command(image)
main.add_command(network)
main.add_command(node)
main.add_command(serve)
main.add_command(storage)
main.add_command(token)
