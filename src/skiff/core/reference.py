"""Image references, resolved exactly as Docker resolves them.

``busybox`` means ``docker.io/library/busybox:latest``; ``me/app`` means
``docker.io/me/app:latest``; the first path component is a registry host only
if it contains a dot or a colon, is ``localhost``, or has upper-case letters
(Docker's rule in distribution/reference's ``splitDockerDomain``). A digest
(``@sha256:...``) pins the content; a tag alone is resolved at pull time.

Pure code: no I/O, so every rule is unit-tested.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from skiff.errors import InvalidReference

DOCKER_HUB = "docker.io"
# Names that mean Docker Hub in the wild (ACI credentials often say index.docker.io).
_HUB_ALIASES = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)

# distribution/reference's grammar, component by component.
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)  # Go's \w: ASCII only
_IMAGE_ID = re.compile(r"[a-f0-9]{64}")
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
_DOMAIN = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"|\[[0-9a-fA-F:.]+\]"
)
_PORT = re.compile(r"[0-9]+")
_MAX_NAME = 255


@dataclass(frozen=True)
class Reference:
    """A fully qualified image reference."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """``domain/path``: what a registry and its credentials are keyed by."""
        return f"{self.domain}/{self.path}"

    @property
    def pinned(self) -> str:
        """The repository at a digest when there is one, else at its tag."""
        if self.digest:
            return f"{self.repository}@{self.digest}"
        return f"{self.repository}:{self.tag}"

    def at(self, digest: str) -> Reference:
        """The same repository pinned at ``digest``."""
        return Reference(self.domain, self.path, None, digest)

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def normalize_registry(server: str) -> str:
    """The registry host a credential or setting names, as references name it.

    ``https://index.docker.io/v1/`` and ``index.docker.io`` both mean ``docker.io``.
    """
    host = server.strip().lower()
    for scheme in ("https://", "http://"):
        if host.startswith(scheme):
            host = host[len(scheme) :]
    host = host.split("/", 1)[0]
    return DOCKER_HUB if host in _HUB_ALIASES else host


def parse(text: str) -> Reference:
    """Parse ``text`` as Docker does, or raise :class:`InvalidReference`."""
    if not text or text != text.strip() or len(text) > _MAX_NAME + 200:
        raise InvalidReference(f"invalid image reference {text!r}")
    if _IMAGE_ID.fullmatch(text):
        raise InvalidReference(f"invalid image reference {text!r}: a 64-character hexadecimal "
                               "name is an image id, not a repository")
    name, digest = text, None
    if "@" in text:
        name, digest = text.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise InvalidReference(f"invalid digest in image reference {text!r}")
    domain, rest = _split_domain(name)
    tag = None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, tag = rest.rsplit(":", 1)
        if not _TAG.fullmatch(tag):
            raise InvalidReference(f"invalid tag in image reference {text!r}")
    if not rest or not all(_COMPONENT.fullmatch(c) for c in rest.split("/")):
        raise InvalidReference(
            f"invalid image reference {text!r}: repository names must be lowercase"
        )
    if domain == DOCKER_HUB and "/" not in rest:
        rest = f"library/{rest}"
    if len(f"{domain}/{rest}") > _MAX_NAME:
        raise InvalidReference(f"image reference {text!r} is longer than {_MAX_NAME} characters")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(domain, rest, tag, digest)


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep or (
        not any(ch in first for ch in ".:") and first != "localhost" and first.lower() == first
    ):
        return DOCKER_HUB, name
    if first.startswith("["):  # an IPv6 literal: [::1]:5000
        end = first.find("]")
        host, port_part = (first[: end + 1], first[end + 1 :]) if end > 0 else (first, "")
        if port_part and not port_part.startswith(":"):
            port_part = "!"
        port = port_part[1:] if port_part else None
    else:
        host, colon, port_text = first.partition(":")
        port = port_text if colon else None
    if (not _DOMAIN.fullmatch(host) or not _is_ip6_literal_or_name(host)
            or (port is not None and not (_PORT.fullmatch(port) and 0 < int(port) < 65536))):
        raise InvalidReference(f"invalid registry host {first!r} in image reference {name!r}")
    domain = normalize_registry(first)
    return domain, rest


def _is_ip6_literal_or_name(host: str) -> bool:
    """A bracketed host must be an IPv6 address (``[1::2::3]`` is not)."""
    if not host.startswith("["):
        return True
    try:
        ipaddress.IPv6Address(host[1:-1])
    except ValueError:
        return False
    return True


def is_loopback(domain: str) -> bool:
    """Whether a registry host is on this machine: Docker talks plain HTTP to those."""
    host = domain
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
