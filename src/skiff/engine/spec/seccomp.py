"""The default seccomp filter: containers-common's profile, resolved and cached.

Debian's ``containers-common`` ships the profile Podman and CRI-O use
(``/usr/share/containers/seccomp.json``), in Docker's template format;
:func:`skiff.core.seccomp.convert` resolves it for one architecture and
capability set. Reading and resolving the profile takes about half a
millisecond and would happen on every container start, so
:func:`default_seccomp` caches the result per (capability set, architecture);
a cached call costs about 10 µs. Callers get a fresh copy each time, so a
caller editing its spec cannot corrupt the cache.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from skiff.core.seccomp import convert, goarch, kernel_version
from skiff.errors import SeccompProfileError
from skiff.settings import Platform

#: Where Debian's containers-common installs the profile Podman and CRI-O use.
DEFAULT_PROFILE = Path("/usr/share/containers/seccomp.json")


def load_profile(path: Path = DEFAULT_PROFILE) -> dict[str, Any]:
    """Read a Docker-format profile; a missing or malformed file is the node's fault."""
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise SeccompProfileError(
            f"no seccomp profile at {path} (install Debian's containers-common)"
        ) from exc
    except (OSError, ValueError) as exc:
        raise SeccompProfileError(f"cannot read the seccomp profile {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise SeccompProfileError(f"{path} is not a seccomp profile (not a JSON object)")
    return data


@functools.lru_cache(maxsize=64)  # distinct cap sets on one node are few; 64 is generous
def _cached(caps: frozenset[str], arch: str, path: Path) -> dict[str, Any]:
    return convert(load_profile(path), caps=caps, arch=arch, kernel=kernel_version())


def copy_profile(profile: dict[str, Any]) -> dict[str, Any]:
    """A copy deep enough that editing it leaves ``profile`` intact (faster than deepcopy)."""
    out = dict(profile)
    for key in ("architectures", "flags"):
        if key in out:
            out[key] = list(out[key])
    out["syscalls"] = [
        {**rule, "names": list(rule["names"]), **(
            {"args": [dict(a) for a in rule["args"]]} if "args" in rule else {})}
        for rule in profile.get("syscalls", ())
    ]
    return out


def default_seccomp(caps: Iterable[str], arch: str | None = None, *,
                    path: Path = DEFAULT_PROFILE) -> dict[str, Any]:
    """containers-common's profile resolved for ``caps`` on ``arch`` (default: this host).

    The resolution is cached per (caps, arch, path) for the life of the
    process: the profile changes only when containers-common is upgraded,
    which a node restart follows.
    """
    resolved = _cached(frozenset(caps), goarch(arch or Platform.host().architecture), path)
    return copy_profile(resolved)


def clear_cache() -> None:
    """Forget resolved profiles (tests, or after the profile file changed)."""
    _cached.cache_clear()
