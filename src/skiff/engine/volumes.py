"""A container group's volumes on the host, ready to be bind-mounted into its containers.

Each volume of a group is one directory, ``<data root>/volumes/<group id>/<volume
name>``, which the runtime bind-mounts (read-only when a ``volumeMount`` says
so: that is the runtime's job, not this module's). The group directory is
mode 0700: containers reach their volumes through bind mounts made by root,
and no other user of the host can look in. Under ``--userns-remap`` runc makes
those mounts as the container's root, a mapped host id: the group directory
then belongs to that id (still 0700), the volumes' root lets it through
(0711), and a gitRepo clone is given to it, to be as writable as without.

Each kind of volume source is a small driver behind :class:`VolumeDriver`,
looked up by the source's type, so that file shares (``azureFile``) come later
as one more driver:

- ``emptyDir``: a directory that lives as long as the group, writable by any
  user of any container (mode 0777, as in Kubernetes).
- ``secret``: a size-limited tmpfs (``noswap`` where the kernel has it), one
  file per entry (mode 0444), then remounted read-only. Its content is
  decoded, compared and written, never logged nor put into any message.
- ``gitRepo``: a ``git clone`` over http, https or git:// only, by a git that
  reads no configuration but ours, runs no hook, fetches no submodule and is
  killed with everything it started when it outlives its timeout.

:meth:`Volumes.prepare` checks every volume before it touches the disk, so bad
input leaves nothing behind; a failure half-way removes what that call made.
:meth:`Volumes.cleanup` needs no driver and no spec: it unmounts whatever is
mounted below the group's directory and deletes it, so a group is cleaned up
even after a crash lost its spec. Calls for one group must not overlap: the
supervisor serialises a group's lifecycle.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

from skiff.engine import mounts
from skiff.engine.model import EmptyDirVolume, GitRepoVolume, SecretVolume, Volume
from skiff.errors import (
    GitRepoUnreachable,
    GitRepoVolumeFailed,
    InvalidGitRepoVolume,
    InvalidSecretVolume,
    InvalidVolume,
    SkiffError,
    UnsupportedVolumeType,
    VolumeError,
)
from skiff.settings import VolumeSettings

# --- mounts ------------------------------------------------------------------------------------

_SECRET_FLAGS = mounts.MS_NOSUID | mounts.MS_NODEV | mounts.MS_NOEXEC
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _is_mount(path: Path) -> bool:
    return path.resolve() in mounts.mount_points()


def _unmount(point: Path) -> None:
    """Unmount ``point``; lazily when it is busy (a process has its cwd there)."""
    err = mounts.unmount(point)
    if err:
        raise VolumeError(f"cannot unmount {point}: {os.strerror(err)}")


def remove_tree(path: Path) -> None:
    """Unmount everything at or below ``path``, then delete it. Idempotent.

    Mounts go first, deepest first, so that deleting never reaches into a
    mounted filesystem; ``rmtree`` does not follow symbolic links.
    """
    for _ in range(64):  # mounts may be stacked on one point; each round peels one layer
        points = mounts.mounts_below(path)
        if not points:
            break
        for point in points:
            _unmount(point)
    else:
        raise VolumeError(f"cannot unmount everything below {path}")
    try:
        if path.is_symlink() or path.is_file():
            path.unlink()
        else:
            shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise VolumeError(f"cannot remove {path}: {exc.strerror}") from exc


# --- drivers -----------------------------------------------------------------------------------

S_contra = TypeVar("S_contra", contravariant=True)


class VolumeDriver(Protocol[S_contra]):
    """One kind of volume source. Removal needs no driver (see :func:`remove_tree`)."""

    def check(self, name: str, source: S_contra) -> None:
        """Refuse a bad source (an :class:`InvalidVolume`) before the disk is touched."""

    def ready(self, path: Path, source: S_contra) -> bool:
        """Whether ``path`` already holds this volume, so preparing it again does nothing."""

    def create(self, name: str, path: Path, source: S_contra) -> None:
        """Make the volume at ``path``, which does not exist; leave nothing on failure."""


class EmptyDirDriver:
    """A plain directory, writable by every user of every container."""

    def check(self, name: str, source: EmptyDirVolume) -> None:
        pass

    def ready(self, path: Path, source: EmptyDirVolume) -> bool:
        return path.is_dir() and not path.is_symlink() and not _is_mount(path)

    def create(self, name: str, path: Path, source: EmptyDirVolume) -> None:
        path.mkdir()
        # Containers may run as any user; host users are kept out by the group dir.
        os.chmod(path, 0o777)  # noqa: S103


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
        if not _is_mount(path):
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
            err = mounts.mount("none", path, None,
                               mounts.MS_REMOUNT | mounts.MS_RDONLY | _SECRET_FLAGS)
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


_SCHEMES = ("http", "https", "git")
_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f]")
_COMMIT = re.compile(r"[0-9a-fA-F]{4,64}")
# What git prints, lower-cased, when the server cannot be reached.
_UNREACHABLE = ("unable to connect", "could not resolve host", "connection refused",
                "failed to connect", "timed out", "unable to look up", "network is unreachable",
                "no route to host", "connection reset", "the remote end hung up unexpectedly")


def _redact(url: str) -> str:
    """``url`` without a user and password, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.rsplit("@", 1)[-1]
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def _clone_dir(repository: str) -> str:
    """The directory git itself would clone ``repository`` into (``.../app.git`` → ``app``)."""
    path = urlsplit(repository).path.rstrip("/")
    path = path.removesuffix("/.git").removesuffix(".git")
    last = path.rsplit("/", 1)[-1]
    return last if last and last not in (".", "..") else "repo"


class GitRepoDriver:
    """A clone of a git repository, at a revision, into a directory of the volume."""

    def __init__(self, git: str, timeout_s: float) -> None:
        self.git = git
        self.timeout_s = timeout_s

    def check(self, name: str, source: GitRepoVolume) -> None:
        url = source.repository
        try:
            host = urlsplit(url).hostname
        except ValueError:  # an unbalanced [ in the host part
            host = None
        if (_UNSAFE.search(url) or not url.startswith(tuple(f"{s}://" for s in _SCHEMES))
                or not host or host.startswith("-")):
            raise InvalidGitRepoVolume(
                f"gitRepo volume {name!r}: repository {_redact(url)[:200]!r} is not an "
                "http://, https:// or git:// URL")
        self._target(name, source)
        rev = source.revision
        if rev is not None and (not rev or rev.startswith("-") or _UNSAFE.search(rev)
                                or len(rev) > 255):
            raise InvalidGitRepoVolume(f"gitRepo volume {name!r}: revision {rev[:80]!r} is not "
                                       "a branch, tag or commit name")

    def _target(self, name: str, source: GitRepoVolume) -> PurePosixPath:
        """Where the clone goes, relative to the volume (``.``: the volume itself)."""
        directory = source.directory
        if directory is None:
            return PurePosixPath(_clone_dir(source.repository))
        rel = PurePosixPath(directory)
        if (not directory or rel.is_absolute() or ".." in rel.parts or "\0" in directory
                or _UNSAFE.search(directory)):
            raise InvalidGitRepoVolume(f"gitRepo volume {name!r}: directory {directory[:80]!r}"
                                       " must be '.' or a relative path without '..'")
        return rel

    def ready(self, path: Path, source: GitRepoVolume) -> bool:
        target = path / self._target(path.name, source)
        return path.is_dir() and not _is_mount(path) and (target / ".git").is_dir()

    def create(self, name: str, path: Path, source: GitRepoVolume) -> None:
        # Cloned aside and renamed into place: a volume directory is always complete.
        staging = path.parent / f".{path.name}.partial"
        remove_tree(staging)
        staging.mkdir(mode=0o755)
        try:
            target = staging / self._target(name, source)
            deadline = time.monotonic() + self.timeout_s
            clone = ["clone", "--quiet", "--no-recurse-submodules"]
            if source.revision is not None:
                clone.append("--no-checkout")
            self._git(name, source, [*clone, "--", source.repository, str(target)],
                      cwd=staging, deadline=deadline)
            if source.revision is not None:
                self._checkout(name, source, target, source.revision, deadline)
            os.rename(staging, path)
        except OSError as exc:
            remove_tree(staging)
            raise VolumeError(f"gitRepo volume {name!r}: {exc.strerror or exc}") from exc
        except BaseException:
            remove_tree(staging)
            raise

    def _checkout(self, name: str, source: GitRepoVolume, repo: Path, revision: str,
                  deadline: float) -> None:
        """Check out ``revision`` (a branch, then a tag, then a commit) detached."""
        candidates = [f"refs/remotes/origin/{revision}", f"refs/tags/{revision}"]
        if _COMMIT.fullmatch(revision):
            candidates.append(revision)
        for ref in candidates:
            code, out = self._git(name, source, ["rev-parse", "--verify", "--quiet",
                                                 "--end-of-options", f"{ref}^{{commit}}"],
                                  cwd=repo, deadline=deadline, check=False)
            if code == 0:
                self._git(name, source, ["checkout", "--quiet", "--detach", out.strip()],
                          cwd=repo, deadline=deadline)
                return
        raise GitRepoVolumeFailed(f"gitRepo volume {name!r}: revision {revision!r} is no "
                                  f"branch, tag or commit of {_redact(source.repository)}")

    def _git(self, name: str, source: GitRepoVolume, args: Sequence[str], *, cwd: Path,
             deadline: float, check: bool = True) -> tuple[int, str]:
        """Run git; returns its exit code and output. Never outlives ``deadline``."""
        url = _redact(source.repository)
        argv = [self.git, "-c", "protocol.file.allow=never", "-c", "protocol.ext.allow=never",
                "-c", "core.hooksPath=/dev/null", "-c", "submodule.recurse=false", *args]
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            # No one's configuration but the -c options above: no url rewrites to
            # other protocols, no credential helpers, no filters.
            "HOME": "/nonexistent",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_ALLOW_PROTOCOL": ":".join(_SCHEMES),
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",  # messages in English, for the classification below
        }
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    start_new_session=True, umask=0o022)
        except OSError as exc:
            raise VolumeError(f"gitRepo volume {name!r}: cannot run {self.git}: "
                              f"{exc.strerror}") from exc
        try:
            out, err = proc.communicate(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired as exc:
            raise GitRepoUnreachable(f"gitRepo volume {name!r}: {url} did not answer within "
                                     f"{self.timeout_s:g} s") from exc
        finally:
            if proc.returncode is None:  # timed out or interrupted: git and its helpers go
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
        if check and proc.returncode != 0:
            lines = [ln.strip() for ln in err.splitlines() if ln.strip()]
            reason = lines[-1].removeprefix("fatal: ") if lines else f"exit {proc.returncode}"
            reason = reason.replace(source.repository, url)[:400]
            error = GitRepoUnreachable if any(s in err.lower() for s in _UNREACHABLE) \
                else GitRepoVolumeFailed
            doing = "clone" if args[0] == "clone" else f"{args[0]} in the clone of"
            raise error(f"gitRepo volume {name!r}: cannot {doing} {url}: {reason}")
        return proc.returncode, out


def default_drivers(settings: VolumeSettings) -> dict[type[Any], VolumeDriver[Any]]:
    """The drivers of every volume source skiff knows, by source type."""
    return {
        EmptyDirVolume: EmptyDirDriver(),
        SecretVolume: SecretDriver(settings.secret_size_bytes),
        GitRepoVolume: GitRepoDriver(settings.git, settings.git_timeout_s),
    }


# --- the group's volumes -----------------------------------------------------------------------


def _check_component(kind: str, value: str) -> None:
    """A group id or volume name is one plain path component (dot names are ours)."""
    if not value or "/" in value or "\0" in value or value.startswith(".") or len(value) > 255:
        raise InvalidVolume(f"invalid {kind} {value[:80]!r}")


def _chown_tree(path: Path, owner: int) -> None:
    """Give ``path`` and everything below it to ``owner`` (user and group), links not followed."""
    os.chown(path, owner, owner, follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in (*dirnames, *filenames):
            os.chown(os.path.join(dirpath, name), owner, owner, follow_symlinks=False)


class Volumes:
    """The volumes of every group, under ``<data_root>/volumes/<group id>/<volume name>``."""

    def __init__(self, data_root: Path, settings: VolumeSettings | None = None, *,
                 drivers: Mapping[type[Any], VolumeDriver[Any]] | None = None) -> None:
        self.root = data_root / "volumes"
        self.settings = settings or VolumeSettings()
        #: Source type → driver; ``drivers`` adds or replaces kinds (file shares).
        self.drivers = {**default_drivers(self.settings), **(drivers or {})}

    def _group_dir(self, group_id: str) -> Path:
        _check_component("group id", group_id)
        return self.root / group_id

    def _driver(self, volume: Volume) -> VolumeDriver[Any]:
        driver = self.drivers.get(type(volume.source))
        if driver is None:
            raise UnsupportedVolumeType(f"volume {volume.name!r}: volumes of type "
                                        f"{type(volume.source).__name__} are not supported")
        return driver

    def prepare(self, group_id: str, volumes: Sequence[Volume], *,
                owner: int | None = None) -> dict[str, Path]:
        """Make the group's volumes; returns volume name → host directory.

        ``owner``: the host id of the group's containers' root when they run in a
        user namespace (see the module's docstring).

        Idempotent: a volume already in place is kept as it is (an emptyDir's
        files, a clone), one that is not (half made, or of another kind) is
        made anew. Every volume is checked first; on a failure, whatever this
        call made is removed again and the error raised.
        """
        group = self._group_dir(group_id)
        plan: list[tuple[Volume, VolumeDriver[Any]]] = []
        for volume in volumes:
            _check_component("volume name", volume.name)
            if any(volume.name == seen.name for seen, _ in plan):
                raise InvalidVolume(f"volume {volume.name!r} is given twice")
            driver = self._driver(volume)
            driver.check(volume.name, volume.source)
            plan.append((volume, driver))

        fresh_group = not group.exists()
        made: list[Path] = []
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            group.mkdir(mode=0o700, exist_ok=True)
            os.chmod(group, 0o700)  # whatever the umask: host users stay out
            for volume, driver in plan:
                path = group / volume.name
                if driver.ready(path, volume.source):
                    continue
                remove_tree(path)
                made.append(path)
                driver.create(volume.name, path, volume.source)
                if owner is not None and isinstance(volume.source, GitRepoVolume):
                    _chown_tree(path, owner)
            if owner is not None:
                os.chmod(self.root, 0o711)  # noqa: S103 -- traversable, not readable
                os.chown(group, owner, owner)
        except BaseException as exc:
            for path in [*reversed(made), *([group] if fresh_group else [])]:
                with contextlib.suppress(SkiffError):  # the first error is the one to report
                    remove_tree(path)
            if isinstance(exc, OSError):
                raise VolumeError(f"cannot prepare the volumes of group {group_id}: "
                                  f"{exc.strerror or exc}") from exc
            raise
        return {volume.name: group / volume.name for volume, _ in plan}

    def paths(self, group_id: str) -> dict[str, Path]:
        """Volume name → host directory of the group's volumes on disk (none: empty)."""
        group = self._group_dir(group_id)
        try:
            entries = sorted(os.scandir(group), key=lambda e: e.name)
        except FileNotFoundError:
            return {}
        return {e.name: group / e.name for e in entries
                if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)}

    def cleanup(self, group_id: str) -> None:
        """Unmount and delete every volume of the group, and its directory. Idempotent."""
        remove_tree(self._group_dir(group_id))
