"""The securityContext and user-namespace spec options, one by one (no runc)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from skiff.core.capabilities import DEFAULT_CAPABILITIES
from skiff.core.spec import SecurityContext
from skiff.engine.spec.options import (
    build_spec,
    default_spec,
    with_bind,
    with_default_mounts,
    with_namespaces,
)
from skiff.engine.spec.seccomp import DEFAULT_PROFILE
from skiff.engine.spec.security import (
    host_capabilities,
    security_options,
    with_custom_seccomp,
    with_privileged,
)
from skiff.engine.spec.userns import with_user_namespace
from skiff.engine.spec.users import resolve_run_as
from skiff.errors import InvalidInput

needs_profile = pytest.mark.skipif(not DEFAULT_PROFILE.exists(),
                                   reason="needs containers-common's seccomp.json")
PROFILE = {"defaultAction": "SCMP_ACT_ALLOW",
           "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                        {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW",
                         "includes": {"caps": ["CAP_SYS_PTRACE"]}}]}
DEVICE = {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0, "fileMode": 0o660,
          "uid": 0, "gid": 6}


def spec_for(context: SecurityContext) -> dict[str, Any]:
    """The spec the supervisor builds for ``context`` (less the per-container options)."""
    return default_spec(*security_options(context), cap_add=context.cap_add,
                        cap_drop=context.cap_drop, privileged=context.privileged)


def mount_at(spec: dict[str, Any], destination: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [m for m in spec["mounts"] if m["destination"] == destination]
    assert len(found) == 1
    return found[0]


@needs_profile
def test_no_context_keeps_the_hardened_defaults() -> None:
    """An empty securityContext changes nothing: default caps, NoNewPrivs, default filter."""
    spec = spec_for(SecurityContext())
    assert spec["process"]["capabilities"]["bounding"] == list(DEFAULT_CAPABILITIES)
    assert spec["process"]["noNewPrivileges"] is True
    assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert spec["linux"]["maskedPaths"]


@needs_profile
def test_capabilities_add_and_drop_on_the_defaults() -> None:
    """add NET_ADMIN and drop CHOWN adjust the default set; drop ALL then add keeps only adds."""
    caps = spec_for(SecurityContext(cap_add=("net_admin",), cap_drop=("CAP_CHOWN",)))[
        "process"]["capabilities"]
    assert "CAP_NET_ADMIN" in caps["effective"]
    assert "CAP_CHOWN" not in caps["bounding"]
    only = spec_for(SecurityContext(cap_add=("NET_BIND_SERVICE",), cap_drop=("ALL",)))
    assert only["process"]["capabilities"]["permitted"] == ["CAP_NET_BIND_SERVICE"]


@needs_profile
@pytest.mark.parametrize(("allow", "expected"), [(None, True), (False, True), (True, False)])
def test_no_new_privileges_lifts_only_when_escalation_is_allowed(allow: bool | None,
                                                                 expected: bool) -> None:
    """noNewPrivileges stays true unless allowPrivilegeEscalation is explicitly true."""
    spec = spec_for(SecurityContext(allow_privilege_escalation=allow))
    assert spec["process"]["noNewPrivileges"] is expected


def test_custom_seccomp_replaces_the_default_resolved_for_the_caps() -> None:
    """A custom profile becomes linux.seccomp, its cap-gated rules kept only with the cap."""
    spec = spec_for(SecurityContext(seccomp_profile=PROFILE))
    seccomp = spec["linux"]["seccomp"]
    assert seccomp["defaultAction"] == "SCMP_ACT_ALLOW"
    assert [r["names"] for r in seccomp["syscalls"]] == [["mkdir"]]
    with_ptrace = build_spec()
    with_ptrace["process"]["capabilities"] = {"bounding": ["CAP_SYS_PTRACE"]}
    with_custom_seccomp(PROFILE)(with_ptrace)
    assert [r["names"] for r in with_ptrace["linux"]["seccomp"]["syscalls"]] == [
        ["mkdir"], ["ptrace"]]


def test_privileged_gives_every_host_cap_devices_and_no_filter() -> None:
    """privileged: the host's caps, its devices allowed, no seccomp, masked or ro paths,
    /sys writable, no-new-privileges off; a custom profile is ignored."""
    spec = default_spec(with_privileged(devices=[DEVICE]),
                        *security_options(SecurityContext(privileged=True,
                                                          seccomp_profile=PROFILE)),
                        privileged=True)
    caps = spec["process"]["capabilities"]
    assert caps["bounding"] == caps["effective"] == host_capabilities()
    assert spec["linux"]["devices"] == [DEVICE]
    assert spec["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    for key in ("seccomp", "maskedPaths", "readonlyPaths"):
        assert key not in spec["linux"]
    assert "ro" not in mount_at(spec, "/sys")["options"]
    assert spec["process"]["noNewPrivileges"] is False


def test_host_capabilities_reads_the_bounding_set(tmp_path: Path) -> None:
    """host_capabilities lists the caps whose bits CapBnd sets."""
    status = tmp_path / "status"
    status.write_text("Name:\tx\nCapBnd:\t0000000000003001\n")
    assert host_capabilities(status) == ["CAP_CHOWN", "CAP_NET_ADMIN", "CAP_NET_RAW"]


def test_user_namespace_adds_the_namespace_and_mappings() -> None:
    """with_user_namespace adds a user namespace (once) and maps users and groups alike."""
    spec = build_spec(with_namespaces(None), with_user_namespace(100000, 65536),
                      with_user_namespace(100000, 65536))
    types = [n["type"] for n in spec["linux"]["namespaces"]]
    assert types.count("user") == 1
    mapping = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    assert spec["linux"]["uidMappings"] == mapping
    assert spec["linux"]["gidMappings"] == mapping


def test_user_namespace_binds_sys_when_a_host_netns_is_joined() -> None:
    """Joining a network namespace, /sys becomes a read-only rbind of the host's sysfs;
    in a new one it stays a sysfs."""
    joined = build_spec(with_namespaces("/run/netns/x"), with_default_mounts(),
                        with_user_namespace(100000, 65536))
    sys = mount_at(joined, "/sys")
    assert (sys["type"], sys["source"]) == ("bind", "/sys")
    assert {"rbind", "ro", "nosuid", "noexec", "nodev"} <= set(sys["options"])
    own = build_spec(with_namespaces(None), with_default_mounts(),
                     with_user_namespace(100000, 65536))
    assert mount_at(own, "/sys")["type"] == "sysfs"


def test_user_namespace_keeps_the_locked_flags_of_bind_sources(tmp_path: Path) -> None:
    """A bind's options gain its source mount's flags (a read-only, noexec source: ro, noexec)."""
    source = tmp_path / "src"
    source.mkdir()
    flags = os.statvfs(source).f_flag
    spec = build_spec(with_bind(source, "/data"), with_bind("/nonexistent", "/gone"),
                      with_user_namespace(100000, 65536))
    options = mount_at(spec, "/data")["options"]
    assert ("noexec" in options) == bool(flags & os.ST_NOEXEC)
    assert ("ro" in options) == bool(flags & os.ST_RDONLY)
    assert mount_at(spec, "/gone")["options"] == ["rbind", "rprivate", "nosuid", "nodev"]


@pytest.mark.parametrize(("first", "count"), [(0, 65536), (100000, 0), (2**32 - 10, 65536)])
def test_user_namespace_refuses_bad_ranges(first: int, count: int) -> None:
    """Host id 0 (root), an empty range or one past 32 bits is refused."""
    with pytest.raises(InvalidInput):
        with_user_namespace(first, count)


def _rootfs(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nextra:x:2000:app\n")
    return tmp_path


@pytest.mark.parametrize(("run_as", "expected"), [
    ((None, None), (1000, 1000, (2000,))),  # the image's user "app"
    ((0, None), (0, 0, ())),  # runAsUser replaces it, group from passwd
    ((1000, None), (1000, 1000, (2000,))),
    ((4242, None), (4242, 0, ())),  # no passwd entry: gid 0
    ((None, 2000), (1000, 2000, ())),  # runAsGroup replaces the primary group
    ((2**32 - 2, 7), (2**32 - 2, 7, ())),  # beyond passwd's ids: as given
])
def test_resolve_run_as(tmp_path: Path, run_as: tuple[int | None, int | None],
                        expected: tuple[int, int, tuple[int, ...]]) -> None:
    """runAsUser/runAsGroup override the image's User as a numeric --user would."""
    assert resolve_run_as(_rootfs(tmp_path), "app", *run_as) == expected
