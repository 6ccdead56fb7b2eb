"""File shares (Azure Files): what the control plane, the data plane and the engine agree on.

Three parts meet here, each behind a protocol so that each is built and tested
on its own:

- :class:`ShareDisks`: the node's storage of shares, one quota-bounded
  filesystem per share, mounted on the host (the engine's side:
  :mod:`skiff.engine.shares`). It knows names and sizes, never keys.
- :class:`FileShares`: what the Azure Files data plane (:mod:`skiff.files`)
  and the Microsoft.Storage routes ask of the control plane's storage service
  (store rows first, then disks): accounts' keys, shares' properties,
  creating, resizing and deleting shares.
- :class:`ShareResolver`: what the engine's ``azureFile`` volume driver asks
  before it mounts a share into a group: whether the account, the share and the
  key the group presents hold (a :class:`~skiff.errors.ShareMountFailed` if
  not), as ACI checks the key when it mounts.

Storage account names are unique on the node (as in Azure, where they are
global), so a share is named by ``(account, share)`` alone. Keys are base64
text, as Azure answers them. Every method raises
:class:`~skiff.errors.SkiffError` subclasses only (the share ones are in
:mod:`skiff.errors`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

#: Azure's default share quota when none is given, in GiB.
DEFAULT_QUOTA_GIB = 5120


@dataclass(frozen=True)
class ShareRef:
    """A share on the node: its account's name and its own."""

    account: str
    share: str


@dataclass(frozen=True)
class ShareInfo:
    """A share as both APIs answer it."""

    ref: ShareRef
    quota_gib: int
    metadata: Mapping[str, str] = field(default_factory=dict)
    #: Seconds since the epoch of the last change of its properties or metadata.
    last_modified: float = 0.0
    #: Changes whenever its properties or metadata do (quoted in HTTP ETag headers).
    etag: str = ""
    #: Bytes its files take, when asked for (None when not measured).
    usage_bytes: int | None = None


class ShareDisks(Protocol):
    """The node's storage of shares: one filesystem per share, its size the quota."""

    def create(self, ref: ShareRef, quota_gib: int) -> None:
        """Make the share's filesystem and mount it at :meth:`root`; idempotent (a
        share already made is left as it is). NodeStorageFull beyond the node's disk."""

    def resize(self, ref: ShareRef, quota_gib: int) -> None:
        """Grow or shrink the share to ``quota_gib``, online. ShareQuotaTooSmall below
        what it holds; NodeStorageFull beyond the node's disk; ShareNotFound."""

    def remove(self, ref: ShareRef) -> None:
        """Unmount the share everywhere and delete its data; idempotent."""

    def usage_bytes(self, ref: ShareRef) -> int:
        """Bytes the share's files take. ShareNotFound."""

    def root(self, ref: ShareRef) -> Path:
        """The host directory holding the share's files (mounted). ShareNotFound."""

    def names(self) -> list[ShareRef]:
        """Every share on the node's disk, for sweeps after a crash."""

    def view(self, ref: ShareRef, owner: int) -> Path:
        """The share's files as a container whose root is the host id ``owner`` sees them
        on ACI's SMB mount: every file owned by ``owner``, mode 0777, chmod and chown
        without effect. Made once, kept (a group mounts it with a bind). ShareNotFound."""


class ShareResolver(Protocol):
    """What the engine asks before it mounts a share into a group."""

    def check(self, ref: ShareRef, key: str) -> None:
        """Nothing if ``key`` is one of the account's keys and the share exists;
        ShareMountFailed (naming what is wrong, never the key) if not."""


class FileShares(ShareResolver, Protocol):
    """What the data plane and the Microsoft.Storage routes ask of the storage service."""

    def account_keys(self, account: str) -> tuple[str, str]:
        """The account's two keys (key1, key2). StorageAccountNotFound."""

    def list_shares(self, account: str) -> list[ShareInfo]:
        """The account's shares, by name. StorageAccountNotFound."""

    def get_share(self, ref: ShareRef, *, usage: bool = False) -> ShareInfo:
        """One share (with its usage when asked). ShareNotFound."""

    def create_share(self, ref: ShareRef, quota_gib: int | None = None,
                     metadata: Mapping[str, str] | None = None) -> ShareInfo:
        """Record and make a share (quota defaults to :data:`DEFAULT_QUOTA_GIB`).
        ShareAlreadyExists; NodeStorageFull; StorageAccountNotFound."""

    def set_share(self, ref: ShareRef, *, quota_gib: int | None = None,
                  metadata: Mapping[str, str] | None = None) -> ShareInfo:
        """Change a share's quota and/or replace its metadata. ShareQuotaTooSmall;
        NodeStorageFull; ShareNotFound."""

    def delete_share(self, ref: ShareRef) -> None:
        """Remove a share and its data. ShareInUse (a group mounts it); ShareNotFound."""

    def root(self, ref: ShareRef) -> Path:
        """The host directory holding the share's files. ShareNotFound."""
