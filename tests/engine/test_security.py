"""securityContext and user namespaces through the supervisor: real images, runc, volumes.

The spec-level proofs of each knob are in test_spec_runc.py; these check that
the supervisor wires them (the securityContext from the group spec, the
idmapped rootfs, the volumes' owner) and that a remapped group's volumes
and logs work as without remapping (exec needs runc 1.2+).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff.core.spec import (
    Container,
    EmptyDirVolume,
    GroupSpec,
    Resources,
    RestartPolicy,
    SecretVolume,
    SecurityContext,
    Volume,
    VolumeMount,
)
from skiff.engine import mounts
from skiff.engine.group.supervisor import Supervisor
from skiff.settings import ApiSettings, RuntimeSettings, Settings
from skiff.testing.catalog import BuiltImages
from skiff.testing.engine import wait_view
from skiff.testing.groups import fast_supervising

pytestmark = pytest.mark.root

#: Host ids of the remapped containers: clear of the host's users and of test_spec_runc's.
USERNS = (300000, 65536)


def make_engine(images: BuiltImages, userns: tuple[int, int] | None,
                allow_privileged: bool = False) -> Iterator[Supervisor]:
    """A supervisor on a fresh data root that the mapped root can traverse (0711 under
    /tmp, as skiff serve makes it; pytest's own directories are 0700); everything goes
    after, idmapped views included."""
    data_root = Path(tempfile.mkdtemp(prefix="skiff-sec-"))
    os.chmod(data_root, 0o711)  # noqa: S103 -- as skiff.server does
    settings = Settings(data_root=data_root, api=ApiSettings(allow_privileged=allow_privileged),
                        runtime=RuntimeSettings(stop_grace_s=1, userns=userns))
    try:
        with fast_supervising(settings, allow=images.endpoints) as supervisor:
            yield supervisor
    finally:
        shutil.rmtree(data_root, ignore_errors=True)


@pytest.fixture
def remapped(images: BuiltImages) -> Iterator[Supervisor]:
    """A supervisor running containers under --userns-remap 300000:65536."""
    yield from make_engine(images, USERNS)


@pytest.fixture
def engine(images: BuiltImages) -> Iterator[Supervisor]:
    """A supervisor without remapping that admits privileged containers."""
    yield from make_engine(images, None, allow_privileged=True)


def box(images: BuiltImages, name: str, script: str, **fields: object) -> Container:
    return Container(name=name, image=images.bb, command=("sh", "-c", script),
                     resources=Resources(cpu=0.5, memory_gb=0.25), **fields)  # type: ignore[arg-type]


def group(*containers: Container, **fields: object) -> GroupSpec:
    return GroupSpec(id=uuid.uuid4().hex, name="grp-" + uuid.uuid4().hex[:6],
                     containers=containers, **fields)  # type: ignore[arg-type]


def logs_once(engine: Supervisor, spec: GroupSpec, name: str, marker: str = "done") -> str:
    wait_view(engine, spec.id, lambda v: marker in engine.logs(spec.id, name))
    return engine.logs(spec.id, name)


def test_remapped_group_runs_with_volumes_and_logs(
    remapped: Supervisor, images: BuiltImages
) -> None:
    """Under --userns-remap the container's root is host id 300000: uid_map shows it, the
    image is still root's inside, it writes its rootfs and emptyDir (files owned by
    300000 on the host), reads its secret volume, and its logs are read."""
    secret = base64.b64encode(b"s3cret-value").decode()
    spec = group(
        box(images, "app", "cat /proc/self/uid_map; id -u; stat -c %u /bin/busybox; "
                           "echo hi > /etc/new && echo rootfs-ok; touch /data/made && "
                           "echo empty-ok; cat /secrets/key; echo; echo done; sleep 300",
            volume_mounts=(VolumeMount("data", "/data"), VolumeMount("sec", "/secrets"))),
        volumes=(Volume("data", EmptyDirVolume()),
                 Volume("sec", SecretVolume(files=(("key", secret),)))),
    )
    view = remapped.run(spec)
    assert view.state == "Running", view
    out = logs_once(remapped, spec, "app")
    lines = out.splitlines()
    assert lines[0].split() == ["0", str(USERNS[0]), str(USERNS[1])], out
    assert lines[1:3] == ["0", "0"], out
    for marker in ("rootfs-ok", "empty-ok", "s3cret-value"):
        assert marker in out, out
    made = remapped.volumes.paths(spec.id)["data"] / "made"
    assert made.stat().st_uid == USERNS[0]


def _runc_version() -> tuple[int, int]:
    done = subprocess.run(["runc", "--version"], capture_output=True, text=True, check=False)
    found = re.search(r"runc version (\d+)\.(\d+)", done.stdout)
    return (int(found[1]), int(found[2])) if found else (0, 0)


@pytest.mark.xfail(_runc_version() < (1, 2), strict=True,
                   reason="runc before 1.2 joins the user namespace first on exec, and then "
                          "may not join the group's network namespace (runc#4390)")
def test_remapped_exec(remapped: Supervisor, images: BuiltImages) -> None:
    """exec into a remapped container runs as its root, in its user namespace."""
    spec = group(box(images, "app", "echo done; sleep 300"))
    remapped.run(spec)
    logs_once(remapped, spec, "app")
    session = remapped.exec(spec.id, "app", ["sh", "-c", "id -u; cat /proc/self/uid_map"])
    out_b, err_b = session.process.communicate(timeout=10)
    assert out_b.decode().split() == ["0", "0", str(USERNS[0]), str(USERNS[1])], err_b


def test_remapped_run_as_user_beyond_the_range_fails_clearly(
    remapped: Supervisor, images: BuiltImages
) -> None:
    """A runAsUser the user namespace does not map fails the container with a message
    naming the range, not a runc error."""
    spec = group(box(images, "app", "true", security=SecurityContext(run_as_user=70000)),
                 restart_policy=RestartPolicy.NEVER)
    remapped.run(spec)
    view = wait_view(remapped, spec.id, lambda v: v.state == "Failed")
    assert "beyond the 65536 ids" in view.containers[0].current.detail_status


def test_security_context_reaches_the_container(engine: Supervisor,
                                                images: BuiltImages) -> None:
    """The supervisor applies a securityContext: runAsUser/Group, NET_ADMIN added, and
    no-new-privileges lifted."""
    context = SecurityContext(run_as_user=1234, run_as_group=4321, cap_add=("NET_ADMIN",),
                              allow_privilege_escalation=True)
    spec = group(box(images, "app", "id -u; id -g; grep -E 'CapBnd|NoNewPrivs' "
                                    "/proc/self/status; echo done; sleep 300",
                     security=context))
    engine.run(spec)
    out = logs_once(engine, spec, "app")
    lines = out.splitlines()
    assert lines[:2] == ["1234", "4321"], out
    fields = dict(line.split(":\t") for line in lines[2:4])
    assert int(fields["CapBnd"], 16) >> 12 & 1, out  # CAP_NET_ADMIN is bit 12
    assert fields["NoNewPrivs"].strip() == "0", out


def test_privileged_container_sees_host_devices(engine: Supervisor,
                                                images: BuiltImages) -> None:
    """A privileged container (where allowed) runs without a seccomp filter and with
    the host's devices in /dev."""
    spec = group(box(images, "app", "grep Seccomp: /proc/self/status; ls /dev | wc -l; "
                                    "echo done; sleep 300",
                     security=SecurityContext(privileged=True)))
    engine.run(spec)
    out = logs_once(engine, spec, "app").split()
    assert out[:2] == ["Seccomp:", "0"], out
    assert int(out[2]) > 10, out


def test_one_idmapped_view_however_many_rootfses(remapped: Supervisor,
                                                  images: BuiltImages) -> None:
    """Every remapped rootfs (two containers, restarts) shares one idmapped view of the
    store, and unmount_views leaves none mounted."""
    spec = group(box(images, "a", "sleep 0.2"), box(images, "b", "sleep 300"))
    remapped.run(spec)
    wait_view(remapped, spec.id, lambda v: v.containers[0].restart_count >= 2)
    views = remapped.images.rootfs.views

    def mounted() -> int:
        return sum(1 for p in mounts.mount_points() if p.is_relative_to(views))

    assert mounted() == 1
    remapped.delete(spec.id)
    remapped.images.rootfs.unmount_views()
    assert mounted() == 0
