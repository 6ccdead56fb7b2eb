"""The storage service: storage accounts' keys and file shares, over the store and the
node's share disks.

It is the :class:`~skiff.core.shares.FileShares` that the Azure Files data plane and
the Microsoft.Storage routes use, and the :class:`~skiff.core.shares.ShareResolver` the
engine asks before it mounts a share. The store's row is the truth and goes first: a
share is recorded, then its disk made (the row is withdrawn if the disk cannot be); a
share is forgotten, then its disk removed. A crash between the two leaves a row
without a disk or a disk without a row, which :meth:`StorageService.sweep` (run at
start, and after an account or a resource group goes) puts right.

Keys never appear in a message or a log line. A share a group mounts cannot go
(:class:`~skiff.errors.ShareInUse`); its message names the groups of the share's own
subscription only (the account's owner, the one asking), and counts the others.
"""

from __future__ import annotations

import base64
import hmac
import logging
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from skiff.core.shares import DEFAULT_QUOTA_GIB, ShareDisks, ShareInfo, ShareRef
from skiff.errors import (
    ShareAlreadyExists,
    ShareError,
    ShareInUse,
    ShareMountFailed,
    ShareNotFound,
    StorageAccountNotFound,
)
from skiff.settings import ApiSettings
from skiff.store import AccountRecord, ShareRecord, Store, subscription_key

log = logging.getLogger(__name__)

#: Bytes of a storage account key, as Azure's (64 random bytes, 88 characters of base64).
KEY_BYTES = 64


#: An account's name -> the URL of its Azure Files endpoint (``primaryEndpoints.file``);
#: None where the node serves no Azure Files (the account has no file endpoint).
FileEndpoint = Callable[[str], str | None]


def default_file_endpoint(api: ApiSettings) -> FileEndpoint:
    """The data plane's address by default: the API's host, the next port, the account
    in the path (``https://127.0.0.1:8444/<account>/``), as the SDK reads it for an IP."""
    host, _, port = api.listen.rpartition(":")
    host = host.strip("[]")
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 -- a comparison
        host = "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    base = f"https://{shown}:{int(port) + 1 if port.isdigit() else 8444}"
    return lambda account: f"{base}/{account}/"


def new_key() -> str:
    """A new account key: base64 text, as Azure answers them."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def _info(record: ShareRecord, usage: int | None = None) -> ShareInfo:
    return ShareInfo(ShareRef(record.account, record.name), record.quota_gib,
                     dict(record.metadata), record.last_modified, record.etag, usage)


class StorageService:
    """Accounts' keys and shares, store rows first, then the node's disks. Thread-safe."""

    def __init__(self, store: Store, disks: ShareDisks, *, file_endpoint: FileEndpoint) -> None:
        self.store = store
        self.disks = disks
        #: An account's Azure Files endpoint, as its ``primaryEndpoints.file`` answers it.
        self.file_endpoint = file_endpoint
        # Shares change one at a time: a create racing a delete of one name must not
        # leave a row without its disk (or the reverse).
        self._lock = threading.RLock()

    # --- accounts ----------------------------------------------------------------------------

    def account(self, name: str) -> AccountRecord:
        record = self.store.get_account(name)
        if record is None:
            raise StorageAccountNotFound(f"The storage account {name} was not found.")
        return record

    def account_keys(self, account: str) -> tuple[str, str]:
        return self.account(account).keys

    def delete_account(self, name: str) -> bool:
        """Delete an account and its shares (ShareInUse if a group mounts one); False if
        there was none."""
        with self._lock:
            record = self.store.get_account(name)
            if record is None:
                return False
            try:
                shares = self.store.delete_account(name)
            except ShareInUse as exc:
                raise worded_for(exc, record.subscription,
                                 f"A file share of the storage account {name}") from None
            for share in shares or []:
                self._remove_disk(ShareRef(share.account, share.name))
            return shares is not None

    # --- shares ------------------------------------------------------------------------------

    def list_shares(self, account: str) -> list[ShareInfo]:
        self.account(account)
        return [_info(r) for r in self.store.list_shares(account)]

    def get_share(self, ref: ShareRef, *, usage: bool = False) -> ShareInfo:
        record = self.store.get_share(ref.account, ref.share)
        if record is None:
            raise ShareNotFound(f"The share {ref.share} of the storage account {ref.account} "
                                "was not found.")
        return _info(record, self.disks.usage_bytes(_ref(record)) if usage else None)

    def create_share(self, ref: ShareRef, quota_gib: int | None = None,
                     metadata: Mapping[str, str] | None = None) -> ShareInfo:
        quota = DEFAULT_QUOTA_GIB if quota_gib is None else quota_gib
        with self._lock:
            record = self.store.insert_share(ref.account, ref.share, quota, metadata or {})
            if record is None:
                raise ShareAlreadyExists(f"The share {ref.share} of the storage account "
                                         f"{ref.account} already exists.")
            try:
                self.disks.create(_ref(record), quota)
            except BaseException:
                self.store.delete_share(record.account, record.name)  # no row without a disk
                raise
            return _info(record)

    def set_share(self, ref: ShareRef, *, quota_gib: int | None = None,
                  metadata: Mapping[str, str] | None = None) -> ShareInfo:
        with self._lock:
            before = self.get_share(ref)
            if quota_gib is not None and quota_gib != before.quota_gib:
                self.disks.resize(before.ref, quota_gib)  # refused: the row stays as it was
            record = self.store.update_share(ref.account, ref.share, quota_gib=quota_gib,
                                             metadata=metadata)
            if record is None:
                raise ShareNotFound(f"The share {ref.share} of the storage account "
                                    f"{ref.account} was not found.")
            return _info(record)

    def delete_share(self, ref: ShareRef) -> None:
        with self._lock:
            account = self.account(ref.account)
            try:
                found = self.store.delete_share(ref.account, ref.share)
            except ShareInUse as exc:
                raise worded_for(exc, account.subscription,
                                   f"The file share {ref.share.lower()}") from None
            if not found:
                raise ShareNotFound(f"The share {ref.share} of the storage account "
                                    f"{ref.account} was not found.")
            self._remove_disk(ShareRef(ref.account.lower(), ref.share.lower()))

    def root(self, ref: ShareRef) -> Path:
        info = self.get_share(ref)
        return self.disks.root(info.ref)

    # --- the engine's question ---------------------------------------------------------------

    def check(self, ref: ShareRef, key: str) -> None:
        record = self.store.get_account(ref.account)
        if record is None:
            raise ShareMountFailed(f"The storage account {ref.account} was not found.")
        given = key.encode("utf-8", "surrogatepass")
        matches = [hmac.compare_digest(given, k.encode()) for k in record.keys]
        if not any(matches):
            raise ShareMountFailed(f"The key given for the storage account {ref.account} is "
                                   "not one of its keys.")
        if self.store.get_share(ref.account, ref.share) is None:
            raise ShareMountFailed(f"The share {ref.share} of the storage account "
                                   f"{ref.account} was not found.")

    # --- disks -------------------------------------------------------------------------------

    def sweep(self) -> None:
        """Make the disks of shares the store holds and the node lacks; remove the disks
        of shares the store no longer holds. Run at start (after a crash between a row
        and its disk) and after accounts go with their resource group."""
        with self._lock:
            wanted = {ShareRef(r.account, r.name): r for r in self.store.all_shares()}
            try:
                present = set(self.disks.names())
            except ShareError as exc:
                log.warning("file shares: cannot list the node's share disks: %s", exc.message)
                return
            for ref, record in wanted.items():
                if ref not in present:
                    try:
                        self.disks.create(ref, record.quota_gib)
                    except ShareError as exc:
                        log.warning("file shares: cannot make the disk of %s/%s: %s",
                                    ref.account, ref.share, exc.message)
            for ref in present - wanted.keys():
                self._remove_disk(ref)

    def _remove_disk(self, ref: ShareRef) -> None:
        try:
            self.disks.remove(ref)
        except ShareError as exc:  # the row is gone: the next sweep finishes it
            log.warning("file shares: cannot remove the disk of %s/%s: %s", ref.account,
                        ref.share, exc.message)


def _ref(record: ShareRecord) -> ShareRef:
    return ShareRef(record.account, record.name)


def worded_for(exc: ShareInUse, subscription: str, subject: str) -> ShareInUse:
    """``exc`` worded for the tenant ``subscription`` ("<subject> is mounted by ..."): its
    own groups by name, any other tenant's only counted; ``groups`` its own alone."""
    own: list[str] = []
    others = 0
    for group in exc.groups:
        sub, _, rest = group.partition("/")
        if subscription_key(sub) == subscription_key(subscription):
            own.append(rest)
        else:
            others += 1
    named = [f"'{g.split('/', 1)[1]}' (resource group '{g.split('/', 1)[0]}')" for g in own]
    if others:
        named.append("a container group of another subscription" if others == 1
                     else f"{others} container groups of other subscriptions")
    return ShareInUse(f"{subject} is mounted by the container group"
                      f"{'s' if len(own) + others > 1 else ''} {', '.join(named)}: "
                      "delete them (or their azureFile volumes) first.",
                      groups=tuple(own))
