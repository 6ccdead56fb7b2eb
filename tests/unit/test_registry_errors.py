"""What skopeo says, mapped to skiff's errors; and how credentials reach it."""

from __future__ import annotations

from pathlib import Path

import pytest

from skiff.core.reference import parse
from skiff.engine.images.registry import RegistryCredential, Skopeo, classify, credential_for
from skiff.errors import (
    DigestMismatch,
    ImageError,
    ImageNotFound,
    RegistryUnauthorized,
    RegistryUnreachable,
)
from skiff.settings import ImageSettings

REF = parse("127.0.0.1:5000/team/app:1")


def _fatal(msg: str) -> str:
    escaped = msg.replace('"', '\\"')
    return f'time="2026-11-28T05:41:08Z" level=fatal msg="{escaped}"\n'


@pytest.mark.parametrize(
    ("stderr", "kind"),
    [
        (_fatal('Error parsing image name "docker://x": reading manifest 1 in x: '
                "manifest unknown: manifest unknown"), ImageNotFound),
        (_fatal("reading manifest 1 in x: name unknown: repository name not known"),
         ImageNotFound),
        (_fatal("reading manifest 1 in x: unauthorized: authentication required"),
         RegistryUnauthorized),
        (_fatal("requested access to the resource is denied"), RegistryUnauthorized),
        (_fatal('pinging container registry x: Get "http://127.0.0.1:1/v2/": dial tcp '
                "127.0.0.1:1: connect: connection refused"), RegistryUnreachable),
        (_fatal("dial tcp: lookup nowhere.invalid: no such host"), RegistryUnreachable),
        (_fatal("context deadline exceeded"), RegistryUnreachable),
        (_fatal("writing blob: Digest did not match, expected sha256:aa, got sha256:bb"),
         DigestMismatch),
    ],
)
def test_classify_maps_skopeo_messages(stderr: str, kind: type[Exception]) -> None:
    """Each family of skopeo failures becomes its own skiff error naming the image."""
    error = classify(stderr, REF)
    assert type(error) is kind
    assert str(REF) in error.message


def test_unknown_failure_keeps_skopeos_reason_without_log_decoration() -> None:
    """An unrecognised failure is a plain ImageError carrying skopeo's message, undecorated."""
    error = classify(_fatal('Error parsing image name "docker://x": something odd'), REF)
    assert type(error) is ImageError
    assert error.message.endswith("something odd")
    assert "time=" not in error.message


def test_not_found_and_unauthorized_are_final_unreachable_is_transient() -> None:
    """The supervisor retries only what may succeed later."""
    assert not classify(_fatal("manifest unknown"), REF).transient
    assert not classify(_fatal("unauthorized"), REF).transient
    assert classify(_fatal("connection refused"), REF).transient


def test_hex_in_a_digest_does_not_look_like_an_http_status() -> None:
    """A digest containing '401' in a not-found message is still not-found."""
    stderr = _fatal("reading manifest sha256:401403aa in x: manifest unknown")
    assert isinstance(classify(stderr, REF), ImageNotFound)


@pytest.mark.parametrize(
    ("server", "reference", "matches"),
    [
        ("127.0.0.1:5000", "127.0.0.1:5000/team/app:1", True),
        ("index.docker.io", "busybox", True),
        ("https://index.docker.io/v1/", "me/app", True),
        ("MyReg.azurecr.io", "myreg.azurecr.io/app", True),
        ("other.azurecr.io", "myreg.azurecr.io/app", False),
        ("127.0.0.1:5001", "127.0.0.1:5000/app", False),
    ],
)
def test_credential_for_matches_the_references_registry(
    server: str, reference: str, matches: bool
) -> None:
    """A credential applies to images of its own server only, in any of its spellings."""
    cred = RegistryCredential(server, "user", "pw")
    assert (credential_for(parse(reference), [cred]) is cred) is matches


def test_credential_repr_hides_the_password() -> None:
    """A credential printed in a log or traceback does not show its password."""
    assert "hunter2" not in repr(RegistryCredential("r.io", "user", "hunter2"))


@pytest.mark.parametrize(
    ("reference", "insecure", "plain"),
    [
        ("127.0.0.1:5000/app", (), True),
        ("localhost:5000/app", (), True),
        ("[::1]:5000/app", (), True),
        ("myreg.example:5000/app", (), False),
        ("myreg.example:5000/app", ("MyReg.example:5000",), True),
        ("busybox", ("myreg.example:5000",), False),
    ],
)
def test_only_loopback_and_configured_registries_skip_tls(
    tmp_path: Path, reference: str, insecure: tuple[str, ...], plain: bool
) -> None:
    """Loopback registries are reached without TLS checks, others only when configured so."""
    skopeo = Skopeo(ImageSettings(insecure_registries=insecure), tmp_path)
    assert skopeo._insecure(parse(reference)) is plain


@pytest.mark.parametrize("failure", [
    "dial tcp 127.0.0.1:22: connect: connection refused",
    "dial tcp 169.254.1.1:80: connect: no route to host",
    "read tcp 127.0.0.1:40000->127.0.0.1:22: read: connection reset by peer",
    'Get "http://127.0.0.1:22/v2/": EOF',
])
def test_every_failure_to_connect_reads_the_same(failure: str) -> None:
    """A refused destination, a closed port and a port that hangs up give one text: an
    error does not tell a tenant which of the node's ports are open."""
    error = classify(_fatal(f"pinging container registry 127.0.0.1:5000: {failure}"), REF)
    assert isinstance(error, RegistryUnreachable)
    assert error.message == (f"the registry 127.0.0.1:5000 cannot be reached for image {REF}: "
                             "connection failed")
