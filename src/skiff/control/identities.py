"""Managed identities of container groups: who they are, and the tokens they get.

A group with a system-assigned identity gets a principal of its own when it is
created with one (or is given one by an update): new principal and client ids,
kept in the group's stored ``identity`` across updates, gone with the group (or
when an update drops ``SystemAssigned``: added again, it is a new principal, as
in Azure). The user-assigned identities a group names are resources of their own
(:mod:`skiff.store.identities`), which must exist when the group is written.

Inside the group, the identity endpoint (:mod:`skiff.metadata`; on a cluster the App
Service protocol of :mod:`skiff.metadata.appservice`, with the same rules) asks
:meth:`GroupIdentities.answer` for a token: the group is the one whose namespace
the request came through; the identity is the system one, or the user-assigned
one that ``client_id``, ``object_id`` or ``msi_res_id`` picks (IMDS's rules: with
none given, the system identity, else the only user-assigned one). The token is
signed by the node's :class:`~skiff.core.identity.IdentityTokens`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from skiff.core.identity import IdentityTokens
from skiff.errors import ArmError
from skiff.metadata.endpoint import MetadataReply, imds_error
from skiff.models.identity import GroupIdentity, identity_id_parts, stored_group_identity
from skiff.store import GroupRecord, Store

#: The query parameters that pick one of a group's identities (IMDS's names).
SELECTORS = ("client_id", "object_id", "msi_res_id")


@dataclass(frozen=True)
class Principal:
    """One identity of a group, as a token names it."""

    object_id: str
    client_id: str
    tenant_id: str
    resource_id: str | None = None  # a user-assigned identity's ARM id


class GroupIdentities:
    """The identities of the node's groups, over the store and a token signer."""

    def __init__(self, store: Store, tokens: IdentityTokens, *,
                 unserved: str | None = None) -> None:
        self.store = store
        self.tokens = tokens
        #: Why the groups here reach no token endpoint (the kubernetes backend without
        #: ``--identity-url``): a group asking for an identity is refused with it (400),
        #: while user-assigned identities are still kept. None: the groups get tokens.
        self.unserved = unserved

    # ---- writing a group --------------------------------------------------------------

    def stored(self, identity: GroupIdentity | None, *, subscription: str, resource_group: str,
               name: str, existing: GroupRecord | None) -> dict[str, Any] | None:
        """What the group's body keeps as its ``identity``: the system identity's ids
        (kept from ``existing`` when it had one); 400 if a user-assigned identity named
        is not there. The caller checked that it may use each of them."""
        if identity is None:
            return None
        if self.unserved is not None and (identity.system or identity.user_assigned):
            raise ArmError(400, "ManagedIdentityUnavailable", self.unserved, target="identity")
        for key in identity.user_assigned:
            if self.store.identity_by_id(key) is None:
                raise _identity_not_found(key, subscription, resource_group, name)
        before = (existing.body.get("identity") if existing is not None else None) or {}
        if identity.system and before.get("principalId"):
            principal, client = str(before["principalId"]), str(before.get("clientId", ""))
            tenant = str(before.get("tenantId") or self.tokens.tenant_of(subscription))
        else:
            principal, client = str(uuid.uuid4()), str(uuid.uuid4())
            tenant = self.tokens.tenant_of(subscription)
        return stored_group_identity(identity, principal_id=principal,
                                     client_id=client or str(uuid.uuid4()), tenant_id=tenant)

    def lookup(self, resource_id: str) -> tuple[str, str] | None:
        """A user-assigned identity's (principalId, clientId), None if it is gone."""
        found = self.store.identity_by_id(resource_id)
        return None if found is None else (found.principal_id, found.client_id)

    # ---- the endpoint inside the group ------------------------------------------------

    def principals(self, group_id: str) -> tuple[Principal | None, list[Principal]]:
        """The group's system identity (None without one) and its user-assigned ones
        that still exist."""
        record = self.store.get_group_by_uid(group_id)
        if record is None or record.desired == "deleted":
            return None, []
        stored = record.body.get("identity") or {}
        system = None
        if stored.get("principalId"):
            system = Principal(str(stored["principalId"]), str(stored.get("clientId", "")),
                               str(stored.get("tenantId", "")))
        users = []
        for key in stored.get("userAssignedIdentities") or {}:
            found = self.store.identity_by_id(key)
            if found is not None:
                users.append(Principal(found.principal_id, found.client_id, found.tenant_id,
                                       found.resource_id))
        return system, users

    def answer(self, group_id: str, query: Mapping[str, str]) -> MetadataReply:
        """IMDS's answer to a token request from inside group ``group_id``."""
        system, users = self.principals(group_id)
        principal = _pick(system, users, query)
        if isinstance(principal, MetadataReply):
            return principal
        resource = query["resource"]
        issued = self.tokens.issue(principal.object_id, principal.tenant_id,
                                   principal.client_id, resource)
        now = int(time.time())
        # Every number a string, as IMDS answers (the SDKs read both).
        return MetadataReply(200, {
            "access_token": issued.token,
            "client_id": principal.client_id,
            "expires_in": str(issued.expires_on - now),
            "expires_on": str(issued.expires_on),
            "ext_expires_in": str(issued.expires_on - now),
            "not_before": str(now),
            "resource": resource,
            "token_type": "Bearer",
        })


def _pick(system: Principal | None, users: list[Principal],
          query: Mapping[str, str]) -> Principal | MetadataReply:
    chosen = [(name, query[name]) for name in SELECTORS if query.get(name)]
    if len(chosen) > 1:
        return imds_error("Only one of client_id, object_id and msi_res_id may be given")
    everyone = ([system] if system is not None else []) + users
    if not chosen:
        if system is not None:
            return system
        if len(users) == 1:
            return users[0]
        if users:
            return imds_error("Multiple user assigned identities exist, please specify the "
                              "clientId / resourceId of the identity in the token request")
        return imds_error("Identity not found")
    name, value = chosen[0]
    value = value.strip().lower()
    for principal in everyone:
        if name == "client_id" and principal.client_id.lower() == value:
            return principal
        if name == "object_id" and principal.object_id.lower() == value:
            return principal
        if (name == "msi_res_id" and principal.resource_id is not None
                and principal.resource_id.lower() == value.rstrip("/")):
            return principal
    return imds_error("Identity not found")


def _identity_not_found(key: str, subscription: str, resource_group: str,
                        name: str) -> ArmError:
    parts = identity_id_parts(key)
    rg, uai = (parts[1], parts[2]) if parts is not None else ("", key)
    group = (f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/"
             f"Microsoft.ContainerInstance/containerGroups/{name}")
    return ArmError(400, "FailedIdentityOperation",
                    f"Identity operation for resource '{group}' failed with error 'Failed to "
                    f"perform resource identity operation. Status: 'NotFound'. Response: "
                    f"'{{\"error\":{{\"code\":\"ResourceNotFound\",\"message\":\"The Resource "
                    f"'Microsoft.ManagedIdentity/userAssignedIdentities/{uai}' under resource "
                    f"group '{rg}' was not found.\"}}}}'.'", target="identity")
