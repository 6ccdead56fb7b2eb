"""The run directory's parts that mount nothing: what counts as state on disk, and a run
directory that holds some is left where it is (the tmpfs itself is tested as root, in
tests/engine/test_secrets_engine.py)."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from skiff.engine import mounts
from skiff.engine.runtime import rundir
from skiff.engine.runtime.conmon import ConmonRuntime
from skiff.settings import RuntimeSettings


def test_empty_directories_are_no_state(tmp_path: Path) -> None:
    """Directories alone (what a runtime makes at construction) hold no state; one file
    below does."""
    (tmp_path / "runtime" / "deep").mkdir(parents=True)
    (tmp_path / "sock").mkdir()
    assert not rundir.holds_files(tmp_path)
    (tmp_path / "runtime" / "deep" / "state.json").write_text("{}")
    assert rundir.holds_files(tmp_path)


def test_a_run_directory_with_state_on_disk_is_kept_root_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An earlier skiff's state on disk: no tmpfs is mounted over it (it would hide the
    containers that run), the directory becomes 0700 and a warning says why."""
    run = tmp_path / "run"
    (run / "runtime" / "c1").mkdir(parents=True)
    (run / "runtime" / "c1" / "state.json").write_text("{}")
    os.chmod(run, 0o755)  # noqa: S103 -- the more open directory of an earlier skiff
    with caplog.at_level(logging.WARNING):
        assert rundir.prepare(run, 1 << 20) is False
    assert mounts.filesystems_at(run) == []
    assert stat.S_IMODE(run.stat().st_mode) == 0o700
    assert "until the next reboot" in caplog.text


def test_filesystems_at_names_what_is_mounted_there(tmp_path: Path) -> None:
    """The root has a filesystem; a plain directory has none of its own."""
    assert mounts.filesystems_at(Path("/"))
    assert mounts.filesystems_at(tmp_path) == []
    assert not rundir.on_tmpfs(tmp_path)


def test_a_runtime_mounts_nothing_until_its_first_container(tmp_path: Path) -> None:
    """Constructing a runtime touches no mount (it may run as any user): its bundles live
    on the run directory, its logs on the data root."""
    runtime = ConmonRuntime(tmp_path / "root", RuntimeSettings(run_dir=tmp_path / "run"))
    assert mounts.filesystems_at(tmp_path / "run") == []
    assert runtime.bundle("sk0123").parent == tmp_path / "run" / "bundles"
    assert runtime.dir("sk0123").parent == tmp_path / "root" / "containers"
