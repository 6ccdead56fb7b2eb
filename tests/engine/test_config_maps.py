"""Config maps on the node: files in /mnt/configmap/<container>/, changed in place.

Runs on runc and in a gVisor sandbox (the ``group`` fixture): the container's own
process must see a new value without being restarted, through runsc's gofer too.
"""

from __future__ import annotations

import stat
from dataclasses import replace

import pytest

from skiff.core.spec import GroupSpec
from skiff.engine.group.supervisor import Supervisor
from skiff.testing.catalog import BuiltImages
from skiff.testing.engine import wait_view
from skiff.testing.groups import GroupMaker, box

pytestmark = pytest.mark.root

#: Prints the file each 0.2 s, as an application that rereads its configuration would.
WATCH = "while true; do echo \"seen=$(cat /mnt/configmap/c/greeting)\"; sleep 0.2; done"


def run_in(engine: Supervisor, group_id: str, script: str) -> tuple[int, str]:
    """``script`` run in container c: its exit code and output (stderr included)."""
    session = engine.exec(group_id, "c", ["sh", "-c", f"exec 2>&1; {script}"])
    try:
        out, _ = session.process.communicate(timeout=30)
    finally:
        if session.process.poll() is None:
            session.process.kill()
            session.process.wait()
    return session.process.returncode, out.decode(errors="replace")


def with_pairs(spec: GroupSpec, *pairs: tuple[str, str]) -> GroupSpec:
    container = replace(spec.containers[0], config_map=tuple(sorted(pairs)))
    return replace(spec, containers=(container,))


def test_a_config_map_changes_in_place_without_a_restart(
    engine: Supervisor, images: BuiltImages, group: GroupMaker
) -> None:
    """Each key is a read-only file of /mnt/configmap/c; a spec that changes only the pairs
    rewrites, adds and removes files while the container runs on (same start, no restart),
    and its own process reads the new value."""
    spec = group(box(images, "c", WATCH, config_map=(("gone", "x"), ("greeting", "hello"))))
    first = engine.run(spec).containers[0]
    assert first.current.state == "Running"
    wait_view(engine, spec.id, lambda v: "seen=hello" in engine.logs(spec.id, "c"))
    assert run_in(engine, spec.id, "ls /mnt/configmap/c") == (0, "gone\ngreeting\n")
    code, out = run_in(engine, spec.id, "echo no > /mnt/configmap/c/greeting")
    assert code != 0, out
    host = engine.volumes.config_maps.root / spec.id / "c"
    assert {stat.S_IMODE(p.stat().st_mode) for p in host.iterdir()} == {0o444}

    view = engine.run(with_pairs(spec, ("greeting", "bonjour"), ("new", "1")))
    after = view.containers[0]
    assert after.current.start_time == first.current.start_time
    assert after.restart_count == 0
    assert after.cid == first.cid
    assert [e.message for e in after.events if e.name == "ConfigMapUpdated"] == [
        "config map updated in place: gone, greeting, new"]
    wait_view(engine, spec.id, lambda v: "seen=bonjour" in engine.logs(spec.id, "c"))
    assert run_in(engine, spec.id, "ls /mnt/configmap/c; cat /mnt/configmap/c/new") == (
        0, "greeting\nnew\n1")
    assert sorted(p.name for p in host.iterdir()) == ["greeting", "new"]  # no temporary left

    engine.delete(spec.id)
    assert not (engine.volumes.config_maps.root / spec.id).exists()


def test_a_container_without_a_config_map_has_no_mount(
    engine: Supervisor, images: BuiltImages, group: GroupMaker
) -> None:
    """No configMap, nothing mounted: /mnt/configmap is the image's (busybox has none);
    an empty one is an empty directory."""
    spec = group(box(images, "c", "sleep 300"),
                 box(images, "d", "sleep 300", config_map=()))
    assert engine.run(spec).state == "Running"
    assert run_in(engine, spec.id, "ls /mnt/configmap")[0] != 0
    session = engine.exec(spec.id, "d", ["sh", "-c", "ls -a /mnt/configmap/d"])
    out, _ = session.process.communicate(timeout=30)
    assert out.decode().split() == [".", ".."]
    engine.delete(spec.id)
