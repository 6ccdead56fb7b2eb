"""Talking to registries through skopeo, and mapping what it says to skiff's errors.

skopeo (containers/image) knows every registry's quirks: token auth, manifest
lists, mirrors, retries of broken streams. skiff asks it two things only:
the raw manifest of a reference (``inspect --raw``: one small request, the
cheap way to check that a caller may still read an image) and a copy of one
pinned manifest with its blobs into an OCI layout directory.

Credentials never appear in a process's arguments, a log, an error or a file
in clear: they are written to an anonymous memory file (``memfd``) that only
skopeo inherits, and skopeo runs with an empty ``HOME`` and
``DOCKER_CONFIG`` so that it cannot fall back on anyone else's credentials.
A group's pulls run it in the node's fetch namespace (``confine``), off the
node's own services (:mod:`skiff.engine.network.fetching`).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from skiff.core.reference import Reference, is_loopback, normalize_registry
from skiff.errors import (
    DigestMismatch,
    ImageError,
    ImageNotFound,
    RegistryUnauthorized,
    RegistryUnreachable,
    SkiffError,
)
from skiff.settings import ImageSettings


@dataclass(frozen=True)
class RegistryCredential:
    """ACI's ``imageRegistryCredentials`` entry: a user and password for a server."""

    server: str
    username: str
    password: str = field(repr=False)


def credential_for(ref: Reference,
                   credentials: Sequence[RegistryCredential]) -> RegistryCredential | None:
    """The credential whose server is the registry of ``ref``, if any."""
    for cred in credentials:
        if normalize_registry(cred.server) == ref.domain:
            return cred
    return None


# What skopeo prints, lower-cased, and what it means. Checked in order.
_NOT_FOUND = ("manifest unknown", "name unknown", "not found", "no such image",
              "does not exist")
_UNAUTHORIZED = ("unauthorized", "authentication required", "access to the resource is denied",
                 "denied:", "invalid username/password", "403 forbidden")
_UNREACHABLE = ("connection refused", "no such host", "i/o timeout", "deadline exceeded",
                "tls handshake timeout", "network is unreachable", "no route to host",
                "connection reset", "server misbehaving", "eof", "timeout",
                "pinging container registry", "temporary failure in name resolution")
_DIGEST = ("digest did not match", "digest mismatch")
# Failures to connect, which one text says alike: a destination the fetch namespace
# refuses (the node's own, link-local) reads as a closed port does, so that no error
# tells a tenant which of the node's ports are open.
_CONNECTION_FAILED = ("connection refused", "no route to host", "network is unreachable",
                      "host is unreachable", "connection reset", "eof")


_MSG = re.compile(r'msg="((?:[^"\\]|\\.)*)"')


def _reason(stderr: str) -> str:
    """skopeo's last message, without its log decoration."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else "no output"
    match = _MSG.search(last)
    if match:
        last = match.group(1).replace('\\"', '"')
        last = re.sub(r'^Error parsing image name "[^"]*": ', "", last)
    return last[:400]


def classify(stderr: str, ref: Reference) -> SkiffError:
    """The error skopeo's ``stderr`` describes, naming ``ref``."""
    text = stderr.lower()
    reason = _reason(stderr)
    if any(s in text for s in _DIGEST):
        return DigestMismatch(f"image {ref}: downloaded content does not match its digest "
                              f"({reason})")
    if any(s in text for s in _UNAUTHORIZED):
        return RegistryUnauthorized(f"image {ref}: the registry {ref.domain} refused access; "
                                    "check the image name and the registry credentials")
    if any(s in text for s in _NOT_FOUND):
        return ImageNotFound(f"image {ref} was not found in the registry {ref.domain}")
    if any(s in text for s in _UNREACHABLE):
        if any(s in text for s in _CONNECTION_FAILED):
            reason = "connection failed"
        return RegistryUnreachable(f"the registry {ref.domain} cannot be reached for image "
                                   f"{ref}: {reason}")
    return ImageError(f"image {ref}: {reason}")


class Skopeo:
    """A skopeo client bound to the image settings."""

    def __init__(self, settings: ImageSettings, scratch: Path, *,
                 confine: Callable[[Sequence[str]], list[str]] | None = None) -> None:
        self.settings = settings
        #: Makes a registry call's command run where tenants' fetches must (the fetch
        #: namespace, :mod:`skiff.engine.network.fetching`); None: on the host.
        self.confine = confine
        self._insecure_hosts = frozenset(normalize_registry(h) for h in
                                         settings.insecure_registries)
        # An empty home: skopeo must not read any user's stored credentials.
        self._home = scratch / "home"
        self._home.mkdir(parents=True, exist_ok=True)
        self._env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": str(self._home),
            "DOCKER_CONFIG": str(self._home),
            "XDG_CONFIG_HOME": str(self._home),
            "XDG_RUNTIME_DIR": str(self._home),
        }

    def _insecure(self, ref: Reference) -> bool:
        return is_loopback(ref.domain) or ref.domain in self._insecure_hosts

    @contextlib.contextmanager
    def _auth(self, ref: Reference, cred: RegistryCredential | None,
              flag: str, anonymous: str) -> Iterator[tuple[list[str], tuple[int, ...]]]:
        if cred is None:
            yield [anonymous], ()
            return
        token = base64.b64encode(f"{cred.username}:{cred.password}".encode()).decode()
        doc = json.dumps({"auths": {ref.domain: {"auth": token}}}).encode()
        fd = os.memfd_create("skiff-auth", 0)  # no MFD_CLOEXEC: skopeo inherits it
        try:
            os.write(fd, doc)
            yield [f"{flag}=/proc/self/fd/{fd}"], (fd,)
        finally:
            os.close(fd)

    def _run(self, args: list[str], ref: Reference, fds: tuple[int, ...],
             timeout_s: float, *, remote: bool = True) -> bytes:
        argv = [self.settings.skopeo, "--command-timeout", f"{int(timeout_s)}s", *args]
        if remote and self.confine is not None:
            argv = self.confine(argv)
        try:
            done = subprocess.run(argv, capture_output=True, env=self._env, pass_fds=fds,
                                  timeout=timeout_s + 5, check=False)
        except subprocess.TimeoutExpired as exc:
            raise RegistryUnreachable(f"the registry {ref.domain} did not answer within "
                                      f"{int(timeout_s)} s for image {ref}") from exc
        except FileNotFoundError as exc:
            raise ImageError(f"skopeo is not installed ({self.settings.skopeo})") from exc
        if done.returncode != 0:
            raise classify(done.stderr.decode(errors="replace"), ref)
        return done.stdout

    def manifest(self, ref: Reference, cred: RegistryCredential | None) -> bytes:
        """The raw manifest (or index) ``ref`` names, fetched with ``cred``."""
        with self._auth(ref, cred, "--authfile", "--no-creds") as (auth, fds):
            args = ["inspect", "--raw", *auth,
                    f"--tls-verify={str(not self._insecure(ref)).lower()}",
                    f"docker://{ref.pinned}"]
            return self._run(args, ref, fds, self.settings.registry_timeout_s)

    def copy(self, ref: Reference, cred: RegistryCredential | None, layout: Path) -> None:
        """Copy the image at ``ref`` (pinned to a manifest digest) into the OCI
        layout ``layout``; blobs already there are not downloaded again."""
        with self._auth(ref, cred, "--src-authfile", "--src-no-creds") as (auth, fds):
            args = ["copy", "--quiet", "--insecure-policy", *auth,
                    f"--src-tls-verify={str(not self._insecure(ref)).lower()}",
                    f"docker://{ref.pinned}", f"oci:{layout}:image"]
            self._run(args, ref, fds, self.settings.pull_timeout_s)

    def copy_archive(self, source: str, layout: Path, ref: Reference) -> None:
        """Copy a local archive (``docker-archive:PATH`` or ``oci-archive:PATH``)
        into the OCI layout ``layout``."""
        args = ["copy", "--quiet", "--insecure-policy", source, f"oci:{layout}:image"]
        self._run(args, ref, (), self.settings.pull_timeout_s, remote=False)
