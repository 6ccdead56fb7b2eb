"""What a crash can leave on the node, found for the start-up sweep.

The engine keeps no list of its groups apart from what it finds on disk: a
group's file (:class:`~skiff.engine.group.record.GroupFiles`, written before its
first container is created), its network, its containers' directories and
runc's state. The caller (the control plane's store) knows which groups exist.
What the node holds beyond that is a leftover, of two kinds:

- a group the caller no longer has (its deletion was lost, say with the data of
  an older skiff): removed as a deletion would, containers, network and all;
- a container no group owns: one no group's file lists (an older skiff wrote a
  group's file only after its first start, so a crash in between left the
  container unrecorded), nor any driver runs for a group (a sandbox's holder):
  killed and removed.

:func:`find` decides, from names alone; the supervisor lists what is on the node
and removes what is found (:meth:`~skiff.engine.group.supervisor.Supervisor.sweep`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Leftovers:
    """What the node holds beyond the groups its caller has."""

    #: Groups on the node the caller does not have, to delete.
    groups: list[str]
    #: Containers no group on the node owns, to kill and remove.
    containers: list[str]


def find(keep: Collection[str], *, groups: Iterable[str], containers: Iterable[str],
         owned: Callable[[str], Iterable[str]]) -> Leftovers:
    """The leftovers of a node holding ``groups`` and ``containers`` (ids), for a caller
    that has the groups ``keep``; ``owned(group_id)`` says which containers a group
    owns. A container owned by a group to delete goes with its group, not alone."""
    on_node = set(groups)
    stale = on_node - set(keep)
    mine: set[str] = set()
    for group_id in on_node | set(keep):
        mine.update(owned(group_id))
    return Leftovers(groups=sorted(stale), containers=sorted(set(containers) - mine))
