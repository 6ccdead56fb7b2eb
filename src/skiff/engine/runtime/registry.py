"""Which driver runs a group: its ``isolation``, looked up once, in one small table.

The supervisor holds one driver per isolation, all on the node's one conmon
runtime (:func:`node_drivers`), and takes a group's from its definition; the
checks of a definition refuse an isolation no driver runs (:data:`ISOLATIONS`).
A new runtime is a new :class:`~skiff.engine.runtime.driver.RuntimeDriver` in
:data:`DRIVERS` and nothing else: no code elsewhere asks which one a group has.

A skiff that restarted knows a group it has not run again only by its id and
its instance view: :func:`isolation_of` asks the drivers which of them keeps
state for it, so that stopping or deleting it tears down what its driver made.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from skiff.engine.runtime.conmon import ConmonRuntime
from skiff.engine.runtime.driver import RuntimeDriver
from skiff.engine.runtime.gvisor import GvisorDriver
from skiff.engine.runtime.runc import RuncDriver
from skiff.settings import RuntimeSettings

#: The drivers, by the isolation they run (``GroupSpec.isolation``).
DRIVERS: Mapping[str, Callable[[ConmonRuntime, RuntimeSettings], RuntimeDriver]] = {
    RuncDriver.isolation: RuncDriver,
    GvisorDriver.isolation: GvisorDriver,
}
#: The isolations a group may ask for.
ISOLATIONS: tuple[str, ...] = tuple(DRIVERS)
#: The isolation of a group that names none (ACI's own kind).
DEFAULT_ISOLATION = RuncDriver.isolation


def node_drivers(runtime: ConmonRuntime, settings: RuntimeSettings) -> dict[str, RuntimeDriver]:
    """One driver per isolation, all on ``runtime``."""
    return {isolation: make(runtime, settings) for isolation, make in DRIVERS.items()}


def isolation_of(drivers: Mapping[str, RuntimeDriver], group_id: str) -> str:
    """The isolation a group was run with, from the state its driver keeps on this node
    (the default when none keeps any: nothing of the group outlives its containers)."""
    return next((isolation for isolation, driver in drivers.items()
                 if driver.holds(group_id)), DEFAULT_ISOLATION)
