"""The engine tests' Supervisor and group definitions: fast restarts, a 50 ms monitor,
nothing left behind, and busybox containers running a script.

Group tests get their definitions from the ``group`` fixture (tests/engine/conftest.py),
which makes them on each runtime in turn; :func:`group_spec` is for a test that names
its runtime itself, because what it proves holds for one only.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterator, Sequence
from typing import Protocol

import pytest

from skiff.core.spec import Container, GroupSpec, Resources
from skiff.engine.group.supervisor import Supervisor
from skiff.settings import BackoffSettings, Settings
from skiff.testing import engine as testing
from skiff.testing.catalog import BuiltImages

#: Restarts within a test's patience: 0.2 s doubling to 1 s.
FAST_BACKOFF = BackoffSettings(initial_s=0.2, factor=2, max_s=1, reset_after_s=600)
runsc_pids = testing.runsc_pids
#: Skips a test on a machine without gVisor.
needs_runsc = pytest.mark.skipif(shutil.which("runsc") is None, reason="needs runsc")


@contextlib.contextmanager
def fast_supervising(settings: Settings, allow: Sequence[str] = ()) -> Iterator[Supervisor]:
    """A Supervisor on ``settings`` whose fetches may reach the local endpoints ``allow``
    too (the tests' registries); everything it made goes after, pass or fail."""
    with testing.supervising(settings, allow=allow, backoff=FAST_BACKOFF,
                             monitor_interval_s=0.05) as supervisor:
        yield supervisor


def group_spec(*containers: Container, **fields: object) -> GroupSpec:
    """A group of ``containers`` with a fresh id and name (``fields`` override them)."""
    name = fields.pop("name", "grp-" + uuid.uuid4().hex[:6])
    group_id = fields.pop("id", uuid.uuid4().hex)
    return GroupSpec(id=str(group_id), name=str(name), containers=containers, **fields)  # type: ignore[arg-type]


class GroupMaker(Protocol):
    """Makes group definitions on one runtime (the ``group`` fixture)."""

    isolation: str

    def __call__(self, *containers: Container, **fields: object) -> GroupSpec: ...


def box(images: BuiltImages, name: str, script: str, **fields: object) -> Container:
    """A busybox container running a shell script."""
    return Container(name=name, image=images.bb, command=("sh", "-c", script),
                     resources=Resources(cpu=0.5, memory_gb=0.25), **fields)  # type: ignore[arg-type]
