"""``azureFile`` volumes: a file share of the node, bind-mounted into the group.

The share lives on the node's share disks (:mod:`skiff.engine.shares`), mounted
on the host once; a group's volume is a bind mount of the share's root at the
volume's directory (read-only when the volume says ``readOnly``: writes get
EROFS), which the runtime binds into the containers as any volume. Mounting
costs one or two mount(2) calls, no process.

Before anything is mounted, :meth:`AzureFileDriver.check` asks the resolver
whether the account, the share and the key the group presents hold (as ACI
checks the key when it mounts): a :class:`~skiff.errors.ShareMountFailed`
otherwise, which fails the group with a ``FailedMountAzureFileVolume`` event before any of
its volumes is made. Without share disks or a resolver (a node that has no
storage service), every azureFile volume fails that way.

Removing the group unmounts the bind first (:func:`~skiff.engine.volumes.driver.remove_tree`
unmounts everything below a path before deleting): the share's files are never
touched.

Ownership is ACI's SMB mount's: what is bound is not the share itself but its
view for the group's root (:meth:`~skiff.core.shares.ShareDisks.view`, a bindfs
per share and per host id of a container root, made once and kept), where
every file is owned by the container's root, mode 0777, and chmod and chown
succeed without effect. Under ``--userns-remap`` the view's owner is the
remapped host id of the container's root, so the container sees its root; in
a gVisor sandbox the gofer reads the same view. The files on the share keep
the host's real owner (root: bindfs writes them), which no container sees.
"""

from __future__ import annotations

import os
from pathlib import Path

from skiff.core.shares import ShareDisks, ShareRef, ShareResolver
from skiff.core.spec import AzureFileVolume
from skiff.engine import mounts
from skiff.engine.volumes.driver import is_mount_point
from skiff.errors import ShareMountFailed, SkiffError

#: A share holds files, never devices nor set-id programs that count.
_FLAGS = mounts.MS_NOSUID | mounts.MS_NODEV


class AzureFileDriver:
    """Bind mounts of the node's file shares."""

    def __init__(self, shares: ShareDisks | None, resolver: ShareResolver | None) -> None:
        self.shares = shares
        self.resolver = resolver

    def check(self, name: str, source: AzureFileVolume) -> None:
        if self.shares is None or self.resolver is None:
            raise ShareMountFailed(f"volume {name!r}: this node has no file shares, so it "
                                   "cannot mount azureFile volumes")
        ref = ShareRef(source.account, source.share)
        try:
            self.resolver.check(ref, source.key)
            self.shares.root(ref)  # on this node's disk, mounted
        except ShareMountFailed as exc:
            raise ShareMountFailed(f"volume {name!r}: {exc.message}") from None
        except SkiffError as exc:
            raise ShareMountFailed(f"volume {name!r}: cannot mount the share "
                                   f"{source.share} of {source.account}: {exc.message}"
                                   ) from None

    def ready(self, path: Path, source: AzureFileVolume, *, owner: int | None = None) -> bool:
        if not is_mount_point(path) or self.shares is None:
            return False
        view = self.shares.view(ShareRef(source.account, source.share), owner or 0)
        same = os.stat(path).st_dev == os.stat(view).st_dev
        return same and bool(os.statvfs(path).f_flag & os.ST_RDONLY) == source.read_only

    def create(self, name: str, path: Path, source: AzureFileVolume, *,
               owner: int | None = None) -> None:
        """``owner``: the host id of the containers' root (None: host root)."""
        assert self.shares is not None  # checked
        try:
            root = self.shares.view(ShareRef(source.account, source.share), owner or 0)
        except SkiffError as exc:
            raise ShareMountFailed(f"volume {name!r}: cannot mount the share "
                                   f"{source.share}: {exc.message}") from None
        path.mkdir()
        err = mounts.mount(root, path, None, mounts.MS_BIND | _FLAGS)
        if not err and source.read_only:
            err = mounts.mount(None, path, None,
                               mounts.MS_BIND | mounts.MS_REMOUNT | mounts.MS_RDONLY | _FLAGS)
            if err:
                mounts.unmount(path)
        if err:
            path.rmdir()
            raise ShareMountFailed(f"volume {name!r}: cannot mount the share "
                                   f"{source.share}: {os.strerror(err)}")
