"""The secrets of a group definition, and scrubbing them out of texts users see.

An engine error can quote what it was given: runc quotes a malformed
environment variable, a registry may echo a credential. Such texts reach
users (a container's ``detailStatus`` and events, a group's failure, an
operation's error) and files on disk, so every one of them is scrubbed of
every secret of its group first (:func:`scrub`). The engine does it where
it writes the texts; the control plane does it again before storing an
error, as a second line.

A secret is scrubbed in the forms an error quotes it in: as is, escaped as
Go's ``%q``, Python's ``repr`` or JSON write it, and, for a value with a NUL
byte, each piece around it (a C string ends at the NUL) of at least
:data:`MIN_PIECE` characters.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterable

from skiff.core.spec import AzureFileVolume, Container, GroupSpec, SecretVolume

#: What a scrubbed secret reads as.
MASK = "***"
#: The shortest piece of a secret around a NUL that is scrubbed on its own.
MIN_PIECE = 4


def secrets_of(spec: GroupSpec) -> tuple[str, ...]:
    """Every secret of ``spec``: secure environment values, registry passwords, azureFile
    keys and the contents of secret volumes (as given, base64, and decoded when text)."""
    found: list[str] = []
    containers: Iterable[Container] = (*spec.init_containers, *spec.containers)
    for container in containers:
        found.extend(var.value for var in container.env if var.secure)
    found.extend(cred.password for cred in spec.credentials)
    for volume in spec.volumes:
        if isinstance(volume.source, AzureFileVolume) and volume.source.key:
            found.append(volume.source.key)
        if isinstance(volume.source, SecretVolume):
            for _, content in volume.source.files:
                found.append(content)
                with contextlib.suppress(ValueError):  # not base64, or not text
                    found.append(base64.b64decode(content, validate=True).decode())
    return tuple(found)


def _forms(secret: str) -> set[str]:
    """The ways a text may quote ``secret``."""
    forms = {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1],
             json.dumps(secret, ensure_ascii=False)[1:-1]}
    if "\0" in secret:  # pieces too short to tell anything would only garble the text
        forms.update(piece for piece in secret.split("\0") if len(piece) >= MIN_PIECE)
    return forms - {""}


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every form of every secret replaced by :data:`MASK`
    (the longest first, so a secret inside another leaves nothing of it)."""
    forms: set[str] = set()
    for secret in secrets:
        forms |= _forms(secret)
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text
