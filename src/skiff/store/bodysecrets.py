"""Where a container group's stored ARM body holds secrets, sealed there with the node key.

The store keeps a group's body as the API parsed it (``ContainerGroupBody.to_stored``),
in one JSON column. Its secrets are the fields ACI never answers (the same list
:mod:`skiff.models.render` leaves out of every answer):

- ``environmentVariables[].secureValue`` of every container and init container;
- ``imageRegistryCredentials[].password``;
- each file of a ``secret`` volume (its content, base64);
- ``azureFile.storageAccountKey`` of a volume;
- ``diagnostics.logAnalytics.workspaceKey``;
- ``extensions[].properties.protectedSettings``.

The last three are free-form JSON in the models, so their keys are matched
without case, as the render does. Each such value, whatever its JSON type, is
sealed as its JSON text under the context ``<group uid><JSON pointer>``
(:mod:`skiff.store.sealing`), and comes back as it went in. Everything else of
the body stays readable: names, images, commands, and which files a secret
volume has.

An NGroup's body holds, for each of its ``containerGroupProfiles``, the fields each
member adds over its profile (``containerGroupProperties``: volumes with their
account keys and secret files, containers): the same fields of a group body, found
by :func:`ngroup_slots` and sealed under ``ngroups/<uid><JSON pointer>``. A standby
pool holds no secret (its properties are a profile reference, subnets and counts).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from skiff.store.sealing import Sealer, SealingError

#: A place in a body: the dict or list holding a secret, its key there, its JSON pointer.
Slot = tuple[Any, Any, str]


def _pointer(*parts: object) -> str:
    """RFC 6901: ``~`` and ``/`` escaped in each part."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _dicts(value: Any) -> list[tuple[int, dict[str, Any]]]:
    return [(i, v) for i, v in enumerate(value) if isinstance(v, dict)] \
        if isinstance(value, list) else []


def _key(mapping: Any, name: str) -> list[str]:
    """The keys of ``mapping`` equal to ``name`` without case (a free-form field)."""
    if not isinstance(mapping, dict):
        return []
    return [k for k in mapping if isinstance(k, str) and k.lower() == name.lower()]


def slots(body: Mapping[str, Any]) -> Iterator[Slot]:
    """Every secret of ``body``: where it is, in document order."""
    props = body.get("properties")
    if not isinstance(props, dict):
        return
    for kind in ("initContainers", "containers"):
        for i, container in _dicts(props.get(kind)):
            inner = container.get("properties")
            if not isinstance(inner, dict):
                continue
            for j, var in _dicts(inner.get("environmentVariables")):
                if "secureValue" in var:
                    yield var, "secureValue", _pointer("properties", kind, i, "properties",
                                                       "environmentVariables", j, "secureValue")
    for i, cred in _dicts(props.get("imageRegistryCredentials")):
        if "password" in cred:
            yield cred, "password", _pointer("properties", "imageRegistryCredentials", i,
                                             "password")
    for i, volume in _dicts(props.get("volumes")):
        files = volume.get("secret")
        if isinstance(files, dict):
            for name in files:
                yield files, name, _pointer("properties", "volumes", i, "secret", name)
        for share in _key(volume, "azureFile"):
            for key in _key(volume[share], "storageAccountKey"):
                yield volume[share], key, _pointer("properties", "volumes", i, share, key)
    for diag in _key(props, "diagnostics"):
        for workspace in _key(props[diag], "logAnalytics"):
            for key in _key(props[diag][workspace], "workspaceKey"):
                yield (props[diag][workspace], key,
                       _pointer("properties", diag, workspace, key))
    for i, extension in _dicts(props.get("extensions")):
        for key in _key(extension.get("properties"), "protectedSettings"):
            yield (extension["properties"], key,
                   _pointer("properties", "extensions", i, "properties", key))


def ngroup_slots(body: Mapping[str, Any]) -> Iterator[Slot]:
    """Every secret of an NGroup's ``body``: those of each profile entry's
    ``containerGroupProperties``, found as a group body's are."""
    props = body.get("properties")
    if not isinstance(props, dict):
        return
    for i, stub in _dicts(props.get("containerGroupProfiles")):
        fields = stub.get("containerGroupProperties")
        if not isinstance(fields, dict):
            continue
        prefix = _pointer("properties", "containerGroupProfiles", i,
                          "containerGroupProperties")
        for holder, key, pointer in slots({"properties": fields}):
            yield holder, key, prefix + pointer[len("/properties"):]


#: Where secrets are, per kind of body, and the first part of their sealing context.
_KINDS: dict[str, Callable[[Mapping[str, Any]], Iterator[Slot]]] = {
    "containerGroups": slots, "ngroups": ngroup_slots}


def _each(body: dict[str, Any], kind: str,
          change: Callable[[Any, str], Any]) -> dict[str, Any]:
    for holder, key, pointer in list(_KINDS[kind](body)):
        holder[key] = change(holder[key], pointer)
    return body


def seal_body(body: Mapping[str, Any], sealer: Sealer, uid: str, *,
              kind: str = "containerGroups") -> dict[str, Any]:
    """A copy of ``body`` with every secret sealed for the group (or the ``kind`` of
    resource) ``uid``."""
    return _each(copy.deepcopy(dict(body)), kind,
                 lambda value, where: sealer.seal(json.dumps(value), f"{kind}/{uid}{where}"))


def unseal_body(body: dict[str, Any], sealer: Sealer, uid: str, *,
                kind: str = "containerGroups") -> dict[str, Any]:
    """``body`` (changed in place, and returned) with every secret opened again.

    A secret that is not a sealed value of this group at this place raises
    :class:`~skiff.store.sealing.SealingError`, naming the place, never the value.
    """
    def unseal(value: Any, where: str) -> Any:
        context = f"{kind}/{uid}{where}"
        if not isinstance(value, str):
            raise SealingError(f"the value at {context} is not sealed")
        return json.loads(sealer.unseal(value, context))

    return _each(body, kind, unseal)
