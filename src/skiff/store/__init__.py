"""The control plane's durable store of desired state.

Everything an API answer promises (a container group, its generation, an
operation to poll, a token, a claimed DNS label) is committed and fsynced
here before the answer leaves, so that a crash or a restart forgets
nothing; the reconcile loop reads it back with :meth:`Store.pending_work`.

The layers, bottom up: :mod:`~skiff.store.schema` (the tables, as
versioned migrations), :mod:`~skiff.store.database` (one writer connection
behind a lock, a pool of readers, WAL, and the node key that seals the
groups' secrets: :mod:`~skiff.store.sealing`, :mod:`~skiff.store.bodysecrets`),
then the tables' methods in :mod:`~skiff.store.operations`, :mod:`~skiff.store.tokens`,
:mod:`~skiff.store.admission` (capacity, quotas, DNS labels) and
:mod:`~skiff.store.sqlite` (with :mod:`~skiff.store.paging` for listings),
joined in :class:`Store`. Records are frozen values
(:mod:`~skiff.store.records`); errors are in :mod:`~skiff.store.errors`.
"""

from skiff.store.database import StoreSettings
from skiff.store.errors import (
    ContainerGroupBeingDeleted,
    InvalidResourceGroupLocation,
    InvalidResourceLocation,
    InvalidSkipToken,
    ResourceGroupBeingDeleted,
    SchemaTooNew,
    StoreError,
)
from skiff.store.identities import IdentityRecord
from skiff.store.profiles import ProfileRecord, RevisionRecord
from skiff.store.records import (
    Desired,
    GroupRecord,
    OperationRecord,
    OperationStatus,
    ResourceGroupRecord,
    TokenRecord,
    VnetRecord,
    subscription_key,
)
from skiff.store.sqlite import Store
from skiff.store.storage import AccountRecord, Mounter, ShareRecord
from skiff.store.tokens import TOKEN_PREFIX

__all__ = [
    "TOKEN_PREFIX",
    "AccountRecord",
    "ContainerGroupBeingDeleted",
    "Desired",
    "GroupRecord",
    "IdentityRecord",
    "InvalidResourceGroupLocation",
    "InvalidResourceLocation",
    "InvalidSkipToken",
    "Mounter",
    "OperationRecord",
    "OperationStatus",
    "ProfileRecord",
    "ResourceGroupBeingDeleted",
    "ResourceGroupRecord",
    "RevisionRecord",
    "SchemaTooNew",
    "ShareRecord",
    "Store",
    "StoreError",
    "StoreSettings",
    "TokenRecord",
    "VnetRecord",
    "subscription_key",
]
