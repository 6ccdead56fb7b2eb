"""A FileShares backed by plain directories, for tests of the data plane above it."""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from skiff.core.shares import DEFAULT_QUOTA_GIB, ShareInfo, ShareRef
from skiff.errors import (
    ShareAlreadyExists,
    ShareMountFailed,
    ShareNotFound,
    StorageAccountNotFound,
)


class FakeFileShares:
    """Accounts and shares in memory; each share's root a directory below ``base``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.accounts: dict[str, tuple[str, str]] = {}
        self.shares: dict[ShareRef, ShareInfo] = {}

    def add_account(self, account: str) -> tuple[str, str]:
        keys = (base64.b64encode(secrets.token_bytes(64)).decode(),
                base64.b64encode(secrets.token_bytes(64)).decode())
        self.accounts[account] = keys
        return keys

    def account_keys(self, account: str) -> tuple[str, str]:
        if account not in self.accounts:
            raise StorageAccountNotFound(f"storage account {account!r} not found")
        return self.accounts[account]

    def list_shares(self, account: str) -> list[ShareInfo]:
        self.account_keys(account)
        return sorted((i for r, i in self.shares.items() if r.account == account),
                      key=lambda i: i.ref.share)

    def get_share(self, ref: ShareRef, *, usage: bool = False) -> ShareInfo:
        if ref not in self.shares:
            raise ShareNotFound(f"share {ref.share!r} not found")
        info = self.shares[ref]
        if usage:
            total = 0
            for folder, _, files in os.walk(self.root(ref)):
                total += sum(os.lstat(os.path.join(folder, f)).st_blocks * 512 for f in files)
            info = replace(info, usage_bytes=total)
        return info

    def create_share(self, ref: ShareRef, quota_gib: int | None = None,
                     metadata: Mapping[str, str] | None = None) -> ShareInfo:
        self.account_keys(ref.account)
        if ref in self.shares:
            raise ShareAlreadyExists(f"share {ref.share!r} already exists")
        now = time.time()
        info = ShareInfo(ref, quota_gib or DEFAULT_QUOTA_GIB, dict(metadata or {}), now,
                         f"0x{time.time_ns():X}")
        self._path(ref).mkdir(parents=True)
        self.shares[ref] = info
        return info

    def set_share(self, ref: ShareRef, *, quota_gib: int | None = None,
                  metadata: Mapping[str, str] | None = None) -> ShareInfo:
        info = self.get_share(ref)
        info = replace(info, quota_gib=quota_gib or info.quota_gib,
                       metadata=dict(metadata) if metadata is not None else info.metadata,
                       last_modified=time.time(), etag=f"0x{time.time_ns():X}")
        self.shares[ref] = info
        return info

    def delete_share(self, ref: ShareRef) -> None:
        self.get_share(ref)
        del self.shares[ref]
        shutil.rmtree(self._path(ref))

    def _path(self, ref: ShareRef) -> Path:
        return self.base / ref.account / ref.share

    def root(self, ref: ShareRef) -> Path:
        self.get_share(ref)
        return self._path(ref)

    def check(self, ref: ShareRef, key: str) -> None:
        if ref.account not in self.accounts or key not in self.accounts[ref.account]:
            raise ShareMountFailed("the account or its key is wrong")
        if ref not in self.shares:
            raise ShareMountFailed("no such share")
