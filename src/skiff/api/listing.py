"""Listing container groups: each group's answer made once per version, not per request.

A list answers up to a page of groups, and a client that follows ``nextLink`` reads all
of them: 1,000 groups cost 1,000 body reads (JSON, secrets unsealed), model validations,
renders and encodings per listing, most of a listing's time. Yet a group's list answer
changes only when the group does: a new body comes with a new generation, and every
other change (its state, its desired state, its tags) is in its
:class:`~skiff.store.records.GroupStamp`, read without the body. So each rendered group
is kept as JSON bytes under its stamp, its address (a list shows the address the
engine gave it) and the *shape* of the answer (the api-version asked for: each version
answers in its own shape, fields a version does not have left out), and a listing reads
the stamps, renders only the groups it has not seen in that version and shape, and
joins the bytes.

A group that names user-assigned identities is not kept: its answer shows each
identity's ids, which live outside the group (a deleted identity changes it).

A list carries no instance views (ARM's does not), yet a page of a list in the portal
shows each shown group's state, restarts and age. Fifty GETs would each pass the API's
whole middleware stack; a skiff extension of the subscription's list, ``names=rg/name,...``
(:func:`named`), answers the named groups as their GETs do, in one request, each only if
the caller may read it. ``$top`` (:func:`page_size`) asks for larger pages, so that a
caller that reads them all makes fewer requests.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from skiff.errors import ArmError
from skiff.store import GroupRecord
from skiff.store.records import GroupStamp

#: Rendered groups kept: enough for several listings of 1,000 groups (a few KB each).
CAPACITY = 10_000

#: The most groups one ``names`` read answers (two pages of the portal's list).
MAX_NAMED = 100
#: The largest page a list's ``$top`` may ask for (the store's bound on one read).
MAX_TOP = 1000

#: A group's key: its stamp, its address and the answer's shape.
Key = tuple[GroupStamp, str | None, str]


def shape_of(api_version: str | None) -> str:
    """The shape of the answers to ``api_version`` (``2023-05-01``, ``2025-09-01``...):
    the version itself, in lower case (``-Preview`` and ``-preview`` answer alike). Two
    versions that answer alike are still kept apart, which costs only a render."""
    return (api_version or "").lower()


def named(text: str) -> list[tuple[str, str]]:
    """The (resource group, name) pairs of a list's ``names`` parameter (``rg/name`` items,
    comma-separated; neither name can hold a comma or a slash), each once, in order; a
    malformed one or more than :data:`MAX_NAMED` of them: 400."""
    found: dict[tuple[str, str], None] = {}
    for item in text.split(","):
        parts = item.strip().split("/")
        if len(parts) != 2 or not all(parts):
            raise ArmError(400, "InvalidRequestContent",
                           "names takes resource group/name pairs, comma-separated "
                           "(rg-1/web,rg-2/db).", target="names")
        found[(parts[0], parts[1])] = None
    if len(found) > MAX_NAMED:
        raise ArmError(400, "InvalidRequestContent",
                       f"names takes at most {MAX_NAMED} groups, not {len(found)}.",
                       target="names")
    return list(found)


def page_size(top: str | None, default: int) -> int:
    """The groups one page of a list answers: ``default`` (the node's page size), or what
    the list's ``$top`` asks for, 1 to :data:`MAX_TOP` (else 400). A caller that reads
    every page (the portal) asks for large pages: each page is one more request."""
    if top is None:
        return default
    if not (top.isascii() and top.isdigit() and len(top) <= 6) or not 1 <= int(top) <= MAX_TOP:
        raise ArmError(400, "InvalidRequestContent",
                       f"$top must be a whole number from 1 to {MAX_TOP}.", target="$top")
    return int(top)


def encode(value: Any) -> bytes:
    """JSON as Starlette's JSONResponse writes it."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":")).encode("utf-8")


class Renders:
    """The rendered groups, by version (least recently used dropped first); thread-safe."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._kept: OrderedDict[Key, tuple[str, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def page(self, stamps: Sequence[GroupStamp], addresses: dict[str, str],
             read: Callable[[list[str]], dict[str, GroupRecord]],
             render: Callable[[GroupRecord, str | None], dict[str, Any]],
             shape: str = "") -> list[tuple[str, bytes]]:
        """Each group of ``stamps`` as (its ARM id, its answer's JSON), in order; those not
        kept in ``shape`` (:func:`shape_of` the request's api-version) are read (``read``:
        uids → records) and rendered (``render``: a record and its address → the answer,
        in that shape). A group gone meanwhile is left out."""
        keys = [(stamp, addresses.get(stamp.uid), shape) for stamp in stamps]
        with self._lock:
            found = {key: self._kept[key] for key in keys if key in self._kept}
            for key in found:
                self._kept.move_to_end(key)
        missing = [key for key in keys if key not in found]
        records = read([stamp.uid for stamp, _, _ in missing]) if missing else {}
        made: dict[Key, tuple[str, bytes]] = {}
        for key in missing:
            record = records.get(key[0].uid)
            if record is None:
                continue  # deleted since the stamps were read
            rendered = render(record, key[1])
            made[key] = (str(rendered["id"]), encode(rendered))
            if "identity" in rendered or not _same(record, key[0]):
                continue  # not kept: see the module's docstring; or changed meanwhile
            with self._lock:
                self._kept[key] = made[key]
                while len(self._kept) > self.capacity:
                    self._kept.popitem(last=False)
        return [found.get(key) or made[key] for key in keys if key in found or key in made]


def _same(record: GroupRecord, stamp: GroupStamp) -> bool:
    """Whether ``record`` is the version ``stamp`` tells of."""
    return (record.generation, record.updated_at, record.provisioning_state,
            record.desired) == (stamp.generation, stamp.updated_at, stamp.provisioning_state,
                                stamp.desired) and record.tags == json.loads(stamp.tags)
