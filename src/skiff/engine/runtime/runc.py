"""The runc driver: each container of a group on runc, hardened, under its own conmon.

A group with ``isolation="container"`` (ACI's own kind, and skiff's default)
runs here. Each container is its own runc container in the group's network
namespace, with its own cgroup under the group's, holding its own CPU, memory
and pids limits, so an OOM kill shows in the container's cgroup; with
``RuntimeSettings.userns`` its users are remapped (privileged containers run in
the host's user namespace, as with Docker's ``--userns=host``).

The spec is used as :mod:`skiff.engine.spec.container` builds it, with one
exception kept here: runc compiles the seccomp filter inside the container's
cgroup, so the spec asks for at least a core
(:data:`~skiff.engine.spec.container.STARTUP_CPU_CORES`) and :meth:`apply_limits`
sets the container's real CPU quota after ``runc create``, before its process
starts (see :mod:`skiff.engine.runtime.cgroups`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from skiff.core.spec import Container, GroupSpec
from skiff.engine.runtime import cgroups
from skiff.engine.runtime.driver import ConmonDriver


class RuncDriver(ConmonDriver):
    """Groups of ``isolation="container"``: one runc container per container."""

    isolation: ClassVar[str] = "container"

    def user_namespace(self, group: GroupSpec, container: Container) -> tuple[int, int] | None:
        if container.security.privileged:
            return None
        return self.settings.userns

    def adapt_spec(self, group: GroupSpec, spec: dict[str, Any]) -> dict[str, Any]:
        return spec

    def limits_cgroup(self, group_id: str, cid: str) -> str:
        return self.container_cgroup(group_id, cid)

    def apply_limits(self, group_id: str, cid: str, container: Container) -> None:
        cgroups.set_cpu_quota(self.container_cgroup(group_id, cid),
                              container.resources.effective_cpu)

    def create(self, cid: str, spec: dict[str, Any], *, name: str, netns: Path) -> int:
        # The namespace is the spec's (linux.namespaces): runc needs no more.
        return self.runtime.create(cid, spec, name=name)
