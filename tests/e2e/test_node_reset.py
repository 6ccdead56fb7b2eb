"""`skiff node reset` leaves the host as it was before skiff, and the data root until purged.

A real `skiff serve` in a process of its own runs three groups (public with a
secret volume, private in a virtual network's subnet, sandboxed under gVisor),
then stops with them still running: the host then holds their containers, the
warm pool's namespaces, two bridges, nftables tables, CNI's iptables rules,
cgroups, mounts and the run directory. The test compares the whole host before
the server started and after the reset (the root tests hold one lock, so no
other test changes the host meanwhile).
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import os
import re
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from skiff.cli.main import main
from skiff.core.shares import ShareRef
from skiff.engine import mounts
from skiff.engine.network.leftovers import node_network
from skiff.engine.shares import LoopShares
from skiff.testing.catalog import BuiltImages
from skiff.testing.registry import free_port
from skiff.testing.server import settled
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root

API = "?api-version=2023-05-01"
RG = "/subscriptions/sub-1/resourceGroups/rg"
ACI = f"{RG}/providers/Microsoft.ContainerInstance/containerGroups"
NET = f"{RG}/providers/Microsoft.Network/virtualNetworks"
#: Lines of iptables-save a reset may take although the host had them before: the CNI
#: firewall plugin's shared chains (removed once empty) and the jumps to them.
SHARED = re.compile(r"^(:CNI-(FORWARD|ADMIN) |-A (FORWARD|CNI-FORWARD) .*-j CNI-(FORWARD|ADMIN)$)")


def host_state() -> dict[str, set[str]]:
    """What the host holds that skiff could leave behind, as sets of lines."""
    def lines(*cmd: str) -> set[str]:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        return {re.sub(r" \[\d+:\d+\]$", "", line) for line in out.splitlines()
                if line and not line.startswith("#")}

    with open("/proc/self/mountinfo") as f:
        mounted = {line.split()[4] for line in f}
    loops = {f"{p.name} {(p / 'loop' / 'backing_file').read_text().strip()}"
             for p in Path("/sys/block").glob("loop*") if (p / "loop" / "backing_file").exists()}
    return {
        "netns": set(os.listdir("/run/netns")) if Path("/run/netns").is_dir() else set(),
        "links": set(os.listdir("/sys/class/net")),
        "nft": lines("nft", "list", "tables"),
        "iptables": lines("iptables-save", "-t", "nat") | lines("iptables-save", "-t", "filter"),
        "cgroups": {str(p) for p in Path("/sys/fs/cgroup").glob("*/skiff-*")},
        "mounts": mounted,
        "run": set(os.listdir("/run")),
        "loops": loops,
    }


def assert_as_before(before: dict[str, set[str]], after: dict[str, set[str]],
                     ranges: tuple[ipaddress.IPv4Network, ...]) -> None:
    """The host after a reset is the host before the server: nothing added, nothing of
    others taken, save the CNI plugin's shared chains (gone once empty) and the leases'
    rules of the node's own addresses (another node's leftovers of the same range)."""
    for kind in before:
        added = after[kind] - before[kind]
        taken = before[kind] - after[kind]
        if kind == "mounts":
            added -= {"/run/netns"}  # stays a shared mount point, as ip netns leaves it
        if kind == "run":
            added -= {"netns"}
        if kind == "iptables":
            taken = {line for line in taken if not SHARED.match(line)
                     and not any(f"{ip}/32" in line for r in ranges for ip in r)}
        assert not added, (kind, "left behind", sorted(added))
        assert not taken, (kind, "taken from others", sorted(taken))


class Serve:
    """`python3 -m skiff serve` on ``root``, in a process of its own."""

    def __init__(self, root: Path, allow: tuple[str, ...]) -> None:
        self.root, self.port = root, free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "skiff", "serve", "--data-root", str(root),
             "--listen", f"127.0.0.1:{self.port}",
             *(f"--allow-local-endpoint={endpoint}" for endpoint in allow)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        def answers() -> bool:
            with self.client() as client:  # closed: an idle one would hold a SIGTERM 5 s
                return client.get(ACI + API).status_code == 200

        eventually(answers, what="skiff serve answers", timeout_s=30,
                   ignore=(httpx.HTTPError, OSError))

    def client(self) -> httpx.Client:
        assert self.process.poll() is None, "skiff serve exited"
        token = (self.root / "admin.token").read_text().strip()
        return httpx.Client(base_url=f"https://127.0.0.1:{self.port}", timeout=30,
                            verify=ssl.create_default_context(cafile=self.root / "ca.pem"),
                            headers={"Authorization": f"Bearer {token}"})

    def stop(self) -> None:
        """SIGTERM: the server goes, its containers stay."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


def group(images: BuiltImages, **props: Any) -> dict[str, Any]:
    container = {"name": "c", "properties": {
        "image": images.bb, "command": ["sleep", "300"],
        "resources": {"requests": {"cpu": 0.1, "memoryInGB": 0.1}}}}
    if "volumes" in props:
        container["properties"]["volumeMounts"] = [{"name": "s", "mountPath": "/s"}]
    if "ipAddress" in props:
        container["properties"]["ports"] = [{"port": 80}]
    return {"location": "local", "properties": {
        "osType": "Linux", "restartPolicy": "Always", "containers": [container], **props}}


def run_groups(serve: Serve, images: BuiltImages) -> None:
    """A public group with a secret volume, a private one in a subnet, a sandboxed one."""
    secret = base64.b64encode(b"hush").decode()
    bodies = {
        "public": group(images, ipAddress={"type": "Public", "ports": [{"port": 80}]},
                        volumes=[{"name": "s", "secret": {"k": secret}}]),
        "private": group(images, ipAddress={"type": "Private", "ports": [{"port": 80}]},
                         subnetIds=[{"id": f"{NET}/net1/subnets/default"}]),
        "boxed": group(images, isolation="Sandbox"),
    }
    with serve.client() as http:
        made = http.put(f"{NET}/net1{API}", json={"location": "local", "properties": {
            "addressSpace": {"addressPrefixes": ["10.213.0.0/16"]},
            "subnets": [{"name": "default", "properties": {"addressPrefix": "10.213.1.0/24"}}]}})
        assert made.status_code in (200, 201), made.text
        for name, body in bodies.items():
            answer = http.put(f"{ACI}/{name}{API}", json=body)
            assert answer.status_code in (200, 201), answer.text
        for name in bodies:
            found = settled(http, f"{ACI}/{name}{API}", timeout_s=60)
            assert found["properties"]["instanceView"]["state"] == "Running", found


def reset(root: Path, *flags: str) -> Result:
    return CliRunner().invoke(main, ["node", "reset", "--data-root", str(root), *flags])


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    """The data root; whatever the test leaves there is reset (forced) after it."""
    path = tmp_path / "root"
    yield path
    with contextlib.suppress(Exception):
        reset(path, "--force", "--grace", "0")


def test_reset_refuses_while_serving_or_running_then_undoes_everything(
    host_alone: None, root: Path, images: BuiltImages
) -> None:
    """Refused while the server runs, then while its groups run; forced, it leaves the
    host as before the server and keeps the data root, whose groups the next server runs
    again; purged, nothing is left."""
    before = host_state()
    serve = Serve(root, images.endpoints)
    try:
        run_groups(serve, images)
        with serve.client() as http:  # a file share, made as a tenant makes one
            account = f"{RG}/providers/Microsoft.Storage/storageAccounts/resetacct"
            made = http.put(f"{account}{API}", json={
                "location": "local", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}})
            assert made.status_code in (200, 201), made.text
            made = http.put(f"{account}/fileServices/default/shares/data{API}",
                            json={"properties": {"shareQuota": 1}})
            assert made.status_code in (200, 201), made.text
        busy = reset(root, "--force")
        assert busy.exit_code == 1, busy.output
        assert "skiff serve runs on" in busy.stderr
    finally:
        serve.stop()
    during = host_state()
    assert during["netns"] - before["netns"], "the groups and the pool hold namespaces"
    ranges = node_network(root).subnets

    running = reset(root)
    assert running.exit_code == 1, running.output
    assert "3 group(s) still run" in running.stderr
    for name in ("boxed", "private", "public"):
        assert name in running.stderr
    assert host_state() == during, "a refused reset touches nothing"

    # a file share: the reset unmounts it and keeps its data, the next server mounts it
    shares = LoopShares(root / "shares")
    share = ShareRef("resetacct", "data")
    (shares.root(share) / "kept").write_text("kept")
    point = root / "shares" / "resetacct" / "data"
    done = reset(root, "--force", "--grace", "1")
    assert done.exit_code == 0, (done.stdout, done.stderr)
    assert f"removed mount {point}" in done.stdout, done.stdout
    assert not mounts.is_mounted(point)
    assert shares.names() == [share]
    for what in ("container", "network namespace", "nftables table", "iptables",
                 "cgroup", "mount", "the run directory"):
        assert f"removed {what}" in done.stdout, done.stdout
    assert_as_before(before, host_state(), ranges)
    for kept in ("skiff.db", "ca.pem", "admin.token", "images"):
        assert (root / kept).exists(), kept

    # the data root is whole: the next server runs its groups again
    again = Serve(root, images.endpoints)
    try:
        with again.client() as http:
            for name in ("public", "private", "boxed"):
                def runs(name: str = name) -> bool:
                    doc = http.get(f"{ACI}/{name}{API}").json()
                    return bool(doc["properties"]["instanceView"]["state"] == "Running")

                eventually(runs, what=f"group {name} runs again", timeout_s=60)
        assert (point / "kept").read_text() == "kept"  # mounted again at start
    finally:
        again.stop()
    purged = reset(root, "--force", "--grace", "1", "--purge")
    assert purged.exit_code == 0, (purged.stdout, purged.stderr)
    assert f"removed the data root {root}" in purged.stdout
    assert f"removed mount {point}" in purged.stdout
    assert not root.exists()
    assert_as_before(before, host_state(), ranges)
    nothing = reset(root)
    assert nothing.exit_code == 0
    assert nothing.stdout.startswith("nothing of skiff was on this host")
