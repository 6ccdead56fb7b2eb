"""Checks of Kubernetes objects for tests, without a cluster: the schema, then the rules
the API server adds to it.

:func:`validate` checks an object against the OpenAPI schema of pinned Kubernetes
versions (the ``kubernetes-validate`` package's strict schemas: an unknown field is an
error). The schema says nothing of names, references between objects or most of
``ValidatePod``, so :func:`check_group` checks those the API server would refuse a
group's objects for, with the formats written here from Kubernetes' own validation
(``k8s.io/apimachinery/pkg/util/validation``), not from skiff's code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped,unused-ignore]

Obj = dict[str, Any]

#: The Kubernetes versions every manifest is checked against: the oldest skiff claims
#: (inline CSI volumes, mixed-protocol LoadBalancers and the fields used here are GA) and
#: the newest that the pinned kubernetes-validate (1.37.0) ships.
VERSIONS = ("1.30", "1.37")

_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL = re.compile(_LABEL)
DNS1123_SUBDOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
DNS1035_LABEL = re.compile(r"[a-z](?:[-a-z0-9]*[a-z0-9])?")
_QUALIFIED = r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
LABEL_VALUE = re.compile(rf"(?:{_QUALIFIED})?")
CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")


def validate(obj: Obj) -> None:
    """Raise unless ``obj`` is valid under every version of :data:`VERSIONS` (strict)."""
    for version in VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            raise AssertionError(f"{obj['kind']}/{obj['metadata'].get('name')} is invalid "
                                 f"in Kubernetes {version}: {path}: {exc.message}") from None


def _name_ok(pattern: re.Pattern[str], name: str, limit: int) -> bool:
    return len(name) <= limit and bool(pattern.fullmatch(name))


def _check_metadata(obj: Obj) -> None:
    name, kind = obj["metadata"]["name"], obj["kind"]
    if kind == "Namespace":
        assert _name_ok(DNS1123_LABEL, name, 63), f"namespace name {name!r}"
    elif kind == "Service":
        assert _name_ok(DNS1035_LABEL, name, 63), f"service name {name!r}"
    else:
        assert _name_ok(DNS1123_SUBDOMAIN, name, 253), f"{kind} name {name!r}"
    for key, value in obj["metadata"].get("labels", {}).items():
        prefix, _, short = key.rpartition("/")
        assert not prefix or _name_ok(DNS1123_SUBDOMAIN, prefix, 253), f"label key {key!r}"
        assert _name_ok(re.compile(_QUALIFIED), short, 63), f"label key {key!r}"
        assert _name_ok(LABEL_VALUE, value, 63), f"label value {value!r}"


def _of(objects: Iterable[Obj], kind: str) -> Iterator[Obj]:
    return (o for o in objects if o["kind"] == kind)


def check_group(objects: list[Obj]) -> None:
    """Each object valid (:func:`validate`), named as Kubernetes allows, in one namespace,
    and the Pod as ``ValidatePod`` wants it: unique container and volume names, mounts of
    volumes it has, references to Secrets and ConfigMaps (and their keys) that are among
    ``objects``, requests within limits, a liveness probe's successThreshold 1; a Service
    and NetworkPolicy that select the Pod; owner references naming the anchor."""
    for obj in objects:
        validate(obj)
        _check_metadata(obj)
    namespaces = {o["metadata"]["namespace"] for o in objects if o["kind"] != "Namespace"}
    assert len(namespaces) == 1, namespaces
    data = {(o["kind"], o["metadata"]["name"]): o.get("data", {}) for o in objects}
    (pod,) = _of(objects, "Pod")
    spec = pod["spec"]
    containers = [*spec.get("initContainers", []), *spec["containers"]]
    names = [c["name"] for c in containers]
    assert len(set(names)) == len(names), names
    assert all(_name_ok(DNS1123_LABEL, n, 63) for n in names), names
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    assert len(volumes) == len(spec.get("volumes", [])), "volume names repeat"
    assert all(_name_ok(DNS1123_LABEL, n, 63) for n in volumes), list(volumes)
    for volume in volumes.values():
        if "secret" in volume:
            assert ("Secret", volume["secret"]["secretName"]) in data
        if "configMap" in volume:
            assert ("ConfigMap", volume["configMap"]["name"]) in data
        if "csi" in volume:
            assert ("Secret", volume["csi"]["volumeAttributes"]["secretName"]) in data
    for container in containers:
        paths = [m["mountPath"] for m in container.get("volumeMounts", [])]
        assert len(set(paths)) == len(paths), paths
        assert {m["name"] for m in container.get("volumeMounts", [])} <= set(volumes)
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref is not None:
                assert ref["key"] in data[("Secret", ref["name"])], ref
                assert CONFIG_KEY.fullmatch(ref["key"]), ref
        _check_resources(container["resources"])
        if "livenessProbe" in container:
            assert container["livenessProbe"]["successThreshold"] == 1
    _check_scheduling(spec)
    for pull in spec.get("imagePullSecrets", []):
        assert ("Secret", pull["name"]) in data
    for kind in ("Secret", "ConfigMap"):
        for obj in _of(objects, kind):
            assert all(CONFIG_KEY.fullmatch(k) and len(k) <= 253 for k in obj.get("data", {}))
    labels = pod["metadata"]["labels"]
    for service in _of(objects, "Service"):
        assert service["spec"]["selector"].items() <= labels.items()
    for policy in _of(objects, "NetworkPolicy"):
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    _check_owners(objects)


def _quantity(text: str) -> float:
    units = {"m": 1e-3, "Mi": 2**20, "Gi": 2**30, "Ki": 2**10}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[:-len(suffix)]) * factor
    return float(text)


def _check_resources(resources: Obj) -> None:
    for kind, request in resources.get("requests", {}).items():
        limit = resources.get("limits", {}).get(kind)
        assert limit is None or _quantity(request) <= _quantity(limit), resources
    for kind, limit in resources.get("limits", {}).items():
        if "/" in kind and not kind.startswith("kubernetes.io/"):
            # An extended resource: whole, and a request (if any) equal to the limit.
            assert float(limit).is_integer(), resources
            request = resources.get("requests", {}).get(kind)
            assert request is None or _quantity(request) == _quantity(limit), resources
    for kind in resources.get("requests", {}):
        if "/" in kind and not kind.startswith("kubernetes.io/"):
            assert kind in resources.get("limits", {}), resources


def _check_scheduling(spec: Obj) -> None:
    """ValidateNodeSelectorRequirement and ValidateTolerations: In and NotIn need values,
    Exists and DoesNotExist none; a toleration of operator Exists has no value."""
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution")
    if required is not None:
        assert required["nodeSelectorTerms"], "no node selector terms"
        for term in required["nodeSelectorTerms"]:
            for expression in term.get("matchExpressions", []):
                values = expression.get("values") or []
                if expression["operator"] in ("In", "NotIn"):
                    assert values, expression
                    assert all(len(v) <= 63 and LABEL_VALUE.fullmatch(v) for v in values)
                elif expression["operator"] in ("Exists", "DoesNotExist"):
                    assert not values, expression
    for toleration in spec.get("tolerations", []):
        if toleration.get("operator") == "Exists":
            assert not toleration.get("value"), toleration


def _check_owners(objects: list[Obj]) -> None:
    anchors = [o for o in _of(objects, "ConfigMap") if o["metadata"]["name"].endswith(".anchor")]
    assert len(anchors) == 1, "one anchor"
    (anchor,) = anchors
    for obj in objects:
        owners = obj["metadata"].get("ownerReferences")
        if owners is None or obj is anchor:
            continue
        assert [(r["kind"], r["name"]) for r in owners] == [
            ("ConfigMap", anchor["metadata"]["name"])], owners
