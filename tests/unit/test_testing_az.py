"""skiff.testing.az: finding az, running it isolated, secrets masked. An executable script
stands in for az here; the real one is driven in tests/e2e."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skiff.testing import az as azcli

# Prints what it was run with: its arguments and the environment az would read.
ECHO = """#!/bin/sh
exec python3 -c 'import json, os, sys
if sys.argv[1:2] == ["fail"]:
    sys.stderr.write("ERROR: it failed\\n"); sys.exit(3)
if sys.argv[1:2] == ["slow"]:
    import time; time.sleep(30)
print(json.dumps({"args": sys.argv[1:], "cwd": os.getcwd(),
                  "env": {k: v for k, v in os.environ.items()
                          if k.startswith(("AZURE_", "REQUESTS_", "EXTRA"))}}))' "$@"
"""


@pytest.fixture
def fake_az(tmp_path: Path) -> Path:
    path = tmp_path / "bin" / "az"
    path.parent.mkdir()
    path.write_text(ECHO)
    path.chmod(0o755)
    return path


def test_find_prefers_skiff_az_then_the_pinned_venv_then_path(
        fake_az: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SKIFF_AZ", str(fake_az))
    assert azcli.find() == str(fake_az)
    monkeypatch.setenv("SKIFF_AZ", str(tmp_path / "nothing"))
    assert azcli.find() is None  # named but absent: not another one silently
    monkeypatch.delenv("SKIFF_AZ")
    monkeypatch.setattr(azcli, "AZ_HOME", tmp_path / "no-venv")
    monkeypatch.setenv("PATH", str(fake_az.parent))
    assert azcli.find() == str(fake_az)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert azcli.find() is None
    with pytest.raises(LookupError, match="SKIFF_AZ"), azcli.az_cli():
        pass


def test_az_runs_isolated_with_json_output_and_the_given_ca(
        fake_az: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "AccountKey=mine")
    monkeypatch.setenv("AZURE_CONFIG_DIR", "/root/.azure")
    ca = tmp_path / "ca.pem"
    with azcli.az_cli(ca=ca, executable=str(fake_az)) as az:
        config = az.config_dir
        assert config.is_dir()
        seen = az("storage", "share", "list", env={"EXTRA": "1"}, cwd=tmp_path)
    assert not config.exists()  # its configuration goes with it
    assert seen["args"] == ["storage", "share", "list", "--output", "json"]
    assert seen["cwd"] == str(tmp_path)
    env = seen["env"]
    assert env["AZURE_CONFIG_DIR"] == str(config)
    assert "AZURE_STORAGE_CONNECTION_STRING" not in env  # the caller's az settings stay out
    assert env["REQUESTS_CA_BUNDLE"] == str(ca)
    assert env["AZURE_CORE_COLLECT_TELEMETRY"] == "false"
    assert env["AZURE_CORE_SURVEY_MESSAGE"] == "false"
    assert env["EXTRA"] == "1"
    other = azcli.Az(str(fake_az), tmp_path).trusting(None)
    assert other("x", "-o", "tsv")["args"] == ["x", "-o", "tsv"]  # an output given is kept
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    assert "REQUESTS_CA_BUNDLE" not in other("x")["env"]  # no CA given: the system's


def test_a_failure_raises_with_stderr_and_secrets_masked(fake_az: Path,
                                                         tmp_path: Path) -> None:
    az = azcli.Az(str(fake_az), tmp_path)
    with pytest.raises(azcli.AzFailed) as caught:
        az("fail", "--connection-string", "AccountKey=s3cret", "--account-key=k3y")
    message = str(caught.value)
    assert "exited 3" in message
    assert "it failed" in message
    assert "s3cret" not in message
    assert "k3y" not in message
    assert caught.value.returncode == 3
    result = az.run("fail")  # run() answers whatever the exit status
    assert result.returncode == 3
    assert result.data is None


def test_a_command_past_its_timeout_is_killed(fake_az: Path, tmp_path: Path) -> None:
    az = azcli.Az(str(fake_az), tmp_path, timeout_s=0.5)
    with pytest.raises(azcli.AzFailed, match="timed out") as caught:
        az("slow")
    assert caught.value.returncode is None


def test_masked_hides_only_secret_values() -> None:
    assert azcli.masked(["storage", "file", "list", "-s", "data", "-p", "in",
                         "--connection-string", "X", "--password=Y"]) == [
        "storage", "file", "list", "-s", "data", "-p", "in",
        "--connection-string", "***", "--password=***"]


def test_parsed_output() -> None:
    result = azcli.AzResult(0, json.dumps([1, 2]), "")
    assert result.data == [1, 2]
    assert azcli.AzResult(0, "not json", "").data is None
    assert azcli.AzResult(0, "  \n", "").data is None
