"""Seccomp profiles: Docker's template format resolved into the OCI runtime's form.

Debian's ``containers-common`` ships the profile Podman and CRI-O use
(``/usr/share/containers/seccomp.json``). It is written in Docker's format,
which is a *template*: each rule may say which capabilities, architectures or
kernel versions it applies to (``includes``) or must not apply to
(``excludes``), and ``archMap`` lists every machine with its
sub-architectures. runc only understands the resolved form, ``linux.seccomp``
of the OCI runtime spec, so the template is resolved here for one
architecture and one capability set, the way moby's and containers/common's
``setupSeccomp`` do:

- ``architectures`` is the host's native architecture followed by its
  sub-architectures from ``archMap`` (x86_64: SCMP_ARCH_X86_64, SCMP_ARCH_X86,
  SCMP_ARCH_X32), so 32-bit syscalls are filtered too rather than left to the
  default action;
- a rule is dropped when an excluded architecture is ours, an excluded
  capability is in the container's bounding set, or the kernel is at least its
  excluded ``minKernel``; it is also dropped unless our architecture is among
  its included ones, *every* included capability is in the bounding set and
  the kernel is at least its included ``minKernel``;
- ``defaultAction``, ``defaultErrnoRet``, each rule's ``action``,
  ``errnoRet`` and ``args`` are kept; Docker-only fields (``comment``,
  ``errno`` names, ``includes``/``excludes``) are not passed to runc.

Pure functions on the standard library: the API layer checks a group's custom
profile with :func:`convert` without loading any engine; the node's default
profile and its cache live in :mod:`skiff.engine.spec.seccomp`.
"""

from __future__ import annotations

import platform
import re
from collections.abc import Iterable
from typing import Any

from skiff.errors import SeccompProfileError

# Go's architecture names (what Docker's ``includes.arches`` and
# ``settings.Platform`` use) → libseccomp's name for the native architecture,
# the key of ``archMap``. Machine names are accepted too, as callers may pass
# ``uname -m``.
_NATIVE = {
    "amd64": "SCMP_ARCH_X86_64",
    "386": "SCMP_ARCH_X86",
    "arm64": "SCMP_ARCH_AARCH64",
    "arm": "SCMP_ARCH_ARM",
    "mips64": "SCMP_ARCH_MIPS64",
    "mips64le": "SCMP_ARCH_MIPSEL64",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "s390x": "SCMP_ARCH_S390X",
    "riscv64": "SCMP_ARCH_RISCV64",
    "loong64": "SCMP_ARCH_LOONGARCH64",
}
_MACHINE_TO_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "i386": "386", "i686": "386"}

# The arguments' fields the OCI spec defines; Docker's profile has no others,
# but a hand-edited one might.
_ARG_FIELDS = ("index", "value", "valueTwo", "op")
# Top-level fields passed through unchanged when present (runc 1.1 knows them).
_PASSED = ("defaultErrnoRet", "listenerPath", "listenerMetadata", "flags")




def goarch(arch: str) -> str:
    """Go's name for ``arch``, which may be a Go name or a ``uname -m`` name."""
    return _MACHINE_TO_GOARCH.get(arch, arch)


def kernel_version(release: str | None = None) -> tuple[int, int]:
    """(major, minor) of a kernel release string such as ``6.1.0-18-amd64``."""
    text = platform.release() if release is None else release
    found = re.match(r"(\d+)\.(\d+)", text)
    if found is None:
        raise SeccompProfileError(f"cannot read a kernel version from {text!r}")
    return int(found[1]), int(found[2])


def _min_kernel(value: object, where: str) -> tuple[int, int] | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise SeccompProfileError(f"{where}: minKernel must be a string, not {value!r}")
    return kernel_version(value)


def _rule_applies(rule: dict[str, Any], *, caps: frozenset[str], arch: str,
                  kernel: tuple[int, int]) -> bool:
    """Whether a Docker-format rule survives for this arch, bounding set and kernel."""
    where = f"the rule for {rule.get('names') or rule.get('name')}"
    excludes: dict[str, Any] = rule.get("excludes") or {}
    includes: dict[str, Any] = rule.get("includes") or {}
    if arch in (excludes.get("arches") or ()):
        return False
    if any(cap in caps for cap in excludes.get("caps") or ()):
        return False
    excluded_from = _min_kernel(excludes.get("minKernel"), where)
    if excluded_from is not None and kernel >= excluded_from:
        return False
    arches = includes.get("arches") or ()
    if arches and arch not in arches:
        return False
    if not all(cap in caps for cap in includes.get("caps") or ()):
        return False
    needed = _min_kernel(includes.get("minKernel"), where)
    return needed is None or kernel >= needed


def _oci_rule(rule: dict[str, Any]) -> dict[str, Any]:
    names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
    if not names or "action" not in rule:
        raise SeccompProfileError(f"a seccomp rule needs names and an action: {rule!r}")
    out: dict[str, Any] = {"names": list(names), "action": rule["action"]}
    if rule.get("errnoRet") is not None:
        out["errnoRet"] = rule["errnoRet"]
    if rule.get("args"):
        out["args"] = [{k: a[k] for k in _ARG_FIELDS if k in a} for a in rule["args"]]
    return out


def convert(profile: dict[str, Any], *, caps: Iterable[str], arch: str,
            kernel: tuple[int, int]) -> dict[str, Any]:
    """Resolve a Docker-format profile to OCI ``linux.seccomp`` for one container.

    ``caps`` is the container's bounding set (``CAP_*`` names), ``arch`` Go's
    name for the machine (``amd64``), ``kernel`` the host's (major, minor).
    """
    if "defaultAction" not in profile:
        raise SeccompProfileError("a seccomp profile needs a defaultAction")
    arch = goarch(arch)
    bounding = frozenset(caps)
    out: dict[str, Any] = {"defaultAction": profile["defaultAction"]}
    for key in _PASSED:
        if profile.get(key) is not None:
            out[key] = profile[key]
    native = _NATIVE.get(arch)
    architectures: list[str] = []
    for entry in profile.get("archMap") or ():
        if native is not None and entry.get("architecture") == native:
            architectures = [native, *(entry.get("subArchitectures") or ())]
            break
    if not architectures and profile.get("architectures"):
        # A profile already in OCI form names its architectures directly.
        architectures = list(profile["architectures"])
    if architectures:
        out["architectures"] = architectures
    out["syscalls"] = [
        _oci_rule(rule) for rule in profile.get("syscalls") or ()
        if _rule_applies(rule, caps=bounding, arch=arch, kernel=kernel)
    ]
    return out
