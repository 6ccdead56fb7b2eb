"""DNS names as both sides spell them: a group's name label's FQDN.

The API checks and reports a group's FQDN (:mod:`skiff.models.labels`); the DNS
server answers for it (:mod:`skiff.dns.zone`). Both compare names the same way.
"""

from __future__ import annotations


def normalize(name: str) -> str:
    """``name`` as the zone compares it: lower case, no trailing dot."""
    return name.lower().removesuffix(".")


def label_fqdn(label: str, location: str, origin: str) -> str:
    """The FQDN of a group's ``dnsNameLabel``: ``<label>.<location>.<origin>``."""
    return normalize(f"{label}.{location}.{origin}")
