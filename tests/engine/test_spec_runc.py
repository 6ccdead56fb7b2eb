"""default_spec under real runc: the hardening and limits hold inside a container.

Each test builds a tiny busybox rootfs by hand (no image store), writes a
bundle and runs it with runc under a private state root, a unique container
id and a unique cgroups path; the container and its cgroups are removed
afterwards whether the test passed or not.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from skiff.engine.spec import (
    ALL_CAPABILITIES,
    DEFAULT_CAPABILITIES,
    MASKED_PATHS,
    SpecOption,
    default_spec,
    resolve_user,
    with_cgroups_path,
    with_hostname,
    with_process,
    with_resources,
    with_root,
)

CGROUP_ROOT = Path("/sys/fs/cgroup")
#: The parent of every test container's cgroups, removed when left empty.
CGROUP_PARENT = "skiff-test"
APPLETS = ("sh", "cat", "echo", "grep", "hostname", "id", "ls", "ping", "touch", "wc")
PATH_ENV = ["PATH=/bin", "HOME=/"]
MEMORY = 64 << 20
PIDS = 64

pytestmark = pytest.mark.skipif(
    shutil.which("runc") is None or not (CGROUP_ROOT / "pids").is_dir(),
    reason="needs runc and cgroup v1 hierarchies",
)


def _busybox() -> Path:
    found = shutil.which("busybox")
    if found is None:
        pytest.skip("needs busybox-static")
    return Path(found)


def make_rootfs(root: Path) -> None:
    """/bin/busybox with a few applet links, /etc/passwd and /etc/group."""
    (root / "bin").mkdir(parents=True)
    shutil.copy2(_busybox(), root / "bin" / "busybox")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    for directory in ("etc", "proc", "sys", "dev", "tmp"):
        (root / directory).mkdir(exist_ok=True)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nextra:x:2000:app\n")


@dataclass
class Bundle:
    """One container's bundle, id, cgroups path and runc state root."""

    path: Path
    id: str
    cgroups_path: str
    state: Path

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs"

    def runc(self, *args: str) -> list[str]:
        return ["runc", "--root", str(self.state), *args]

    def write(self, *options: SpecOption) -> dict[str, Any]:
        """config.json: default_spec with this bundle's root, hostname, limits and cgroups."""
        spec = default_spec(with_root(self.rootfs), with_hostname("skiff-test"),
                            with_resources(0.5, MEMORY, PIDS),
                            with_cgroups_path(self.cgroups_path), *options)
        (self.path / "config.json").write_text(json.dumps(spec))
        return spec

    def run(self, script: str, uid: int = 0, gid: int = 0,
            additional_gids: tuple[int, ...] = ()) -> str:
        """Run ``sh -c script`` and return its stdout and stderr together."""
        self.write(with_process(["/bin/sh", "-c", script], PATH_ENV, uid=uid, gid=gid,
                                additional_gids=additional_gids))
        done = subprocess.run(self.runc("run", "--bundle", str(self.path), self.id),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=60, check=False)
        return done.stdout + done.stderr

    def cgroup_dir(self, controller: str) -> Path:
        return CGROUP_ROOT / controller / self.cgroups_path.lstrip("/")


def _remove_cgroups(cgroups_path: str) -> None:
    for hierarchy in CGROUP_ROOT.iterdir():
        for directory in (hierarchy / cgroups_path.lstrip("/"), hierarchy / CGROUP_PARENT):
            # Another test may still use the parent; an empty cgroup is all rmdir removes.
            with contextlib.suppress(OSError):
                directory.rmdir()


@pytest.fixture
def bundle(tmp_path: Path) -> Iterator[Bundle]:
    """A bundle with a busybox rootfs; its container and cgroups are removed afterwards."""
    container_id = f"skiff-spec-{uuid.uuid4().hex[:12]}"
    made = Bundle(path=tmp_path / "bundle", id=container_id,
                  cgroups_path=f"/{CGROUP_PARENT}/{container_id}", state=tmp_path / "runc")
    make_rootfs(made.rootfs)
    try:
        yield made
    finally:
        subprocess.run(made.runc("delete", "--force", made.id), capture_output=True,
                       timeout=30, check=False)
        _remove_cgroups(made.cgroups_path)


def _status(output: str) -> dict[str, str]:
    fields = (line.split(":", 1) for line in output.splitlines() if ":\t" in line)
    return {key: value.strip() for key, value in fields}


def _mask(caps: tuple[str, ...] | list[str]) -> int:
    return sum(1 << ALL_CAPABILITIES.index(cap) for cap in caps)


def test_capabilities_are_the_defaults_without_net_raw(bundle: Bundle) -> None:
    """Root in the container holds exactly the default caps: no NET_RAW, so raw ping fails."""
    out = bundle.run("grep Cap /proc/self/status; ping -c 1 -W 1 127.0.0.1; echo ping=$?")
    status = _status(out)
    expected = _mask(DEFAULT_CAPABILITIES)
    for key in ("CapBnd", "CapEff", "CapPrm"):
        assert int(status[key], 16) == expected, out
    assert int(status["CapInh"], 16) == 0
    assert int(status["CapAmb"], 16) == 0
    assert not expected & (1 << ALL_CAPABILITIES.index("CAP_NET_RAW"))
    assert "ping=0" not in out
    assert "permission denied" in out


def test_no_new_privileges_and_seccomp_filter(bundle: Bundle) -> None:
    """The process runs with NoNewPrivs 1 and a seccomp filter installed (mode 2)."""
    status = _status(bundle.run("grep -E 'NoNewPrivs|Seccomp' /proc/self/status"))
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"


def test_masked_paths_read_as_empty(bundle: Bundle) -> None:
    """Every masked path the host has is empty inside (kcore, keys, timer_list, firmware...)."""
    present = [p for p in MASKED_PATHS if os.path.exists(p)]
    if not present:
        pytest.skip("this host has none of the masked paths")
    script = "; ".join(f"echo {p}=$(cat {p} 2>/dev/null | wc -c)/$(ls -A {p} | wc -l)"
                       for p in present)
    out = bundle.run(script)
    for path in present:
        line = next(li for li in out.splitlines() if li.startswith(f"{path}="))
        size, entries = line.split("=", 1)[1].split("/")
        if os.path.isdir(path):
            assert entries == "0", line
        else:
            assert size == "0", line


def test_proc_sys_and_sys_are_read_only(bundle: Bundle) -> None:
    """Writing /proc/sys or /sys fails with EROFS even for the container's root."""
    out = bundle.run("echo x > /proc/sys/kernel/domainname; echo proc=$?; "
                     "touch /sys/skiff; echo sys=$?; touch /tmp/ok; echo tmp=$?")
    assert "proc=0" not in out
    assert "sys=0" not in out
    assert out.count("Read-only file system") == 2, out
    assert "tmp=0" in out  # the rootfs itself stays writable


def test_hostname_is_set(bundle: Bundle) -> None:
    """The container sees the hostname from the spec, not the host's."""
    assert bundle.run("hostname").strip() == "skiff-test"


def test_nofile_rlimit_is_applied(bundle: Bundle) -> None:
    """RLIMIT_NOFILE is 1024 soft and hard inside."""
    out = bundle.run("ulimit -n; ulimit -Hn").split()
    assert out == ["1024", "1024"]


def test_pids_limit_is_visible_inside(bundle: Bundle) -> None:
    """The container's own pids cgroup (mounted read-only) carries the limit."""
    assert bundle.run("cat /sys/fs/cgroup/pids/pids.max").strip() == str(PIDS)


def test_resource_limits_reach_the_host_cgroups(bundle: Bundle) -> None:
    """After runc create, the host's cgroup files hold the quota, memory, swap and pids limits."""
    bundle.write(with_process(["/bin/sh", "-c", "true"], PATH_ENV))
    with open(bundle.path / "create.log", "wb") as log:
        # Files, not pipes: the created container keeps its stdio open.
        done = subprocess.run(bundle.runc("create", "--bundle", str(bundle.path), bundle.id),
                              stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=60,
                              check=False)
    assert done.returncode == 0, (bundle.path / "create.log").read_text()

    def read(controller: str, name: str) -> str:
        return (bundle.cgroup_dir(controller) / name).read_text().strip()

    assert read("cpu", "cpu.cfs_quota_us") == "50000"
    assert read("cpu", "cpu.cfs_period_us") == "100000"
    assert read("cpu", "cpu.shares") == "512"
    assert read("memory", "memory.limit_in_bytes") == str(MEMORY)
    assert read("memory", "memory.memsw.limit_in_bytes") == str(MEMORY)
    assert read("pids", "pids.max") == str(PIDS)


def test_user_from_the_image_passwd(bundle: Bundle) -> None:
    """resolve_user's ids are what the process runs as, and a non-root user keeps no caps."""
    uid, gid, extra = resolve_user(bundle.rootfs, "app")
    assert (uid, gid, extra) == (1000, 1000, (2000,))
    out = bundle.run("id -u; id -g; id -G; grep CapEff /proc/self/status",
                     uid=uid, gid=gid, additional_gids=extra)
    lines = out.split("\n")
    assert lines[:3] == ["1000", "1000", "1000 2000"], out
    assert int(_status(out)["CapEff"], 16) == 0
