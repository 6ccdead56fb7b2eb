"""Unit tests of skiff.control.access (roles, scopes, the cached authorization), of
skiff.control.identity (the node's JWTs) and of the store's principals and role
assignments."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from skiff.control.access import (
    CONTRIBUTOR,
    OWNER,
    READER,
    Access,
    Caller,
    role_named,
    scope_of,
)
from skiff.control.identity import Issuer, TokenRejected
from skiff.errors import ArmError, SkiffError
from skiff.store import Store
from skiff.store.errors import RoleAssignmentExists, RoleAssignmentUpdateNotPermitted

SUB = "/subscriptions/sub-a"
RG = f"{SUB}/resourceGroups/rg"
GROUP = f"{RG}/providers/Microsoft.ContainerInstance/containerGroups/g"
ACI = "Microsoft.ContainerInstance/containerGroups"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "s.db")


# ---- scopes and roles -----------------------------------------------------------------------


@pytest.mark.parametrize(("path", "scope"), [
    (GROUP, GROUP),
    (f"{GROUP}/restart", GROUP),
    (f"{GROUP}/containers/c/logs", f"{GROUP}/containers/c"),
    (f"{RG}/providers/Microsoft.ContainerInstance/containerGroups", RG),
    (f"{SUB}/providers/Microsoft.ContainerInstance/containerGroups", SUB),
    (f"{SUB}/resourcegroups", SUB),
    (RG, RG),
    (f"{SUB}/providers/Microsoft.ContainerInstance/locations/l/operations/o",
     f"{SUB}/providers/Microsoft.ContainerInstance/locations/l/operations/o"),
    (f"{SUB}/providers/Microsoft.Storage/checkNameAvailability", SUB),
    ("/providers/Microsoft.ContainerInstance/operations", ""),
])
def test_scope_of_a_path_is_the_resource_it_acts_on(path: str, scope: str) -> None:
    """A collection's or an action's path acts on the resource above it."""
    assert scope_of(path) == scope


def test_the_built_in_roles_are_azures() -> None:
    """Owner does all; Contributor all but granting access; Reader reads only (logs too,
    as Azure's */read), never exec, attach, listKeys or a write."""
    assert (OWNER.id, CONTRIBUTOR.id, READER.id) == (
        "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "b24988ac-6180-42a0-ab88-20f7382dd24c",
        "acdd72a7-3d97-46b9-8ea0-e9b62cb98f8c")
    assert OWNER.allows("Microsoft.Authorization/roleAssignments/write")
    assert not CONTRIBUTOR.allows("Microsoft.Authorization/roleAssignments/write")
    assert not CONTRIBUTOR.allows("microsoft.authorization/ROLEASSIGNMENTS/delete")
    assert CONTRIBUTOR.allows("Microsoft.Authorization/roleAssignments/read")
    assert CONTRIBUTOR.allows(f"{ACI}/containers/exec/action")
    for action in (f"{ACI}/read", f"{ACI}/containers/logs/read",
                   "Microsoft.Resources/subscriptions/resourceGroups/read"):
        assert READER.allows(action), action
    for action in (f"{ACI}/write", f"{ACI}/delete", f"{ACI}/containers/exec/action",
                   f"{ACI}/containers/attach/action", f"{ACI}/restart/action",
                   "Microsoft.Storage/storageAccounts/listkeys/action",
                   "Microsoft.Authorization/roleAssignments/write"):
        assert not READER.allows(action), action


def test_roles_are_named_by_name_guid_or_id() -> None:
    """As az's --role: a name in any case, a GUID, a role definition's id."""
    assert role_named("reader") is READER
    assert role_named(CONTRIBUTOR.id.upper()) is CONTRIBUTOR
    assert role_named(f"{SUB}/providers/Microsoft.Authorization/roleDefinitions/{OWNER.id}") \
        is OWNER
    assert role_named("Superuser") is None


# ---- authorization --------------------------------------------------------------------------


def principal(store: Store, name: str = "app") -> Caller:
    record, _ = store.create_principal(name)
    return Caller(record.object_id, record.app_id, "ServicePrincipal", app_id=record.app_id)


def test_a_role_reaches_its_scope_and_below_never_above_or_beside(store: Store) -> None:
    """A Reader of a resource group reads in it, not in its subscription nor in a
    resource group whose name starts alike."""
    access = Access(store)
    caller = principal(store)
    store.put_assignment("a" * 8 + "-0000-0000-0000-" + "0" * 12, RG, READER.id,
                         caller.object_id, "ServicePrincipal")
    assert access.permits(caller, f"{ACI}/read", GROUP)
    assert access.permits(caller, f"{ACI}/read", RG.upper())
    assert not access.permits(caller, f"{ACI}/write", GROUP)
    assert not access.permits(caller, f"{ACI}/read", SUB)
    assert not access.permits(caller, f"{ACI}/read", f"{RG}2/providers/x/y/z")
    assert access.may_see(caller, SUB)
    assert not access.may_see(caller, "/subscriptions/sub-b")


def test_the_cache_follows_every_change_of_assignments(store: Store) -> None:
    """A grant works at once after it is made, and stops at once after it is deleted
    (or its principal is)."""
    access = Access(store)
    caller = principal(store)
    assert not access.permits(caller, f"{ACI}/write", GROUP)
    name = "b" * 8 + "-0000-0000-0000-" + "0" * 12
    store.put_assignment(name, SUB, CONTRIBUTOR.id, caller.object_id, "ServicePrincipal")
    assert access.permits(caller, f"{ACI}/write", GROUP)
    store.delete_assignment(name)
    assert not access.permits(caller, f"{ACI}/write", GROUP)
    store.put_assignment(name, SUB, CONTRIBUTOR.id, caller.object_id, "ServicePrincipal")
    assert access.permits(caller, f"{ACI}/write", GROUP)
    store.delete_principal(caller.app_id)
    assert not access.permits(caller, f"{ACI}/write", GROUP)
    assert store.assignments() == []


def test_legacy_tokens_keep_their_meaning(store: Store) -> None:
    """The admin token is Owner of everything; a subscription's token Owner of its own
    subscription (in any case) and of nothing else."""
    access = Access(store)
    admin = Caller("t1", "admin", "Token", owner_of="")
    bound = Caller("t2", "acme", "Token", owner_of="/subscriptions/ACME")
    assert admin.admin
    assert not bound.admin
    assert access.permits(admin, "Microsoft.Authorization/roleAssignments/write", GROUP)
    assert access.permits(bound, f"{ACI}/write", "/subscriptions/acme/resourceGroups/x")
    assert not access.permits(bound, f"{ACI}/read", "/subscriptions/acme2")
    assert not access.permits(bound, f"{ACI}/read", SUB)


def test_a_refusal_is_arms_authorization_failed(store: Store) -> None:
    """403 AuthorizationFailed in ARM's words, naming the client, action and scope."""
    caller = principal(store)
    with pytest.raises(ArmError) as info:
        Access(store).authorize(caller, f"{ACI}/read", GROUP)
    assert (info.value.status, info.value.code) == (403, "AuthorizationFailed")
    assert info.value.message == (
        f"The client '{caller.client}' with object id '{caller.object_id}' does not have "
        f"authorization to perform action '{ACI}/read' over scope '{GROUP}' or the scope is "
        "invalid. If access was recently granted, please refresh your credentials.")


def test_assignments_conflict_as_arms(store: Store) -> None:
    """The same role at the same scope twice: RoleAssignmentExists; a name reused for
    another scope: RoleAssignmentUpdateNotPermitted; the same PUT again: found as is."""
    caller = principal(store)
    name = "c" * 8 + "-0000-0000-0000-" + "0" * 12
    _, created = store.put_assignment(name, RG, READER.id, caller.object_id, "ServicePrincipal")
    assert created
    assert store.put_assignment(name, RG.upper(), READER.id, caller.object_id,
                                "ServicePrincipal")[1] is False
    with pytest.raises(RoleAssignmentUpdateNotPermitted):
        store.put_assignment(name, SUB, READER.id, caller.object_id, "ServicePrincipal")
    with pytest.raises(RoleAssignmentExists):
        store.put_assignment("d" * 8 + "-0000-0000-0000-" + "0" * 12, RG, READER.id,
                             caller.object_id, "ServicePrincipal")


# ---- principals' secrets --------------------------------------------------------------------


def test_a_secret_is_checked_and_stored_only_as_a_hash(store: Store, tmp_path: Path) -> None:
    """A secret works until reset (append keeps the old one); the store file holds no
    secret; secrets are 256-bit, prefixed."""
    record, secret = store.create_principal("ci")
    assert secret.startswith("skfs_")
    assert len(secret) >= 40
    assert store.check_secret(record.app_id, secret) == record
    assert store.check_secret(record.app_id, secret + "x") is None
    assert store.check_secret(record.object_id, secret) is None  # the app id signs in
    reset = store.reset_secret(record.app_id, append=True)
    assert reset is not None
    second = reset[1]
    assert store.check_secret(record.app_id, secret) == record
    assert store.check_secret(record.app_id, second) == record
    reset = store.reset_secret(record.object_id)
    assert reset is not None
    assert store.check_secret(record.app_id, secret) is None
    assert store.check_secret(record.app_id, reset[1]) == record
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("s.db*"))
    for value in (secret, second, reset[1]):
        assert value.encode() not in raw


def test_the_tenant_is_made_once_and_kept(tmp_path: Path) -> None:
    """One GUID per node, the same at every opening."""
    with Store(tmp_path / "s.db") as first:
        tenant = first.tenant_id()
    with Store(tmp_path / "s.db") as again:
        assert again.tenant_id() == tenant
    assert len(tenant) == 36
    assert tenant[14] == "4"
    assert tenant.count("-") == 4


# ---- tokens ---------------------------------------------------------------------------------


def claims_of(token: str) -> dict[str, object]:
    body = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))


def test_a_token_carries_entras_claims_and_verifies(tmp_path: Path) -> None:
    """RS256, the key's kid in the header and in the JWKS; tid, oid, appid, aud, iss,
    iat, nbf, exp in the claims."""
    issuer = Issuer(tmp_path / "keys", "tenant-1")
    token, lifetime = issuer.issue(oid="o", appid="a", aud="https://x/", iss="https://x/t")
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "RS256"
    assert header["kid"] == issuer.kid
    assert issuer.jwks()["keys"][0]["kid"] == issuer.kid
    claims = claims_of(token)
    assert {"tid", "oid", "appid", "aud", "iss", "iat", "nbf", "exp"} <= set(claims)
    assert claims["exp"] == claims["iat"] + lifetime  # type: ignore[operator]
    verified = issuer.verify(token)
    assert (verified.oid, verified.appid, verified.tid, verified.aud) == (
        "o", "a", "tenant-1", "https://x/")


def test_the_signing_key_is_private_and_kept(tmp_path: Path) -> None:
    """Made once, 0600; a second issuer on the same directory has the same kid and
    verifies the first one's tokens; a key open to others is refused."""
    first = Issuer(tmp_path / "keys", "t")
    path = tmp_path / "keys" / "signing.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = Issuer(tmp_path / "keys", "t")
    assert second.kid == first.kid
    token, _ = first.issue(oid="o", appid="a", aud="x", iss="i")
    assert second.verify(token).oid == "o"
    os.chmod(path, 0o644)
    with pytest.raises(SkiffError, match="open to others"):
        Issuer(tmp_path / "keys", "t")


def test_tampered_foreign_expired_and_unsigned_tokens_are_refused(tmp_path: Path) -> None:
    """A changed claim, another node's key, an expired token, alg none, garbage:
    each refused with ARM's code."""
    now = [1_000_000.0]
    issuer = Issuer(tmp_path / "a", "t", clock=lambda: now[0])
    other = Issuer(tmp_path / "b", "t", clock=lambda: now[0])
    token, lifetime = issuer.issue(oid="o", appid="a", aud="x", iss="i")
    head, body, sig = token.split(".")
    forged = base64.urlsafe_b64encode(json.dumps(claims_of(token) | {"oid": "admin"}).encode()
                                      ).rstrip(b"=").decode()
    unsigned_head = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    foreign, _ = other.issue(oid="o", appid="a", aud="x", iss="i")
    for bad in (f"{head}.{forged}.{sig}", foreign, f"{unsigned_head}.{body}.", "eyJ.x.y",
                f"{head}.{body}.{sig[:-4]}AAAA"):
        with pytest.raises(TokenRejected) as info:
            issuer.verify(bad)
        assert info.value.code == "InvalidAuthenticationToken"
    assert issuer.verify(token).oid == "o"  # and now it is cached
    now[0] += lifetime + 1
    with pytest.raises(TokenRejected) as expired:
        issuer.verify(token)
    assert expired.value.code == "ExpiredAuthenticationToken"
    assert "is earlier than current UTC time" in expired.value.message
