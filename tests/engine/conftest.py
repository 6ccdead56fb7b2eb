"""The engine tests' fixtures: a Supervisor that cleans up after itself, and the runtimes
every group test runs on.

A test that makes its groups with the ``group`` fixture runs once per runtime driver:
on runc (``isolation="container"``) and in a gVisor sandbox per group
(``isolation="sandbox"``, skipped where runsc is missing), so a new test of the engine
covers both without being listed anywhere. A test of one runtime's particulars makes
its definitions with ``supervising.group_spec`` and says why in its docstring.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff.core.spec import Container, GroupSpec
from skiff.engine.group.supervisor import Supervisor
from skiff.settings import RuntimeSettings, Settings
from skiff.testing.catalog import BuiltImages
from skiff.testing.groups import GroupMaker, fast_supervising, group_spec, needs_runsc


@pytest.fixture(params=["container", pytest.param("sandbox", marks=needs_runsc)])
def isolation(request: pytest.FixtureRequest) -> str:
    """The runtime a test's groups run on: runc, or one gVisor sandbox per group."""
    return str(request.param)


@pytest.fixture
def group(isolation: str) -> GroupMaker:
    """Makes the test's group definitions, on the runtime of this run of the test."""
    class Maker:
        def __init__(self) -> None:
            self.isolation = isolation

        def __call__(self, *containers: Container, **fields: object) -> GroupSpec:
            return group_spec(*containers, isolation=self.isolation, **fields)

    return Maker()


@pytest.fixture
def engine(tmp_path: Path, images: BuiltImages) -> Iterator[Supervisor]:
    """A supervisor on a fresh data root; its groups, sandboxes, namespaces, bridge and
    cgroups go after, pass or fail."""
    # A short grace: most test containers are shells that ignore SIGTERM as PID 1.
    settings = Settings(data_root=tmp_path / "root", runtime=RuntimeSettings(stop_grace_s=1))
    with fast_supervising(settings, allow=images.endpoints) as supervisor:
        yield supervisor
