"""Unpack an image layer into a directory that overlayfs can use as a lowerdir.

Why not ``tarfile.extractall``: its safety filters strip setuid and sticky
bits and device nodes, which images need, and without them it follows
symlinks an archive planted. Why not GNU tar: it does not know OCI
whiteouts. So this module walks the archive itself:

- OCI whiteouts become overlayfs's: ``.wh.NAME`` → a 0/0 character device
  ``NAME``; ``.wh..wh..opq`` → the ``trusted.overlay.opaque=y`` xattr on its
  directory.
- Modes (setuid, setgid, sticky), owners, times, xattrs, symlinks, hardlinks,
  device nodes and fifos are kept.
- Nothing is ever written outside the destination: absolute names and ``..``
  are refused, and every parent of every entry must be a directory this
  layer created (an in-memory map of what we wrote), so a symlink planted by
  the archive is never followed. A refused layer raises :class:`LayerRejected`;
  the caller removes the half-written directory.
- The uncompressed stream is hashed on the way through: the result is the
  layer's diff-id, checked against the image config.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import queue
import shutil
import stat
import tarfile
import threading
from pathlib import Path
from typing import IO, BinaryIO

import zstandard

from skiff.errors import DigestMismatch, LayerRejected, UnsupportedImage

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_CHUNK = 1 << 20
_XATTR_PAX = "SCHILY.xattr."
_OVERLAY_XATTRS = ("trusted.overlay.", "user.overlay.")

_DIR, _FILE, _LINK, _OTHER = "d", "f", "l", "o"


class _Prefetcher:
    """Decompresses and hashes a layer in a thread, ahead of the tar reader.

    zlib, zstd and sha256 release the GIL, so this runs on another core while
    the main thread creates files: the pipeline ``tar -xzf`` gets from its
    gzip child process.
    """

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner
        self.hasher = hashlib.sha256()
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=8)
        self._stop = threading.Event()
        self._chunk = b""  # the chunk being read, from self._offset on
        self._offset = 0
        self._position = 0  # bytes handed out so far
        self._done = False
        self._thread = threading.Thread(target=self._run, name="layer-decompress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        item: bytes | BaseException | None
        try:
            while not self._stop.is_set() and (chunk := self._inner.read(_CHUNK)):
                self.hasher.update(chunk)
                self._put(chunk)
            item = None
        except BaseException as exc:  # handed to the reader, raised there
            item = exc
        self._put(item)

    def _put(self, item: bytes | BaseException | None) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _next(self) -> bytes:
        if self._done:
            return b""
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._done = True
            raise item
        if item is None:
            self._done = True
            return b""
        return item

    def read(self, size: int = -1) -> bytes:
        # Copies only what it hands out: tarfile reads 512-byte headers in between.
        parts = []
        wanted = size if size >= 0 else 1 << 62
        while wanted > 0:
            if self._offset >= len(self._chunk):
                self._chunk, self._offset = self._next(), 0
                if not self._chunk:
                    break
            take = min(wanted, len(self._chunk) - self._offset)
            if take == len(self._chunk):
                parts.append(self._chunk)
            else:
                parts.append(self._chunk[self._offset:self._offset + take])
            self._offset += take
            wanted -= take
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._position += len(data)
        return data

    def tell(self) -> int:
        return self._position

    def seek(self, position: int, whence: int = io.SEEK_SET) -> int:
        """Forward only: tarfile skips the data of members it was not asked to read."""
        if whence != io.SEEK_SET or position < self._position:
            raise io.UnsupportedOperation("a layer stream only seeks forward")
        while self._position < position and self.read(min(position - self._position, _CHUNK)):
            pass
        return self._position

    def drain(self) -> None:
        """Read to the end: the hash then covers the whole stream."""
        self._chunk, self._offset = b"", 0
        while self._next():
            pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _decompressed(raw: BinaryIO) -> IO[bytes]:
    magic = raw.read(4)
    raw.seek(0)
    if magic[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if magic == b"\x28\xb5\x2f\xfd":
        reader: IO[bytes] = zstandard.ZstdDecompressor().stream_reader(raw, read_size=_CHUNK)
        return reader
    return raw


def unpack_layer(blob: Path, dest: Path, diff_id: str | None = None) -> str:
    """Unpack the layer blob at ``blob`` (gzip, zstd or plain tar) into the
    empty directory ``dest``; returns its diff-id, checked against ``diff_id``."""
    with open(blob, "rb") as raw:
        stream = _Prefetcher(_decompressed(raw))
        try:
            # Not tarfile's stream mode ("r|"): its buffer copies a megabyte per
            # header. Plain mode reads and seeks forward on the stream directly.
            with tarfile.open(fileobj=stream, mode="r:") as archive:  # type: ignore[call-overload]
                _Unpacker(dest).run(archive)
            stream.drain()
        except (tarfile.TarError, EOFError, OSError, zstandard.ZstdError) as exc:
            if isinstance(exc, OSError) and exc.filename is not None:
                raise  # a local filesystem failure, not a broken layer
            raise UnsupportedImage(f"layer {blob.name[:12]} is not a readable tar archive: "
                                   f"{exc}") from exc
        finally:
            stream.close()
    actual = "sha256:" + stream.hasher.hexdigest()
    if diff_id is not None and actual != diff_id:
        raise DigestMismatch(f"layer content does not match its diff-id {diff_id} "
                             f"(got {actual})")
    return actual


def _clean_name(name: str, what: str) -> str:
    """The archive name ``name`` as a relative path, or :class:`LayerRejected`."""
    if name.startswith("/"):
        raise LayerRejected(f"layer entry {what} {name!r} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise LayerRejected(f"layer entry {what} {name!r} escapes the layer with '..'")
    return "/".join(parts)


class _Unpacker:
    def __init__(self, dest: Path) -> None:
        self.dest = str(dest)
        self.kinds: dict[str, str] = {"": _DIR}
        self.dir_times: dict[str, float] = {}  # relative path → mtime, applied at the end

    def run(self, archive: tarfile.TarFile) -> None:
        for member in archive:
            self.entry(archive, member)
        # Applied last: writing a directory's children changes its mtime. Only
        # directories still standing: all their ancestors are this layer's own.
        for rel, mtime in self.dir_times.items():
            if self.kinds.get(rel) == _DIR:
                os.utime(self._abs(rel), (mtime, mtime), follow_symlinks=False)

    def _abs(self, rel: str) -> str:
        return f"{self.dest}/{rel}" if rel else self.dest

    def _parent(self, rel: str, name: str) -> str:
        """Make sure every ancestor of ``rel`` is a directory of this layer."""
        parent, _, _ = rel.rpartition("/")
        if not parent or self.kinds.get(parent) == _DIR:
            return parent
        prefix = ""
        for part in parent.split("/"):
            prefix = f"{prefix}/{part}" if prefix else part
            kind = self.kinds.get(prefix)
            if kind == _DIR:
                continue
            if kind == _LINK:
                raise LayerRejected(f"layer entry {name!r} would be written through the "
                                    f"symlink {prefix!r}")
            if kind is not None:
                raise LayerRejected(f"layer entry {name!r} is below {prefix!r}, "
                                    "which is not a directory")
            os.mkdir(self._abs(prefix))
            os.chmod(self._abs(prefix), 0o755)  # noqa: S103 -- whatever the umask
            self.kinds[prefix] = _DIR
        return parent

    def _clear(self, rel: str, keep_dir: bool) -> None:
        """Remove what this layer wrote at ``rel`` before something replaces it."""
        kind = self.kinds.get(rel)
        if kind is None or (kind == _DIR and keep_dir):
            return
        if kind == _DIR:
            shutil.rmtree(self._abs(rel))
            inside = rel + "/"
            for key in [k for k in self.kinds if k.startswith(inside)]:
                del self.kinds[key]
            for key in [k for k in self.dir_times if k == rel or k.startswith(inside)]:
                del self.dir_times[key]
        else:
            os.unlink(self._abs(rel))
        del self.kinds[rel]

    def entry(self, archive: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        rel = _clean_name(m.name, "")
        if not rel:
            return  # the archive's own root: the layer directory itself
        parent = self._parent(rel, m.name)
        base = rel.rpartition("/")[2]
        if base == OPAQUE_MARKER:
            os.setxattr(self._abs(parent), OPAQUE_XATTR, b"y", follow_symlinks=False)
            return
        if base.startswith(WHITEOUT_PREFIX):
            hidden = base[len(WHITEOUT_PREFIX):]
            if hidden in ("", ".", ".."):
                raise LayerRejected(f"layer entry {m.name!r} is a malformed whiteout")
            target = f"{parent}/{hidden}" if parent else hidden
            self._clear(target, keep_dir=False)
            os.mknod(self._abs(target), stat.S_IFCHR, os.makedev(0, 0))
            self.kinds[target] = _OTHER
            return
        path = self._abs(rel)
        if m.isdir():
            self._clear(rel, keep_dir=True)
            if rel not in self.kinds:
                os.mkdir(path, 0o700)
                self.kinds[rel] = _DIR
            self._own(path, m)
            self.dir_times[rel] = m.mtime
            return
        self._clear(rel, keep_dir=False)
        if m.isreg():
            self._file(archive, m, path)
            self.kinds[rel] = _FILE
        elif m.issym():
            os.symlink(m.linkname, path)
            os.chown(path, m.uid, m.gid, follow_symlinks=False)
            self._xattrs(path, m)
            os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)
            self.kinds[rel] = _LINK
        elif m.islnk():
            target = _clean_name(m.linkname, "hardlink target")
            kind = self.kinds.get(target)
            # Recorded entries sit below directories of this layer only (a replaced
            # directory forgets its contents), so the link never leaves the layer.
            if kind is None or kind == _DIR:
                raise LayerRejected(f"layer hardlink {m.name!r} points at {m.linkname!r}, "
                                    "which is not a file of this layer")
            os.link(self._abs(target), path, follow_symlinks=False)
            self.kinds[rel] = kind
        elif m.ischr() or m.isblk() or m.isfifo():
            kind_bits = stat.S_IFCHR if m.ischr() else stat.S_IFBLK if m.isblk() else stat.S_IFIFO
            os.mknod(path, kind_bits | 0o600, os.makedev(m.devmajor, m.devminor))
            self._own(path, m)
            os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)
            self.kinds[rel] = _OTHER
        else:
            raise LayerRejected(f"layer entry {m.name!r} has an unsupported type {m.type!r}")

    def _file(self, archive: tarfile.TarFile, m: tarfile.TarInfo, path: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            source = archive.extractfile(m)
            if source is not None:
                while chunk := source.read(_CHUNK):
                    os.write(fd, chunk)
            os.fchown(fd, m.uid, m.gid)
            os.fchmod(fd, stat.S_IMODE(m.mode))  # after chown, which clears setuid bits
            self._xattrs(fd, m)
            os.utime(fd, (m.mtime, m.mtime))
        finally:
            os.close(fd)

    def _own(self, path: str, m: tarfile.TarInfo) -> None:
        os.chown(path, m.uid, m.gid, follow_symlinks=False)
        os.chmod(path, stat.S_IMODE(m.mode))  # never a symlink: those are not chmod-ed
        self._xattrs(path, m)

    @staticmethod
    def _xattrs(target: str | int, m: tarfile.TarInfo) -> None:
        for key, value in m.pax_headers.items():
            if key.startswith(_XATTR_PAX):
                name = key[len(_XATTR_PAX):]
                if name.startswith(_OVERLAY_XATTRS):
                    continue  # overlayfs metadata comes from whiteouts only, never forged
                data = value.encode("utf-8", "surrogateescape")
                if isinstance(target, int):
                    os.setxattr(target, name, data)
                else:
                    os.setxattr(target, name, data, follow_symlinks=False)
