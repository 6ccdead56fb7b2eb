"""Names and labels of the Kubernetes objects skiff makes: valid, unique, and telling.

Kubernetes names are narrower than ARM's: a namespace is a DNS-1123 label (at most 63
lower-case letters, digits and ``-``), a Service a DNS-1035 label (the same, starting
with a letter), most other objects DNS-1123 subdomains (labels joined by dots, at most
253). ARM's resource group names are up to 90 characters of letters, digits and
``._-()``, compared without case. So:

- **Namespaces**: one per subscription and resource group,
  ``<prefix>-<resource group, cleaned and cut>-<hash>``. The resource group is lower-cased,
  every run of characters outside ``[a-z0-9]`` becomes one ``-``, and it is cut so the
  whole name fits 63 characters; ``<hash>`` is the first 10 hex digits of the SHA-256 of
  ``<subscription>/<resource group>`` (both lower-cased), so two resource groups never
  share a namespace however they clean up (``my_rg`` and ``my.rg``), nor two
  subscriptions' groups of the same name. The full names are kept in the namespace's
  annotations, the subscription in a label.
- **A group's objects** are named from the group's name, which ACI already restricts to a
  DNS-1123 label (:func:`skiff.models.rules.check_group_name`): the Pod is the group's name
  (so its hostname is, as in ACI), the others ``<group>.<role>`` subdomains, the Service
  the group's name made a DNS-1035 label.
- **Label values** (at most 63 characters) that could be longer are replaced by a hash.
"""

from __future__ import annotations

import hashlib
import re

from skiff.errors import InvalidInput

#: The label every object skiff makes carries (the well-known one), and its value.
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "skiff"
#: Labels and annotations of skiff's own, below its domain.
PREFIX = "skiff.io/"
GROUP_LABEL = PREFIX + "group"
GROUP_ID_LABEL = PREFIX + "group-id"
VNET_LABEL = PREFIX + "vnet"
SUBSCRIPTION_LABEL = PREFIX + "subscription"

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
_SUBDOMAIN_PART = _LABEL


def digest(*parts: str, length: int = 10) -> str:
    """The first ``length`` hex digits of the SHA-256 of ``parts`` joined by ``/``."""
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def is_label(name: str) -> bool:
    """Whether ``name`` is a DNS-1123 label (a namespace's, a container's, a volume's)."""
    return bool(_LABEL.fullmatch(name))


def is_dns1035(name: str) -> bool:
    """Whether ``name`` is a DNS-1035 label (a Service's): a DNS-1123 one starting with a
    letter."""
    return is_label(name) and name[0].isalpha()


def is_subdomain(name: str) -> bool:
    """Whether ``name`` is a DNS-1123 subdomain (a Pod's, a ConfigMap's, a Secret's)."""
    return len(name) <= 253 and all(_SUBDOMAIN_PART.fullmatch(p) for p in name.split("."))


def is_label_value(value: str) -> bool:
    """Whether ``value`` may be a label's value."""
    return bool(_LABEL_VALUE.fullmatch(value))


def _clean(text: str) -> str:
    """``text`` lower-cased, each run of characters outside ``[a-z0-9]`` one ``-``, with no
    ``-`` at either end."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def check_prefix(prefix: str) -> str:
    """``prefix`` if it can begin a namespace name (a DNS-1123 label of at most 20
    characters), else InvalidInput."""
    if len(prefix) > 20 or not is_label(prefix):
        raise InvalidInput(f"the namespace prefix {prefix[:40]!r} is not 1 to 20 lower-case "
                           "letters, digits and '-', starting and ending with a letter or "
                           "digit")
    return prefix


def namespace_name(subscription: str, resource_group: str, *, prefix: str = "skiff") -> str:
    """The namespace of a subscription's resource group (the module's docstring says how)."""
    check_prefix(prefix)
    tail = digest(subscription.lower(), resource_group.lower())
    room = 63 - len(prefix) - len(tail) - 2
    middle = _clean(resource_group)[:room].strip("-")
    return "-".join(p for p in (prefix, middle, tail) if p)


def check_namespace(name: str) -> str:
    """``name`` if it can be a namespace's name, else InvalidInput."""
    if not is_label(name):
        raise InvalidInput(f"the namespace {name[:80]!r} is not a DNS-1123 label: 1 to 63 "
                           "lower-case letters, digits and '-', starting and ending with a "
                           "letter or digit")
    return name


def label_value(value: str) -> str:
    """``value`` if it may be a label's value, else a hash of it (the same one each time)."""
    return value if is_label_value(value) else "h-" + digest(value, length=32)


def service_name(group: str) -> str:
    """The Service of group ``group`` (a DNS-1123 label): its name, or ``g-<name>`` where it
    starts with a digit (a DNS-1035 label must not), cut with a hash where too long."""
    if is_dns1035(group):
        return group
    tail = digest(group, length=8)
    return f"g-{_clean(group)[:63 - len(tail) - 3].strip('-')}-{tail}"


def object_name(group: str, *roles: str) -> str:
    """A subdomain naming one of the group's objects: ``<group>.<role>...``, each role
    cleaned to a label (a hash where it cannot be one)."""
    parts = [group]
    for role in roles:
        parts.append(role if is_label(role) else f"{_clean(role)[:40]}-{digest(role, length=8)}"
                     .strip("-"))
    return ".".join(parts)


def added_name(role: str, of: str) -> str:
    """A name skiff adds to a group's Pod (``<role>--<of>``: the container cloning a gitRepo
    volume, the volume of a container's config map), a DNS-1123 label that no name of the
    tenant's can be, since ACI's names hold no ``--``."""
    name = f"{role}--{of}"
    if len(name) <= 63:
        return name
    tail = digest(of, length=8)
    return f"{role}--{of[:63 - len(role) - len(tail) - 3].strip('-')}-{tail}"
