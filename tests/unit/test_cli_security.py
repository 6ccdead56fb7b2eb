"""`skiff serve --allow-privileged` and `--userns-remap`: parsing and what reaches Settings."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest
from click.testing import CliRunner

from skiff.cli.main import main
from skiff.settings import Settings


def serve_settings(tmp_path: Path, *args: str) -> Settings:
    """The Settings `skiff serve ARGS` would run the server with (it is not started)."""
    with mock.patch("skiff.server.serve") as run:
        result = CliRunner().invoke(main, ["serve", "--data-root", str(tmp_path), *args])
    assert result.exit_code == 0, result.output
    settings: Settings = run.call_args.args[0]
    return settings


def test_defaults_refuse_privileged_and_do_not_remap(tmp_path: Path) -> None:
    """Without the flags, privileged containers are refused and no ids are remapped."""
    settings = serve_settings(tmp_path)
    assert settings.api.allow_privileged is False
    assert settings.runtime.userns is None


def test_flags_reach_the_settings(tmp_path: Path) -> None:
    """--allow-privileged and --userns-remap alone (the default range) or with a range."""
    settings = serve_settings(tmp_path, "--allow-privileged", "--userns-remap")
    assert settings.api.allow_privileged is True
    assert settings.runtime.userns == (100000, 65536)
    assert serve_settings(tmp_path, "--userns-remap", "200000:1000").runtime.userns == (
        200000, 1000)


@pytest.mark.parametrize("value", ["0:65536", "100000:0", "abc", "100000", "4294967000:65536"])
def test_bad_ranges_are_usage_errors(tmp_path: Path, value: str) -> None:
    """A range at host id 0, empty, malformed or past 32 bits is refused before serving."""
    with mock.patch("skiff.server.serve") as run:
        result = CliRunner().invoke(main, ["serve", "--data-root", str(tmp_path),
                                           "--userns-remap", value])
    assert result.exit_code == 2
    assert "--userns-remap" in result.output
    run.assert_not_called()


def test_help_documents_both_flags() -> None:
    """`skiff serve --help` explains --allow-privileged and --userns-remap."""
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert "--allow-privileged" in result.output
    assert "--userns-remap FIRST:COUNT" in result.output
