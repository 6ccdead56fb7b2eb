"""Resolving Docker-format seccomp profiles to the OCI form runc reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from skiff.core.capabilities import DEFAULT_CAPABILITIES
from skiff.core.seccomp import convert, kernel_version
from skiff.engine.spec import seccomp
from skiff.engine.spec.seccomp import DEFAULT_PROFILE, default_seccomp, load_profile
from skiff.errors import SeccompProfileError

ARCH_MAP = [
    {"architecture": "SCMP_ARCH_X86_64",
     "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
]
NEW_KERNEL = (6, 1)
needs_profile = pytest.mark.skipif(not DEFAULT_PROFILE.exists(),
                                   reason="needs containers-common's seccomp.json")


def profile(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "archMap": ARCH_MAP,
            "syscalls": list(rules)}


def allowed(resolved: dict[str, Any]) -> set[str]:
    return {n for r in resolved["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]}


def denied(resolved: dict[str, Any]) -> set[str]:
    return {n for r in resolved["syscalls"] if r["action"] != "SCMP_ACT_ALLOW" for n in r["names"]}


def rule(names: list[str], **fields: Any) -> dict[str, Any]:
    return {"names": names, "action": "SCMP_ACT_ALLOW", "args": [], "comment": "",
            "includes": {}, "excludes": {}, **fields}


def test_amd64_gets_its_native_and_sub_architectures() -> None:
    """x86_64 filters its own, i386 and x32 syscalls: SCMP_ARCH_X86_64, X86, X32."""
    out = convert(profile(), caps=(), arch="amd64", kernel=NEW_KERNEL)
    assert out["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert convert(profile(), caps=(), arch="x86_64", kernel=NEW_KERNEL) == out


def test_arm64_gets_arm64_architectures() -> None:
    """aarch64 maps to SCMP_ARCH_AARCH64 and its 32-bit ARM sub-architecture."""
    out = convert(profile(), caps=(), arch="arm64", kernel=NEW_KERNEL)
    assert out["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]


def test_unknown_architecture_names_none() -> None:
    """A machine missing from archMap leaves ``architectures`` out (runc's native default)."""
    out = convert(profile(), caps=(), arch="sparc64", kernel=NEW_KERNEL)
    assert "architectures" not in out


def test_default_action_and_errno_are_kept() -> None:
    """defaultAction and defaultErrnoRet (ENOSYS) reach runc unchanged."""
    out = convert(profile(), caps=(), arch="amd64", kernel=NEW_KERNEL)
    assert out["defaultAction"] == "SCMP_ACT_ERRNO"
    assert out["defaultErrnoRet"] == 38


def test_rule_fields_are_kept_and_docker_fields_dropped() -> None:
    """action, errnoRet and args survive; comment, errno names, includes, excludes do not."""
    args = [{"index": 0, "value": 16, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]
    source = rule(["socket"], action="SCMP_ACT_ERRNO", errnoRet=22, errno="EINVAL", args=args,
                  comment="netlink audit")
    out = convert(profile(source), caps=(), arch="amd64", kernel=NEW_KERNEL)
    assert out["syscalls"] == [{"names": ["socket"], "action": "SCMP_ACT_ERRNO",
                                "errnoRet": 22, "args": args}]


def test_empty_or_null_args_are_left_out() -> None:
    """Rules without argument conditions carry no ``args`` key (Docker writes [] or null)."""
    out = convert(profile(rule(["read"]), rule(["write"], args=None)), caps=(), arch="amd64",
                  kernel=NEW_KERNEL)
    assert all("args" not in r for r in out["syscalls"])


def test_included_caps_must_all_be_in_the_bounding_set() -> None:
    """A rule that includes caps applies only when every one of them is held."""
    source = profile(rule(["bpf"], includes={"caps": ["CAP_SYS_ADMIN", "CAP_BPF"]}))
    assert allowed(convert(source, caps=[], arch="amd64", kernel=NEW_KERNEL)) == set()
    assert allowed(convert(source, caps=["CAP_SYS_ADMIN"], arch="amd64",
                           kernel=NEW_KERNEL)) == set()
    assert allowed(convert(source, caps=["CAP_SYS_ADMIN", "CAP_BPF"], arch="amd64",
                           kernel=NEW_KERNEL)) == {"bpf"}


def test_excluded_caps_drop_the_rule_when_any_is_held() -> None:
    """A rule that excludes a cap vanishes as soon as the container holds it."""
    source = profile(rule(["chroot"], action="SCMP_ACT_ERRNO", errnoRet=1,
                          excludes={"caps": ["CAP_SYS_CHROOT"]}))
    assert denied(convert(source, caps=[], arch="amd64", kernel=NEW_KERNEL)) == {"chroot"}
    assert convert(source, caps=["CAP_SYS_CHROOT"], arch="amd64",
                   kernel=NEW_KERNEL)["syscalls"] == []


def test_arch_includes_and_excludes() -> None:
    """Rules for other machines are dropped; rules excluding ours are dropped."""
    source = profile(rule(["arch_prctl"], includes={"arches": ["amd64", "x32"]}),
                     rule(["cacheflush"], includes={"arches": ["arm", "arm64"]}),
                     rule(["not_on_amd64"], excludes={"arches": ["amd64"]}))
    assert allowed(convert(source, caps=(), arch="amd64", kernel=NEW_KERNEL)) == {"arch_prctl"}
    assert allowed(convert(source, caps=(), arch="arm64", kernel=NEW_KERNEL)) == {
        "cacheflush", "not_on_amd64"}


def test_min_kernel_includes_and_excludes() -> None:
    """includes.minKernel needs at least that kernel; excludes.minKernel drops it from there."""
    source = profile(rule(["ptrace"], includes={"minKernel": "4.8"}),
                     rule(["old_only"], excludes={"minKernel": "4.8"}))
    assert allowed(convert(source, caps=(), arch="amd64", kernel=(4, 4))) == {"old_only"}
    assert allowed(convert(source, caps=(), arch="amd64", kernel=(4, 8))) == {"ptrace"}
    assert allowed(convert(source, caps=(), arch="amd64", kernel=(5, 10))) == {"ptrace"}


def test_single_name_rules_are_accepted() -> None:
    """Old Docker profiles name one syscall per rule with ``name``."""
    out = convert(profile({"name": "read", "action": "SCMP_ACT_ALLOW"}), caps=(),
                  arch="amd64", kernel=NEW_KERNEL)
    assert out["syscalls"] == [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]


def test_malformed_profiles_are_refused() -> None:
    """No defaultAction, or a rule without names or action, is a profile error."""
    with pytest.raises(SeccompProfileError, match="defaultAction"):
        convert({"syscalls": []}, caps=(), arch="amd64", kernel=NEW_KERNEL)
    with pytest.raises(SeccompProfileError, match="names and an action"):
        convert(profile({"names": ["read"]}), caps=(), arch="amd64", kernel=NEW_KERNEL)
    with pytest.raises(SeccompProfileError, match="minKernel"):
        convert(profile(rule(["x"], includes={"minKernel": 4})), caps=(), arch="amd64",
                kernel=NEW_KERNEL)


def test_kernel_version_reads_major_and_minor() -> None:
    """Distribution suffixes are ignored; garbage is an error, not a silent (0, 0)."""
    assert kernel_version("6.1.0-18-amd64") == (6, 1)
    assert kernel_version("5.15") == (5, 15)
    with pytest.raises(SeccompProfileError):
        kernel_version("unknown")


def test_load_profile_errors_name_the_file(tmp_path: Path) -> None:
    """A missing, unparsable or non-object profile is a SeccompProfileError naming its path."""
    with pytest.raises(SeccompProfileError, match="containers-common"):
        load_profile(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SeccompProfileError, match=r"bad\.json"):
        load_profile(bad)
    bad.write_text("[]")
    with pytest.raises(SeccompProfileError, match="not a JSON object"):
        load_profile(bad)


@needs_profile
def test_real_profile_sys_admin_syscalls_follow_the_capability() -> None:
    """bpf is denied with the default caps and allowed once CAP_SYS_ADMIN is added."""
    default = default_seccomp(DEFAULT_CAPABILITIES, "amd64")
    assert "bpf" not in allowed(default)
    assert "bpf" in denied(default)
    admin = default_seccomp([*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"], "amd64")
    assert "bpf" in allowed(admin)
    assert "bpf" not in denied(admin)


@needs_profile
def test_real_profile_resolves_for_amd64() -> None:
    """The shipped profile yields x86 architectures, ENOSYS default and amd64-only syscalls."""
    out = default_seccomp(DEFAULT_CAPABILITIES, "amd64")
    assert out["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert out["defaultAction"] == "SCMP_ACT_ERRNO"
    assert out["defaultErrnoRet"] == 38
    names = allowed(out)
    assert {"read", "arch_prctl", "chroot"} <= names
    assert "cacheflush" not in names  # ARM only
    assert all(set(r) <= {"names", "action", "errnoRet", "args"} for r in out["syscalls"])
    json.dumps(out)  # what runc reads must serialise


@needs_profile
def test_results_are_cached_and_callers_get_copies() -> None:
    """The second call for the same caps hits the cache; editing a result changes neither."""
    seccomp.clear_cache()
    first = default_seccomp(DEFAULT_CAPABILITIES, "amd64")
    second = default_seccomp(reversed(DEFAULT_CAPABILITIES), "amd64")
    info = seccomp._cached.cache_info()
    assert (info.hits, info.misses) == (1, 1)
    assert first == second
    first["syscalls"][0]["names"].append("mangled")
    first["architectures"].clear()
    third = default_seccomp(DEFAULT_CAPABILITIES, "amd64")
    assert third == second
    assert "mangled" not in third["syscalls"][0]["names"]
