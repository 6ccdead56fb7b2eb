"""The create page's two ways to a container group body: the form and an ACI YAML file.

The form is the Azure portal's "Create container instance" (basics, networking,
advanced) and makes the body ``skiff container create``'s flags make
(:func:`skiff.documents.group_body`, the same translation as az's); the YAML tab takes
what ``skiff container create --file`` takes (:func:`skiff.documents.body_from_yaml`).
The portal checks only what it must to build a body (a number is a number, a pair has a
``=``); everything else is the API's to judge, and its error is shown next to the field
its ARM ``target`` names (:func:`field_of`), so the page and the API cannot disagree.

Secret values (registry password, secure environment variables, a YAML file carrying
either) are never written back into a page: a form shown again asks for them again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from skiff.documents import InvalidDocument, body_from_yaml, group_body, secrets_of

#: The form's fields whose values are secret: never rendered back.
SECRET_FIELDS = frozenset({"registry_password", "secure_env"})
#: The form's fields (name → default), in the order of the page.
FIELDS: dict[str, str] = {
    "scope": "", "name": "", "location": "", "image": "", "registry_server": "",
    "registry_username": "", "registry_password": "", "cpu": "1", "memory": "1.5",
    "networking": "public", "dns_label": "", "subnet": "", "ports": "80", "protocol": "TCP",
    "restart_policy": "Always", "env": "", "secure_env": "", "command": "",
}
NETWORKING = {"public": "Public", "private": "Private", "none": "None"}
RESTART_POLICIES = ("Always", "OnFailure", "Never")
PROTOCOLS = ("TCP", "UDP")

#: An ARM error's ``target`` (its tail) → the form's field, first match wins.
_TARGETS: tuple[tuple[str, str], ...] = (
    (r"imageRegistryCredentials.*password", "registry_password"),
    (r"imageRegistryCredentials.*username", "registry_username"),
    (r"imageRegistryCredentials", "registry_server"),
    (r"ipAddress\.dnsNameLabel", "dns_label"),
    (r"subnetIds", "subnet"),
    (r"ports", "ports"),
    (r"ipAddress(\.type)?$", "networking"),
    (r"resources.*cpu", "cpu"),
    (r"resources.*memory", "memory"),
    (r"\.image$", "image"),
    (r"\.command$", "command"),
    (r"restartPolicy", "restart_policy"),
    (r"containers\[0\]\.name$", "name"),
    (r"^name$", "name"),
    (r"^location$", "location"),
)
#: ARM codes without a target that still concern one field.
_CODES = {"ResourceGroupNotFound": "scope", "SubscriptionNotFound": "scope",
          "InvalidImage": "image", "InaccessibleImage": "image",
          "LocationNotAvailableForResourceType": "location", "NoRegisteredProviderFound":
          "location", "ServiceUnavailable": "cpu"}
_ENV = re.compile(r"environmentVariables\[(\d+)\]")
_SECRET_KEYS = re.compile(r"secureValue|password|storageAccountKey|secret", re.IGNORECASE)


class FormInvalid(Exception):
    """The form cannot make a body: the message of each field at fault."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = dict(errors)


@dataclass(frozen=True)
class Target:
    """Where a group is created: its subscription, resource group and name."""

    subscription: str
    resource_group: str
    name: str


def values_of(form: Mapping[str, str]) -> dict[str, str]:
    """The form's fields as sent (defaults for those missing), to render it again: the
    secret ones emptied."""
    return {k: ("" if k in SECRET_FIELDS else form.get(k, default).strip())
            for k, default in FIELDS.items()}


def form_body(form: Mapping[str, str]) -> tuple[Target, dict[str, Any]]:
    """The group the form describes, and its ARM body; :class:`FormInvalid` when a field
    cannot be read (the API judges the rest)."""
    get = {k: form.get(k, default).strip() for k, default in FIELDS.items()}
    errors: dict[str, str] = {}
    subscription, _, resource_group = get["scope"].partition("/")
    if not subscription or not resource_group:
        errors["scope"] = "Choose a resource group."
    if not get["name"]:
        errors["name"] = "Name the container group."
    if not get["image"]:
        errors["image"] = "Name an image, e.g. mcr.microsoft.com/azuredocs/aci-helloworld."
    cpu = _number(get["cpu"], "cpu", "CPU cores", errors)
    memory = _number(get["memory"], "memory", "Memory (GB)", errors)
    ports = _ports(get["ports"], errors)
    env = _pairs(form.get("env", ""), "env", errors)
    secure_env = _pairs(form.get("secure_env", ""), "secure_env", errors)
    networking = NETWORKING.get(get["networking"].lower())
    if networking is None:
        errors["networking"] = "Choose Public, Private or None."
    if get["restart_policy"] not in RESTART_POLICIES:
        errors["restart_policy"] = "Choose Always, OnFailure or Never."
    if get["protocol"] not in PROTOCOLS:
        errors["protocol"] = "Choose TCP or UDP."
    if networking == "Private" and not get["subnet"]:
        errors["subnet"] = "A private group is placed in a subnet: give its resource ID."
    if networking != "Public" and get["dns_label"]:
        errors["dns_label"] = "Only a public group has a DNS name label."
    if errors:
        raise FormInvalid(errors)
    server = get["registry_server"] or None
    body = group_body(
        name=get["name"], image=get["image"], location=get["location"] or None, cpu=cpu,
        memory=memory, ports=ports, protocol=get["protocol"],
        ip_address=None if networking == "None" else networking,
        dns_name_label=get["dns_label"] or None, restart_policy=get["restart_policy"],
        command_line=get["command"] or None, environment_variables=env,
        secure_environment_variables=secure_env, registry_login_server=server,
        registry_username=get["registry_username"] if server else None,
        registry_password=form.get("registry_password", "") if server else None,
        subnet_id=get["subnet"] if networking == "Private" else None)
    return Target(subscription, resource_group, get["name"]), body


def yaml_body(form: Mapping[str, str]) -> tuple[Target, dict[str, Any]]:
    """The group an ACI YAML file (the YAML tab's text) describes, and its ARM body."""
    subscription, _, resource_group = form.get("scope", "").strip().partition("/")
    errors = {} if subscription and resource_group else {"scope": "Choose a resource group."}
    text = form.get("yaml", "")
    if not text.strip():
        errors["yaml"] = "Paste an ACI YAML file, or choose one."
    if errors:
        raise FormInvalid(errors)
    try:
        name, body = body_from_yaml(text, None, "the YAML")
    except InvalidDocument as exc:
        raise FormInvalid({"yaml": exc.message}) from exc
    return Target(subscription, resource_group, name), body


def has_secrets(text: str) -> bool:
    """Whether an ACI YAML file carries a secret value (then it is not shown again)."""
    try:
        _, body = body_from_yaml(text, None, "the YAML")
    except InvalidDocument:  # unreadable: shown again only without a secret's key in it
        return _SECRET_KEYS.search(text) is not None
    return any(secrets_of(body))


def field_of(target: str | None, code: str, env_count: int, tab: str = "form") -> str:
    """The form's field an ARM error concerns ("" when none: it is shown above the
    form). ``env_count``: how many plain variables come before the secure ones in the
    body (the form sends both in one list). On the YAML tab, everything but the resource
    group is the file's."""
    if tab == "yaml":
        return "scope" if _CODES.get(code) == "scope" else "yaml"
    if target:
        env = _ENV.search(target)
        if env:
            return "env" if int(env.group(1)) < env_count else "secure_env"
        for pattern, field in _TARGETS:
            if re.search(pattern, target):
                return field
    return _CODES.get(code, "")


def _number(text: str, field: str, label: str, errors: dict[str, str]) -> float:
    try:
        value = float(text)
    except ValueError:
        errors[field] = f"{label} must be a number."
        return 0.0
    if value != value or value in (float("inf"), float("-inf")):
        errors[field] = f"{label} must be a number."
    return value


def _ports(text: str, errors: dict[str, str]) -> tuple[int, ...]:
    words = [w for w in re.split(r"[\s,]+", text) if w]
    if not all(w.isdigit() and 0 < int(w) < 65536 for w in words):
        errors["ports"] = "Ports are numbers from 1 to 65535, separated by commas or spaces."
        return ()
    if len(set(words)) != len(words):
        errors["ports"] = "A port is listed more than once."
    return tuple(int(w) for w in words)


def _pairs(text: str, field: str, errors: dict[str, str]) -> list[tuple[str, str]]:
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            errors[field] = f"Line {number} is not in the form NAME=value."
            return []
        pairs.append((key.strip(), value))
    return pairs
