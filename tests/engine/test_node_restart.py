"""What happened while skiff was down is taken up as if it had watched: exits recorded and
the restart policy applied, a lost network namespace made anew, and, after a reboot of
the node (processes, mounts, /run all gone), the groups back.

"Skiff down" is played as in test_adoption.py: a first Supervisor runs the group and goes
away (its containers stay, held by conmon), the world changes, then another Supervisor on
the same data root is handed the group again, as the reconciler does at its start.
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff.core.spec import GroupSpec, Port, RestartPolicy, SecretVolume, Volume, VolumeMount
from skiff.core.view import GroupView
from skiff.dns.server import DnsServer
from skiff.dns.zone import Zone
from skiff.engine import mounts
from skiff.engine.group.supervisor import Supervisor
from skiff.engine.network import netns
from skiff.engine.network.networks import Networks
from skiff.settings import NetworkSettings
from skiff.testing.catalog import BuiltImages
from skiff.testing.engine import wait_view
from skiff.testing.groups import FAST_BACKOFF, GroupMaker, box
from skiff.testing.reboot import reboot
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root

#: Serves its page on the declared port 8080.
WEB = "mkdir -p /www; echo hi > /www/index.html; exec httpd -f -p 8080 -h /www"
#: A name the node's DNS server answers, and its address.
NAME, ADDRESS = "probe.skiff.test", "192.0.2.7"


@pytest.fixture
def dns(engine: Supervisor) -> Iterator[DnsServer]:
    """A DNS server for the groups, on their gateway as `skiff serve` runs it, answering
    :data:`NAME`."""
    zone = Zone("skiff.test", ns_ip="192.0.2.53")
    zone.set(NAME, ADDRESS)
    server = DnsServer([zone])
    server.start()
    try:
        yield server
    finally:
        server.stop()


def serve_dns(networks: Networks, server: DnsServer) -> None:
    """Have ``networks`` point its groups' resolv.conf at ``server``."""
    def serve(gateway: str) -> None:
        server.add_listener(gateway, 53, freebind=True)

    networks.serve_dns = serve


def skiff_goes_down(engine: Supervisor, spec: GroupSpec,
                    networks: Networks | None = None) -> GroupView:
    """An earlier skiff on ``engine``'s data root runs ``spec`` and goes away, its
    containers left running; the view it last had."""
    first = Supervisor(engine.settings, networks=networks or engine.networks,
                       backoff=FAST_BACKOFF)
    try:
        first.run(spec)
        return wait_view(first, spec.id, lambda v: all(c.current.state == "Running"
                                                       for c in v.containers))
    finally:
        first.close()


def run_in(engine: Supervisor, group_id: str, container: str, script: str) -> tuple[int, str]:
    """Run ``script`` in the container; its exit code and its output."""
    session = engine.exec(group_id, container, ["sh", "-c", f"exec 2>&1; {script}"])
    try:
        out, _ = session.process.communicate(timeout=60)
    finally:
        session.close()
    return session.process.returncode, out.decode(errors="replace")


def fetch(outsider: Path, ip: str, port: int) -> bool:
    """Whether ``ip``:``port`` answers HTTP from the namespace ``outsider``."""
    return subprocess.run(
        ["nsenter", f"--net={outsider}", "timeout", "3", "busybox", "wget", "-q", "-O-",
         f"http://{ip}:{port}/"], capture_output=True, timeout=10, check=False).returncode == 0


def works(engine: Supervisor, networks: Networks, spec: GroupSpec, view: GroupView) -> None:
    """The group answers on its declared port from another namespace on its bridge, and
    resolves names through the node's DNS server."""
    assert view.ip is not None
    outsider = networks.setup("outsider", "outsider")
    try:
        eventually(lambda: fetch(outsider.netns_path, str(view.ip), 8080),
                   what="the declared port to answer", timeout_s=20, interval_s=0.2)
    finally:
        networks.teardown("outsider")
    code, out = run_in(engine, spec.id, "web", f"nslookup {NAME}")
    assert code == 0, out
    assert ADDRESS in out, out


def test_a_lost_network_namespace_is_made_anew_and_the_containers_restarted_in_it(
    engine: Supervisor, images: BuiltImages, group: GroupMaker, dns: DnsServer
) -> None:
    """A group whose namespace was deleted (`ip netns delete`) while skiff was down, its
    container still running in it, runs again in a new one: reachable on its declared
    port, resolving names, restartCount 1, events saying why; the old one is gone."""
    serve_dns(engine.networks, dns)
    spec = group(box(images, "web", WEB), ip_ports=(Port(8080),))
    skiff_goes_down(engine, spec)
    old = engine.networks.get(spec.id)
    assert old is not None
    cid = engine.view(spec.id).containers[0].cid
    pid = engine.runtime.status(cid).pid
    assert pid is not None
    netns.delete(old.netns_path)  # what `ip netns delete` does: unmount, unlink
    engine.run(spec)
    view = wait_view(engine, spec.id, lambda v: v.containers[0].current.state == "Running"
                     and v.containers[0].restart_count == 1)
    new = engine.networks.get(spec.id)
    assert new is not None
    assert new.netns_path != old.netns_path
    assert mounts.is_mounted(new.netns_path)
    assert view.state == "Running"
    assert view.failure is None
    container = view.containers[0]
    assert container.previous is not None
    assert container.previous.state == "Terminated"
    assert "network namespace was lost" in container.previous.detail_status
    assert any(e.name == "NetworkRebuilt" for e in view.events)
    assert any(e.name == "Killing" and "network namespace" in e.message
               for e in container.events)
    assert not Path(f"/proc/{pid}").exists() or engine.runtime.status(cid).pid != pid
    works(engine, engine.networks, spec, view)
    engine.networks.settle()
    assert not old.netns_path.exists()


def test_a_namespace_lost_under_a_running_skiff_is_made_anew(
    engine: Supervisor, images: BuiltImages, group: GroupMaker, dns: DnsServer
) -> None:
    """A namespace deleted while skiff runs is replaced once the monitor sees it: the
    container restarts in a new one (restartCount 1, events saying why), reachable on its
    declared port and resolving names."""
    serve_dns(engine.networks, dns)
    spec = group(box(images, "web", WEB), ip_ports=(Port(8080),))
    engine.run(spec)
    old = engine.networks.get(spec.id)
    assert old is not None
    netns.delete(old.netns_path)
    view = wait_view(engine, spec.id, lambda v: v.containers[0].current.state == "Running"
                     and v.containers[0].restart_count == 1)
    new = engine.networks.get(spec.id)
    assert new is not None
    assert new.netns_path != old.netns_path
    assert any(e.name == "NetworkRebuilt" for e in view.events)
    works(engine, engine.networks, spec, view)


@pytest.mark.parametrize(("policy", "code", "restarts"), [
    (RestartPolicy.NEVER, 3, False),
    (RestartPolicy.ON_FAILURE, 0, False),
    (RestartPolicy.ON_FAILURE, 3, True),
    (RestartPolicy.ALWAYS, 0, True),
])
def test_an_exit_while_skiff_was_down_is_recorded_and_the_policy_applied(
    engine: Supervisor, images: BuiltImages, group: GroupMaker, policy: RestartPolicy,
    code: int, restarts: bool
) -> None:
    """A container that exited while skiff was down shows that exit (code, finish time)
    once skiff is back, and restarts (restartCount 1) only if the policy says so."""
    stop = "/tmp/stop"
    script = f"while [ ! -e {stop} ]; do sleep 0.05; done; exit {code}"
    spec = group(box(images, "c", script), restart_policy=policy)
    skiff_goes_down(engine, spec)
    cid = engine.view(spec.id).containers[0].cid
    run_in(engine, spec.id, "c", f"touch {stop}")
    eventually(lambda: engine.runtime.status(cid).state == "exited",
               what="the container to exit while skiff is down")
    finished = engine.runtime.status(cid).finished_at
    engine.run(spec)
    if restarts:
        view = wait_view(engine, spec.id, lambda v: v.containers[0].restart_count == 1
                         and v.containers[0].current.state == "Running")
        ended = view.containers[0].previous
        assert view.state == "Running"
    else:
        view = engine.view(spec.id)
        ended = view.containers[0].current
        assert view.containers[0].restart_count == 0
        assert view.state == ("Failed" if code else "Succeeded")
        assert engine.runtime.status(cid).state != "running"
    assert ended is not None
    assert ended.state == "Terminated"
    assert ended.exit_code == code
    assert ended.finish_time == finished
    assert any(e.name == "Exited" for e in view.containers[0].events)


def test_after_a_reboot_the_groups_come_back(
    engine: Supervisor, images: BuiltImages, group: GroupMaker, dns: DnsServer
) -> None:
    """After a reboot (processes, mounts, namespaces, /run, cgroups, bridge all gone) a new
    skiff on the same data root runs an Always group again: a new namespace, its port and
    DNS working, its secret volume back, restartCount 1, events saying why; a Never
    group's container is recorded lost (255) and stays so."""
    secret = Volume("s", SecretVolume(files=(("k", base64.b64encode(b"v1").decode()),)))
    mount = (VolumeMount("s", "/mnt/s"),)
    always = group(box(images, "web", "cat /mnt/s/k > /www.k; " + WEB, volume_mounts=mount),
                   ip_ports=(Port(8080),), volumes=(secret,))
    never = group(box(images, "c", "sleep 3600"), restart_policy=RestartPolicy.NEVER)
    before = Networks(engine.settings.data_root, NetworkSettings(pool_size=1))
    serve_dns(before, dns)
    try:
        skiff_goes_down(engine, always, before)
        skiff_goes_down(engine, never, before)
    finally:
        before.close()
    old = before.get(always.id)
    assert old is not None
    reboot(engine.settings)
    assert not mounts.is_mounted(old.netns_path)

    after = Networks(engine.settings.data_root, NetworkSettings(pool_size=1))
    serve_dns(after, dns)
    back = Supervisor(engine.settings, networks=after, backoff=FAST_BACKOFF,
                      monitor_interval_s=0.05)
    try:
        back.run(always)
        back.run(never)
        view = wait_view(back, always.id, lambda v: v.containers[0].current.state == "Running")
        assert view.containers[0].restart_count == 1
        assert view.failure is None
        assert any(e.name == "NetworkRebuilt" for e in view.events)
        assert any(e.name == "Lost" for e in view.containers[0].events)
        works(back, after, always, view)
        code, out = run_in(back, always.id, "web", "cat /www.k /mnt/s/k")
        assert (code, out) == (0, "v1v1")
        lost = back.view(never.id)
        assert lost.containers[0].current.state == "Terminated"
        assert lost.containers[0].current.exit_code == 255
        assert lost.containers[0].restart_count == 0
        assert lost.state == "Failed"
    finally:
        back.close()
        after.close()
