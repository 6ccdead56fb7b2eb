"""Unit tests for skiff.models.labels: the effective DNS label of each scope, and the FQDN."""

from __future__ import annotations

import hashlib

import pytest

from skiff.models.labels import effective_label, fqdn, scope_hash

IDS = {"tenant": "skiff", "subscription": "Sub-1", "resource_group": "RG", "group_uid": "u1"}


def test_unsecure_and_no_scope_keep_the_label_as_given() -> None:
    """Unsecure (the default) is the label itself, in lower case."""
    assert effective_label("MyApp1", None, **IDS) == "myapp1"
    assert effective_label("myapp1", "Unsecure", **IDS) == "myapp1"


def test_hashed_scopes_append_six_hex_digits_of_the_scope_identity() -> None:
    """Each hashed scope gives <label>-<first 6 hex of sha256('scope/parts')>, parts lower case."""
    def h(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:6]

    assert effective_label("app01", "TenantReuse", **IDS) == f"app01-{h('tenantreuse/skiff')}"
    assert (effective_label("app01", "SubscriptionReuse", **IDS)
            == f"app01-{h('subscriptionreuse/sub-1')}")
    assert (effective_label("app01", "ResourceGroupReuse", **IDS)
            == f"app01-{h('resourcegroupreuse/sub-1/rg')}")
    assert effective_label("app01", "Noreuse", **IDS) == f"app01-{h('noreuse/sub-1/rg/u1')}"


def test_the_hash_follows_the_scope_and_nothing_else() -> None:
    """SubscriptionReuse: same subscription, same name (other rg or uid); another one differs."""
    same = effective_label("app01", "SubscriptionReuse", **{**IDS, "resource_group": "other",
                                                          "group_uid": "u2"})
    assert same == effective_label("app01", "SubscriptionReuse", **IDS)
    assert same != effective_label("app01", "SubscriptionReuse", **{**IDS, "subscription": "s2"})
    assert (effective_label("app01", "Noreuse", **IDS)
            != effective_label("app01", "Noreuse", **{**IDS, "group_uid": "u2"}))
    assert scope_hash("SubscriptionReuse", "SUB-1") == scope_hash("subscriptionreuse", "sub-1")


def test_a_long_label_is_cut_to_fit_one_dns_label() -> None:
    """A 63-character label with a hash still makes a label of at most 63 characters."""
    label = "a" * 55 + "-" + "b" * 7
    result = effective_label(label, "TenantReuse", **IDS)
    assert len(result) == 62  # 55 letters (the cut '-' dropped), '-', 6 hex digits
    assert result.startswith("a" * 55 + "-")
    assert "--" not in result


def test_an_unknown_scope_is_a_programming_error() -> None:
    """Scopes are validated at PUT; an unknown one here is a bug, not a silent Unsecure."""
    with pytest.raises(ValueError, match="Whatever"):
        effective_label("app01", "Whatever", **IDS)


def test_fqdn_is_label_location_zone_in_lower_case() -> None:
    """<label>.<location>.<zone>, lower case, spaces dropped from the location."""
    assert fqdn("app01", "West Europe", "Skiff.Internal.") == "app01.westeurope.skiff.internal"
