"""The node commands: `skiff token create`, and `skiff serve --help`."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from skiff.cli.main import main
from skiff.errors import NetworkError
from skiff.server import bind
from skiff.settings import Settings
from skiff.store import Store


def test_token_create_prints_a_token_bound_to_its_subscription(tmp_path: Path) -> None:
    """The printed token authenticates, bound to its subscription; only its hash is stored."""
    result = CliRunner().invoke(main, ["token", "create", "--data-root", str(tmp_path),
                                       "--subscription", "sub-1", "--name", "ci"])
    assert result.exit_code == 0, result.output
    secret = result.output.strip()
    store = Store(tmp_path / "skiff.db")
    try:
        record = store.check_token(secret)
        assert record is not None
        assert record.subscription == "sub-1"
        assert store.check_token(secret + "x") is None
    finally:
        store.close()
    assert secret.encode() not in (tmp_path / "skiff.db").read_bytes()


def test_serve_help_names_its_options() -> None:
    """`skiff serve --help` documents the embedded defaults."""
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--data-root", "--listen", "--location", "--tls-cert", "127.0.0.1:8443"):
        assert option in result.output


def test_serve_refuses_a_public_interface_without_its_subnet() -> None:
    """--public-interface alone, or a --public-subnet that is no CIDR, is a usage error."""
    alone = CliRunner().invoke(main, ["serve", "--public-interface", "eth0"])
    assert alone.exit_code == 2
    assert "--public-subnet" in alone.output
    bad = CliRunner().invoke(main, ["serve", "--public-subnet", "10.0.0.1/24"])
    assert bad.exit_code == 2
    assert "--public-subnet" in bad.output
    assert "--public-interface" in CliRunner().invoke(main, ["serve", "--help"]).output


def test_serve_passes_its_public_cached_images(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each --public-cached-image reaches ApiSettings; one Docker would refuse is a usage
    error, and --help documents the option."""
    import skiff.server

    started: list[Settings] = []
    monkeypatch.setattr(skiff.server, "serve", started.append)
    result = CliRunner().invoke(main, ["serve", "--public-cached-image", "busybox:1",
                                       "--public-cached-image", "registry.test/base:2"])
    assert result.exit_code == 0, result.output
    assert started[0].api.public_cached_images == ("busybox:1", "registry.test/base:2")
    bad = CliRunner().invoke(main, ["serve", "--public-cached-image", "Not/Valid"])
    assert bad.exit_code == 2
    assert "--public-cached-image" in bad.output
    assert started[1:] == []
    assert "--public-cached-image" in CliRunner().invoke(main, ["serve", "--help"]).output


def test_serve_passes_its_locations(monkeypatch: pytest.MonkeyPatch) -> None:
    """--locations reaches ApiSettings as a tuple (not given: None, every Azure region);
    an empty list is a usage error; --help documents it."""
    import skiff.server

    started: list[Settings] = []
    monkeypatch.setattr(skiff.server, "serve", started.append)
    assert CliRunner().invoke(main, ["serve"]).exit_code == 0
    assert started[0].api.locations is None
    result = CliRunner().invoke(main, ["serve", "--location", "edge-1",
                                       "--locations", "westeurope, northeurope"])
    assert result.exit_code == 0, result.output
    assert started[1].api.location == "edge-1"
    assert started[1].api.locations == ("westeurope", "northeurope")
    bad = CliRunner().invoke(main, ["serve", "--locations", " , "])
    assert bad.exit_code == 2
    assert "--locations" in bad.output
    assert len(started) == 2
    assert "--locations" in CliRunner().invoke(main, ["serve", "--help"]).output


def test_serve_passes_its_allowed_local_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each --allow-local-endpoint reaches NetworkSettings; one that is no address and
    port is a usage error; --help documents the option."""
    import skiff.server

    started: list[Settings] = []
    monkeypatch.setattr(skiff.server, "serve", started.append)
    result = CliRunner().invoke(main, ["serve", "--allow-local-endpoint", "127.0.0.1:5000",
                                       "--allow-local-endpoint", "localhost:5001"])
    assert result.exit_code == 0, result.output
    assert started[0].network.allow_local_endpoints == ("127.0.0.1:5000", "localhost:5001")
    bad = CliRunner().invoke(main, ["serve", "--allow-local-endpoint", "registry.local:5000"])
    assert bad.exit_code == 2
    assert "--allow-local-endpoint" in bad.output
    assert started[1:] == []
    assert "--allow-local-endpoint" in CliRunner().invoke(main, ["serve", "--help"]).output


def test_serve_passes_its_group_disk_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """--group-disk-gb reaches DiskSettings (10 GB by default, 0 turns it off); more than
    ACI's 50 GB is a usage error, and --help documents the option."""
    import skiff.server

    started: list[Settings] = []
    monkeypatch.setattr(skiff.server, "serve", started.append)
    assert CliRunner().invoke(main, ["serve"]).exit_code == 0
    assert started[0].disks.group_gb == 10
    assert CliRunner().invoke(main, ["serve", "--group-disk-gb", "0"]).exit_code == 0
    assert started[1].disks.group_bytes == 0
    bad = CliRunner().invoke(main, ["serve", "--group-disk-gb", "60"])
    assert bad.exit_code == 2
    assert "--group-disk-gb" in bad.output
    assert len(started) == 2
    assert "--group-disk-gb" in CliRunner().invoke(main, ["serve", "--help"]).output


def test_serve_passes_its_quotas(monkeypatch: pytest.MonkeyPatch) -> None:
    """--quota NAME=LIMIT sets every subscription's limit (names in any case), and
    SUBSCRIPTION/NAME=LIMIT one subscription's; ACI's defaults otherwise. An unknown name
    or a negative limit is a usage error; --help names the quotas."""
    import skiff.server

    started: list[Settings] = []
    monkeypatch.setattr(skiff.server, "serve", started.append)
    assert CliRunner().invoke(main, ["serve"]).exit_code == 0
    assert started[0].quotas.limits("any") == {
        "ContainerGroups": 100, "StandardCores": 100, "ContainerGroupCreatesPer5Minutes": 100,
        "ContainerGroupCreatesPerHour": 300, "ContainerGroupDeletesPer5Minutes": 100,
        "ContainerGroupDeletesPerHour": 300, "StandardSpotCores": 100}
    result = CliRunner().invoke(main, ["serve", "--quota", "standardcores=8",
                                       "--quota", "sub-1/ContainerGroups=3"])
    assert result.exit_code == 0, result.output
    assert started[1].quotas.limits("SUB-1")["ContainerGroups"] == 3
    assert started[1].quotas.limits("sub-2")["ContainerGroups"] == 100
    assert started[1].quotas.limits("sub-2")["StandardCores"] == 8
    for bad in ("Cores=3", "StandardCores=-1", "StandardCores", "StandardCores=x"):
        refused = CliRunner().invoke(main, ["serve", "--quota", bad])
        assert refused.exit_code == 2, bad
        assert "--quota" in refused.output
    assert len(started) == 2
    assert "ContainerGroupCreatesPer5Minutes" in CliRunner().invoke(
        main, ["serve", "--help"]).output


def test_serve_binds_port_0_to_a_free_port_it_names() -> None:
    """--listen 127.0.0.1:0 is bound before serving, and the port the kernel gave is the one
    named (the banner, operation URLs); a port taken is one NetworkError."""
    sock, listen = bind("127.0.0.1:0")
    with sock:
        port = sock.getsockname()[1]
        assert port != 0
        assert listen == f"127.0.0.1:{port}"
        with pytest.raises(NetworkError, match=f"cannot listen on 127.0.0.1:{port}: "):
            bind(listen)
