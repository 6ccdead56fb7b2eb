"""Who may do what, where: Azure RBAC's subset that skiff answers by.

Every API route names its ARM action (``Microsoft.ContainerInstance/containerGroups/
read``, ``.../containers/exec/action``, ``Microsoft.Storage/storageAccounts/listkeys/
action``...); a request is allowed when the caller holds, at the request's scope or
above it, a role whose actions match that action and whose notActions do not
(:meth:`Access.permits`). The scope is the resource's ARM id, read from the path
alone (:func:`scope_of`), before anything is looked up: so a refusal (403
``AuthorizationFailed``, in ARM's words) is the same whether the resource exists or
not, and tells nothing of what is there.

The roles are Azure's built-in Owner, Contributor and Reader, with their real role
definition ids and permissions: Reader reads (``*/read``: a container's logs too, as in
Azure) but neither writes, execs, attaches nor reads secrets (listKeys is an action);
Contributor does all but grant access; Owner does all.

Callers come in two kinds. A service principal (or any JWT skiff issued) holds the
roles assigned to its object id. A legacy opaque token keeps its meaning as an
implicit assignment: the admin token is Owner of the root scope (everything, and the
node owner's admin routes), a subscription's token Owner of that subscription.

Authorization runs on every request, so a principal's grants are cached (by object id)
until the store's :attr:`~skiff.store.principals.PrincipalsMixin.access_generation`
moves, and each (role, action) answer is cached too: a check is a few dictionary
look-ups and string prefix tests.
"""

from __future__ import annotations

import fnmatch
import re
import threading
from dataclasses import dataclass, field
from typing import Literal

from skiff.errors import ArmError
from skiff.store import Store
from skiff.store.principals import scope_key


@dataclass(frozen=True)
class Role:
    """A built-in role definition."""

    id: str  # the role definition's GUID
    name: str
    description: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    _patterns: tuple[re.Pattern[str], ...] = field(default=(), repr=False, compare=False)
    _not_patterns: tuple[re.Pattern[str], ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        def compile_(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
            return tuple(re.compile(fnmatch.translate(p.lower())) for p in patterns)

        object.__setattr__(self, "_patterns", compile_(self.actions))
        object.__setattr__(self, "_not_patterns", compile_(self.not_actions))

    def allows(self, action: str) -> bool:
        """Whether the role's actions match ``action`` and its notActions do not (wildcards
        as Azure's: ``*`` matches any text, case ignored)."""
        key = action.lower()
        return (any(p.fullmatch(key) for p in self._patterns)
                and not any(p.fullmatch(key) for p in self._not_patterns))


OWNER = Role("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Owner",
             "Grants full access to manage all resources, including the ability to assign "
             "roles in Azure RBAC.", ("*",))
CONTRIBUTOR = Role("b24988ac-6180-42a0-ab88-20f7382dd24c", "Contributor",
                   "Grants full access to manage all resources, but does not allow you to "
                   "assign roles in Azure RBAC, manage assignments in Azure Blueprints, or "
                   "share image galleries.", ("*",),
                   ("Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write",
                    "Microsoft.Authorization/elevateAccess/Action",
                    "Microsoft.Blueprint/blueprintAssignments/write",
                    "Microsoft.Blueprint/blueprintAssignments/delete",
                    "Microsoft.Compute/galleries/share/action",
                    "Microsoft.Purview/consents/write", "Microsoft.Purview/consents/delete",
                    "Microsoft.Resources/deploymentStacks/manageDenySetting/action",
                    "Microsoft.Subscription/cancel/action",
                    "Microsoft.Subscription/enable/action"))
READER = Role("acdd72a7-3d97-46b9-8ea0-e9b62cb98f8c", "Reader",
              "View all resources, but does not allow you to make any changes.", ("*/read",))
#: The built-in roles, by their GUID.
ROLES: dict[str, Role] = {r.id: r for r in (OWNER, CONTRIBUTOR, READER)}


def role_named(text: str) -> Role | None:
    """The role a name, a GUID or a role definition's ARM id names (as az's ``--role``)."""
    key = text.strip().rstrip("/").lower()
    guid = key.rsplit("/", 1)[-1]
    for role in ROLES.values():
        if key == role.name.lower() or guid == role.id:
            return role
    return None


@dataclass(frozen=True)
class Caller:
    """Who sent a request: a service principal, or a legacy opaque token."""

    #: The principal's object id (role assignments name it); a legacy token's id.
    object_id: str
    #: How ARM's messages name the client: a principal's app id, a token's name.
    client: str
    kind: Literal["ServicePrincipal", "Token"]
    #: A legacy token's implicit Owner scope: '' for the admin token (the root: every
    #: scope), '/subscriptions/<id>' for a subscription's token; None for a principal.
    owner_of: str | None = None
    app_id: str = ""

    @property
    def admin(self) -> bool:
        """The node owner's admin token (the only caller of the admin routes)."""
        return self.owner_of == ""


def scope_of(path: str) -> str:
    """The scope a request's path acts on: the ARM id of the resource it names (a
    collection's or an action's path: the resource above it; the root: '').

    ``/subscriptions/s/resourceGroups/rg/providers/NS/containerGroups/g/restart`` acts on
    ``.../containerGroups/g``; ``/subscriptions/s/resourcegroups`` on ``/subscriptions/s``.
    """
    segments = [s for s in path.split("/") if s]
    lowered = [s.lower() for s in segments]
    if "providers" in lowered:
        at = lowered.index("providers")
        head, rest = segments[:at], segments[at + 2:]
        if len(rest) % 2:
            rest = rest[:-1]
        kept = [*head, *segments[at:at + 2], *rest] if rest else head
    else:
        kept = segments[:len(segments) - len(segments) % 2]
    return "/" + "/".join(kept) if kept else ""


def _within(scope: str, grant: str) -> bool:
    """Whether a grant at ``grant`` (a key) reaches ``scope`` (a key): at it or above it."""
    return grant == "" or scope == grant or scope.startswith(grant + "/")


#: An entry of a principal's cached grants: (scope key, role).
Grant = tuple[str, Role]


class Access:
    """Authorization over one store's role assignments; a cache in front of them."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._generation = -1
        self._grants: dict[str, tuple[Grant, ...]] = {}
        self._allowed: dict[tuple[str, str], bool] = {}

    def grants(self, caller: Caller) -> tuple[Grant, ...]:
        """The caller's (scope key, role) pairs: its implicit one, and its assignments."""
        generation = self._store.access_generation
        if generation != self._generation:
            with self._lock:
                self._grants = {}
                self._generation = generation
        found = self._grants.get(caller.object_id)
        if found is None:
            found = tuple((scope_key(a.scope), ROLES[a.role_id])
                          for a in self._store.assignments(caller.object_id)
                          if a.role_id in ROLES)
            with self._lock:
                if len(self._grants) > 10_000:
                    self._grants.clear()
                self._grants[caller.object_id] = found
        if caller.owner_of is not None:
            found = ((scope_key(caller.owner_of), OWNER), *found)
        return found

    def permits(self, caller: Caller, action: str, scope: str) -> bool:
        """Whether ``caller`` may perform ``action`` at ``scope`` (an ARM id)."""
        key = scope_key(scope)
        for grant, role in self.grants(caller):
            if _within(key, grant) and self._role_allows(role, action):
                return True
        return False

    def _role_allows(self, role: Role, action: str) -> bool:
        cached = self._allowed.get((role.id, action))
        if cached is None:
            cached = self._allowed[(role.id, action)] = role.allows(action)
        return cached

    def roles_at(self, caller: Caller, scope: str) -> list[Role]:
        """The roles the caller holds at ``scope`` or above it, one per grant (what ARM's
        ``.../providers/Microsoft.Authorization/permissions`` lists)."""
        key = scope_key(scope)
        return [role for grant, role in self.grants(caller) if _within(key, grant)]

    def may_see(self, caller: Caller, scope: str) -> bool:
        """Whether the caller holds any role at, above or below ``scope`` (what makes a
        subscription appear in its ``GET /subscriptions``)."""
        key = scope_key(scope)
        return any(_within(key, grant) or _within(grant, key)
                   for grant, _ in self.grants(caller))

    def authorize(self, caller: Caller, action: str, scope: str) -> None:
        """Nothing if permitted, else 403 ``AuthorizationFailed`` in ARM's words."""
        if not self.permits(caller, action, scope):
            raise authorization_failed(caller, action, scope)


def authorization_failed(caller: Caller, action: str, scope: str) -> ArmError:
    return ArmError(403, "AuthorizationFailed",
                    f"The client '{caller.client}' with object id '{caller.object_id}' does "
                    f"not have authorization to perform action '{action}' over scope "
                    f"'{scope or '/'}' or the scope is invalid. If access was recently "
                    "granted, please refresh your credentials.")
