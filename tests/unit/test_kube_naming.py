"""Unit tests for skiff.kube.naming: namespaces per resource group, objects' names, labels."""

from __future__ import annotations

import pytest

from skiff.errors import InvalidInput
from skiff.kube import naming
from skiff.testing.kube import DNS1035_LABEL, DNS1123_LABEL, DNS1123_SUBDOMAIN, LABEL_VALUE

SUB = "9a0c0e2b-5c1e-4a40-9d2e-7c4b0f3d1a11"


@pytest.mark.parametrize("rg", ["rg", "My_Resource.Group(1)", "x" * 90, "-_-", "(((",
                                "Ünïcode-rg"])
def test_a_namespace_is_a_dns_label_whatever_the_resource_group(rg: str) -> None:
    """Every resource group ARM allows gives a DNS-1123 label of at most 63 characters."""
    name = naming.namespace_name(SUB, rg)
    assert len(name) <= 63
    assert DNS1123_LABEL.fullmatch(name), name
    assert name.startswith("skiff-")


def test_namespaces_tell_the_resource_group_and_never_collide() -> None:
    """The cleaned name is readable; names that clean up alike, or differ only in their
    subscription, get different namespaces; ARM's case-insensitive names the same one."""
    assert naming.namespace_name(SUB, "web-prod").startswith("skiff-web-prod-")
    assert naming.namespace_name(SUB, "my_rg") != naming.namespace_name(SUB, "my.rg")
    assert naming.namespace_name(SUB, "rg") != naming.namespace_name(SUB.replace("9", "8"), "rg")
    assert naming.namespace_name(SUB, "MyRG") == naming.namespace_name(SUB.upper(), "myrg")
    long_a, long_b = "a" * 80 + "1", "a" * 80 + "2"
    assert naming.namespace_name(SUB, long_a) != naming.namespace_name(SUB, long_b)


def test_a_namespace_prefix_is_checked() -> None:
    """A prefix that could not begin a namespace is refused with the rule; a good one is
    used as given."""
    assert naming.namespace_name(SUB, "rg", prefix="aci").startswith("aci-rg-")
    for bad in ("Skiff", "-x", "x" * 21, ""):
        with pytest.raises(InvalidInput, match="namespace prefix"):
            naming.namespace_name(SUB, "rg", prefix=bad)
    with pytest.raises(InvalidInput, match="DNS-1123 label"):
        naming.check_namespace("Team_A")


def test_a_service_name_is_a_dns1035_label() -> None:
    """A group whose name starts with a digit gets a Service name starting with a letter;
    others keep their name."""
    assert naming.service_name("web") == "web"
    for group in ("1web", "9" * 63):
        name = naming.service_name(group)
        assert len(name) <= 63
        assert DNS1035_LABEL.fullmatch(name), name
    assert naming.service_name("1web") != naming.service_name("1wec")


def test_names_skiff_adds_fit_and_cannot_be_a_tenants() -> None:
    """Added containers and volumes are DNS labels holding '--' (which ACI's names never
    do), cut with a hash when long; object names are subdomains."""
    assert naming.added_name("git", "repo") == "git--repo"
    long = naming.added_name("configmap", "c" * 63)
    assert len(long) <= 63
    assert DNS1123_LABEL.fullmatch(long)
    assert "--" in long
    assert long != naming.added_name("configmap", "c" * 62 + "d")
    assert naming.object_name("web", "volume", "data") == "web.volume.data"
    odd = naming.object_name("web", "Odd_Role")
    assert DNS1123_SUBDOMAIN.fullmatch(odd), odd


def test_label_values_too_long_or_odd_are_hashed() -> None:
    """A value that may be a label's is kept; another becomes the same hash each time."""
    assert naming.label_value("abc-123") == "abc-123"
    hashed = naming.label_value("x" * 64)
    assert hashed == naming.label_value("x" * 64)
    assert LABEL_VALUE.fullmatch(hashed)
    assert len(hashed) <= 63
