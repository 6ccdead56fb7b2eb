"""The API at the groups' gateways: how a group's managed identity calls skiff.

With ``skiff serve --api-for-groups`` every group reaches the API at
``https://<its gateway>:<API port>/``, the public network's and every virtual
network subnet's alike. The API itself listens where the operator said (the
loopback by default): a relay (:class:`~skiff.gateway.relay.ApiRelay`) listens on
each gateway, as the DNS listeners do (bound with ``IP_FREEBIND`` before the
bridge is up), and the host guard opens that port on the gateway, nothing else.

Why a relay that ends TLS, rather than a byte relay or the API bound on the
gateways: clients inside a group (az, azure-identity) check the server's
certificate against skiff's CA, so the certificate must name the gateway, and
gateways come and go with virtual networks while the API's certificate is
fixed for the server's life (an operator's may name none of them). So each
gateway gets a certificate of skiff's own CA naming its address alone
(:func:`skiff.api.tls.ensure_address_certificate`), the relay ends the group's
TLS with it, and opens TLS to the API, pinned to the API's own certificate. The
bytes in between are passed as they are: the API sees the request the client
sent (its ``Host``: the gateway, which the API answers back in the URLs it
builds, :meth:`skiff.api.context.ControlPlane.base_for`) and authenticates it
as any other: the relay knows nothing of tenants, and a token grants what its
roles grant, wherever it comes from.
"""

from skiff.gateway.relay import ApiRelay

__all__ = ["ApiRelay"]
