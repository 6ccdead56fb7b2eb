"""Unit tests for skiff.core.reference: Docker's image reference rules."""

from __future__ import annotations

import dataclasses

import pytest

from skiff.core.reference import (
    DOCKER_HUB,
    Reference,
    is_loopback,
    normalize_registry,
    parse,
)
from skiff.errors import InvalidInput, InvalidReference

DIGEST = "sha256:" + "0123456789abcdef" * 4
OTHER_DIGEST = "sha256:" + "f" * 64


# --- parse: what valid references resolve to ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest"),
    [
        ("busybox", "docker.io", "library/busybox", "latest", None),
        ("busybox:1.36", "docker.io", "library/busybox", "1.36", None),
        ("library/busybox:musl", "docker.io", "library/busybox", "musl", None),
        ("me/app", "docker.io", "me/app", "latest", None),
        ("me/app:v2", "docker.io", "me/app", "v2", None),
        ("me/team/app", "docker.io", "me/team/app", "latest", None),
        ("docker.io/busybox", "docker.io", "library/busybox", "latest", None),
        ("docker.io/me/app:1", "docker.io", "me/app", "1", None),
        ("index.docker.io/busybox", "docker.io", "library/busybox", "latest", None),
        ("index.docker.io/me/app", "docker.io", "me/app", "latest", None),
        ("registry-1.docker.io/busybox", "docker.io", "library/busybox", "latest", None),
        ("registry.hub.docker.com/busybox", "docker.io", "library/busybox", "latest", None),
        ("myregistry.azurecr.io/app:1.0", "myregistry.azurecr.io", "app", "1.0", None),
        ("ghcr.io/owner/repo/sub:tag", "ghcr.io", "owner/repo/sub", "tag", None),
        ("registry.local:5000/repo:tag", "registry.local:5000", "repo", "tag", None),
        ("127.0.0.1:5000/team/app", "127.0.0.1:5000", "team/app", "latest", None),
        ("localhost/x", "localhost", "x", "latest", None),
        ("localhost:5000/x:dev", "localhost:5000", "x", "dev", None),
        ("[::1]:5000/x", "[::1]:5000", "x", "latest", None),
        ("[::1]/x:1", "[::1]", "x", "1", None),
    ],
)
def test_parse_resolves_like_docker(
    text: str, domain: str, path: str, tag: str | None, digest: str | None
) -> None:
    """Each accepted reference resolves to Docker's domain, path, tag and digest."""
    ref = parse(text)
    assert ref == Reference(domain, path, tag, digest)


def test_parse_bare_name_is_official_hub_image() -> None:
    """A bare name means docker.io/library/<name>:latest, and prints that way."""
    ref = parse("busybox")
    assert ref.domain == DOCKER_HUB
    assert ref.path == "library/busybox"
    assert ref.tag == "latest"
    assert ref.digest is None
    assert str(ref) == "docker.io/library/busybox:latest"


def test_parse_digest_only_adds_no_tag() -> None:
    """A digest-pinned reference gets no implicit ``latest`` tag."""
    ref = parse(f"repo@{DIGEST}")
    assert ref == Reference("docker.io", "library/repo", None, DIGEST)
    assert str(ref) == f"docker.io/library/repo@{DIGEST}"
    assert ref.pinned == f"docker.io/library/repo@{DIGEST}"


def test_parse_tag_and_digest_together_keeps_both() -> None:
    """``name:tag@digest`` keeps the tag for display and the digest for content."""
    ref = parse(f"me/app:v1@{DIGEST}")
    assert ref == Reference("docker.io", "me/app", "v1", DIGEST)
    assert str(ref) == f"docker.io/me/app:v1@{DIGEST}"
    assert ref.pinned == f"docker.io/me/app@{DIGEST}"


def test_parse_registry_with_port_tag_and_digest() -> None:
    """A host:port registry with tag and digest splits the port from the tag correctly."""
    ref = parse(f"localhost:5000/team/app:2.0@{DIGEST}")
    assert ref == Reference("localhost:5000", "team/app", "2.0", DIGEST)


def test_parse_uppercase_first_component_is_a_domain() -> None:
    """An upper-case first component is a registry host (Docker's splitDockerDomain rule)."""
    ref = parse("MyRegistry/app")
    # The host is normalised to lower case, as normalize_registry keys registries.
    assert ref.domain == "myregistry"
    assert ref.path == "app"
    assert ref.tag == "latest"


def test_parse_lowercase_first_component_without_dot_is_hub_namespace() -> None:
    """A lower-case first component with no dot, colon or localhost is a Hub namespace."""
    ref = parse("myregistry/app")
    assert ref.domain == "docker.io"
    assert ref.path == "myregistry/app"


def test_parse_name_with_colon_but_no_slash_is_a_tag() -> None:
    """``localhost:5000`` alone is Hub image ``localhost`` at tag ``5000``, as in Docker."""
    assert parse("localhost:5000") == Reference("docker.io", "library/localhost", "5000", None)


def test_parse_hub_alias_with_port_is_not_hub() -> None:
    """A Hub alias with a port is a different registry and gets no library/ prefix."""
    ref = parse("docker.io:443/busybox")
    assert ref.domain == "docker.io:443"
    assert ref.path == "busybox"


@pytest.mark.parametrize(
    "text",
    [
        "a-b",
        "a--b",
        "a_b",
        "a__b",
        "a.b",
        "a0/b-c.d_e",
        "x" * 237,  # docker.io/library/ + 237 = 255 characters exactly
    ],
)
def test_parse_accepts_valid_components(text: str) -> None:
    """Separators and lengths allowed by distribution/reference's grammar are accepted."""
    ref = parse(text)
    assert ref.repository.endswith(text)


@pytest.mark.parametrize("tag", ["v", "_x", "1.0-rc.1", "A_b", "a" * 128])
def test_parse_accepts_valid_tags(tag: str) -> None:
    """Tags of word characters, dots and dashes up to 128 characters are accepted."""
    assert parse(f"busybox:{tag}").tag == tag


def test_parse_is_idempotent_on_its_output() -> None:
    """Parsing the printed form of a reference yields the same reference."""
    for text in ("busybox", "me/app:v1", f"localhost:5000/x:1@{DIGEST}", "[::1]:5000/x"):
        ref = parse(text)
        assert parse(str(ref)) == ref


# --- parse: what is refused -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("Busybox", id="uppercase-repo"),
        pytest.param("me/App", id="uppercase-path"),
        pytest.param("docker.io/Me/app", id="uppercase-after-domain"),
        pytest.param("busybox:", id="empty-tag"),
        pytest.param("busybox:-bad", id="tag-leading-dash"),
        pytest.param("busybox:.bad", id="tag-leading-dot"),
        pytest.param("busybox:a/b", id="tag-with-slash-after"),
        pytest.param("busybox:" + "a" * 129, id="tag-too-long"),
        pytest.param("busybox:t@g", id="tag-with-at"),
        pytest.param("busybox@sha256:abc", id="digest-too-short"),
        pytest.param("busybox@sha256:" + "A" * 64, id="digest-uppercase"),
        pytest.param("busybox@sha256:" + "g" * 64, id="digest-not-hex"),
        pytest.param("busybox@md5:" + "a" * 32, id="digest-unknown-algorithm"),
        pytest.param("busybox@", id="digest-empty"),
        pytest.param(f"busybox@{DIGEST}@x", id="two-ats"),
        pytest.param(f"@{DIGEST}", id="digest-without-name"),
        pytest.param("busy box", id="inner-space"),
        pytest.param(" busybox", id="leading-space"),
        pytest.param("busybox ", id="trailing-space"),
        pytest.param("busybox\n", id="trailing-newline"),
        pytest.param("a..b", id="double-dot"),
        pytest.param("me/../app", id="dot-dot-component"),
        pytest.param("my..host/app", id="dot-dot-in-domain"),
        pytest.param("a___b", id="triple-underscore"),
        pytest.param("-a", id="leading-dash"),
        pytest.param("a-", id="trailing-dash"),
        pytest.param("a.", id="trailing-dot"),
        pytest.param("a//b", id="empty-component"),
        pytest.param("me/", id="trailing-slash"),
        pytest.param("/busybox", id="leading-slash"),
        pytest.param("localhost/", id="domain-only"),
        pytest.param("host:abc/repo", id="port-not-numeric"),
        pytest.param("host:/repo", id="port-empty"),
        pytest.param("host:50x0/repo", id="port-mixed"),
        pytest.param("[::1]x/repo", id="ipv6-junk-after-bracket"),
        pytest.param("[::1]:/repo", id="ipv6-empty-port"),
        pytest.param("[::1]:ab/repo", id="ipv6-port-not-numeric"),
        pytest.param("[::1/repo", id="ipv6-unclosed"),
        pytest.param("[zz::1]/repo", id="ipv6-not-hex"),
        pytest.param("-host.io/repo", id="domain-leading-dash"),
        pytest.param("host_name.io/repo", id="domain-underscore"),
        pytest.param("x" * 238, id="name-256-chars"),
        pytest.param("registry.example.com/" + "x" * 300, id="too-long"),
        pytest.param("x" * 1000, id="far-too-long"),
    ],
)
def test_parse_refuses_invalid(text: str) -> None:
    """References Docker would refuse raise InvalidReference."""
    with pytest.raises(InvalidReference):
        parse(text)


@pytest.mark.parametrize("tag", ["café", "v\u0661", "标签"])
def test_parse_refuses_non_ascii_tag(tag: str) -> None:
    """Tags with non-ASCII word characters are refused, as Docker's ASCII \\w does."""
    with pytest.raises(InvalidReference):
        parse(f"busybox:{tag}")


def test_parse_refuses_64_hex_repository_name() -> None:
    """A bare 64-hex name is refused: Docker reserves it for image ids."""
    with pytest.raises(InvalidReference):
        parse("0123456789abcdef" * 4)


def test_invalid_reference_is_invalid_input_with_its_code() -> None:
    """InvalidReference is an InvalidInput carrying the image reference error code."""
    with pytest.raises(InvalidInput) as info:
        parse("Busybox")
    assert isinstance(info.value, InvalidReference)
    assert info.value.code == "InvalidImageReference"
    assert "Busybox" in info.value.message


def test_parse_error_messages_name_the_problem() -> None:
    """Messages say which part was wrong: the tag, the digest, or the registry host."""
    with pytest.raises(InvalidReference, match="tag"):
        parse("busybox:-x")
    with pytest.raises(InvalidReference, match="digest"):
        parse("busybox@sha256:1")
    with pytest.raises(InvalidReference, match="registry host"):
        parse("host:port/x")
    with pytest.raises(InvalidReference, match="255"):
        parse("x" * 300)


# --- Reference --------------------------------------------------------------------------------


def test_reference_repository_joins_domain_and_path() -> None:
    """``repository`` is ``domain/path`` without tag or digest."""
    ref = Reference("ghcr.io", "me/app", "v1", DIGEST)
    assert ref.repository == "ghcr.io/me/app"


def test_reference_pinned_prefers_digest_over_tag() -> None:
    """``pinned`` uses the digest when there is one, else the tag."""
    assert Reference("ghcr.io", "me/app", "v1").pinned == "ghcr.io/me/app:v1"
    assert Reference("ghcr.io", "me/app", "v1", DIGEST).pinned == f"ghcr.io/me/app@{DIGEST}"
    assert Reference("ghcr.io", "me/app", None, DIGEST).pinned == f"ghcr.io/me/app@{DIGEST}"


def test_reference_at_replaces_tag_and_digest() -> None:
    """``at`` pins the same repository at a new digest and drops the tag."""
    ref = parse(f"ghcr.io/me/app:v1@{DIGEST}")
    pinned = ref.at(OTHER_DIGEST)
    assert pinned == Reference("ghcr.io", "me/app", None, OTHER_DIGEST)
    assert str(pinned) == f"ghcr.io/me/app@{OTHER_DIGEST}"
    assert ref.digest == DIGEST  # the original is unchanged


@pytest.mark.parametrize(
    ("ref", "text"),
    [
        (Reference("docker.io", "library/busybox", "latest"), "docker.io/library/busybox:latest"),
        (Reference("docker.io", "library/busybox"), "docker.io/library/busybox"),
        (Reference("h:1", "a/b", None, DIGEST), f"h:1/a/b@{DIGEST}"),
        (Reference("h", "a", "t", DIGEST), f"h/a:t@{DIGEST}"),
    ],
)
def test_reference_str(ref: Reference, text: str) -> None:
    """``str`` prints repository, then ``:tag`` and ``@digest`` when present."""
    assert str(ref) == text


def test_reference_is_frozen_and_hashable() -> None:
    """References are immutable values usable as dict keys."""
    ref = parse("busybox")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.tag = "other"  # type: ignore[misc]
    assert {ref: 1}[parse("docker.io/library/busybox:latest")] == 1


# --- normalize_registry -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "host"),
    [
        ("https://index.docker.io/v1/", "docker.io"),
        ("http://index.docker.io/v1/", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("registry.hub.docker.com", "docker.io"),
        ("Docker.IO", "docker.io"),
        ("  docker.io  ", "docker.io"),
        ("MyReg.azurecr.io", "myreg.azurecr.io"),
        ("https://MyReg.azurecr.io/", "myreg.azurecr.io"),
        ("http://localhost:5000/v2/", "localhost:5000"),
        ("registry.local:5000", "registry.local:5000"),
        ("[::1]:5000", "[::1]:5000"),
        ("docker.io:443", "docker.io:443"),
    ],
)
def test_normalize_registry(server: str, host: str) -> None:
    """Credential server names reduce to the lower-case host references use."""
    assert normalize_registry(server) == host


# --- is_loopback ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("127.0.0.1:5000", True),
        ("127.0.0.1", True),
        ("127.8.9.10:80", True),
        ("localhost", True),
        ("localhost:5000", True),
        ("[::1]:5000", True),
        ("[::1]", True),
        ("::1", True),
        ("10.0.0.1", False),
        ("10.0.0.1:5000", False),
        ("[fe80::1]:5000", False),
        ("example.com", False),
        ("example.com:5000", False),
        ("docker.io", False),
        ("localhost.example.com", False),
    ],
)
def test_is_loopback(domain: str, expected: bool) -> None:
    """Only localhost and loopback addresses, with or without a port, are loopback."""
    assert is_loopback(domain) is expected


def test_is_loopback_on_parsed_domains() -> None:
    """Domains produced by parse are classified correctly."""
    assert is_loopback(parse("localhost:5000/x").domain)
    assert is_loopback(parse("[::1]:5000/x").domain)
    assert not is_loopback(parse("busybox").domain)
