"""Microsoft.Storage bodies and names: storage accounts and their file shares, as Azure
admits them.

- An account's name is 3 to 24 lower-case letters and digits (400
  ``AccountNameInvalid``, Azure's code and words); its kind StorageV2 or FileStorage
  (the kinds that hold file shares); its sku any object with a ``name``, answered back
  as given; its location the node's when not given.
- A share's name is 3 to 63 lower-case letters, digits and single hyphens, starting
  and ending with a letter or digit (400 ``InvalidResourceName``); its quota
  (``properties.shareQuota``) 1 to 102400 GiB, 5120 when not given, as Azure's;
  its metadata names are C# identifiers with string values, as Azure's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from skiff.core.shares import DEFAULT_QUOTA_GIB
from skiff.errors import ArmError
from skiff.models.arm import check_location_text, check_tags

ACCOUNT_TYPE = "Microsoft.Storage/storageAccounts"
FILE_SERVICE_TYPE = "Microsoft.Storage/storageAccounts/fileServices"
SHARE_TYPE = "Microsoft.Storage/storageAccounts/fileServices/shares"
KINDS = ("StorageV2", "FileStorage")
#: The largest share quota Azure admits (a large file share), in GiB.
MAX_QUOTA_GIB = 102400
MAX_METADATA_BYTES = 8192

_ACCOUNT = re.compile(r"[a-z0-9]{3,24}")
_SHARE = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
_METADATA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_account_name(name: str) -> None:
    if not _ACCOUNT.fullmatch(name):
        raise ArmError(400, "AccountNameInvalid",
                       f"{name[:64]} is not a valid storage account name. Storage account "
                       "name must be between 3 and 24 characters in length and use numbers "
                       "and lower-case letters only.", target=name[:64])


def account_name_problem(name: str) -> str | None:
    """Why ``name`` is not an account name (checkNameAvailability's message), or None."""
    try:
        check_account_name(name)
    except ArmError as exc:
        return exc.message
    return None


def check_share_name(name: str) -> None:
    if not _SHARE.fullmatch(name):
        raise ArmError(400, "InvalidResourceName",
                       f"The share name {name[:80]!r} is invalid: a share name is 3 to 63 "
                       "lower-case letters, digits and single hyphens, starting and ending "
                       "with a letter or a digit.", target="name")


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ArmError(400, "InvalidRequestContent", "The request body must be a JSON object.")
    return body


def _properties(body: dict[str, Any]) -> dict[str, Any]:
    props = body.get("properties")
    if props is None:
        return {}
    if not isinstance(props, dict):
        raise ArmError(400, "InvalidRequestContent", "properties must be an object.",
                       target="properties")
    return props


@dataclass(frozen=True)
class AccountBody:
    location: str
    kind: str
    sku: dict[str, Any]
    tags: dict[str, str] = field(default_factory=dict)


def parse_account(body: Any, *, default_location: str) -> AccountBody:
    """A storage account's PUT body; ArmError 400 for anything Azure would refuse. Without
    a location, the node's (as skiff's virtual networks)."""
    doc = _object(body)
    if doc.get("location") is None:
        doc = {**doc, "location": default_location}
    check_location_text(doc.get("location"))
    kind = doc.get("kind")
    if not isinstance(kind, str) or kind.lower() not in {k.lower() for k in KINDS}:
        shown = kind[:40] if isinstance(kind, str) else kind
        raise ArmError(400, "InvalidKind" if kind is not None else "MissingRequiredProperty",
                       f"The kind {shown!r} is not supported: skiff's storage accounts are "
                       f"{' or '.join(KINDS)} (they hold file shares)." if kind is not None
                       else "The kind property is required (StorageV2 or FileStorage).",
                       target="kind")
    kind = next(k for k in KINDS if k.lower() == kind.lower())
    sku = doc.get("sku")
    if not isinstance(sku, dict) or not isinstance(sku.get("name"), str) \
            or not sku["name"].strip() or len(sku["name"]) > 64:
        raise ArmError(400, "InvalidRequestContent" if sku is not None
                       else "MissingRequiredProperty",
                       "The sku property is required: an object with a name, such as "
                       '{"name": "Standard_LRS"}.', target="sku")
    _properties(doc)
    return AccountBody(str(doc["location"]), kind, {"name": sku["name"]},
                       check_tags(doc.get("tags")))


def parse_tags_patch(body: Any) -> dict[str, str] | None:
    """A PATCH's tags (None: the PATCH leaves them)."""
    doc = _object(body)
    return None if "tags" not in doc else check_tags(doc.get("tags"))


@dataclass(frozen=True)
class ShareBody:
    quota_gib: int | None
    metadata: dict[str, str] | None


def check_quota(value: Any, target: str = "properties.shareQuota") -> int:
    if isinstance(value, bool) or not isinstance(value, int) \
            or not 1 <= value <= MAX_QUOTA_GIB:
        shown = str(value)[:40]
        raise ArmError(400, "InvalidHeaderValue",
                       f"The share quota {shown} is invalid: a quota is a whole number of GiB "
                       f"from 1 to {MAX_QUOTA_GIB}.", target=target)
    return value


def check_metadata(value: Any, target: str = "properties.metadata") -> dict[str, str]:
    if not isinstance(value, dict):
        raise ArmError(400, "InvalidRequestContent",
                       "metadata must be an object of names to string values.", target=target)
    size = 0
    for name, item in value.items():
        if not _METADATA_NAME.fullmatch(name) or not isinstance(item, str):
            raise ArmError(400, "InvalidMetadata",
                           f"The metadata {name[:40]!r} is invalid: names are C# identifiers "
                           "(letters, digits, underscores), values strings.", target=target)
        size += len(name.encode()) + len(item.encode())
    if size > MAX_METADATA_BYTES:
        raise ArmError(400, "InvalidMetadata",
                       f"The metadata is larger than {MAX_METADATA_BYTES} bytes.", target=target)
    return {str(k): str(v) for k, v in value.items()}


def parse_share(body: Any) -> ShareBody:
    """A share's PUT body: ``properties.shareQuota`` (GiB) and ``properties.metadata``."""
    props = _properties(_object(body))
    quota = props.get("shareQuota")
    metadata = props.get("metadata")
    return ShareBody(None if quota is None else check_quota(quota),
                     None if metadata is None else check_metadata(metadata))


def default_quota(body: ShareBody) -> int:
    return DEFAULT_QUOTA_GIB if body.quota_gib is None else body.quota_gib
