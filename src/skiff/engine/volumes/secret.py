"""ACI secret volumes: decoded files on a read-only, size-limited tmpfs.

A secret volume is one size-limited tmpfs (``noswap`` where the kernel has
it), one file per entry (mode 0444), then remounted read-only, so that not
even root in a container can change what its neighbours read. Its content is
decoded, compared and written, never logged nor put into any message: this
module is the one place of the engine that handles it, which keeps that rule
reviewable.
"""

from __future__ import annotations

import base64
import binascii
import errno
import os
import re
import time
from pathlib import Path

from skiff.core.spec import SecretVolume
from skiff.engine import mounts
from skiff.engine.volumes.driver import is_mount_point, remove_tree
from skiff.errors import InvalidSecretVolume, VolumeError

_SECRET_FLAGS = mounts.MS_NOSUID | mounts.MS_NODEV | mounts.MS_NOEXEC
_PAGE = os.sysconf("SC_PAGE_SIZE")

# A secret file's name is one path component: never a way out of the volume.
_MAX_NAME = 255


def _decode(encoded: str) -> bytes | None:
    """Base64 (line breaks allowed) decoded, or None.

    The caller raises outside of any ``except`` block on purpose: a decoder's
    error can quote its input, the secret, and would travel as the context of
    the error raised.
    """
    if not encoded.isascii():
        return None
    try:
        return base64.b64decode(re.sub(r"\s", "", encoded), validate=True)
    except binascii.Error:
        return None


class SecretDriver:
    """A read-only tmpfs holding the decoded files of an ACI secret volume."""

    def __init__(self, size_bytes: int) -> None:
        self.size_bytes = size_bytes

    def _files(self, name: str, source: SecretVolume) -> dict[str, bytes]:
        """The decoded files; every message names files, never their content."""
        files: dict[str, bytes] = {}
        pages = 0
        for fname, encoded in source.files:
            if (not fname or "/" in fname or "\0" in fname or fname.startswith("..")
                    or fname == "." or len(fname.encode()) > _MAX_NAME):
                raise InvalidSecretVolume(f"secret volume {name!r}: {fname[:80]!r} is not a "
                                          "plain file name (no '/', not '.', not '..')")
            if fname in files:
                raise InvalidSecretVolume(f"secret volume {name!r}: file {fname!r} is given "
                                          "twice")
            data = _decode(encoded)
            if data is None:
                raise InvalidSecretVolume(f"secret volume {name!r}: the content of file "
                                          f"{fname!r} is not valid base64")
            files[fname] = data
            pages += -(-len(data) // _PAGE)  # tmpfs gives each file whole pages
        if pages * _PAGE > self.size_bytes:
            raise InvalidSecretVolume(f"secret volume {name!r}: its files take more than the "
                                      f"{self.size_bytes} bytes a secret volume may hold")
        return files

    def check(self, name: str, source: SecretVolume) -> None:
        self._files(name, source)

    def ready(self, path: Path, source: SecretVolume) -> bool:
        if not is_mount_point(path):
            return False
        want = self._files(path.name, source)
        try:
            if set(os.listdir(path)) != set(want):
                return False
            return all((path / f).read_bytes() == data for f, data in want.items())
        except OSError:
            return False

    def create(self, name: str, path: Path, source: SecretVolume) -> None:
        files = self._files(name, source)
        path.mkdir(mode=0o700)
        try:
            self._mount(name, path)
            for fname, data in files.items():
                fd = os.open(path / fname, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o400)
                with os.fdopen(fd, "wb") as f:
                    os.fchmod(fd, 0o444)
                    f.write(data)
            # Read-only, as Kubernetes mounts secrets: not even root in a container
            # can change what its neighbours read.
            err = _remount_read_only(path)
            if err:
                raise VolumeError(f"secret volume {name!r}: cannot make it read-only: "
                                  f"{os.strerror(err)}")
        except OSError as exc:
            remove_tree(path)
            raise VolumeError(f"secret volume {name!r}: cannot write its files: "
                              f"{exc.strerror or exc}") from exc
        except BaseException:
            remove_tree(path)
            raise

    def _mount(self, name: str, path: Path) -> None:
        options = f"size={self.size_bytes},mode=0755"
        # noswap (Linux 6.4+) keeps secrets off the swap device; older kernels refuse
        # the option (EINVAL) and get a tmpfs that can be swapped, as Kubernetes' is.
        err = mounts.mount("tmpfs", path, "tmpfs", _SECRET_FLAGS, options + ",noswap")
        if err == errno.EINVAL:
            err = mounts.mount("tmpfs", path, "tmpfs", _SECRET_FLAGS, options)
        if err:
            raise VolumeError(f"secret volume {name!r}: cannot mount its tmpfs: "
                              f"{os.strerror(err)}")


def _remount_read_only(path: Path, within_s: float = 2.0) -> int:
    """Remount the volume read-only; the errno of the last try (0: done). The kernel
    refuses (EBUSY) while any process holds one of its files open for writing, and a
    child forked by another thread in that moment holds a copy of the file's descriptor
    until it execs (O_CLOEXEC closes it only then): so EBUSY is tried again, briefly."""
    deadline = time.monotonic() + within_s
    pause = 0.005
    while True:
        err = mounts.mount("none", path, None,
                           mounts.MS_REMOUNT | mounts.MS_RDONLY | _SECRET_FLAGS)
        if err != errno.EBUSY or time.monotonic() >= deadline:
            return err
        time.sleep(pause)
        pause = min(pause * 2, 0.1)
