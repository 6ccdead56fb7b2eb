"""Sign-in as Azure's clients expect it: cloud metadata, an Entra-style token endpoint,
and the subscriptions and tenants a principal sees.

``az cloud register --endpoint-resource-manager https://HOST:PORT/`` reads
``/metadata/endpoints`` (anonymous) for the cloud's login endpoint and audiences.
skiff advertises its login endpoint in the ADFS form (``https://HOST:PORT/adfs``):
MSAL asks an ADFS authority for its OpenID configuration directly
(``/adfs/.well-known/openid-configuration``), while an Entra-form authority on a host
MSAL does not know first sends it to ``login.microsoftonline.com`` for "instance
discovery", which a node off the internet cannot answer. The Entra forms are served
too (``/{tenant}/v2.0/.well-known/openid-configuration``, ``/common/...``), for
clients that turn instance discovery off (``az config set core.instance_discovery=
false``, azure-identity's ``disable_instance_discovery=True``).

The token endpoint implements the client-credentials grant of a service principal
(form POST: ``client_id``, ``client_secret`` or HTTP Basic, ``scope`` =
``<audience>/.default``, also with the double slash an audience ending in ``/``
gives, or a v1 ``resource``) and answers as Entra does, errors included
(``invalid_client`` with its AADSTS code). The token is a JWT the API checks
(:mod:`skiff.control.identity`); its audience is the one asked for, and the API
accepts only its own (and Azure's resource manager's). Each sign-in of a known
principal, issued or refused, is an event of the tenant's activity log
(:func:`skiff.api.tracing.record_sign_in`: who and how it ended, never a secret).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qs, unquote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from skiff.api.context import ControlPlane, Principal, check_api_version, plane
from skiff.api.tracing import record_sign_in
from skiff.control.access import Caller
from skiff.control.identity import issuer_url
from skiff.errors import ArmError

router = APIRouter()
#: The Entra tenant names that stand for "whichever tenant": discovery answers them.
_ANY_TENANT = ("common", "organizations", "consumers")


def _base(request: Request) -> str:
    """The address the client reached skiff at (discovery documents name it back)."""
    return str(request.base_url).rstrip("/")


@router.get("/metadata/endpoints", include_in_schema=False)
@router.get("//metadata/endpoints", include_in_schema=False)  # az: the ARM URL's "/" + "/..."
def metadata_endpoints(request: Request) -> dict[str, Any]:
    """The cloud's endpoints, in the shape ARM's ``/metadata/endpoints`` answers (api-
    version 2022-09-01: one cloud), for ``az cloud register``."""
    base = _base(request)
    return {
        "name": "skiff",
        "resourceManager": f"{base}/",
        "portal": f"{base}/",
        "authentication": {"loginEndpoint": f"{base}/adfs", "audiences": [f"{base}/"],
                           "tenant": "adfs", "identityProvider": "ADFS"},
        "media": f"{base}/", "graphAudience": f"{base}/", "graph": f"{base}/",
        "batch": f"{base}/", "sqlManagement": f"{base}/", "gallery": f"{base}/",
        "microsoftGraphResourceId": f"{base}/",
        "suffixes": {},
    }


# ---- OpenID discovery ----------------------------------------------------------------------


def _openid(plane_: ControlPlane, base: str, authority: str, issuer: str) -> dict[str, Any]:
    return {
        "token_endpoint": f"{authority}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "jwks_uri": f"{authority}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "grant_types_supported": ["client_credentials"],
        "issuer": issuer,
        "request_uri_parameter_supported": False,
        "authorization_endpoint": f"{authority}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{authority}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{authority}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid", "appid"],
        "tenant_region_scope": None,
        "cloud_instance_name": base.split("://", 1)[-1],
        "cloud_graph_host_name": base.split("://", 1)[-1],
        "msgraph_host": base.split("://", 1)[-1],
    }


def issuer_of(base: str, plane_: ControlPlane) -> str:
    return issuer_url(base, plane_.issuer.tenant)


@router.get("/adfs/.well-known/openid-configuration", include_in_schema=False)
def openid_adfs(request: Request) -> dict[str, Any]:
    """The ADFS form of the login endpoint's discovery (what az reads)."""
    base, plane_ = _base(request), plane(request)
    return _openid(plane_, base, f"{base}/adfs", issuer_of(base, plane_))


@router.get("/{tenant}/v2.0/.well-known/openid-configuration", include_in_schema=False)
@router.get("/{tenant}/.well-known/openid-configuration", include_in_schema=False)
def openid_tenant(tenant: str, request: Request) -> JSONResponse:
    """Entra's form: the node's tenant, or ``common``/``organizations`` (whose issuer holds
    the ``{tenantid}`` placeholder, as Entra's does); another tenant is not found."""
    base, plane_ = _base(request), plane(request)
    if tenant.lower() in _ANY_TENANT:
        issuer = f"{base}/{{tenantid}}/v2.0"
    elif tenant.lower() == plane_.issuer.tenant:
        issuer = issuer_of(base, plane_)
    else:
        return _entra_error(request, 400, "invalid_tenant", 90002, _no_tenant(tenant))
    return JSONResponse(_openid(plane_, base, f"{base}/{tenant}", issuer))


@router.get("/{tenant}/discovery/v2.0/keys", include_in_schema=False)
@router.get("/{tenant}/discovery/keys", include_in_schema=False)
def jwks(tenant: str, request: Request) -> dict[str, Any]:
    """The keys the node signs tokens with (every tenant path answers the same keys)."""
    return plane(request).issuer.jwks()


# ---- the token endpoint --------------------------------------------------------------------


def _no_tenant(tenant: str) -> str:
    return (f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
            "and are signing into the correct cloud. Check with your subscription "
            "administrator, this may happen if there are no active subscriptions for the "
            "tenant.")


def _entra_error(request: Request, status: int, error: str, code: int,
                 description: str) -> JSONResponse:
    """An error as Entra's token endpoint answers it."""
    now = datetime.now(UTC)
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    return JSONResponse({
        "error": error,
        "error_description": f"AADSTS{code}: {description} Trace ID: {trace} Correlation ID: "
                             f"{correlation} Timestamp: {stamp}",
        "error_codes": [code], "timestamp": stamp, "trace_id": trace,
        "correlation_id": correlation, "error_uri": f"{_base(request)}/error?code={code}",
    }, status_code=status, headers={"Cache-Control": "no-store, no-cache"})


def _missing(request: Request, name: str) -> JSONResponse:
    return _entra_error(request, 400, "invalid_request", 900144,
                        f"The request body must contain the following parameter: '{name}'.")


#: The largest token request read (a form of a few fields).
_MAX_FORM = 16 * 1024


@router.post("/{tenant}/oauth2/v2.0/token", include_in_schema=False)
@router.post("/{tenant}/oauth2/token", include_in_schema=False)
async def token(tenant: str, request: Request) -> JSONResponse:
    """The client-credentials grant of a service principal."""
    plane_ = plane(request)
    if tenant.lower() not in ("adfs", plane_.issuer.tenant):
        return _entra_error(request, 400, "invalid_request", 90002, _no_tenant(tenant))
    raw = await request.body()
    if len(raw) > _MAX_FORM:
        return _entra_error(request, 400, "invalid_request", 900144,
                            "The request body is too large.")
    # A look-up and an RSA signature (~2 ms): off the event loop.
    return await asyncio.to_thread(_grant, request, plane_, raw)


def _grant(request: Request, plane_: ControlPlane, raw: bytes) -> JSONResponse:
    """The token endpoint's work on the form ``raw``: a token, or Entra's error."""
    try:
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8"), keep_blank_values=True,
                                              max_num_fields=32).items()}
    except (UnicodeDecodeError, ValueError):
        return _entra_error(request, 400, "invalid_request", 900144,
                            "The request body must be a form (application/x-www-form-"
                            "urlencoded).")
    client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    basic = _basic(request.headers.get("authorization", ""))
    if basic is not None:
        client_id, secret = client_id or basic[0], secret or basic[1]
    grant = form.get("grant_type", "")
    if not grant:
        return _missing(request, "grant_type")
    if grant != "client_credentials":
        return _entra_error(request, 400, "unsupported_grant_type", 70003,
                            f"The app requested an unsupported grant type '{grant}'.")
    if not client_id:
        return _missing(request, "client_id")
    audience, v1 = _audience(form)
    if audience is None:
        scope = form.get("scope", "")
        if not scope:
            return _missing(request, "scope")
        return _entra_error(request, 400, "invalid_scope", 1002012,
                            f"The provided value for scope {scope} is not valid. Client "
                            "credential flows must have a scope value with /.default suffixed "
                            "to the resource identifier (application ID URI).")
    store = plane_.store
    known = store.principal(client_id)
    if known is None:
        return _entra_error(request, 400, "unauthorized_client", 700016,
                            f"Application with identifier '{client_id}' was not found in the "
                            f"directory '{plane_.issuer.tenant}'. This can happen if the "
                            "application has not been installed by the administrator of the "
                            "tenant or consented to by any user in the tenant. You may have "
                            "sent your authentication request to the wrong tenant.")
    if not secret:
        record_sign_in(request, client=known.app_id, object_id=known.object_id,
                       succeeded=False, error_code="AADSTS7000218")
        return _entra_error(request, 401, "invalid_client", 7000218,
                            "The request body must contain the following parameter: "
                            "'client_assertion' or 'client_secret'.")
    principal = store.check_secret(client_id, secret)
    record_sign_in(request, client=known.app_id, object_id=known.object_id,
                   succeeded=principal is not None,
                   error_code="" if principal is not None else "AADSTS7000215")
    if principal is None:
        return _entra_error(request, 401, "invalid_client", 7000215,
                            "Invalid client secret provided. Ensure the secret being sent in "
                            "the request is the client secret value, not the client secret "
                            f"ID, for a secret added to app '{client_id}'.")
    access_token, lifetime = plane_.issuer.issue(
        oid=principal.object_id, appid=principal.app_id, aud=audience,
        iss=issuer_of(_base(request), plane_), name=principal.display_name)
    body: dict[str, Any] = {"token_type": "Bearer", "expires_in": lifetime,
                            "ext_expires_in": lifetime, "access_token": access_token}
    if v1:  # the v1 endpoint's shape: strings, and the resource
        now = int(time.time())
        body = {"token_type": "Bearer", "expires_in": str(lifetime),
                "ext_expires_in": str(lifetime), "expires_on": str(now + lifetime),
                "not_before": str(now), "resource": audience, "access_token": access_token}
    return JSONResponse(body, headers={"Cache-Control": "no-store, no-cache",
                                       "Pragma": "no-cache"})


def _audience(form: dict[str, str]) -> tuple[str | None, bool]:
    """The audience a token request asks for: a v2 ``scope`` of one ``<audience>/.default``
    (``https://host//.default`` names ``https://host/``), or a v1 ``resource``; and
    whether it was v1."""
    resource = form.get("resource", "").strip()
    if resource and not form.get("scope"):
        return resource, True
    scopes = [s for s in form.get("scope", "").split() if s not in
              ("openid", "profile", "offline_access")]
    if len(scopes) != 1 or not scopes[0].endswith("/.default"):
        return None, False
    audience = scopes[0][:-len(".default")]
    if audience.endswith("//"):
        audience = audience[:-1]
    elif audience.count("/") > 3:  # https://host/path/ -> https://host/path
        audience = audience.rstrip("/")
    return (audience or None), False


def _basic(header: str) -> tuple[str, str] | None:
    """(client id, secret) of an HTTP Basic header (client_secret_basic), or None."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        text = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    user, sep, password = text.partition(":")
    return (unquote(user), unquote(password)) if sep else None


# ---- subscriptions and tenants -------------------------------------------------------------

Versioned = Annotated[str, Depends(check_api_version)]


def _subscription(plane_: ControlPlane, subscription: str) -> dict[str, Any]:
    tenant = plane_.issuer.tenant
    return {"id": f"/subscriptions/{subscription}", "authorizationSource": "RoleBased",
            "managedByTenants": [], "subscriptionId": subscription, "tenantId": tenant,
            "homeTenantId": tenant, "displayName": subscription, "state": "Enabled",
            "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01",
                                     "quotaId": "PayAsYouGo_2014-09-01",
                                     "spendingLimit": "Off"}}


def visible_subscriptions(plane_: ControlPlane, caller: Caller) -> list[str]:
    """The subscriptions the caller holds a role in (at, above or below it)."""
    return [s for s in plane_.store.known_subscriptions()
            if plane_.access.may_see(caller, f"/subscriptions/{s}")]


@router.get("/subscriptions")
def list_subscriptions(request: Request, caller: Principal, _: Versioned) -> dict[str, Any]:
    """The subscriptions where the caller holds a role (the admin: every one the node
    knows: those with resource groups, tokens or role assignments)."""
    plane_ = plane(request)
    return {"value": [_subscription(plane_, s) for s in visible_subscriptions(plane_, caller)]}


@router.get("/subscriptions/{subscription}")
def get_subscription(subscription: str, request: Request, caller: Principal,
                     _: Versioned) -> dict[str, Any]:
    """One subscription, if the caller holds a role in it; else 404, as for one that does
    not exist."""
    plane_ = plane(request)
    key = subscription.lower()
    if key not in visible_subscriptions(plane_, caller):
        raise ArmError(404, "SubscriptionNotFound",
                       f"The subscription '{subscription}' could not be found.")
    return _subscription(plane_, key)


@router.get("/tenants")
def list_tenants(request: Request, caller: Principal, _: Versioned) -> dict[str, Any]:
    """The node's one tenant."""
    tenant = plane(request).issuer.tenant
    host = _base(request).split("://", 1)[-1].split(":")[0]
    return {"value": [{"id": f"/tenants/{tenant}", "tenantId": tenant,
                       "tenantCategory": "Home", "countryCode": "US",
                       "displayName": "skiff", "domains": [host], "defaultDomain": host,
                       "tenantType": "AAD"}]}
