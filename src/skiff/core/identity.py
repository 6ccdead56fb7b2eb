"""The seam between managed identities and whatever signs their tokens.

A container group's managed identity (system-assigned, or the user-assigned
identities it names) gets its access tokens from the instance metadata endpoint
inside the group (:mod:`skiff.metadata`). Which principal asks, and for which
audience, is decided by the control plane (:mod:`skiff.control.identities`); the
token itself is made by an :class:`IdentityTokens`, the one thing the sign-in side
of skiff (its token endpoint, its keys) must provide: the node's is
:class:`skiff.control.identity.ManagedIdentityTokens`, over the key that signs the
API's tokens, so the API accepts a group's tokens for its identities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class IssuedToken:
    """An access token and when it expires (seconds since the epoch)."""

    token: str
    expires_on: int


class IdentityTokens(Protocol):
    """Signs access tokens for managed identities, and names their tenant."""

    def issue(self, principal_object_id: str, tenant_id: str, client_id: str,
              audience: str) -> IssuedToken:
        """A token for the principal ``principal_object_id`` (its ``oid``) of tenant
        ``tenant_id`` (``tid``), application ``client_id`` (``appid``), for
        ``audience`` (``aud``, the resource the token is for)."""
        ...

    def tenant_of(self, subscription: str) -> str:
        """The tenant id (a GUID) the identities of ``subscription`` belong to."""
        ...


#: Where a group's containers reach the identity endpoint: Azure's instance metadata
#: address and port, inside the group's own network namespace.
METADATA_ADDRESS = "169.254.169.254"
METADATA_PORT = 80
#: The port the endpoint's socket listens on inside the group (on METADATA_ADDRESS);
#: the group's filter redirects METADATA_PORT to it. A socket listening on port 80 of
#: that address would take port 80 from every container (a bind to 0.0.0.0:80 fails
#: with EADDRINUSE beside it); this one keeps only this port, above Linux's ephemeral
#: range, from a container's wildcard binds. Groups may not declare it.
METADATA_LISTEN_PORT = 64254
#: Where a group on a cluster finds its token endpoint instead: the App Service managed
#: identity protocol's variables (its URL, and the secret sent back as a header), which
#: azure-identity and MSAL read together; ``IMDS_ENDPOINT`` beside the first would make
#: them speak Azure Arc's protocol (:mod:`skiff.metadata.appservice`).
IDENTITY_ENDPOINT_VAR = "IDENTITY_ENDPOINT"
IDENTITY_HEADER_VAR = "IDENTITY_HEADER"
