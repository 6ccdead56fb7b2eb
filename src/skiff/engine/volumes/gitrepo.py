"""gitRepo volumes: a ``git clone`` that an untrusted repository cannot turn against the host.

A gitRepo volume is a ``git clone`` over http, https or git:// only, by a git
that reads no configuration but ours, runs no hook, fetches no submodule and
is killed with everything it started when it outlives its timeout. The
repository and its server are the group owner's to choose, so every argument
is checked before git runs, credentials in the URL never reach a message, and
a clone is made aside and renamed into place, so a volume is always complete.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

from skiff.core.gitrepo import SCHEMES, check_git_repo, clone_path, redact_url
from skiff.core.spec import GitRepoVolume
from skiff.engine.volumes.driver import is_mount_point, remove_tree
from skiff.errors import (
    GitRepoUnreachable,
    GitRepoVolumeFailed,
    VolumeError,
)

_COMMIT = re.compile(r"[0-9a-fA-F]{4,64}")
# What git prints, lower-cased, when the server cannot be reached.
_UNREACHABLE = ("unable to connect", "could not resolve host", "connection refused",
                "failed to connect", "timed out", "unable to look up", "network is unreachable",
                "no route to host", "connection reset", "the remote end hung up unexpectedly")
# Failures to connect, which one text says alike: a destination the fetch namespace
# refuses (the node's own, link-local) reads as a closed port does, so that no error
# tells a tenant which of the node's ports are open.
_CONNECTION_FAILED = ("unable to connect", "failed to connect", "connection refused",
                      "network is unreachable", "no route to host", "connection reset",
                      "the remote end hung up unexpectedly", "empty reply from server")


class GitRepoDriver:
    """A clone of a git repository, at a revision, into a directory of the volume."""

    def __init__(self, git: str, timeout_s: float, *,
                 confine: Callable[[Sequence[str]], list[str]] | None = None) -> None:
        self.git = git
        self.timeout_s = timeout_s
        #: Makes git's command run where tenants' fetches must (the node's fetch
        #: namespace, :mod:`skiff.engine.network.fetching`); None: on the host.
        self.confine = confine

    def check(self, name: str, source: GitRepoVolume) -> None:
        check_git_repo(name, source)

    def _target(self, name: str, source: GitRepoVolume) -> PurePosixPath:
        """Where the clone goes, relative to the volume (``.``: the volume itself)."""
        return clone_path(name, source)

    def ready(self, path: Path, source: GitRepoVolume) -> bool:
        target = path / self._target(path.name, source)
        return path.is_dir() and not is_mount_point(path) and (target / ".git").is_dir()

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
                                  f"branch, tag or commit of {redact_url(source.repository)}")

    def _git(self, name: str, source: GitRepoVolume, args: Sequence[str], *, cwd: Path,
             deadline: float, check: bool = True) -> tuple[int, str]:
        """Run git; returns its exit code and output. Never outlives ``deadline``."""
        url = redact_url(source.repository)
        argv = [self.git, "-c", "protocol.file.allow=never", "-c", "protocol.ext.allow=never",
                "-c", "core.hooksPath=/dev/null", "-c", "submodule.recurse=false", *args]
        if self.confine is not None and args[0] == "clone":  # the one that connects
            argv = self.confine(argv)
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            # No one's configuration but the -c options above: no url rewrites to
            # other protocols, no credential helpers, no filters.
            "HOME": "/nonexistent",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_ALLOW_PROTOCOL": ":".join(SCHEMES),
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
            if any(s in err.lower() for s in _CONNECTION_FAILED):
                reason = "connection failed"
            error = GitRepoUnreachable if any(s in err.lower() for s in _UNREACHABLE) \
                else GitRepoVolumeFailed
            doing = "clone" if args[0] == "clone" else f"{args[0]} in the clone of"
            raise error(f"gitRepo volume {name!r}: cannot {doing} {url}: {reason}")
        return proc.returncode, out
