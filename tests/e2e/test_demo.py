"""The README's main command keeps working."""

from __future__ import annotations

import ipaddress
import os
import subprocess
from pathlib import Path

import pytest

from skiff import demo
from skiff.engine.network import firewall
from skiff.engine.network.networks import Networks, bridge_name
from skiff.engine.runtime import cgroups, rundir
from skiff.engine.runtime.conmon import run_dir_for
from skiff.testing.registry import free_port

# The demo ends with `skiff node reset`, which removes the CNI firewall plugin's shared
# chains once no rule of a group is left in them: alone on the host, so that the fuzzer's
# groups beside it (scripts/test) do not make them again between removal and check.
pytestmark = [pytest.mark.root, pytest.mark.usefixtures("host_alone")]


def test_demo_runs_a_web_group_through_the_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo serves, imports an image, creates a web group, fetches its page from the IP it
    shows, deletes it, and resets the node: nothing of it stays on the host."""
    root = tmp_path / "root"
    try:
        assert demo.run(root, f"127.0.0.1:{free_port()}") == 0
        # The demo ends with skiff node reset: nothing of its node stays on the host.
        assert not run_dir_for(root).exists()
        assert not cgroups.exists(f"/{run_dir_for(root).name}")
        assert not Path(f"/sys/class/net/{bridge_name(root)}").exists()
        assert not firewall.host_guard_installed(bridge_name(root))
        tag = bridge_name(root).removeprefix("sk")
        assert not [n for n in os.listdir("/run/netns") if n.startswith(f"sk-{tag}-")]
    finally:
        networks = Networks(root)
        networks.drain_pool()
        networks.close()
        subprocess.run(["ip", "link", "del", bridge_name(root)], capture_output=True,
                       check=False)
        firewall.remove_host_guard(bridge_name(root))
        cgroups.remove(f"/{run_dir_for(root).name}")
        rundir.remove(run_dir_for(root))
    out = capsys.readouterr().out
    assert "Hello from a skiff container group!" in out
    assert "Running" in out
    assert "$ skiff node reset" in out
    assert "skiff demo: OK" in out
    assert "the portal's sign-in page" in out
    ending = [line.strip() for line in out.rstrip().splitlines()[-2:]]
    assert ending[0].startswith("open https://")
    assert "admin token" in ending[0]
    assert ending[1].startswith("or with a service principal's")
    lines = [line.strip() for line in out.splitlines()]
    query = next(i for i, line in enumerate(lines) if line.endswith("--query ipAddress.ip -o tsv"))
    ip = ipaddress.ip_address(lines[query + 1])  # each command echoed is followed by its output
    assert lines[query + 2] == f"$ curl http://{ip}/"
    assert str(root) not in Path("/proc/self/mountinfo").read_text()
