"""Secrets an engine error quotes never reach the view or the group's file, and none rests
on the data root (issue 11).

runc quotes what it cannot run: a command named after a secure value, or an
environment value holding a NUL byte (refused at PUT, but the engine's own
callers may pass one). The container's detailStatus and events, the group's
failure and ``groups/<uid>.json`` show ``***`` instead; the file is 0600 in a
0700 directory. The bundles that must hold secure values in clear for the OCI
runtime are on the run directory's root-only tmpfs, and go with their container.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import stat
import uuid
from pathlib import Path

import pytest

from skiff.core.secrets import MASK
from skiff.core.spec import (
    Container,
    EnvVar,
    Resources,
    RestartPolicy,
    SecretVolume,
    Volume,
    VolumeMount,
)
from skiff.engine import mounts
from skiff.engine.group.record import container_id, safe_name
from skiff.engine.group.supervisor import Supervisor
from skiff.engine.runtime import rundir
from skiff.testing.catalog import BuiltImages
from skiff.testing.engine import wait_view
from skiff.testing.groups import GroupMaker, box, group_spec

pytestmark = pytest.mark.root


def visible(engine: Supervisor, group_id: str) -> tuple[str, str]:
    """Everything a user may read of the group: its view, and its file on disk."""
    view = json.dumps(engine.view(group_id).to_json())
    path = engine.settings.data_root / "groups" / f"{safe_name(group_id)}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    return view, path.read_text()


def test_a_start_failure_quoting_a_secure_value_shows_the_mask(
    engine: Supervisor, images: BuiltImages
) -> None:
    """A command named after a secure value: runc's "executable file not found" error
    reaches detailStatus, events and the group file as ***, never as the value."""
    secret = "sv-" + uuid.uuid4().hex
    spec = group_spec(Container(name="c", image=images.bb, command=(secret,),
                                env=(EnvVar("TOKEN", secret, secure=True),),
                                resources=Resources(cpu=0.5, memory_gb=0.25)),
                      restart_policy=RestartPolicy.NEVER)
    view = engine.run(spec)
    container = view.containers[0]
    assert container.current.state == "Terminated"
    assert MASK in container.current.detail_status
    assert any(MASK in e.message for e in container.events if e.name == "Failed")
    for text in visible(engine, spec.id):
        assert secret not in text


def test_a_secure_value_with_a_nul_never_shows(engine: Supervisor, images: BuiltImages) -> None:
    """A secure value with a NUL byte (the engine accepts it): whatever runc makes of it,
    neither the view nor the group file quotes the value or a piece of it."""
    pieces = ("sv-" + uuid.uuid4().hex[:12], uuid.uuid4().hex[:12])
    spec = group_spec(Container(name="c", image=images.bb, command=("sleep", "300"),
                                env=(EnvVar("TOKEN", "\0".join(pieces), secure=True),),
                                resources=Resources(cpu=0.5, memory_gb=0.25)),
                      restart_policy=RestartPolicy.NEVER)
    engine.run(spec)
    for text in visible(engine, spec.id):
        for piece in pieces:
            assert piece not in text


def files_holding(root: Path, needles: list[bytes]) -> list[str]:
    """Every file below ``root`` on its own filesystems that holds one of ``needles``: what
    is mounted below (a secret volume's tmpfs, a rootfs's merged view) is not walked, the
    directories under it (upper layers) are, and so are the files of the group disks."""
    skip = set(mounts.mounts_below(root)) - {root.resolve()}
    found = []
    for top, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if (Path(top) / d).resolve() not in skip]
        for name in files:
            path = Path(top) / name
            if path.is_symlink() or not path.is_file():
                continue
            held = held_by(path, needles)
            found += [f"{path}: {n!r}" for n in needles if n in held]
    return found


#: Bytes read at a time from a file searched.
CHUNK = 8 << 20


def held_by(path: Path, needles: list[bytes]) -> set[bytes]:
    """The ``needles`` (none with a NUL byte) somewhere in the file, all of its data read,
    its holes skipped: a group disk is a sparse file of 10 GB of which ext4 wrote a few
    MB, and a hole reads as NULs, which hold no needle (so no needle spans one either)."""
    assert all(b"\0" not in n for n in needles)
    overlap = max(len(n) for n in needles) - 1  # a needle across two chunks is found
    found: set[bytes] = set()
    with path.open("rb") as file:
        fd = file.fileno()
        size = os.fstat(fd).st_size
        at = 0
        while at < size:
            try:
                start = os.lseek(fd, at, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # no data past ``at``
                    break
                raise
            end = os.lseek(fd, start, os.SEEK_HOLE)  # the file's end if no hole follows
            file.seek(start)
            tail = b""
            while file.tell() < end:
                data = tail + file.read(min(CHUNK, end - file.tell()))
                found.update(n for n in needles if n in data)
                tail = data[-overlap:]
            at = end
    return found


def test_the_search_finds_needles_in_data_and_across_holes_and_chunks(tmp_path: Path) -> None:
    """held_by finds a needle at a sparse file's start, after a hole, astride two chunks and
    at its very end, and nothing in a file of holes alone."""
    needles = [b"alpha-needle", b"beta-needle", b"gamma-needle", b"delta-needle"]
    sparse = tmp_path / "disk.img"
    with sparse.open("wb") as f:
        f.write(b"x" + needles[0])
        f.seek(1 << 30)  # a hole of 1 GB
        f.write(b"y" * (CHUNK - 5) + needles[1])  # astride the first and second chunks
        f.seek((2 << 30) - len(needles[2]))
        f.write(needles[2])  # the file's last bytes
    assert held_by(sparse, needles) == set(needles[:3])
    empty = tmp_path / "empty.img"
    with empty.open("wb") as f:
        f.truncate(1 << 30)
    assert held_by(empty, needles) == set()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_no_secret_rests_on_the_data_root(
    engine: Supervisor, images: BuiltImages, group: GroupMaker
) -> None:
    """A group with secure values (an init container's and an app's) and a secret volume
    runs with them, yet no file of the data root holds one, in clear or base64; the bundles
    that hold them are on the run directory's 0700 tmpfs and go with the group; what the
    containers write is below 0700 directories."""
    secure, init_secure, content = (f"{k}-{uuid.uuid4().hex}" for k in ("sv", "iv", "fv"))
    encoded = base64.b64encode(content.encode()).decode()
    spec = group(
        box(images, "c", "echo ${TOKEN:0:3} $(head -c 3 /s/f); sleep 300",
            env=(EnvVar("TOKEN", secure, secure=True),),
            volume_mounts=(VolumeMount("s", "/s", read_only=True),)),
        init_containers=(box(images, "i", "true",
                             env=(EnvVar("INIT", init_secure, secure=True),)),),
        volumes=(Volume("s", SecretVolume(files=(("f", encoded),))),))
    engine.run(spec)
    wait_view(engine, spec.id, lambda v: engine.logs(spec.id, "c") == "sv- fv-\n")
    needles = [s.encode() for s in (secure, init_secure, content, encoded)]
    needles += [base64.b64encode(s.encode()) for s in (secure, init_secure)]
    assert files_holding(engine.settings.data_root, needles) == []

    run_dir = engine.runtime.run_dir
    assert rundir.on_tmpfs(run_dir)
    assert mode(run_dir) == mode(engine.runtime.bundles) == 0o700
    bundle = engine.runtime.bundle(container_id(spec.id, "c"))
    assert mode(bundle) == 0o700
    assert mode(bundle / "config.json") == 0o600
    assert secure.encode() in (bundle / "config.json").read_bytes()
    rootfs = engine.settings.images_root / "rootfs"
    assert mode(rootfs) == 0o700
    assert {mode(d) for d in rootfs.iterdir()} == {0o700}

    engine.delete(spec.id)
    assert files_holding(run_dir, needles) == []
    assert not bundle.exists()
