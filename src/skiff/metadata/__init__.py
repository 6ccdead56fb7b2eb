"""The instance metadata service inside every container group: its identity endpoint.

``http://169.254.169.254/metadata/identity/oauth2/token`` answers a group's
containers with tokens for the group's managed identities, as Azure's IMDS
does, so ``ManagedIdentityCredential`` and ``az login --identity`` work
unchanged inside a group. :mod:`~skiff.metadata.endpoint` serves the listening
sockets the node's networks open inside each group's namespace (the socket a
request came through names the group: nothing a container sends can),
the tokens are signed by the node's issuer
(:class:`skiff.control.identity.ManagedIdentityTokens`), as the API's are.
"""

from skiff.metadata.endpoint import MetadataEndpoint, MetadataReply

__all__ = ["MetadataEndpoint", "MetadataReply"]
