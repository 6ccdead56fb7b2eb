"""`skiff serve` killed with SIGKILL at any moment loses nothing, duplicates nothing, adopts all."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from click.testing import CliRunner

from skiff.cli.main import main
from skiff.engine.network import firewall
from skiff.engine.network.fetching import FetchNamespace
from skiff.engine.network.networks import bridge_name
from skiff.engine.runtime import cgroups, rundir
from skiff.engine.runtime.conmon import run_dir_for
from skiff.settings import Settings
from skiff.testing.catalog import BuiltImages
from skiff.testing.reboot import reboot
from skiff.testing.registry import free_port
from skiff.testing.server import settled
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root

SUB = "crash-test"
API = "?api-version=2023-05-01"
GROUPS = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerInstance/" \
         "containerGroups"


class Serve:
    """`python3 -m skiff serve` as a process of its own."""

    def __init__(self, root: Path, port: int, allow: Sequence[str]) -> None:
        self.root, self.port, self.allow = root, port, allow
        self.files_port = free_port()  # the Azure Files data plane's
        self.process: subprocess.Popen[bytes] | None = None
        self.clients: list[httpx.Client] = []  # what client() handed out
        #: Set by a test that cleaned up itself: the fixture then starts no server again.
        self.finished = False

    @property
    def files_url(self) -> str:
        return f"https://127.0.0.1:{self.files_port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "skiff", "serve", "--data-root", str(self.root),
             "--listen", f"127.0.0.1:{self.port}",
             "--files-listen", f"127.0.0.1:{self.files_port}",
             *(f"--allow-local-endpoint={endpoint}" for endpoint in self.allow)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        process = self.process

        def answers() -> bool:
            assert process.poll() is None, "skiff serve exited"
            with self.client() as client:
                return client.get(GROUPS + API).status_code == 200

        eventually(answers, what="skiff serve answers", timeout_s=30,
                   ignore=(httpx.HTTPError, OSError))  # not listening yet, no token yet

    def client(self) -> httpx.Client:
        token = (self.root / "admin.token").read_text().strip()
        client = httpx.Client(base_url=f"https://127.0.0.1:{self.port}", timeout=30,
                              verify=ssl.create_default_context(cafile=self.root / "ca.pem"),
                              headers={"Authorization": f"Bearer {token}"})
        self.clients.append(client)
        return client

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig``; before a SIGTERM, close the clients handed out: a graceful stop
        waits for their idle keep-alive connections (TLS) for its whole timeout (5 s)."""
        assert self.process is not None
        if sig == signal.SIGTERM:
            while self.clients:
                self.clients.pop().close()
        self.process.send_signal(sig)
        self.process.wait(timeout=30)


@pytest.fixture
def serve(tmp_path: Path, images: BuiltImages) -> Iterator[Serve]:
    root = tmp_path / "root"
    server = Serve(root, free_port(), images.endpoints)
    try:
        yield server
    finally:
        with contextlib.ExitStack() as cleanup:
            cleanup.callback(rundir.remove, run_dir_for(root))
            cleanup.callback(cgroups.remove, f"/{run_dir_for(root).name}")
            cleanup.callback(subprocess.run, ["ip", "link", "del", bridge_name(root)],
                             capture_output=True, check=False)
            cleanup.callback(firewall.remove_host_guard, bridge_name(root))
            cleanup.callback(FetchNamespace(root).close)  # a killed server's
            cleanup.callback(_drain_pool, root)
            cleanup.callback(_delete_everything, server)


def _delete_everything(server: Serve) -> None:
    """Delete every group through a running server, then stop it (SIGTERM).

    The list shows a group Deleting until the engine removed it; its operation ends
    then, a moment before the store forgets it. Stopped before that, skiff leaves the
    deletions still queued to its next start, which never comes here: their containers
    would leak."""
    if server.finished:
        return
    if server.process is None or server.process.poll() is not None:
        server.start()
    client = server.client()
    names = [g["name"] for g in client.get(GROUPS + API).json()["value"]]
    # A DELETE answers 200 once the group is gone, or 202 and an operation (a slow one).
    answers = [client.delete(f"{GROUPS}/{name}{API}") for name in names]
    operations = [a.headers["Azure-AsyncOperation"] for a in answers if a.status_code == 202]

    def deleted() -> bool:
        return all(client.get(url).json()["status"] == "Succeeded" for url in operations)

    eventually(deleted, what="every group is deleted", timeout_s=60, interval_s=0.1)
    eventually(lambda: not client.get(GROUPS + API).json()["value"],
               what="every deleted group is forgotten")
    server.kill(signal.SIGTERM)


def _drain_pool(root: Path) -> None:
    from skiff.engine.network.networks import Networks

    networks = Networks(root)
    networks.drain_pool()
    networks.close()


def _body(images: BuiltImages) -> dict[str, Any]:
    return {"location": "local", "properties": {"osType": "Linux", "containers": [{
        "name": "c", "properties": {
            "image": images.bb,
            "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"],
            "resources": {"requests": {"cpu": 0.05, "memoryInGB": 0.05}}}}]}}


def _settled(client: httpx.Client, name: str, timeout_s: float = 60) -> dict[str, Any]:
    return settled(client, f"{GROUPS}/{name}{API}", timeout_s)


def test_sigkill_loses_no_group_duplicates_none_and_adopts_containers(
    serve: Serve, images: BuiltImages
) -> None:
    """Groups accepted before a SIGKILL all exist after a restart, once each; the ones that
    ran keep their containers (same start time, one Started event), the rest converge."""
    serve.start()
    client = serve.client()
    for i in range(3):  # running before the kill
        assert client.put(f"{GROUPS}/early-{i}{API}", json=_body(images)).status_code == 201
    early = {f"early-{i}": _settled(client, f"early-{i}") for i in range(3)}
    accepted: list[str] = []
    stop = threading.Event()

    def create_until_killed() -> None:
        with serve.client() as own:
            for i in range(200):
                if stop.is_set():
                    return
                try:
                    answer = own.put(f"{GROUPS}/late-{i}{API}", json=_body(images))
                except httpx.HTTPError:
                    return
                if answer.status_code == 201:
                    accepted.append(f"late-{i}")

    creator = threading.Thread(target=create_until_killed)
    creator.start()
    try:
        eventually(lambda: len(accepted) >= 4, what="four creates accepted", timeout_s=60,
                   interval_s=0.005)
    finally:
        serve.kill()  # in the middle of creates, starts and reconciles
        stop.set()
        creator.join(timeout=60)

    serve.start()
    client = serve.client()
    listed = [g["name"] for g in client.get(GROUPS + API).json()["value"]]
    assert len(listed) == len(set(listed))
    assert set(early) | set(accepted) <= set(listed)
    for name, before in early.items():
        after = _settled(client, name)
        state = after["properties"]["containers"][0]["properties"]["instanceView"]
        previous = before["properties"]["containers"][0]["properties"]["instanceView"]
        assert state["currentState"]["state"] == "Running"
        assert state["currentState"]["startTime"] == previous["currentState"]["startTime"]
        assert [e["name"] for e in state["events"]].count("Started") == 1
    for name in listed:
        assert _settled(client, name)["properties"]["provisioningState"] == "Succeeded"


def test_after_a_reboot_of_the_node_the_reconciler_brings_groups_back(
    serve: Serve, images: BuiltImages
) -> None:
    """After a reboot (skiff stopped, then processes, mounts, namespaces, /run, cgroups and
    bridge gone), the next start runs an Always group again: Succeeded, Running, its port
    answering, restartCount 1, events saying why; a Never group stays Terminated."""
    web = {"location": "local", "properties": {
        "osType": "Linux", "restartPolicy": "Always",
        "ipAddress": {"type": "Public", "ports": [{"port": 8080}]},
        "containers": [{"name": "web", "properties": {
            "image": images.bb, "ports": [{"port": 8080}],
            # PID 1 ends on SIGTERM (httpd would ignore it: the clean-up's delete
            # would wait out skiff serve's 10 s stop grace)
            "command": ["sh", "-c", "mkdir -p /www; echo hi > /www/index.html; "
                                    "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"],
            "resources": {"requests": {"cpu": 0.05, "memoryInGB": 0.05}}}}]}}
    once = _body(images)
    once["properties"]["restartPolicy"] = "Never"
    serve.start()
    client = serve.client()
    assert client.put(f"{GROUPS}/web{API}", json=web).status_code == 201
    assert client.put(f"{GROUPS}/once{API}", json=once).status_code == 201
    for name in ("web", "once"):
        assert _settled(client, name)["properties"]["provisioningState"] == "Succeeded"
    serve.kill(signal.SIGTERM)
    reboot(Settings(data_root=serve.root))

    serve.start()
    client = serve.client()

    def back() -> dict[str, Any] | None:
        group: dict[str, Any] = client.get(f"{GROUPS}/web{API}").json()
        view = group["properties"]["containers"][0]["properties"]["instanceView"]
        running = view["currentState"]["state"] == "Running" and view["restartCount"] == 1
        return group if running else None

    group = eventually(back, what="the Always group runs again", timeout_s=60)
    assert group is not None
    assert group["properties"]["provisioningState"] == "Succeeded"
    assert group["properties"]["instanceView"]["state"] == "Running"
    assert "NetworkRebuilt" in [e["name"] for e in group["properties"]["instanceView"]["events"]]
    view = group["properties"]["containers"][0]["properties"]["instanceView"]
    assert "Lost" in [e["name"] for e in view["events"]]
    ip = group["properties"]["ipAddress"]["ip"]
    eventually(lambda: httpx.get(f"http://{ip}:8080/", timeout=2).text == "hi\n",
               what="the group's port answers", timeout_s=20, ignore=(httpx.HTTPError,))
    gone = _settled(client, "once")["properties"]
    assert gone["instanceView"]["state"] == "Failed"
    state = gone["containers"][0]["properties"]["instanceView"]["currentState"]
    assert (state["state"], state["exitCode"]) == ("Terminated", 255)


ACCOUNTS = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts"


def _share_group(images: BuiltImages, account: str, key: str, script: str,
                 policy: str) -> dict[str, Any]:
    return {"location": "local", "properties": {
        "osType": "Linux", "restartPolicy": policy,
        "volumes": [{"name": "share", "azureFile": {
            "shareName": "data", "storageAccountName": account, "storageAccountKey": key}}],
        "containers": [{"name": "c", "properties": {
            "image": images.bb, "command": ["sh", "-c", script],
            "volumeMounts": [{"name": "share", "mountPath": "/mnt/share"}],
            "resources": {"requests": {"cpu": 0.05, "memoryInGB": 0.05}}}}]}}


def _share_state(root: Path) -> dict[str, Any]:
    """What the node holds for the shares of ``root``: the loop devices backing their
    images (and the groups' disks: not the warm pool's spare disks, which a restart
    refills), how many times each point below the root is mounted, the bindfs
    processes."""
    backing = [p / "loop" / "backing_file" for p in Path("/sys/block").glob("loop*")]
    loops = sorted(f"{b.parent.parent.name} {b.read_text().strip()}" for b in backing
                   if b.exists() and b.read_text().startswith(f"{root}/")
                   and not b.read_text().startswith(f"{root}/disks/pool/"))
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    below = {point: points.count(point) for point in points if point.startswith(f"{root}/")}
    bindfs = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if argv and Path(argv[0].decode()).name == "bindfs" and \
                    any(a.decode().startswith(f"{root}/") for a in argv):
                bindfs.append(proc.name)
    return {"loops": loops, "mounts": below, "bindfs": bindfs}


def test_sigkill_keeps_share_data_and_the_share_mounts_again(
    host_alone: None, serve: Serve, images: BuiltImages
) -> None:
    """Files the SDK uploaded and a group wrote through its azureFile mount survive a
    SIGKILL of skiff serve and its restart on the same data root: the data plane serves
    them intact, a new group mounts the share and reads them, and nothing is mounted,
    looped or bound twice; after a reset nothing of the share is left on the host (the
    host alone: the reset removes the CNI plugin's shared chains, which groups of a run
    beside would make again)."""
    fileshare = pytest.importorskip("azure.storage.fileshare")
    serve.start()
    client = serve.client()
    account = "crashacct"
    made = client.put(f"{ACCOUNTS}/{account}{API}", json={
        "location": "local", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}})
    assert made.status_code in (200, 201), made.text
    made = client.put(f"{ACCOUNTS}/{account}/fileServices/default/shares/data{API}",
                      json={"properties": {"shareQuota": 1}})
    assert made.status_code in (200, 201), made.text
    key = client.post(f"{ACCOUNTS}/{account}/listKeys{API}").json()["keys"][0]["value"]

    def share() -> Any:
        service = fileshare.ShareServiceClient(
            f"{serve.files_url}/{account}/",
            credential={"account_name": account, "account_key": key},
            connection_verify=str(serve.root / "ca.pem"))
        return service.get_share_client("data")

    uploaded = os.urandom(5 * 1024 * 1024 + 7)
    share().create_directory("sdk")
    share().get_file_client("sdk/upload.bin").upload_file(uploaded)
    # a group writes through its mount, and keeps running (the share mounted) past the kill
    writer = client.put(f"{GROUPS}/writer{API}", json=_share_group(
        images, account, key, "dd if=/dev/urandom of=/mnt/share/group.bin bs=64k count=40 "
        "2>/dev/null && echo done > /mnt/share/group.txt; trap 'exit 0' TERM; "
        "sleep 3600 & wait", "Always"))
    assert writer.status_code == 201, writer.text

    def written() -> bytes:
        return bytes(share().get_file_client("group.txt").download_file().readall())

    eventually(lambda: written() == b"done\n", what="the group wrote its files",
               timeout_s=60, ignore=(ResourceNotFoundError,))
    from_group = share().get_file_client("group.bin").download_file().readall()
    assert len(from_group) == 40 * 64 * 1024
    before = _share_state(serve.root)
    image = serve.root / "shares" / account / "data.img"
    assert [loop for loop in before["loops"] if loop.endswith(f" {image}")], before
    assert before["bindfs"], before  # the writer's view

    serve.kill()  # SIGKILL
    serve.start()
    client = serve.client()
    after = _share_state(serve.root)
    assert after == before, "mounted, looped or bound again on top of what was there"
    assert all(count == 1 for count in after["mounts"].values()), after
    assert len([loop for loop in after["loops"] if loop.endswith(f" {image}")]) == 1, after
    assert share().get_file_client("sdk/upload.bin").download_file().readall() == uploaded
    assert share().get_file_client("group.bin").download_file().readall() == from_group
    group = _settled(client, "writer")
    assert group["properties"]["instanceView"]["state"] == "Running", group["properties"]

    # the writer goes; a new group mounts the share and finds both files whole
    deleted = client.delete(f"{GROUPS}/writer{API}")
    assert deleted.status_code in (200, 202, 204), deleted.text
    eventually(lambda: client.get(f"{GROUPS}/writer{API}").status_code == 404,
               what="the writer is gone", timeout_s=60)
    made = client.put(f"{GROUPS}/reader{API}", json=_share_group(
        images, account, key, "md5sum /mnt/share/sdk/upload.bin /mnt/share/group.bin",
        "Never"))
    assert made.status_code == 201, made.text

    def reader_logs() -> str | None:
        doc = client.get(f"{GROUPS}/reader{API}").json()
        state = doc["properties"]["containers"][0]["properties"].get("instanceView", {})
        if state.get("currentState", {}).get("state") != "Terminated":
            return None
        text: str = client.get(f"{GROUPS}/reader/containers/c/logs{API}").json()["content"]
        return text

    logs = eventually(reader_logs, what="the reader ran", timeout_s=60)
    assert logs is not None
    for data, path in ((uploaded, "sdk/upload.bin"), (from_group, "group.bin")):
        digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
        assert f"{digest}  /mnt/share/{path}" in logs, logs

    # stopped and reset, the node keeps nothing of the share but its data
    _delete_everything(serve)
    serve.finished = True
    done = CliRunner().invoke(main, ["node", "reset", "--force", "--grace", "1",
                                     "--data-root", str(serve.root)])
    assert done.exit_code == 0, (done.stdout, done.stderr)
    assert _share_state(serve.root) == {"loops": [], "mounts": {}, "bindfs": []}
    assert image.exists()

