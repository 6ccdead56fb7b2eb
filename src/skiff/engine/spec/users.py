"""An image's ``User`` as numeric ids, read safely from the image's own files.

:func:`resolve_user` turns an image's ``User`` into numeric ids by reading
the image's own ``/etc/passwd`` and ``/etc/group``, as runc's GetExecUser
does; :func:`resolve_run_as` puts a securityContext's ``runAsUser`` and
``runAsGroup`` in place. The rootfs is untrusted: those files may be symlinks
aimed at the host's, so paths are resolved one component at a time with
``O_NOFOLLOW`` and symlinks are followed by hand, never leaving the rootfs
(what runc's securejoin does). That walk is the reason this is a module of its
own: it is the one place the engine reads a file inside an image.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from skiff.errors import UserNotFound

#: Ids are unsigned 32-bit, and -1 (4294967295) means "unchanged" to the kernel.
_MAX_ID = 2**31 - 1
#: The longest /etc/passwd or /etc/group read: an image could plant a huge
#: file to exhaust our memory. Real ones are a few kilobytes.
_MAX_ID_FILE = 4 << 20
#: Symlinks followed while resolving one path, Linux's own limit (MAXSYMLINKS).
_MAX_SYMLINKS = 40


def _open_in_root(root_fd: int, path: str) -> int | None:
    """Open ``path`` for reading as if ``root_fd`` were ``/``, or None if it is absent.

    Each component is opened with O_NOFOLLOW relative to the previous one;
    symlinks are read and followed by hand, absolute targets and ``..``
    stopping at the root, so nothing outside the rootfs is ever opened.
    Anything but a regular file counts as absent (a FIFO would block us).
    """
    pending = [c for c in reversed(path.split("/")) if c]
    dirs = [root_fd]  # the open directories from the root down; dirs[0] is not ours to close
    links = 0
    try:
        while pending:
            name = pending.pop()
            if name == ".":
                continue
            if name == "..":
                if len(dirs) > 1:
                    os.close(dirs.pop())
                continue
            try:
                fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirs[-1])
            except (FileNotFoundError, NotADirectoryError):
                return None
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode):
                try:
                    target = os.readlink("", dir_fd=fd)  # the link we hold, not a new lookup
                finally:
                    os.close(fd)
                links += 1
                if links > _MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, f"too many symlinks resolving {path}")
                if target.startswith("/"):
                    while len(dirs) > 1:
                        os.close(dirs.pop())
                pending.extend(c for c in reversed(target.split("/")) if c)
                continue
            if pending:
                if not stat.S_ISDIR(mode):
                    os.close(fd)
                    return None
                dirs.append(fd)
                continue
            os.close(fd)
            if not stat.S_ISREG(mode):
                return None
            # Reopen the same name for reading; O_NONBLOCK so that a FIFO swapped in
            # meanwhile cannot block, checked again below.
            file_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                              dir_fd=dirs[-1])
            if not stat.S_ISREG(os.fstat(file_fd).st_mode):
                os.close(file_fd)
                return None
            return file_fd
        return None
    finally:
        for fd in dirs[1:]:
            os.close(fd)


def _read_in_root(rootfs: Path, path: str) -> str | None:
    """The text of ``path`` inside ``rootfs``, or None where it does not exist."""
    try:
        root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise UserNotFound(f"cannot open the rootfs {rootfs}: {exc.strerror}") from exc
    try:
        fd = _open_in_root(root_fd, path)
        if fd is None:
            return None
        with os.fdopen(fd, "rb") as f:
            data = f.read(_MAX_ID_FILE + 1)
    except OSError as exc:
        raise UserNotFound(f"cannot read {path} in the image: {exc.strerror or exc}") from exc
    finally:
        os.close(root_fd)
    if len(data) > _MAX_ID_FILE:
        raise UserNotFound(f"{path} in the image is larger than {_MAX_ID_FILE >> 20} MiB")
    return data.decode("utf-8", errors="replace")


def _entries(text: str | None, min_fields: int) -> list[list[str]]:
    """The colon-separated lines of a passwd or group file, comments and blanks skipped."""
    if text is None:
        return []
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) >= min_fields and _is_decimal(fields[2]):
            rows.append(fields)
    return rows


def _is_decimal(text: str) -> bool:
    # ASCII only: str.isdigit() is also true of "١٢" or "²", which int() would take.
    return text.isascii() and text.isdigit()


def _numeric(text: str) -> int | None:
    if not _is_decimal(text):
        return None
    value = int(text)
    if value > _MAX_ID:
        raise UserNotFound(f"id {value} is out of range (0 to {_MAX_ID})")
    return value


def resolve_run_as(rootfs: Path, image_user: str, run_as_user: int | None = None,
                   run_as_group: int | None = None) -> tuple[int, int, tuple[int, ...]]:
    """The image's user with a securityContext's ``runAsUser``/``runAsGroup`` in place.

    ``runAsUser`` replaces the image's ``User`` as a numeric ``--user`` would (its
    group and supplementary groups from the image's files, gid 0 without an
    entry); ``runAsGroup`` then replaces the primary group.
    """
    if run_as_user is None:
        uid, gid, extra = resolve_user(rootfs, image_user)
    elif run_as_user <= _MAX_ID:
        uid, gid, extra = resolve_user(rootfs, str(run_as_user))
    else:  # beyond what passwd files hold: the id as given
        uid, gid, extra = run_as_user, 0, ()
    if run_as_group is not None:
        gid = run_as_group
        extra = tuple(g for g in extra if g != gid)
    return uid, gid, extra


def resolve_user(rootfs: Path, user: str) -> tuple[int, int, tuple[int, ...]]:
    """(uid, gid, additional gids) for an image's ``User``, as runc's GetExecUser reads it.

    ``user`` is ``""`` (root), ``name``, ``uid``, ``name:group`` or ``uid:gid``
    (either side numeric or a name). A numeric user with no passwd entry keeps
    gid 0; a matched user's gid comes from passwd and, unless a group is
    given, its supplementary groups from /etc/group. A name that the image's
    files do not hold raises :class:`UserNotFound`; missing files leave only
    numeric ids usable.
    """
    user_part, _, group_part = user.partition(":")
    uid_arg = _numeric(user_part)
    gid_arg = _numeric(group_part)
    passwd = _entries(_read_in_root(rootfs, "/etc/passwd"), 4)

    uid, gid, name = 0, 0, ""
    if user_part == "":
        matches = [e for e in passwd if int(e[2]) == 0]
    elif uid_arg is not None:
        matches = [e for e in passwd if int(e[2]) == uid_arg]
    else:
        matches = [e for e in passwd if e[0] == user_part]
    if matches:
        entry = matches[0]  # first match wins, as in runc
        name, uid = entry[0], int(entry[2])
        gid = int(entry[3]) if _is_decimal(entry[3]) else 0
    elif uid_arg is not None:
        uid = uid_arg
    elif user_part:
        raise UserNotFound(f"user {user_part!r} is not in the image's /etc/passwd")

    extra: list[int] = []
    if group_part or name:
        groups = _entries(_read_in_root(rootfs, "/etc/group"), 3)
        if group_part:
            if gid_arg is not None:
                gid = gid_arg
            else:
                found = [g for g in groups if g[0] == group_part]
                if not found:
                    raise UserNotFound(f"group {group_part!r} is not in the image's /etc/group")
                gid = int(found[0][2])
        else:
            # Supplementary groups only in the implicit form, as runc does.
            for g in groups:
                members = g[3].split(",") if len(g) > 3 else []
                if name in members:
                    extra.append(int(g[2]))
    return uid, gid, tuple(g for g in dict.fromkeys(extra) if g != gid)
