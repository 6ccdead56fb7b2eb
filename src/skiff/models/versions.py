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
