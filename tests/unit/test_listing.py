"""The list answers kept per group version (skiff.api.listing.Renders): what is kept is
served again, and any change of a group (its state, desired state, tags, body, address)
or of the answer's shape (the api-version) is rendered anew, never served stale."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from skiff.api.listing import Renders, shape_of
from skiff.store import GroupRecord
from skiff.store.records import GroupStamp


def record(name: str, **changes: Any) -> GroupRecord:
    base = GroupRecord(uid=f"uid-{name}", subscription="sub", resource_group="rg", name=name,
                       location="westeurope", body={"properties": {}}, tags={},
                       provisioning_state="Succeeded", desired="running", generation=1,
                       error=None, created_at=1.0, updated_at=2.0)
    return dataclasses.replace(base, **changes)


def stamp(group: GroupRecord) -> GroupStamp:
    return GroupStamp(group.uid, group.generation, group.updated_at, group.provisioning_state,
                      group.desired, json.dumps(group.tags))


class Groups:
    """The store's groups by uid (``read``) and a renderer that counts its renders and
    writes into each answer what it was made of."""

    def __init__(self, *groups: GroupRecord) -> None:
        self.by_uid = {g.uid: g for g in groups}
        self.rendered: list[tuple[str, str | None, str]] = []
        self.shape = ""

    def read(self, uids: list[str]) -> dict[str, GroupRecord]:
        return {uid: self.by_uid[uid] for uid in uids if uid in self.by_uid}

    def render(self, group: GroupRecord, ip: str | None) -> dict[str, Any]:
        self.rendered.append((group.name, ip, self.shape))
        return {"id": f"/x/{group.name}", "state": group.provisioning_state,
                "desired": group.desired, "tags": group.tags,
                "generation": group.generation, "ip": ip, "shape": self.shape}

    def page(self, renders: Renders, addresses: dict[str, str] | None = None,
             shape: str = "2023-05-01") -> list[dict[str, Any]]:
        self.shape = shape
        stamps = [stamp(g) for g in self.by_uid.values()]
        return [json.loads(answer) for _, answer in
                renders.page(stamps, addresses or {}, self.read, self.render, shape=shape)]


def test_a_kept_answer_is_served_without_a_render() -> None:
    """The second listing of unchanged groups renders nothing and answers the same bytes."""
    groups, renders = Groups(record("a"), record("b")), Renders()
    first = groups.page(renders)
    assert len(groups.rendered) == 2
    assert groups.page(renders) == first
    assert len(groups.rendered) == 2


@pytest.mark.parametrize("change", [
    {"provisioning_state": "Failed"}, {"desired": "stopped"}, {"tags": {"k": "v"}},
    {"generation": 2, "body": {"properties": {"new": 1}}}, {"updated_at": 3.0},
])
def test_any_change_of_a_group_is_rendered_anew(change: dict[str, Any]) -> None:
    """A group whose state, desired state, tags, body (generation) or last change moved is
    rendered again and answered as it now is; the unchanged one is not rendered again."""
    groups, renders = Groups(record("a"), record("b")), Renders()
    groups.page(renders)
    groups.by_uid["uid-a"] = record("a", **change)
    answers = {a["id"]: a for a in groups.page(renders)}
    assert groups.rendered[2:] == [("a", None, "2023-05-01")]
    key, value = next(iter(change.items()))
    shown = {"provisioning_state": "state", "desired": "desired", "tags": "tags",
             "generation": "generation"}.get(key)
    if shown is not None:
        assert answers["/x/a"][shown] == value


def test_a_new_address_is_rendered_anew() -> None:
    """A group the engine gave another address (or took it from) is listed with it."""
    groups, renders = Groups(record("a")), Renders()
    assert groups.page(renders, {"uid-a": "10.0.0.4"})[0]["ip"] == "10.0.0.4"
    assert groups.page(renders, {"uid-a": "10.0.0.9"})[0]["ip"] == "10.0.0.9"
    assert groups.page(renders)[0]["ip"] is None
    assert len(groups.rendered) == 3


def test_each_shape_is_kept_apart() -> None:
    """An api-version answers in its own shape: a group kept in one shape is rendered for
    another, and each shape's answer is then served from what was kept."""
    groups, renders = Groups(record("a")), Renders()
    old = groups.page(renders, shape=shape_of("2023-05-01"))
    new = groups.page(renders, shape=shape_of("2025-09-01"))
    assert (old[0]["shape"], new[0]["shape"]) == ("2023-05-01", "2025-09-01")
    assert groups.page(renders, shape=shape_of("2023-05-01")) == old
    assert groups.page(renders, shape=shape_of("2025-09-01")) == new
    assert len(groups.rendered) == 2


def test_shapes_ignore_the_versions_case() -> None:
    """One shape for both spellings of a version, and one per version."""
    assert shape_of("2024-05-01-Preview") == shape_of("2024-05-01-preview")
    assert shape_of("2023-05-01") != shape_of("2025-09-01")


def test_a_group_changed_while_listed_is_answered_but_not_kept() -> None:
    """A group written between the stamps and the read is answered as read, not kept under
    the older stamp (a later listing of that stamp would be served the newer answer)."""
    groups, renders = Groups(record("a")), Renders()
    old = stamp(record("a"))
    groups.by_uid["uid-a"] = record("a", provisioning_state="Failed", updated_at=5.0)
    for _ in range(2):
        page = renders.page([old], {}, groups.read, groups.render, shape="v")
        assert json.loads(page[0][1])["state"] == "Failed"
    assert len(groups.rendered) == 2


def test_a_group_deleted_while_listed_is_left_out() -> None:
    """A group gone between the stamps and the read is not answered."""
    groups, renders = Groups(record("a"), record("b")), Renders()
    stamps = [stamp(g) for g in groups.by_uid.values()]
    del groups.by_uid["uid-a"]
    page = renders.page(stamps, {}, groups.read, groups.render, shape="v")
    assert [id_ for id_, _ in page] == ["/x/b"]


def test_the_least_recently_listed_go_first() -> None:
    """Past its capacity the cache drops the answers listed longest ago."""
    groups, renders = Groups(record("a"), record("b")), Renders(capacity=2)
    groups.page(renders)
    groups.page(renders, shape="other")  # a and b in the other shape push out the first
    groups.page(renders, shape="other")
    assert len(groups.rendered) == 4
    groups.page(renders)
    assert len(groups.rendered) == 6
