"""The OCI spec options, one by one, and resolving an image's user safely."""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path
from typing import Any

import pytest

from skiff.core.capabilities import DEFAULT_CAPABILITIES
from skiff.engine.spec.options import (
    MASKED_PATHS,
    READONLY_PATHS,
    build_spec,
    default_spec,
    with_annotations,
    with_bind,
    with_cgroups_path,
    with_default_mounts,
    with_hostname,
    with_masked_paths,
    with_namespaces,
    with_oom_score_adj,
    with_process,
    with_readonly_paths,
    with_resources,
    with_rlimits,
    with_root,
    with_tmpfs,
)
from skiff.engine.spec.seccomp import DEFAULT_PROFILE
from skiff.engine.spec.security import (
    capability_set,
    with_capabilities,
    with_default_seccomp,
    with_no_new_privileges,
    with_seccomp,
    without_compat_syscalls,
)
from skiff.engine.spec.users import resolve_user
from skiff.errors import InvalidInput, SkiffError, UserNotFound

needs_profile = pytest.mark.skipif(not DEFAULT_PROFILE.exists(),
                                   reason="needs containers-common's seccomp.json")


def mount_at(spec: dict[str, Any], destination: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [m for m in spec["mounts"] if m["destination"] == destination]
    assert len(found) == 1
    return found[0]


# --- the base and composition -------------------------------------------------------------


def test_base_spec_is_minimal_and_denies_devices() -> None:
    """With no options the spec has the five top-level parts and a deny-all device rule."""
    spec = build_spec()
    assert spec["ociVersion"] == "1.0.2"
    assert set(spec) == {"ociVersion", "process", "root", "mounts", "linux"}
    assert spec["process"]["user"] == {"uid": 0, "gid": 0}
    assert spec["linux"]["resources"]["devices"] == [{"allow": False, "access": "rwm"}]


def test_options_apply_in_order() -> None:
    """A later option overrides an earlier one that sets the same field."""
    spec = build_spec(with_hostname("first"), with_hostname("second"))
    assert spec["hostname"] == "second"


def test_base_specs_are_independent() -> None:
    """Editing one built spec never leaks into the next (no shared mutable base)."""
    one = build_spec()
    one["linux"]["resources"]["devices"].append({"allow": True})
    one["process"]["env"].append("X=1")
    assert build_spec() == build_spec()
    assert build_spec()["process"]["env"] == []


# --- process, hostname, root ----------------------------------------------------------------


def test_with_process_sets_command_env_cwd_and_user() -> None:
    """args, env, cwd, terminal, uid, gid and extra gids land in process."""
    spec = build_spec(with_process(["/bin/sh", "-c", "true"], ["PATH=/bin"], cwd="/app",
                                   uid=1000, gid=1000, additional_gids=(10, 1000, 10),
                                   terminal=True))
    process = spec["process"]
    assert process["args"] == ["/bin/sh", "-c", "true"]
    assert process["env"] == ["PATH=/bin"]
    assert process["cwd"] == "/app"
    assert process["terminal"] is True
    assert process["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [10]}


def test_with_process_takes_a_mapping_and_keeps_other_process_fields() -> None:
    """A mapping env becomes K=V strings; capabilities set earlier survive."""
    spec = build_spec(with_capabilities(), with_process(["true"], {"A": "1", "B": "x=y"}))
    assert spec["process"]["env"] == ["A=1", "B=x=y"]
    assert "capabilities" in spec["process"]
    assert "additionalGids" not in spec["process"]["user"]


def test_with_process_refuses_bad_input() -> None:
    """No command or a relative working directory is the caller's error."""
    with pytest.raises(InvalidInput, match="command"):
        with_process([], [])
    with pytest.raises(InvalidInput, match="absolute"):
        with_process(["true"], [], cwd="app")


def test_with_hostname_sets_and_validates() -> None:
    """The hostname is set; empty or longer than 64 characters is refused."""
    assert build_spec(with_hostname("web-1"))["hostname"] == "web-1"
    with pytest.raises(InvalidInput):
        with_hostname("")
    with pytest.raises(InvalidInput):
        with_hostname("x" * 65)


def test_with_root_sets_path_and_readonly(tmp_path: Path) -> None:
    """Root path (a Path or str) and read-only flag."""
    assert build_spec(with_root(tmp_path))["root"] == {"path": str(tmp_path), "readonly": False}
    assert build_spec(with_root("rootfs", readonly=True))["root"] == {
        "path": "rootfs", "readonly": True}


# --- namespaces and mounts ------------------------------------------------------------------


def test_with_namespaces_new_network() -> None:
    """pid, ipc, uts, mount and a new network namespace when no path is given."""
    spec = build_spec(with_namespaces(None))
    assert spec["linux"]["namespaces"] == [
        {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
        {"type": "network"}]


def test_with_namespaces_joins_the_group_netns() -> None:
    """A given netns path is joined; the others stay new."""
    spec = build_spec(with_namespaces("/run/netns/grp"))
    assert {"type": "network", "path": "/run/netns/grp"} in spec["linux"]["namespaces"]
    assert {"type": "pid"} in spec["linux"]["namespaces"]
    with pytest.raises(InvalidInput):
        with_namespaces("run/netns/grp")


def test_with_default_mounts_matches_runcs_defaults() -> None:
    """proc, /dev tmpfs, devpts, shm, mqueue, and sysfs and cgroup mounted read-only."""
    spec = build_spec(with_default_mounts())
    assert [m["destination"] for m in spec["mounts"]] == [
        "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"]
    assert mount_at(spec, "/proc")["type"] == "proc"
    assert mount_at(spec, "/dev/pts")["type"] == "devpts"
    assert "newinstance" in mount_at(spec, "/dev/pts")["options"]
    assert "mode=1777" in mount_at(spec, "/dev/shm")["options"]
    assert mount_at(spec, "/dev/mqueue")["type"] == "mqueue"
    assert "ro" in mount_at(spec, "/sys")["options"]
    assert "ro" in mount_at(spec, "/sys/fs/cgroup")["options"]
    assert mount_at(spec, "/sys/fs/cgroup")["type"] == "cgroup"
    for mount in spec["mounts"]:
        assert "nosuid" in mount["options"]


def test_default_mount_options_are_not_shared_between_specs() -> None:
    """Editing one spec's mount options leaves the next spec's alone."""
    one = build_spec(with_default_mounts())
    one["mounts"][0]["options"].append("mangled")
    assert "mangled" not in build_spec(with_default_mounts())["mounts"][0]["options"]


def test_with_bind_is_recursive_nosuid_nodev_and_ro_on_request(tmp_path: Path) -> None:
    """A bind mount is rbind, nosuid, nodev; ro only when asked."""
    spec = build_spec(with_bind(tmp_path, "/data"), with_bind("/etc/x", "/cfg", readonly=True))
    rw, ro = mount_at(spec, "/data"), mount_at(spec, "/cfg")
    assert rw["type"] == "bind"
    assert rw["source"] == str(tmp_path)
    assert {"rbind", "nosuid", "nodev"} <= set(rw["options"])
    assert "ro" not in rw["options"]
    assert "ro" in ro["options"]
    with pytest.raises(InvalidInput):
        with_bind(tmp_path, "data")


def test_a_later_mount_replaces_one_on_the_same_destination() -> None:
    """A volume on /dev/shm replaces the default shm mount instead of stacking on it."""
    spec = build_spec(with_default_mounts(), with_tmpfs("/dev/shm", 1 << 30, 0o1777))
    shm = [m for m in spec["mounts"] if m["destination"] == "/dev/shm"]
    assert len(shm) == 1
    assert f"size={1 << 30}" in shm[0]["options"]


def test_with_tmpfs_sets_size_and_mode() -> None:
    """A tmpfs mount carries its size in bytes and its octal mode."""
    spec = build_spec(with_tmpfs("/cache", 64 << 20, 0o700))
    mount = mount_at(spec, "/cache")
    assert mount["type"] == "tmpfs"
    assert {"nosuid", "nodev", f"size={64 << 20}", "mode=700"} <= set(mount["options"])
    with pytest.raises(InvalidInput):
        with_tmpfs("/cache", 0, 0o700)


# --- capabilities and hardening -------------------------------------------------------------


def test_default_capabilities_are_dockers_without_net_raw() -> None:
    """The default set is Docker's 13 minus NET_RAW, in bounding, effective and permitted."""
    caps = build_spec(with_capabilities())["process"]["capabilities"]
    assert set(caps) == {"bounding", "effective", "permitted"}
    assert caps["bounding"] == list(DEFAULT_CAPABILITIES)
    assert caps["effective"] == caps["permitted"] == caps["bounding"]
    assert "CAP_NET_RAW" not in caps["bounding"]
    assert len(DEFAULT_CAPABILITIES) == 13


def test_capabilities_add_and_drop_in_any_spelling() -> None:
    """Names may omit CAP_ and use any case; drops apply before adds."""
    caps = capability_set(add=["sys_admin", "CAP_NET_RAW"], drop=["mknod", "CAP_NET_RAW"])
    assert "CAP_SYS_ADMIN" in caps
    assert "CAP_NET_RAW" in caps
    assert "CAP_MKNOD" not in caps


def test_capabilities_all() -> None:
    """drop ALL leaves only the added; add ALL gives every capability."""
    assert capability_set(add=["CHOWN"], drop=["ALL"]) == ["CAP_CHOWN"]
    assert "CAP_SYS_MODULE" in capability_set(add=["ALL"])
    assert capability_set(drop=["all"]) == []


def test_unknown_capability_is_refused() -> None:
    """A typo in a capability name is the caller's error, not a runc failure later."""
    with pytest.raises(InvalidInput, match="CAP_SYS_ADMN"):
        with_capabilities(add=["CAP_SYS_ADMN"])


def test_with_no_new_privileges() -> None:
    """noNewPrivileges is set to what is asked."""
    assert build_spec(with_no_new_privileges(True))["process"]["noNewPrivileges"] is True
    assert build_spec(with_no_new_privileges(False))["process"]["noNewPrivileges"] is False


def test_with_seccomp_sets_the_given_profile() -> None:
    """An explicit OCI profile is placed in linux.seccomp as given."""
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}
    assert build_spec(with_seccomp(profile))["linux"]["seccomp"] == profile


@needs_profile
def test_with_default_seccomp_follows_the_caps_already_set() -> None:
    """The default profile is resolved for the bounding set present when the option runs."""
    plain = build_spec(with_capabilities(), with_default_seccomp("amd64"))
    admin = build_spec(with_capabilities(add=["SYS_ADMIN"]), with_default_seccomp("amd64"))

    def allows(spec: dict[str, Any], name: str) -> bool:
        return any(name in r["names"] and r["action"] == "SCMP_ACT_ALLOW"
                   for r in spec["linux"]["seccomp"]["syscalls"])

    assert not allows(plain, "bpf")
    assert allows(admin, "bpf")


def test_with_masked_and_readonly_paths() -> None:
    """The default lists of runc and Podman: kcore and keys masked, /proc/sys read-only."""
    spec = build_spec(with_masked_paths(), with_readonly_paths())
    masked, readonly = spec["linux"]["maskedPaths"], spec["linux"]["readonlyPaths"]
    assert masked == list(MASKED_PATHS)
    assert {"/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware",
            "/proc/acpi", "/proc/sched_debug", "/proc/scsi"} <= set(masked)
    assert readonly == list(READONLY_PATHS)
    assert {"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"} <= set(readonly)
    assert build_spec(with_masked_paths(["/x"]))["linux"]["maskedPaths"] == ["/x"]


# --- resources, cgroups, annotations, limits -------------------------------------------------


def test_with_resources_sets_quota_memory_without_swap_and_pids() -> None:
    """1.5 cores → quota 150000 per 100000; swap equals memory (no swap); pids limit."""
    spec = build_spec(with_resources(cpu_cores=1.5, memory_bytes=1536 << 20, pids_limit=4096))
    resources = spec["linux"]["resources"]
    assert resources["cpu"] == {"quota": 150_000, "period": 100_000, "shares": 1536}
    assert resources["memory"] == {"limit": 1536 << 20, "swap": 1536 << 20}
    assert resources["pids"] == {"limit": 4096}
    assert resources["devices"] == [{"allow": False, "access": "rwm"}]  # kept


def test_with_resources_tiny_cpu_keeps_kernel_minimums() -> None:
    """A sliver of a core still gets the kernel's minimum quota (1 ms) and shares (2)."""
    cpu = build_spec(with_resources(0.001, 1 << 20, 1))["linux"]["resources"]["cpu"]
    assert cpu["quota"] == 1_000
    assert cpu["shares"] == 2


@pytest.mark.parametrize(("cores", "memory", "pids"), [(0, 1, 1), (1, 0, 1), (1, 1, 0)])
def test_with_resources_refuses_non_positive_values(cores: float, memory: int,
                                                     pids: int) -> None:
    """Zero or negative CPU, memory or pids is the caller's error."""
    with pytest.raises(InvalidInput):
        with_resources(cores, memory, pids)


def test_with_cgroups_path() -> None:
    """The cgroups path is set and must be absolute."""
    assert build_spec(with_cgroups_path("/skiff/c1"))["linux"]["cgroupsPath"] == "/skiff/c1"
    with pytest.raises(InvalidInput):
        with_cgroups_path("skiff/c1")


def test_with_annotations_merge() -> None:
    """Annotations from several options merge; a later value wins."""
    spec = build_spec(with_annotations({"a": "1", "b": "1"}), with_annotations({"b": "2"}))
    assert spec["annotations"] == {"a": "1", "b": "2"}


def test_with_rlimits_default_nofile() -> None:
    """RLIMIT_NOFILE defaults to 1024/1024 and replaces an earlier setting."""
    spec = build_spec(with_rlimits((10, 20)), with_rlimits())
    assert spec["process"]["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]


def test_with_rlimits_stays_within_the_hosts_hard_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A request above this process's hard limit is lowered to it, so runc can apply it."""
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (256, 512))
    spec = build_spec(with_rlimits((1024, 4096)))
    assert spec["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 512}]
    with pytest.raises(InvalidInput):
        with_rlimits((10, 5))


def test_default_rlimit_fits_this_host() -> None:
    """The default 1024 is within this machine's real hard limit (runc fails otherwise)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert hard == resource.RLIM_INFINITY or hard >= 1024


def test_with_oom_score_adj() -> None:
    """oomScoreAdj is set; outside -1000..1000 is refused."""
    assert build_spec(with_oom_score_adj(500))["process"]["oomScoreAdj"] == 500
    with pytest.raises(InvalidInput):
        with_oom_score_adj(1001)


# --- the hardened default --------------------------------------------------------------------


@needs_profile
def test_default_spec_composes_the_hardened_defaults() -> None:
    """default_spec holds namespaces, mounts, caps, NNP, seccomp, masks and rlimits."""
    spec = default_spec(with_process(["true"], []), with_root("rootfs"))
    assert len(spec["linux"]["namespaces"]) == 5
    assert mount_at(spec, "/proc")["type"] == "proc"
    assert spec["process"]["capabilities"]["bounding"] == list(DEFAULT_CAPABILITIES)
    assert spec["process"]["noNewPrivileges"] is True
    assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert spec["linux"]["maskedPaths"] == list(MASKED_PATHS)
    assert spec["linux"]["readonlyPaths"] == list(READONLY_PATHS)
    assert spec["process"]["rlimits"][0]["type"] == "RLIMIT_NOFILE"
    assert spec["process"]["args"] == ["true"]
    json.dumps(spec)


@needs_profile
def test_default_spec_seccomp_follows_added_caps() -> None:
    """cap_add SYS_ADMIN reaches the capability sets and the resolved seccomp profile."""
    spec = default_spec(cap_add=["SYS_ADMIN"], network_path="/run/netns/g")
    assert "CAP_SYS_ADMIN" in spec["process"]["capabilities"]["bounding"]
    assert any("bpf" in r["names"] and r["action"] == "SCMP_ACT_ALLOW"
               for r in spec["linux"]["seccomp"]["syscalls"])
    assert {"type": "network", "path": "/run/netns/g"} in spec["linux"]["namespaces"]


def test_default_spec_keeps_an_explicit_seccomp_profile() -> None:
    """A profile given as an option is not replaced by the default one."""
    profile = {"defaultAction": "SCMP_ACT_LOG"}
    assert default_spec(with_seccomp(profile))["linux"]["seccomp"] == profile


# --- resolve_user ----------------------------------------------------------------------------

PASSWD = (
    "# comment line\n"
    "root:x:0:0:root:/root:/bin/sh\n"
    "app:x:1000:1000::/app:/bin/sh\n"
    "broken line\n"
    "\n"
    "nobody:x:65534:65534::/:/bin/false\n"
)
GROUP = (
    "root:x:0:\n"
    "wheel:x:10:root,app\n"
    "app:x:1000:\n"
    "extra:x:2000:app\n"
    "nogroup:x:65534:\n"
)


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    return root


@pytest.mark.parametrize(("user", "expected"), [
    ("", (0, 0, (10,))),
    ("root", (0, 0, (10,))),
    ("app", (1000, 1000, (10, 2000))),
    ("1000", (1000, 1000, (10, 2000))),
    ("app:extra", (1000, 2000, ())),
    ("app:3000", (1000, 3000, ())),
    ("1000:1000", (1000, 1000, ())),
    ("4321", (4321, 0, ())),
    ("4321:4321", (4321, 4321, ())),
    ("nobody", (65534, 65534, ())),
])
def test_resolve_user_forms(rootfs: Path, user: str,
                            expected: tuple[int, int, tuple[int, ...]]) -> None:
    """Every User form resolves as runc reads it (supplementary groups only when implicit)."""
    assert resolve_user(rootfs, user) == expected


def test_resolve_user_unknown_names_raise(rootfs: Path) -> None:
    """A user or group name missing from the image's files is a UserNotFound skiff error."""
    with pytest.raises(UserNotFound, match="ghost"):
        resolve_user(rootfs, "ghost")
    with pytest.raises(UserNotFound, match="nogrp"):
        resolve_user(rootfs, "app:nogrp")
    assert issubclass(UserNotFound, SkiffError)
    assert UserNotFound.code == "ContainerUserNotFound"


def test_resolve_user_without_files_allows_numeric_only(tmp_path: Path) -> None:
    """An image without /etc/passwd or /etc/group takes numeric ids and refuses names."""
    tmp_path.joinpath("rootfs").mkdir()
    root = tmp_path / "rootfs"
    assert resolve_user(root, "") == (0, 0, ())
    assert resolve_user(root, "5:6") == (5, 6, ())
    with pytest.raises(UserNotFound):
        resolve_user(root, "app")
    with pytest.raises(UserNotFound):
        resolve_user(root, "5:staff")


def test_resolve_user_reads_only_ascii_digits_as_ids(rootfs: Path) -> None:
    """Non-ASCII digits (which int() accepts) are a name, not uid 12."""
    with pytest.raises(UserNotFound):
        resolve_user(rootfs, "\u0661\u0662")


def test_resolve_user_refuses_out_of_range_ids(rootfs: Path) -> None:
    """Ids beyond 2**31-1 are refused rather than wrapped by the kernel."""
    with pytest.raises(UserNotFound, match="out of range"):
        resolve_user(rootfs, "4294967295")


def _host_files(tmp_path: Path) -> Path:
    host = tmp_path / "host"
    host.mkdir()
    (host / "passwd").write_text("evil:x:4242:4242::/:/bin/sh\n")
    (host / "group").write_text("evil:x:4242:\n")
    return host


def test_absolute_passwd_symlink_does_not_leave_the_rootfs(rootfs: Path,
                                                           tmp_path: Path) -> None:
    """/etc/passwd -> /<host path> resolves inside the rootfs, so the host's file is unread."""
    host = _host_files(tmp_path)
    (rootfs / "etc" / "passwd").unlink()
    (rootfs / "etc" / "passwd").symlink_to(host / "passwd")
    with pytest.raises(UserNotFound, match="evil"):
        resolve_user(rootfs, "evil")
    assert resolve_user(rootfs, "4242") == (4242, 0, ())


def test_relative_passwd_symlink_cannot_climb_out(rootfs: Path, tmp_path: Path) -> None:
    """../ beyond the rootfs stops at the rootfs, as at the real /."""
    _host_files(tmp_path)
    (rootfs / "etc" / "passwd").unlink()
    (rootfs / "etc" / "passwd").symlink_to("../../../../../../host/passwd")
    with pytest.raises(UserNotFound):
        resolve_user(rootfs, "evil")


def test_etc_directory_symlink_cannot_leave_the_rootfs(rootfs: Path, tmp_path: Path) -> None:
    """A planted /etc -> /<host dir> symlink is resolved inside the rootfs too."""
    host = _host_files(tmp_path)
    for name in ("passwd", "group"):
        (rootfs / "etc" / name).unlink()
    (rootfs / "etc").rmdir()
    (rootfs / "etc").symlink_to(host)
    with pytest.raises(UserNotFound):
        resolve_user(rootfs, "evil")
    with pytest.raises(UserNotFound):
        resolve_user(rootfs, "0:evil")


def test_symlinks_inside_the_rootfs_are_followed(rootfs: Path) -> None:
    """Legitimate links (absolute, relative, through directories) resolve in the image."""
    (rootfs / "usr" / "lib").mkdir(parents=True)
    (rootfs / "usr" / "lib" / "passwd").write_text("svc:x:77:88::/:/bin/sh\n")
    (rootfs / "etc" / "passwd").unlink()
    (rootfs / "etc" / "passwd").symlink_to("/usr/lib/passwd")
    assert resolve_user(rootfs, "svc") == (77, 88, ())
    (rootfs / "etc" / "passwd").unlink()
    (rootfs / "etc" / "passwd").symlink_to("../usr/./lib/../lib/passwd")
    assert resolve_user(rootfs, "svc") == (77, 88, ())


def test_symlink_loops_are_an_error_not_a_hang(rootfs: Path) -> None:
    """/etc/passwd -> itself raises UserNotFound instead of looping."""
    (rootfs / "etc" / "passwd").unlink()
    (rootfs / "etc" / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(UserNotFound, match="symlinks"):
        resolve_user(rootfs, "app")


def test_non_regular_passwd_counts_as_absent(rootfs: Path) -> None:
    """A FIFO or directory at /etc/passwd is not read (a FIFO would block forever)."""
    (rootfs / "etc" / "passwd").unlink()
    os.mkfifo(rootfs / "etc" / "passwd")
    assert resolve_user(rootfs, "10") == (10, 0, ())
    with pytest.raises(UserNotFound):
        resolve_user(rootfs, "app")


def test_huge_passwd_is_refused(rootfs: Path) -> None:
    """A planted multi-megabyte /etc/passwd is refused rather than read into memory."""
    with open(rootfs / "etc" / "passwd", "wb") as f:
        f.truncate(64 << 20)
    with pytest.raises(UserNotFound, match="larger"):
        resolve_user(rootfs, "app")


def test_without_compat_syscalls_keeps_only_the_native_abi() -> None:
    """The filter keeps x86_64 and drops the 32-bit ABIs; nothing else changes."""
    spec = default_spec()
    before = json.loads(json.dumps(spec["linux"]["seccomp"]))
    assert len(before["architectures"]) > 1
    without_compat_syscalls(spec)
    after = spec["linux"]["seccomp"]
    assert after["architectures"] == before["architectures"][:1]
    assert after["syscalls"] == before["syscalls"]
