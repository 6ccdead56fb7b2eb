"""What a container group body may leave out, by the api-version of its request.

Up to api-version 2023-05-01 ACI's REST specification requires a group's
``osType`` and each container's ``resources``. From 2024-05-01-preview on (the
version az 2.91 sends) both are optional: ACI makes a group without ``osType``
a Linux one, and gives a container without ``resources`` ACI's (and az's)
default request, 1 CPU and 1.5 GB of memory. Under an older api-version the
body keeps its errors (``InvalidOsType``, ``ResourceRequestsNotSpecified``), as
ACI's.

The defaults are written into the body, so the group answers them back, as ACI's.
An init container has no ``resources`` in any version, and is left as it is.
"""

from __future__ import annotations

from typing import Any

#: The first api-version (its date) in which osType and resources are optional.
OPTIONAL_SINCE = "2024-05-01"
#: A group's operating system when it names none.
DEFAULT_OS_TYPE = "Linux"
#: A container's request when it has no ``resources``.
DEFAULT_REQUESTS: dict[str, float] = {"cpu": 1.0, "memoryInGB": 1.5}


def optional_os_and_resources(api_version: str | None) -> bool:
    """Whether ``api_version`` (``2024-05-01-preview``, ``2025-09-01``...) lets a body
    leave out osType and resources."""
    return api_version is not None and api_version[:10] >= OPTIONAL_SINCE


def key_of(doc: dict[str, Any], name: str) -> str | None:
    """The key of ``doc`` that names ``name``, in any case (as the models read them)."""
    if name in doc:
        return name
    return next((k for k in doc if isinstance(k, str) and k.lower() == name.lower()), None)


def _missing(doc: dict[str, Any], name: str) -> bool:
    key = key_of(doc, name)
    return key is None or doc[key] is None


def fill_version_defaults(data: dict[str, Any], api_version: str | None) -> dict[str, Any]:
    """``data`` with osType and containers' resources filled in where ``api_version``
    allows them out and they are missing (or null); anything else is left to the
    model's validation. The caller's dictionaries are not changed."""
    if not optional_os_and_resources(api_version):
        return data
    props_key = key_of(data, "properties")
    props = data.get(props_key) if props_key is not None else None
    if props_key is None or not isinstance(props, dict):
        return data
    props = dict(props)
    if _missing(props, "osType"):
        props[key_of(props, "osType") or "osType"] = DEFAULT_OS_TYPE
    containers_key = key_of(props, "containers")
    containers = props.get(containers_key) if containers_key is not None else None
    if containers_key is not None and isinstance(containers, list):
        props[containers_key] = [_with_resources(c) for c in containers]
    return {**data, props_key: props}


def _with_resources(container: Any) -> Any:
    if not isinstance(container, dict):
        return container
    key = key_of(container, "properties")
    inner = container.get(key) if key is not None else None
    if key is None or not isinstance(inner, dict) or not _missing(inner, "resources"):
        return container
    inner = {**inner, key_of(inner, "resources") or "resources":
             {"requests": dict(DEFAULT_REQUESTS)}}
    return {**container, key: inner}


# ---- answering each api-version in its own shape ---------------------------------------------

#: A group's fields newer than 2023-05-01: where each is in an answer (``[]``: every item of
#: a list) and the first api-version (its date) whose answers have it. An answer to an
#: older version leaves the field out, as ACI's does (its answers are made by the
#: version's own model). From the REST specification's versions (preview folders, then
#: the TypeSpec of 2025-09-01).
GROUP_FIELDS_SINCE: tuple[tuple[str, str], ...] = (
    ("properties.containerGroupProfile", "2024-05-01"),
    ("properties.standbyPoolProfile", "2024-05-01"),
    ("properties.isCreatedFromStandbyPool", "2024-05-01"),
    ("properties.containers[].properties.configMap", "2024-05-01"),
    ("properties.secretReferences", "2024-10-01"),
    ("properties.containers[].properties.environmentVariables[].secureValueReference",
     "2024-10-01"),
    ("properties.initContainers[].properties.environmentVariables[].secureValueReference",
     "2024-10-01"),
    ("properties.imageRegistryCredentials[].passwordReference", "2024-10-01"),
    ("properties.volumes[].secretReference", "2024-10-01"),
    ("properties.volumes[].azureFile.storageAccountKeyReference", "2024-10-01"),
)
#: What a group made from a profile carries from it (its shutdownGracePeriod and
#: timeToLive, :mod:`skiff.models.profile`) and no version of a group's answer has.
NEVER_ANSWERED: tuple[str, ...] = ("properties.shutdownGracePeriod", "properties.timeToLive")


def left_out(api_version: str | None) -> tuple[str, ...]:
    """The fields an answer to ``api_version`` leaves out (None: the newest version's
    answer, which leaves out only :data:`NEVER_ANSWERED`)."""
    date = api_version[:10] if api_version else "9999"
    return NEVER_ANSWERED + tuple(path for path, since in GROUP_FIELDS_SINCE if date < since)


def shape(answer: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """``answer`` (a rendered group, changed in place, and returned) without ``fields``
    (paths as :data:`GROUP_FIELDS_SINCE` writes them)."""
    for path in fields:
        _drop(answer, path.replace("[]", ".[]").split("."))
    return answer


def _drop(node: Any, parts: list[str]) -> None:
    head, rest = parts[0], parts[1:]
    if head == "[]":
        for item in node if isinstance(node, list) else ():
            _drop(item, rest)
    elif isinstance(node, dict) and head in node:
        if rest:
            _drop(node[head], rest)
        else:
            del node[head]
