"""The ``skiff`` command (:mod:`skiff.cli.main`)."""

import sys

# httpx imports its own command line (httpx._main: rich and pygments, ~40 ms of every
# skiff command's start) whenever they are installed; skiff never runs it. A None entry
# makes that import fail, and httpx then defines a stub httpx.main instead. Set before
# any module of the CLI imports httpx.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
