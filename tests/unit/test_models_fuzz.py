"""Wrongly typed values anywhere in a body: only ArmError comes out, and what passes renders."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from azure.mgmt.containerinstance.models import ContainerGroup

from skiff.errors import ArmError
from skiff.models import ContainerGroupBody, render_container_group, to_engine_spec
from skiff.testing.documents import group_body, parse

# Values of every JSON type and some awkward ones; 10**30 overflows any C integer.
WRONG: list[Any] = [
    None, True, False, 0, -1, 1.5, 10**30, float("nan"), float("inf"), "", "x", "/abs",
    [], [None], ["x"], [{}], {}, {"x": 1}, {"": None},
]

Path = tuple[str | int, ...]


def paths(value: Any, prefix: Path = ()) -> Iterator[Path]:
    """Every path to a value inside ``value``, parents before children."""
    items: list[tuple[str | int, Any]] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    for key, child in items:
        yield (*prefix, key)
        yield from paths(child, (*prefix, key))


def replaced(body: dict[str, Any], path: Path, new: Any) -> dict[str, Any]:
    """A deep copy of ``body`` with the value at ``path`` replaced (``...``: removed)."""
    out = copy.deepcopy(body)
    parent: Any = out
    for key in path[:-1]:
        parent = parent[key]
    if new is ...:
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return out


def mutants() -> Iterator[tuple[str, dict[str, Any]]]:
    body = group_body()
    for path in paths(body):
        for new in [*WRONG, ...]:
            yield f"{path}={new!r}", replaced(body, path, new)


def check(body: Any) -> None:
    """Parse ``body``: an ArmError is fine; a body that passes must convert and render."""
    error: ArmError | None = None
    try:
        group = parse(body)
    except ArmError as exc:
        error = exc
    if error is not None:
        assert error.status == 400
        assert error.code
        assert error.message
        assert error.target is None or isinstance(error.target, str)
        return
    to_engine_spec(group, group_id="g", name="mygroup")
    again = ContainerGroupBody.from_stored(json.loads(json.dumps(group.to_stored())))
    out = render_container_group(again, resource_id="/x", name="mygroup",
                                 provisioning_state="Succeeded", view=None)
    ContainerGroup.deserialize(json.loads(json.dumps(out)))


def test_every_wrong_value_anywhere_gives_an_arm_error() -> None:
    """Replacing or removing any value of a valid body raises ArmError or still works."""
    count = 0
    for label, body in mutants():
        try:
            check(body)
        except Exception as exc:
            pytest.fail(f"{label}: {type(exc).__name__}: {exc}")
        count += 1
    assert count > 1000  # the walk reached the whole body


@pytest.mark.parametrize("wrong", WRONG)
def test_wrong_values_for_whole_sections(wrong: Any) -> None:
    """properties, a container, the IP address or a volume replaced by any value."""
    for path in (("properties",), ("properties", "containers", 0, "properties"),
                 ("properties", "ipAddress"), ("properties", "volumes", 1),
                 ("properties", "containers", 0, "properties", "resources")):
        check(replaced(group_body(), path, wrong))
