"""Shared fixtures (the catalog's images in real registries, an image store), and which
tests are skipped without root."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff.engine import mounts
from skiff.engine.images import ImageStore
from skiff.engine.images.rootfs import unmount
from skiff.testing import az as azcli
from skiff.testing.catalog import BuiltImages, built_images


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``root`` (mounts, namespaces, runtimes, real registries) are skipped
    unless the run is root, as CI's is; every other test runs as any user."""
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="marked root: needs root (run as root, as CI does)")
    for item in items:
        if item.get_closest_marker("root") is not None:
            item.add_marker(skip)


#: The host's shared state (namespaces, links, mounts, tables, cgroups) between test runs
#: side by side (scripts/test runs the fuzzer beside the node's tests): a test that makes
#: such state beside others holds this lock shared, one that compares the whole host
#: before and after holds it alone.
HOST_LOCK = Path(tempfile.gettempdir()) / "skiff-tests-host.lock"


@contextlib.contextmanager
def _holding_the_host(mode: int) -> Iterator[None]:
    fd = os.open(HOST_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # and the lock with it


@pytest.fixture
def host_shared() -> Iterator[None]:
    """The host, shared with other test runs that make state on it (no test alone)."""
    with _holding_the_host(fcntl.LOCK_SH):
        yield


@pytest.fixture
def host_alone() -> Iterator[None]:
    """The host to this test alone: no run beside makes or removes anything meanwhile."""
    with _holding_the_host(fcntl.LOCK_EX):
        yield


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltImages]:
    """The catalog's images in a public and a private registry, for the whole session."""
    if shutil.which("docker-registry") is None or shutil.which("skopeo") is None:
        pytest.skip("needs docker-registry and skopeo (run .ci/run)")
    with built_images(tmp_path_factory.mktemp("registries")) as built:
        yield built


@pytest.fixture
def az(tmp_path: Path) -> azcli.Az:
    """The real az CLI (the pinned azure-cli CI installs), isolated in a configuration
    directory of this test's; ``az.trusting(server.ca)`` for a skiff's HTTPS. Skipped
    only where no az is installed (CI always has it)."""
    found = azcli.find()
    if found is None:
        pytest.skip(azcli.HOW_TO_INSTALL)
    config = tmp_path / "az-config"
    config.mkdir(mode=0o700)
    return azcli.Az(found, config)


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    """An image store in a fresh data root."""
    return ImageStore(tmp_path / "images")


@pytest.fixture(autouse=True)
def _unmount_leftovers(tmp_path: Path) -> Iterator[None]:
    """Whatever a test mounted under its tmp_path is unmounted after it, pass or fail."""
    yield
    for point in mounts.mounts_below(tmp_path):
        unmount(point)
