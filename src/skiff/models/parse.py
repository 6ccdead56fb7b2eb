"""From a decoded PUT body to a validated :class:`ContainerGroupBody`, or one ArmError.

Validation runs in two steps: pydantic checks the types (and that required
properties are there), then :mod:`skiff.models.rules` checks ACI's rules.
pydantic's errors never leave this module: the first one becomes an
``ArmError`` whose target is the JSON path of the value. A required property
that is missing gets the code of the rule it belongs to (a container without
``resources`` is ``ResourceRequestsNotSpecified``, as in ACI); a value of the
wrong type is ``InvalidRequestContent``. Messages are built from the path and
the expected type only, never from the value, which may be a secret.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from skiff.errors import ArmError
from skiff.models.arm import check_location_text, check_tags
from skiff.models.body import ContainerGroupBody
from skiff.models.regions import Locations
from skiff.models.rules import check_body, check_group_name
from skiff.models.versions import fill_version_defaults

_CONTAINER = r"properties\.(?:initContainers|containers)\[\]"

# A missing (or null) required property: path pattern (indices as []) → code.
_MISSING: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), code) for pattern, code in (
        (r"properties\.containers", "ContainerGroupContainersRequired"),
        (r"properties\.osType", "InvalidOsType"),
        (rf"{_CONTAINER}\.name", "InvalidContainerName"),
        (rf"{_CONTAINER}\.properties(?:\.image)?", "ContainerImageRequired"),
        (rf"{_CONTAINER}\.properties\.resources(?:\.requests(?:\.cpu|\.memoryInGB)?)?",
         "ResourceRequestsNotSpecified"),
        (r"properties\.ipAddress\.ports", "MissingIpAddressPorts"),
        (r"properties\.ipAddress\.type", "InvalidIpAddressType"),
        (r".*\.ports\[\]\.port", "InvalidPort"),
        (r".*\.environmentVariables\[\]\.name", "InvalidEnvironmentVariableName"),
        (r".*\.volumeMounts\[\]\.name", "VolumeMountNameNotFound"),
        (r".*\.volumeMounts\[\]\.mountPath", "InvalidVolumeMountPath"),
        (r"properties\.volumes\[\]\.name", "InvalidVolumeName"),
        (r"properties\.volumes\[\]\.gitRepo\.repository", "InvalidGitRepoVolume"),
        (r"properties\.volumes\[\]\.secret\..*", "InvalidSecretVolume"),
        (r".*Probe\.httpGet\.port", "InvalidProbe"),
        (r"properties\.imageRegistryCredentials\[\]\.\w+", "InvalidImageRegistryCredential"),
        (r"properties\.dnsConfig\.nameServers", "InvalidDnsConfig"),
    )
)

# What a value of the wrong type should have been, by pydantic's error type.
_EXPECTED = {
    "model_type": "an object", "model_attributes_type": "an object", "dict_type": "an object",
    "list_type": "an array", "string_type": "a string", "int_type": "an integer",
    "int_parsing": "an integer", "int_from_float": "an integer", "float_type": "a number",
    "float_parsing": "a number", "finite_number": "a finite number", "bool_type": "a boolean",
    "bool_parsing": "a boolean",
}


def parse_container_group(body: dict[str, Any], *, name: str, default_location: str,
                          known_locations: Collection[str] | Locations,
                          allow_privileged: bool = False,
                          api_version: str | None = None) -> ContainerGroupBody:
    """Validate a PUT body for the group ``name``; raise ArmError(400, ...) on the first
    broken rule (``allow_privileged`` admits privileged containers). The result is
    normalized: enumerations in their canonical spelling, defaults filled in (location,
    restartPolicy, sku, port protocols; osType and containers' resources where the
    request's ``api_version`` lets them out: :mod:`skiff.models.versions`), read-only
    properties dropped, unknown properties kept."""
    check_group_name(name)
    return parse_group_definition(body, default_location=default_location,
                                  known_locations=known_locations,
                                  allow_privileged=allow_privileged, api_version=api_version,
                                  name=name)


def parse_group_definition(body: Any, *, default_location: str,
                           known_locations: Collection[str] | Locations,
                           allow_privileged: bool = False,
                           api_version: str | None = None,
                           name: str = "") -> ContainerGroupBody:
    """A group's definition checked by every rule of :func:`parse_container_group` but
    its name's (a container group profile holds one under a name of its own rule);
    ``name`` is for the messages that name the group or profile."""
    if not isinstance(body, dict):
        raise ArmError(400, "InvalidRequestContent", "The request body must be a JSON object.")
    data = dict(body)
    for key in [k for k in data if isinstance(k, str) and k.lower() == "location"]:
        if data[key] is None:
            del data[key]
    if not any(isinstance(k, str) and k.lower() == "location" for k in data):
        data["location"] = default_location
    check_arm_fields(data)
    data = fill_version_defaults(data, api_version)
    try:
        model = ContainerGroupBody.model_validate(data)
    except ValidationError as exc:
        # from None: pydantic's error quotes the input, which may hold secrets.
        raise content_error(exc.errors()[0]) from None
    check_body(model, known_locations, allow_privileged=allow_privileged, name=name)
    return model


def check_arm_fields(data: dict[str, Any]) -> None:
    """ARM's rules for ``location`` and ``tags``, on the body as sent (before pydantic,
    which would read a number as a string)."""
    for key, value in data.items():
        if isinstance(key, str) and key.lower() == "location" and value is not None:
            check_location_text(value)
        elif isinstance(key, str) and key.lower() == "tags":
            check_tags(value)


def json_path(loc: tuple[int | str, ...]) -> str:
    """``('properties', 'containers', 0, 'name')`` → ``properties.containers[0].name``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            part = part if len(part) <= 100 else part[:100] + "..."  # a key may be anything
            path += f".{part}" if path else part
    return path


def content_error(error: ErrorDetails) -> ArmError:
    """The ArmError for one of pydantic's errors."""
    loc = tuple(p for p in error["loc"] if p != "[key]")
    path = json_path(loc)
    if error["type"] == "missing" or error.get("input", ...) is None:
        pattern = re.sub(r"\[\d+\]", "[]", path)
        code = next((c for p, c in _MISSING if p.fullmatch(pattern)), "InvalidRequestContent")
        return ArmError(400, code, f"The property {path!r} is required.", path)
    expected = _EXPECTED.get(error["type"])
    if error["loc"] and error["loc"][-1] == "[key]":
        message = f"The keys of {path!r} must be strings."
    elif expected is not None:
        message = f"The property {path!r} must be {expected}."
    else:
        message = f"The property {path!r} is invalid: {error['msg']}."
    return ArmError(400, "InvalidRequestContent", message, path)
