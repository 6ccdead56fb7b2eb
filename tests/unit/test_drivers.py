"""The runtime drivers' pure parts, as any user: the isolation registry, each driver's part
of a container's spec, its user namespace and its cgroup layout."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from skiff.core.spec import Container, GroupSpec, Resources, SecurityContext
from skiff.engine.group.record import safe_name
from skiff.engine.runtime.conmon import ConmonRuntime
from skiff.engine.runtime.driver import RuntimeDriver
from skiff.engine.runtime.registry import ISOLATIONS, isolation_of, node_drivers
from skiff.engine.runtime.sandbox import CONTAINER_TYPE, SANDBOX_ID, holder_id
from skiff.engine.spec import options as oci
from skiff.settings import RuntimeSettings

USERNS = (300000, 65536)


@pytest.fixture
def runtime(tmp_path: Path) -> ConmonRuntime:
    """conmon's runtime on a data root and run directory under ``tmp_path``."""
    return ConmonRuntime(tmp_path / "root", RuntimeSettings(run_dir=tmp_path / "run",
                                                            userns=USERNS))


@pytest.fixture
def drivers(runtime: ConmonRuntime) -> dict[str, RuntimeDriver]:
    """The node's drivers, on ``runtime``."""
    return node_drivers(runtime, runtime.settings)


def _group(isolation: str) -> GroupSpec:
    return GroupSpec(id=uuid.uuid4().hex, name="g", isolation=isolation,
                     containers=(Container(name="c", image="busybox",
                                           resources=Resources(cpu=0.5, memory_gb=0.25)),))


def test_every_isolation_has_its_driver(drivers: dict[str, RuntimeDriver]) -> None:
    """The registry's isolations are container (runc) and sandbox (gVisor), each driver
    under the isolation it says it runs."""
    assert ISOLATIONS == ("container", "sandbox")
    assert {name: d.isolation for name, d in drivers.items()} == {
        "container": "container", "sandbox": "sandbox"}


def test_runc_keeps_the_spec_and_gvisor_makes_it_a_member(
    drivers: dict[str, RuntimeDriver]
) -> None:
    """runc runs the spec as built; gVisor's member loses its CPU and memory limits (the
    sandbox's) but keeps its pids limit, and names its sandbox."""
    def built() -> dict[str, Any]:
        return oci.default_spec(oci.with_resources(0.5, 256 << 20, 4096), arch="amd64")

    assert drivers["container"].adapt_spec(_group("container"), built()) == built()
    group = _group("sandbox")
    member = drivers["sandbox"].adapt_spec(group, built())
    assert member["annotations"] == {CONTAINER_TYPE: "container",
                                     SANDBOX_ID: holder_id(group.id)}
    resources = member["linux"]["resources"]
    assert "cpu" not in resources
    assert "memory" not in resources
    assert resources["pids"] == {"limit": 4096}


def test_only_runc_maps_users_and_never_for_privileged_containers(
    drivers: dict[str, RuntimeDriver]
) -> None:
    """runc remaps a container's users as the node says, except a privileged one's; a
    gVisor sandbox never does (its kernel stands between the container and the host)."""
    plain = Container(name="c", image="busybox")
    privileged = Container(name="p", image="busybox",
                           security=SecurityContext(privileged=True))
    runc, gvisor = drivers["container"], drivers["sandbox"]
    assert runc.user_namespace(_group("container"), plain) == USERNS
    assert runc.user_namespace(_group("container"), privileged) is None
    assert gvisor.user_namespace(_group("sandbox"), plain) is None


def test_cgroups_keep_the_names_containers_were_made_with(
    drivers: dict[str, RuntimeDriver]
) -> None:
    """A group's cgroup is /<run dir>/<16 hex of its id's sha256> as before drivers (so a
    container adopted across an upgrade is found); a runc container's limits are its own
    cgroup's, a sandboxed one's the sandbox's."""
    group_id = "g-" + uuid.uuid4().hex
    parent = f"/run/{safe_name(group_id)[:16]}"  # the run directory's name, then the id's
    for driver in drivers.values():
        assert driver.group_cgroup(group_id) == parent
        assert driver.container_cgroup(group_id, "sk1") == f"{parent}/sk1"
    assert drivers["container"].limits_cgroup(group_id, "sk1") == f"{parent}/sk1"
    assert drivers["sandbox"].limits_cgroup(group_id, "sk1") == f"{parent}/{holder_id(group_id)}"


def test_a_group_known_by_its_id_gets_the_driver_that_holds_it(
    runtime: ConmonRuntime, drivers: dict[str, RuntimeDriver]
) -> None:
    """A group whose sandbox holder is on disk was sandboxed; any other is runc's."""
    assert isolation_of(drivers, "plain") == "container"
    runtime.dir(holder_id("boxed")).mkdir(parents=True)
    assert isolation_of(drivers, "boxed") == "sandbox"
    assert isolation_of(drivers, "plain") == "container"
