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
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from skiff.core.capabilities import ALL_CAPABILITIES, DEFAULT_CAPABILITIES
from skiff.core.spec import SecurityContext
from skiff.engine.idmap import bind_idmapped
from skiff.engine.spec.options import (
    MASKED_PATHS,
    SpecOption,
    default_spec,
    with_bind,
    with_cgroups_path,
    with_hostname,
    with_namespaces,
    with_process,
    with_resources,
    with_root,
)
from skiff.engine.spec.security import host_capabilities, security_options
from skiff.engine.spec.userns import with_user_namespace
from skiff.engine.spec.users import resolve_run_as, resolve_user

CGROUP_ROOT = Path("/sys/fs/cgroup")
#: The parent of every test container's cgroups, removed when left empty.
CGROUP_PARENT = "skiff-test"
APPLETS = ("sh", "cat", "echo", "grep", "hostname", "id", "ls", "ping", "touch", "wc")
PATH_ENV = ["PATH=/bin", "HOME=/"]
MEMORY = 64 << 20
PIDS = 64

pytestmark = [pytest.mark.root, pytest.mark.skipif(
    shutil.which("runc") is None or not (CGROUP_ROOT / "pids").is_dir(),
    reason="needs runc and cgroup v1 hierarchies",
)]


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


# --- securityContext ---------------------------------------------------------------------------


def _profile_denying(*syscalls: str) -> dict[str, Any]:
    """A Docker-format profile: allow everything but ``syscalls`` (EPERM)."""
    return {"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": list(syscalls), "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}


def run_with(bundle: Bundle, script: str, context: SecurityContext, *options: SpecOption,
             uid: int = 0, gid: int = 0, rootfs: Path | None = None) -> str:
    """Run ``sh -c script`` in a spec built as the supervisor builds it for ``context``."""
    spec = default_spec(with_root(rootfs or bundle.rootfs), with_hostname("skiff-test"),
                        with_resources(0.5, MEMORY, PIDS), with_cgroups_path(bundle.cgroups_path),
                        with_process(["/bin/sh", "-c", script], PATH_ENV, uid=uid, gid=gid),
                        *options, *security_options(context),
                        cap_add=context.cap_add, cap_drop=context.cap_drop,
                        privileged=context.privileged)
    (bundle.path / "config.json").write_text(json.dumps(spec))
    done = subprocess.run(bundle.runc("run", "--bundle", str(bundle.path), bundle.id),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60, check=False)
    return done.stdout + done.stderr


def test_cap_add_net_admin_is_effective(bundle: Bundle) -> None:
    """capabilities.add NET_ADMIN puts CAP_NET_ADMIN in CapEff on top of the defaults."""
    out = run_with(bundle, "grep CapEff /proc/self/status",
                   SecurityContext(cap_add=("NET_ADMIN",)))
    assert int(_status(out)["CapEff"], 16) == _mask([*DEFAULT_CAPABILITIES, "CAP_NET_ADMIN"])


def test_cap_drop_all_leaves_no_capability(bundle: Bundle) -> None:
    """capabilities.drop ALL gives root CapEff 0: it cannot even chown."""
    out = run_with(bundle, "grep -E 'CapEff|CapBnd' /proc/self/status; "
                   "touch /tmp/f; chown 1:1 /tmp/f; echo chown=$?",
                   SecurityContext(cap_drop=("ALL",)))
    assert int(_status(out)["CapEff"], 16) == 0, out
    assert int(_status(out)["CapBnd"], 16) == 0, out
    assert "chown=0" not in out


def test_run_as_user_overrides_the_image_user(bundle: Bundle) -> None:
    """runAsUser 1000 runs the process as uid 1000 with the image's group for it."""
    context = SecurityContext(run_as_user=1000)
    uid, gid, _ = resolve_run_as(bundle.rootfs, "", context.run_as_user)
    out = run_with(bundle, "id -u; id -g", context, uid=uid, gid=gid)
    assert out.split() == ["1000", "1000"], out


def test_allow_privilege_escalation_lifts_no_new_privs(bundle: Bundle) -> None:
    """allowPrivilegeEscalation true gives NoNewPrivs 0; false keeps the default 1."""
    out = run_with(bundle, "grep NoNewPrivs /proc/self/status",
                   SecurityContext(allow_privilege_escalation=True))
    assert _status(out)["NoNewPrivs"] == "0", out
    out = run_with(bundle, "grep NoNewPrivs /proc/self/status",
                   SecurityContext(allow_privilege_escalation=False))
    assert _status(out)["NoNewPrivs"] == "1", out


def test_custom_seccomp_profile_blocks_mkdir(bundle: Bundle) -> None:
    """A profile denying mkdir/mkdirat makes mkdir fail with EPERM while the rest runs."""
    profile = _profile_denying("mkdir", "mkdirat")
    out = run_with(bundle, "mkdir /tmp/d; echo mkdir=$?; touch /tmp/f; echo touch=$?",
                   SecurityContext(seccomp_profile=profile))
    assert "mkdir=1" in out, out
    assert "Operation not permitted" in out, out
    assert "touch=0" in out, out


def test_privileged_has_every_capability_and_no_filter(bundle: Bundle) -> None:
    """privileged: every capability, no seccomp filter, no masked paths, host devices."""
    script = ("grep -E 'CapEff|Seccomp' /proc/self/status; "
              "echo kcore=$(cat /proc/kcore 2>/dev/null | head -c 4 | wc -c); "
              "ls /dev | wc -l")
    out = run_with(bundle, script, SecurityContext(privileged=True))
    status = _status(out)
    assert "CapEff" in status, out
    assert int(status["CapEff"], 16) == _mask(host_capabilities()), out
    assert status["Seccomp"] == "0", out
    if os.path.exists("/proc/kcore"):
        assert "kcore=4" in out, out
    assert int(out.strip().splitlines()[-1]) > 10  # the host's devices, not runc's few


# --- user namespaces ---------------------------------------------------------------------------

USERNS = (200000, 65536)


@dataclass
class Remapped:
    """A remapped container's rootfs: an overlay on an idmapped view of a busybox tree."""

    base: Path  # 0711, as skiff's data root: the mapped root may only traverse it
    rootfs: Path
    upper: Path


@pytest.fixture
def remapped(bundle: Bundle) -> Iterator[Remapped]:
    """An overlay rootfs as a remapped container gets it: its lower layer an idmapped
    view of the busybox tree, its upper dir owned by the mapped root; all in a directory
    the mapped root can traverse (pytest's own are 0700). Unmounted and removed after."""
    base = Path(tempfile.mkdtemp(prefix="skiff-userns-"))
    os.chmod(base, 0o711)  # noqa: S103 -- traversable, as skiff's data root is
    made = Remapped(base=base, rootfs=base / "merged", upper=base / "upper")
    layer, view, work = base / "layer", base / "view", base / "work"
    shutil.copytree(bundle.rootfs, layer, symlinks=True)
    for directory in (view, made.upper, work, made.rootfs):
        directory.mkdir()
    os.chown(made.upper, USERNS[0], USERNS[0])
    mounted: list[Path] = []
    try:
        bind_idmapped(layer, view, *USERNS)
        mounted.append(view)
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={view},upperdir={made.upper},workdir={work}",
                        str(made.rootfs)], check=True, capture_output=True)
        mounted.append(made.rootfs)
        yield made
    finally:
        subprocess.run(bundle.runc("delete", "--force", bundle.id), capture_output=True,
                       timeout=30, check=False)
        for path in reversed(mounted):
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


def test_userns_maps_root_to_the_host_range(bundle: Bundle, remapped: Remapped) -> None:
    """Under a user namespace uid_map shows the range, the image is root's, and a file
    the container's root creates in an emptyDir-like bind is owned by the mapped uid."""
    empty = remapped.base / "empty"
    empty.mkdir()
    os.chmod(empty, 0o777)  # noqa: S103 -- as an emptyDir volume is
    out = run_with(bundle, "cat /proc/self/uid_map /proc/self/gid_map; id -u; "
                   "stat -c %u:%g /bin/busybox; touch /data/made; echo touch=$?; "
                   "echo x > /etc/written; echo etc=$?",
                   SecurityContext(), with_user_namespace(*USERNS),
                   with_bind(empty, "/data"), rootfs=remapped.rootfs)
    lines = [line.split() for line in out.splitlines()]
    assert lines[0] == ["0", str(USERNS[0]), str(USERNS[1])], out
    assert lines[1] == ["0", str(USERNS[0]), str(USERNS[1])], out
    assert "touch=0" in out, out
    assert "etc=0" in out, out
    assert out.splitlines()[2:4] == ["0", "0:0"], out
    made = (empty / "made").stat()
    assert (made.st_uid, made.st_gid) == (USERNS[0], USERNS[0])
    written = (remapped.upper / "etc" / "written").stat()
    assert written.st_uid == USERNS[0]  # the upper layer holds mapped ids, never host root's


@pytest.fixture
def netns() -> Iterator[Path]:
    """A network namespace of the host's (as a group's is), deleted afterwards."""
    name = f"skiff-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        yield Path("/run/netns") / name
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)


def test_userns_joins_a_host_network_namespace(bundle: Bundle, remapped: Remapped,
                                               netns: Path) -> None:
    """A remapped container joins a network namespace the host made (as a group's is),
    with /sys still mounted read-only."""
    out = run_with(bundle, "cat /proc/self/uid_map; touch /sys/x; echo sys=$?; "
                   "echo pids=$(cat /sys/fs/cgroup/pids/pids.max)",
                   SecurityContext(), with_namespaces(str(netns)),
                   with_user_namespace(*USERNS), rootfs=remapped.rootfs)
    assert out.split()[:3] == ["0", str(USERNS[0]), str(USERNS[1])], out
    assert "sys=1" in out, out
    assert f"pids={PIDS}" in out, out  # the container's own cgroups, not the host's
