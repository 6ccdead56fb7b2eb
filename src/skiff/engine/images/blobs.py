"""A content-addressed blob store: each blob once, verified, never half-written.

Blobs live at ``blobs/sha256/<hex>`` (the OCI layout's own shape), so a
layer shared by a hundred images is stored once. Nothing enters the store
unverified: bytes are written aside (or downloaded aside by skopeo), hashed,
and only then linked into place, so a crash at any moment leaves either the
whole blob or none of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from skiff.engine.locking import locked_all
from skiff.errors import DigestMismatch

_CHUNK = 1 << 20


def _hex(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef" for c in hexpart):
        raise ValueError(f"unsupported digest {digest!r}")
    return hexpart


def sha256_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


class BlobStore:
    """Blobs under ``root/blobs``; per-digest locks under ``root/locks``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._dir = root / "blobs" / "sha256"
        self._locks = root / "locks"
        self._tmp = root / "tmp"
        for d in (self._dir, self._locks, self._tmp):
            d.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self._dir / _hex(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).exists()

    def read(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    def digests(self) -> Iterator[str]:
        for entry in os.scandir(self._dir):
            yield "sha256:" + entry.name

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    @contextlib.contextmanager
    def locked(self, digests: Iterable[str]) -> Iterator[None]:
        """Hold the locks of ``digests``: one writer per blob across processes."""
        with locked_all(self._locks / _hex(d) for d in digests):
            yield

    def put(self, data: bytes, digest: str | None = None) -> str:
        """Store ``data`` (checked against ``digest`` when given); returns its digest."""
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if digest is not None and digest != actual:
            raise DigestMismatch(f"content does not match its digest {digest} (got {actual})")
        target = self.path(actual)
        if target.exists():
            return actual
        fd, tmp = tempfile.mkstemp(dir=self._tmp, prefix="put-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return actual

    def ingest(self, source: Path, digest: str) -> None:
        """Link the file ``source`` into the store as ``digest`` once its hash matches.

        ``source`` must be on the same filesystem (under the images root).
        """
        target = self.path(digest)
        if target.exists():
            return
        actual = sha256_file(source)
        if actual != digest:
            raise DigestMismatch(f"blob {digest} was downloaded with the wrong content "
                                 f"(its digest is {actual})")
        with open(source, "rb") as f:
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(source, target)

    def remove(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(digest).unlink()
