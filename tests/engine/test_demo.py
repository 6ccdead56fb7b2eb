"""The README's main command keeps working."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from skiff import demo
from skiff.engine import cgroups
from skiff.engine.network import bridge_name
from skiff.engine.runtime import run_dir_for


def test_demo_runs_a_group_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The demo pulls, runs a two-container group, sees the page fetched, and cleans up."""
    root = tmp_path / "root"
    try:
        assert demo.run(root) == 0
    finally:
        subprocess.run(["ip", "link", "del", bridge_name(root)], capture_output=True,
                       check=False)
        cgroups.remove(f"/{run_dir_for(root).name}")
        shutil.rmtree(run_dir_for(root), ignore_errors=True)
    out = capsys.readouterr().out
    assert "Hello from a skiff container group!" in out
    assert "fetched by skiff-demo" in out
    assert "skiff demo: OK" in out
    assert str(root) not in Path("/proc/self/mountinfo").read_text()
