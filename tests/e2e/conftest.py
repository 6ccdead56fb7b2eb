"""A real skiff server (HTTPS, store, reconcile loop, engine) on a loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff.testing.catalog import BuiltImages
from skiff.testing.server import RunningServer, running_server


@pytest.fixture
def skiff(tmp_path: Path, images: BuiltImages) -> Iterator[RunningServer]:
    """A skiff serving on a fresh data root, its tenants' pulls allowed to reach the
    session's registries; its groups and node set-up go after."""
    with running_server(tmp_path / "root", allow=images.endpoints) as running:
        yield running


@pytest.fixture(scope="module")
def module_skiff(tmp_path_factory: pytest.TempPathFactory,
                 images: BuiltImages) -> Iterator[RunningServer]:
    """One skiff for all the tests of a module (each keeping to its own resource group),
    where a server per test would cost more than the tests."""
    with running_server(tmp_path_factory.mktemp("module") / "root",
                        allow=images.endpoints) as running:
        yield running
