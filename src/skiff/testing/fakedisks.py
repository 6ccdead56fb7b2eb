"""A :class:`~skiff.core.shares.ShareDisks` of plain directories, for unit tests of the
layers above (the storage service, the routes, the data plane): no filesystem images, no
mounts, no root. Quotas are recorded, not enforced by the kernel; usage is the sum of
the files' sizes; ``capacity_gib`` bounds the sum of quotas as the node's disk does."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

from skiff.core.shares import ShareRef
from skiff.errors import NodeStorageFull, ShareNotFound, ShareQuotaTooSmall


class FakeShareDisks:
    """Each share a directory ``<root>/<account>/<share>``."""

    def __init__(self, root: Path, *, capacity_gib: int = 1 << 30) -> None:
        self.base = Path(root)
        self.base.mkdir(parents=True, exist_ok=True)
        self.capacity_gib = capacity_gib
        self.quotas: dict[ShareRef, int] = {}
        self._lock = threading.Lock()
        for account in self.base.iterdir():
            for share in account.iterdir() if account.is_dir() else ():
                self.quotas[ShareRef(account.name, share.name)] = 1

    def _dir(self, ref: ShareRef) -> Path:
        return self.base / ref.account / ref.share

    def _check_room(self, ref: ShareRef, quota_gib: int) -> None:
        others = sum(q for r, q in self.quotas.items() if r != ref)
        if others + quota_gib > self.capacity_gib:
            raise NodeStorageFull(f"the node cannot hold {quota_gib} GiB more")

    def create(self, ref: ShareRef, quota_gib: int) -> None:
        with self._lock:
            if ref in self.quotas:
                return
            self._check_room(ref, quota_gib)
            self._dir(ref).mkdir(parents=True, exist_ok=True)
            self.quotas[ref] = quota_gib

    def resize(self, ref: ShareRef, quota_gib: int) -> None:
        with self._lock:
            if ref not in self.quotas:
                raise ShareNotFound(f"no share {ref.account}/{ref.share} on the node")
            if self._usage(ref) > quota_gib << 30:
                raise ShareQuotaTooSmall(f"the share {ref.share} holds more than {quota_gib} GiB")
            self._check_room(ref, quota_gib)
            self.quotas[ref] = quota_gib

    def remove(self, ref: ShareRef) -> None:
        with self._lock:
            self.quotas.pop(ref, None)
            shutil.rmtree(self._dir(ref), ignore_errors=True)

    def _usage(self, ref: ShareRef) -> int:
        total = 0
        for top, _, files in os.walk(self._dir(ref)):
            total += sum(os.lstat(os.path.join(top, f)).st_size for f in files)
        return total

    def usage_bytes(self, ref: ShareRef) -> int:
        if ref not in self.quotas:
            raise ShareNotFound(f"no share {ref.account}/{ref.share} on the node")
        return self._usage(ref)

    def root(self, ref: ShareRef) -> Path:
        if ref not in self.quotas:
            raise ShareNotFound(f"no share {ref.account}/{ref.share} on the node")
        return self._dir(ref)

    def view(self, ref: ShareRef, owner: int) -> Path:
        """The share's directory itself: a fake makes no ownership view."""
        return self.root(ref)

    def names(self) -> list[ShareRef]:
        with self._lock:
            return sorted(self.quotas, key=lambda r: (r.account, r.share))
