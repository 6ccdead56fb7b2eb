"""A small typed HTTP client of skiff's ARM API, for the CLI and for tests.

skiff speaks the ACI REST API (``Microsoft.ContainerInstance``, api-version
2023-05-01), so the Azure SDK works against it; this client exists because
the ``skiff`` CLI needs less than the SDK and must say more when something
fails: every answer is decoded JSON (``dict``), every failure one
:class:`ApiError` with the HTTP status and the ARM code the server sent, and
nothing of httpx or websockets leaks out (their exceptions are mapped at the
boundary to ``ApiError(0, "ConnectionFailed", ...)``).

Long-running operations follow ARM's contract as the SDK's poller does: poll
the ``Azure-AsyncOperation`` URL (else ``Location``, else the resource's
``provisioningState``), waiting ``Retry-After`` seconds between polls, until
the status is terminal. Links the server hands out (operations, ``nextLink``)
are only followed on the API's own origin: a link to another host is re-rooted
on the base URL, so the bearer token never travels anywhere else.

The virtual networks that private groups are placed in are
``Microsoft.Network`` resources (``virtualNetworks`` and their ``subnets``,
same api-version); the client has typed methods for them too, which answer
the resource as the API accepted it (waiting, should the API answer with an
operation, as Azure does); so has it for storage accounts and their file shares
(``Microsoft.Storage``, :mod:`~skiff.client.storage`) and user-assigned managed
identities (``Microsoft.ManagedIdentity``, :mod:`~skiff.client.identities`), and the
container group profiles groups are made from (:mod:`~skiff.client.profiles`, in
api-version 2025-09-01, the first stable one that has them).

Configuration comes in explicitly (:class:`SkiffClient`) or from the
environment (:meth:`SkiffClient.from_env`): ``SKIFF_URL``, ``SKIFF_TOKEN``
(else ``<data root>/admin.token``), ``SKIFF_CA`` (else ``<data root>/ca.pem``
when it exists), ``SKIFF_SUBSCRIPTION``; the data root is ``SKIFF_DATA_ROOT``.

The parts: :mod:`~skiff.client.errors` (the error tree, what an answer means),
:mod:`~skiff.client.polling` (the one loop that waits for operations),
:mod:`~skiff.client.http` (configuration, requests, pages), and the resources
in :mod:`~skiff.client.groups`, :mod:`~skiff.client.containers` and
:mod:`~skiff.client.networks`, and the service principals and role assignments in
:mod:`~skiff.client.access`, which :class:`SkiffClient` puts together.
"""

from __future__ import annotations

from skiff.client.access import AccessApi
from skiff.client.containers import ContainersApi, WebSocketTarget
from skiff.client.errors import ApiError, ClientConfigError, OperationFailed, error_from
from skiff.client.groups import PROVIDER
from skiff.client.http import API_VERSION, DEFAULT_SUBSCRIPTION, DEFAULT_URL
from skiff.client.identities import IDENTITY_PROVIDER, IdentitiesApi
from skiff.client.monitor import INSIGHTS_PROVIDER, MonitorApi
from skiff.client.networks import NETWORK_PROVIDER, NetworksApi
from skiff.client.ngroups import NGroupsApi
from skiff.client.polling import Operation, Poller, Progress
from skiff.client.profiles import PROFILES_API_VERSION, ProfilesApi
from skiff.client.standby import STANDBY_PROVIDER, StandbyApi
from skiff.client.storage import STORAGE_PROVIDER, StorageApi
from skiff.client.usage import COSTS_PROVIDER, UsageApi

__all__ = [
    "API_VERSION",
    "COSTS_PROVIDER",
    "DEFAULT_SUBSCRIPTION",
    "DEFAULT_URL",
    "IDENTITY_PROVIDER",
    "INSIGHTS_PROVIDER",
    "NETWORK_PROVIDER",
    "PROFILES_API_VERSION",
    "PROVIDER",
    "STANDBY_PROVIDER",
    "STORAGE_PROVIDER",
    "AccessApi",
    "ApiError",
    "ClientConfigError",
    "IdentitiesApi",
    "MonitorApi",
    "NGroupsApi",
    "NetworksApi",
    "Operation",
    "OperationFailed",
    "Poller",
    "ProfilesApi",
    "Progress",
    "SkiffClient",
    "StandbyApi",
    "StorageApi",
    "UsageApi",
    "WebSocketTarget",
    "error_from",
]


class SkiffClient(ContainersApi, StorageApi, AccessApi, IdentitiesApi, MonitorApi, UsageApi,
                  NGroupsApi, ProfilesApi, StandbyApi):
    """skiff's ARM API for container groups, their containers, their profiles, NGroups,
    the standby pools that keep groups ready, the virtual networks they are placed in,
    the storage accounts and file shares they mount, the managed identities they hold,
    their metrics and their usage's cost, each in the shapes of its api-version."""
