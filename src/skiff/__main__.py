"""``python3 -m skiff``: the skiff command."""

from skiff.cli.main import run

run()
