"""What a gitRepo volume may ask for, whichever engine clones it.

A gitRepo volume's repository, revision and directory are the tenant's to write, and
``git`` reads options and paths from them; the local engine (its clone driver) and the
Kubernetes backend (an init container that clones) both refuse the same values, with the
same messages, before git sees them: URLs of http, https and git:// only, revisions that
cannot be read as options, directories that stay inside the volume.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from urllib.parse import urlsplit, urlunsplit

from skiff.core.spec import GitRepoVolume
from skiff.errors import InvalidGitRepoVolume

#: The URL schemes a clone may use (git's GIT_ALLOW_PROTOCOL too).
SCHEMES = ("http", "https", "git")
_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f]")


def redact_url(url: str) -> str:
    """``url`` without a user and password, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.rsplit("@", 1)[-1]
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def clone_dir(repository: str) -> str:
    """The directory git itself would clone ``repository`` into (``.../app.git`` → ``app``)."""
    path = urlsplit(repository).path.rstrip("/")
    path = path.removesuffix("/.git").removesuffix(".git")
    last = path.rsplit("/", 1)[-1]
    return last if last and last not in (".", "..") else "repo"


def clone_path(name: str, source: GitRepoVolume) -> PurePosixPath:
    """Where volume ``name``'s clone goes, relative to the volume (``.``: the volume
    itself); InvalidGitRepoVolume for a directory that would leave it."""
    directory = source.directory
    if directory is None:
        return PurePosixPath(clone_dir(source.repository))
    rel = PurePosixPath(directory)
    if (not directory or rel.is_absolute() or ".." in rel.parts or "\0" in directory
            or _UNSAFE.search(directory)):
        raise InvalidGitRepoVolume(f"gitRepo volume {name!r}: directory {directory[:80]!r}"
                                   " must be '.' or a relative path without '..'")
    return rel


def check_git_repo(name: str, source: GitRepoVolume) -> None:
    """InvalidGitRepoVolume unless volume ``name`` may be cloned as it asks."""
    url = source.repository
    try:
        host = urlsplit(url).hostname
    except ValueError:  # an unbalanced [ in the host part
        host = None
    if (_UNSAFE.search(url) or not url.startswith(tuple(f"{s}://" for s in SCHEMES))
            or not host or host.startswith("-")):
        raise InvalidGitRepoVolume(
            f"gitRepo volume {name!r}: repository {redact_url(url)[:200]!r} is not an "
            "http://, https:// or git:// URL")
    clone_path(name, source)
    rev = source.revision
    if rev is not None and (not rev or rev.startswith("-") or _UNSAFE.search(rev)
                            or len(rev) > 255):
        raise InvalidGitRepoVolume(f"gitRepo volume {name!r}: revision {rev[:80]!r} is not "
                                   "a branch, tag or commit name")
