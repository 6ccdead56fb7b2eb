"""The gVisor driver: a whole group in one runsc sandbox, its containers members of it.

A group with ``isolation="sandbox"`` runs here, on
:class:`~skiff.engine.runtime.sandbox.Sandboxes` (the holder, the shim, how
runsc is called in the group's namespace: see that module for why). What
makes it a driver, beside the runc one:

- before a container is created, the group's sandbox is adopted if it runs,
  else (re)made (:meth:`GvisorDriver.setup_group`); a container starts only
  once the sandbox's holder has (:meth:`GvisorDriver.wait_group`), and the
  sandbox goes after the group's last container (:meth:`GvisorDriver.teardown_group`);
- a container's spec is made a member of the sandbox: its CPU and memory
  limits are the sandbox's, for the whole group, already set when the
  holder was made, so :meth:`GvisorDriver.apply_limits` has nothing to do and
  an OOM kill shows in the sandbox's cgroup (:meth:`GvisorDriver.limits_cgroup`);
- no user namespace: gVisor's kernel stands between the containers and the host's;
- a restarted skiff recognises a sandboxed group it knows only by its id by
  its holder's directory (:meth:`GvisorDriver.holds`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from skiff.core.spec import Container, GroupSpec
from skiff.engine.runtime.conmon import ConmonRuntime
from skiff.engine.runtime.driver import ConmonDriver
from skiff.engine.runtime.sandbox import Sandboxes, holder_id, member_spec
from skiff.settings import RuntimeSettings


class GvisorDriver(ConmonDriver):
    """Groups of ``isolation="sandbox"``: one gVisor sandbox per group."""

    isolation: ClassVar[str] = "sandbox"

    def __init__(self, runtime: ConmonRuntime, settings: RuntimeSettings) -> None:
        super().__init__(runtime, settings)
        self.sandboxes = Sandboxes(runtime.data_root, runtime, settings)

    # ---- a group ----------------------------------------------------------------------

    def holds(self, group_id: str) -> bool:
        # The holder's directory stays until the group is deleted (a stop keeps it).
        return self.runtime.dir(holder_id(group_id)).exists()

    def group_containers(self, group_id: str) -> list[str]:
        return [holder_id(group_id)]

    def setup_group(self, group: GroupSpec, netns: Path) -> None:
        self.sandboxes.ensure(group, netns, self.group_cgroup(group.id))

    def wait_group(self, group_id: str) -> None:
        self.sandboxes.wait_started(group_id)

    def teardown_group(self, group_id: str, *, remove_logs: bool) -> None:
        self.sandboxes.remove(group_id, remove_logs=remove_logs)  # after its members
        super().teardown_group(group_id, remove_logs=remove_logs)

    # ---- a container's spec and limits --------------------------------------------------

    def user_namespace(self, group: GroupSpec, container: Container) -> tuple[int, int] | None:
        return None

    def adapt_spec(self, group: GroupSpec, spec: dict[str, Any]) -> dict[str, Any]:
        return member_spec(spec, holder_id(group.id))

    def limits_cgroup(self, group_id: str, cid: str) -> str:
        return self.sandboxes.cgroup(group_id, self.group_cgroup(group_id))

    def apply_limits(self, group_id: str, cid: str, container: Container) -> None:
        return None  # the sandbox's, for the whole group: set with its holder

    def create(self, cid: str, spec: dict[str, Any], *, name: str, netns: Path) -> int:
        return self.runtime.create(cid, spec, name=name, oci=self.sandboxes.oci_runtime(netns))
