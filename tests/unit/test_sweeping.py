"""What the start-up sweep removes, decided from names alone (skiff.engine.group.sweeping)."""

from __future__ import annotations

from collections.abc import Iterable

from skiff.engine.group.sweeping import Leftovers, find

#: Which containers each group owns (its views' and its driver's), as the node says.
OWNED = {"a": ["ka1", "ka2"], "b": ["kb1", "sb-b"], "c": ["kc1"]}


def owned(group_id: str) -> Iterable[str]:
    return OWNED.get(group_id, [])


def test_groups_not_kept_go_with_their_containers() -> None:
    """A group the caller does not have is to delete; its containers go with it, so
    they are not listed as orphans."""
    found = find({"a"}, groups=["a", "b"], containers=["ka1", "ka2", "kb1", "sb-b"],
                 owned=owned)
    assert found == Leftovers(groups=["b"], containers=[])


def test_a_container_no_group_owns_is_an_orphan() -> None:
    """A container neither a kept group nor a group on the node owns is to remove."""
    found = find({"a", "b"}, groups=["a", "b"], containers=["ka1", "kb1", "kx9"], owned=owned)
    assert found == Leftovers(groups=[], containers=["kx9"])


def test_a_kept_group_the_node_does_not_list_still_owns_its_containers() -> None:
    """A kept group with nothing else on the node (no file, no network) keeps the
    containers it owns."""
    found = find({"c"}, groups=[], containers=["kc1"], owned=owned)
    assert found == Leftovers(groups=[], containers=[])


def test_nothing_on_the_node_means_nothing_to_remove() -> None:
    """An empty node, whatever the caller keeps, has no leftovers."""
    assert find({"a", "b"}, groups=[], containers=[], owned=owned) == Leftovers([], [])
