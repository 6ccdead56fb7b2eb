"""The node key, and sealing values with it: the store's secrets at rest.

The store's file holds every container group's definition, and with it the
group's secrets: secure environment values, registry passwords, secret
volumes' contents, Azure file shares' account keys, Log Analytics workspace
keys and extensions' protected settings (:mod:`skiff.store.bodysecrets` says
where they are in a body). A copy of that file (a backup, a disk image, the
WAL beside it) must reveal none of them, so each is *sealed*, encrypted and
authenticated with AES-256-GCM, under the *node key*: 256 random bits in a
file outside the database (``<data root>/keys/node.key`` unless the operator
says otherwise), 0600 in a 0700 directory, made once at the store's first start.

A sealed value reads ``skf1:`` then the URL-safe base64 of a 96-bit random
nonce and the ciphertext with its 128-bit tag. The prefix is the format's
version, so that a later rotation (a key id, a second key) can tell the
formats apart. The associated data binds each value to where it rests (a
group's uid and the field's JSON pointer): a sealed value copied into another
tenant's row, or to another field of the same row, does not open.

Losing the key loses the secrets. So a store that holds values sealed with a
key never makes a new one: without its key it refuses to open
(:class:`SealingError` names the path to restore), and with another key it
refuses too, told by a probe value the store keeps sealed with its key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from skiff.store.errors import StoreError

#: The key's length: AES-256.
KEY_BYTES = 32
#: What every sealed value starts with: the format's version.
PREFIX = "skf1:"
#: AES-GCM's standard nonce; random per value (2^32 values a key stay far below the
#: collision bound of 2^48 that NIST allows random 96-bit nonces).
_NONCE_BYTES = 12


class SealingError(StoreError):
    """The node key is missing, unreadable or not the store's, or a sealed value does not
    open (sealed with another key, moved, or changed). Never quotes a value."""


class Sealer:
    """Seals and opens values with one node key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a node key is {KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, context: str) -> str:
        """``plaintext`` sealed, bound to ``context`` (where it will rest)."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8", "surrogatepass"),
                                    context.encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def unseal(self, sealed: str, context: str) -> str:
        """The plaintext of a value :meth:`seal` made for the same ``context``."""
        if not sealed.startswith(PREFIX):
            raise SealingError(f"the value at {context} is not sealed")
        try:
            raw = base64.b64decode(sealed[len(PREFIX):], altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise SealingError(f"the sealed value at {context} is garbled") from None
        try:
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode())
        except (InvalidTag, ValueError):
            raise SealingError(f"the sealed value at {context} does not open with the node key "
                               "(sealed with another key, moved or changed)") from None
        return plain.decode("utf-8", "surrogatepass")


def load_key(path: Path, *, create: bool) -> bytes:
    """The node key in ``path``; with ``create``, made there first if there is none.

    The file holds the key in base64 on one line (``head -c 32 /dev/urandom | base64``
    makes one). It must be readable by its owner alone, as ssh asks of private keys.
    Two processes creating it at once end with one key: each writes its own aside
    and links it into place, and the second link fails.
    """
    try:
        return _read(path)
    except FileNotFoundError:
        if not create:
            raise SealingError(
                f"the store's secrets are sealed with the node key {path}, which is missing: "
                "restore it (without it they cannot be read)") from None
    _create(path)
    return _read(path)


def _read(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SealingError(f"cannot read the node key {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as f:
        mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
        if mode & 0o077:
            raise SealingError(f"the node key {path} is open to others (mode {mode:04o}): "
                               f"make it readable by its owner alone (chmod 600 {path})")
        text = f.read(4096)
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise SealingError(f"the node key {path} is not {KEY_BYTES} bytes in base64")
    return key


def _create(path: Path) -> None:
    directory = path.parent
    try:
        if not directory.exists():
            directory.mkdir(parents=True)
            os.chmod(directory, 0o700)  # ours: nobody else even sees the key's name
        tmp = directory / f".{path.name}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(base64.b64encode(os.urandom(KEY_BYTES)) + b"\n")
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):  # another process made it first
                os.link(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise SealingError(f"cannot make the node key {path}: {exc.strerror or exc}") from exc
