"""The store's errors, in skiff's one hierarchy.

Two kinds live here. :class:`StoreError` and its children are the store's own
failures (the database file cannot be opened, is locked for too long, was
written by a newer skiff): sqlite3's exceptions never leave the package, they
are wrapped at the boundary with ``raise StoreError(...) from exc``. The
:class:`~skiff.errors.ArmError` children are conflicts only the store can see
atomically, inside its write transaction, and that the API answers as they
are, with ARM's own codes where ARM has one::

    SkiffError
     ├── StoreError                      the database failed (code InternalServerError)
     │    └── SchemaTooNew               the file was written by a newer skiff
     └── ArmError
          ├── ResourceGroupBeingDeleted  409: the resource group is being deleted (ARM's code)
          ├── ContainerGroupBeingDeleted 409 ContainerGroupDeleting: the group is being deleted
          ├── InvalidResourceGroupLocation 409: PUT of an existing group elsewhere (ARM's code)
          ├── InvalidResourceLocation    409: PUT of an existing container group elsewhere (ARM's)
          ├── InvalidSkipToken           400: a paging marker this store did not hand out
          ├── RoleAssignmentExists       409: the principal holds the role there already
          └── RoleAssignmentUpdateNotPermitted 409: a PUT changing an assignment
"""

from __future__ import annotations

from skiff.errors import ArmError, SkiffError


class StoreError(SkiffError):
    """The database failed: cannot be opened or written, or stayed locked too long."""

    code = "InternalServerError"


class SchemaTooNew(StoreError):
    """The database's schema version is newer than this code knows: refuse to touch it."""

    def __init__(self, path: str, found: int, known: int) -> None:
        super().__init__(
            f"the store {path} has schema version {found}, newer than the {known} this skiff "
            "knows: it was written by a newer skiff; upgrade skiff (the file is left untouched)"
        )
        self.found, self.known = found, known


class ResourceGroupBeingDeleted(ArmError):
    """The resource group is being deleted: nothing may be created in it until it is gone."""

    def __init__(self, name: str) -> None:
        super().__init__(
            409, "ResourceGroupBeingDeleted",
            f"The resource group '{name}' is in deprovisioning state and cannot perform "
            "this operation.", name,
        )


class ContainerGroupBeingDeleted(ArmError):
    """The container group is being deleted: it can neither change nor be created again yet."""

    def __init__(self, name: str) -> None:
        super().__init__(
            409, "ContainerGroupDeleting",
            f"The container group '{name}' is being deleted; try again once it is gone.", name,
        )


class InvalidResourceGroupLocation(ArmError):
    """A PUT names another location than the existing resource group's."""

    def __init__(self, name: str, existing: str, requested: str) -> None:
        super().__init__(
            409, "InvalidResourceGroupLocation",
            f"Invalid resource group location '{requested}'. The Resource group already "
            f"exists in location '{existing}'.", name,
        )


class InvalidResourceLocation(ArmError):
    """A PUT names another location than the existing container group's."""

    def __init__(self, name: str, resource_group: str, existing: str, requested: str) -> None:
        super().__init__(
            409, "InvalidResourceLocation",
            f"The resource '{name}' already exists in location '{existing}' in resource group "
            f"'{resource_group}'. A resource with the same name cannot be created in location "
            f"'{requested}'. Please select a new resource name.", name,
        )


class InvalidSkipToken(ArmError):
    """A paging marker this store did not hand out (or that was altered)."""

    def __init__(self) -> None:
        super().__init__(400, "InvalidSkipToken", "The paging marker is not valid.", "$skipToken")


class RoleAssignmentExists(ArmError):
    """ARM's 409: the principal already holds the role at the scope (another name)."""

    def __init__(self) -> None:
        super().__init__(409, "RoleAssignmentExists", "The role assignment already exists.")


class RoleAssignmentUpdateNotPermitted(ArmError):
    """ARM's 409: a PUT of an existing assignment's name with another scope, role or
    principal (an assignment is never changed, only deleted and made again)."""

    def __init__(self) -> None:
        super().__init__(409, "RoleAssignmentUpdateNotPermitted",
                         "Tenant ID, application ID, principal ID, and scope are not allowed "
                         "to be updated.")
