"""The portal's pages: sign-in, the groups list, a group, and the actions on it.

Pages are made on the server from the API's answers to the signed-in caller
(:mod:`skiff.portal.arm`) with Jinja2 templates (escaping on); the browser runs only the
portal's own scripts, from files (no inline script: the Content-Security-Policy says
``script-src 'self'``), for what a page does after it loads (a log's live follow). A
request without a live session is sent to sign in; one that changes something is a
form POST that must come from the portal's own origin and carry the session's CSRF
token; an action the caller's roles do not allow (ARM's ``permissions``) is not offered.

Sign-in takes a skiff token, or a service principal's tenant, application ID and client
secret, which the API's own token endpoint, asked in process (:func:`skiff.portal.arm.
exchange`: its checks, its refusals, its sign-in events in the tenant's activity log),
exchanges for an access token; the secret is dropped with the request, and the session
ends when that token expires.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import jinja2
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from skiff.documents import export_yaml
from skiff.portal import charts
from skiff.portal.arm import (
    ACI,
    PROVIDER,
    Arm,
    ArmFailure,
    Permissions,
    SignInRefused,
    exchange,
)
from skiff.portal.creating import (
    NETWORKING,
    PROTOCOLS,
    RESTART_POLICIES,
    FormInvalid,
    field_of,
    form_body,
    has_secrets,
    values_of,
    volume_kinds,
    yaml_body,
)
from skiff.portal.sessions import COOKIE, Session, Sessions
from skiff.portal.views import Query, age, page_of, row_of, with_instance

ROOT = "/portal"
_HERE = Path(__file__).parent
_TEMPLATES = jinja2.Environment(loader=jinja2.FileSystemLoader(_HERE / "templates"),
                                autoescape=True)
#: Every page's policy: only the portal's own scripts, styles and connections.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY",
           "Cache-Control": "no-store"}
#: The actions on a group: (the form's word, the API's verb and path, ARM's action, label).
ACTIONS: dict[str, tuple[str, str, str, str]] = {
    "start": ("POST", "/start", "start/action", "Start"),
    "restart": ("POST", "/restart", "restart/action", "Restart"),
    "stop": ("POST", "/stop", "stop/action", "Stop"),
    "delete": ("DELETE", "", "delete", "Delete"),
}
#: The api-version of Azure Monitor's metrics the group page asks (az's).
METRICS_VERSION = "2018-01-01"
#: The largest form read (sign-in's token, a CSRF token, a word).
_MAX_FORM = 64 * 1024
#: The largest create form (an ACI YAML file pasted in it included).
_MAX_CREATE = 1024 * 1024

router = APIRouter(prefix=ROOT, include_in_schema=False)


def sessions(request: Request) -> Sessions:
    found: Sessions = request.app.state.portal_sessions
    return found


def _session(request: Request) -> Session | None:
    return sessions(request).get(request.cookies.get(COOKIE))


class NotSignedIn(Exception):
    """A page asked for without a live session: answered by a redirect to sign in."""


def signed_in(request: Request) -> Session:
    """A page's dependency: the request's live session, else :class:`NotSignedIn`."""
    session = _session(request)
    if session is None:
        raise NotSignedIn
    return session


#: A page's parameter: the signed-in session.
Signed = Annotated[Session, Depends(signed_in)]


def _arm(request: Request, session: Session) -> Arm:
    client = request.client
    return Arm(request.app, session.token,
               (client.host, client.port) if client else ("127.0.0.1", 0))


def page(template: str, status: int = 200, **context: Any) -> Response:
    """A template rendered, with the portal's headers."""
    html = _TEMPLATES.get_template(template).render(root=ROOT, **context)
    return Response(html, status_code=status, media_type="text/html; charset=utf-8",
                    headers=HEADERS)


def _to(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=HEADERS)


def _sign_in_again() -> RedirectResponse:
    return _to(f"{ROOT}/signin")


async def to_sign_in(_: Request, __: Exception) -> Response:
    """The answer to :class:`NotSignedIn`: the sign-in page."""
    return _sign_in_again()


def _same_origin(request: Request) -> bool:
    """Whether a POST comes from a page of this origin: the browser's ``Sec-Fetch-Site``
    says so, or (a browser without it) its ``Origin`` is this host's. A cross-site form
    never passes; a client that sends neither (curl) still needs the session's CSRF
    token for anything but signing in."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("origin")
    if origin is None:
        return True
    parts = urlsplit(origin)
    return parts.scheme == "https" and parts.netloc.lower() == \
        request.headers.get("host", "").lower()


async def _form(request: Request, limit: int = _MAX_FORM, fields: int = 16) -> dict[str, str]:
    raw = await request.body()
    if len(raw) > limit:
        return {}
    try:
        return {k: v[0] for k, v in parse_qs(raw.decode("utf-8"), keep_blank_values=True,
                                             max_num_fields=fields).items()}
    except (UnicodeDecodeError, ValueError):
        return {}


def _refused(message: str, session: Session | None = None) -> Response:
    return page("error.html", 403, session=session, title="Refused", code="Forbidden",
                message=message)


def _failed(failure: ArmFailure, session: Session) -> Response:
    return page("error.html", failure.status if failure.status >= 400 else 500,
                session=session, title=failure.code, code=failure.code,
                message=failure.message)


def _claims(token: str) -> dict[str, Any]:
    """A JWT's claims, unverified (the API checks the token; the portal only reads what it
    says of itself); an opaque token: none."""
    parts = token.split(".")
    if len(parts) == 3:
        try:
            claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except ValueError:
            return {}
        return claims if isinstance(claims, dict) else {}
    return {}


def _who(token: str) -> str:
    """How the header names the signed-in caller: a JWT's name, its app's display name or
    its app id (the API has checked it); an opaque token: 'token'."""
    claims = _claims(token)
    if not claims:
        return "token"
    return str(claims.get("name") or claims.get("app_displayname") or claims.get("appid")
               or "service principal")


def _expires_in(token: str) -> float | None:
    """Seconds until a JWT expires (its ``exp``); None for a token that does not say."""
    exp = _claims(token).get("exp")
    return float(exp) - time.time() if isinstance(exp, int | float) else None


# ---- sign-in and out -----------------------------------------------------------------------

#: The sign-in forms' field names (the secret's is never sent back).
_TENANT, _APP, _SECRET = "tenant", "client_id", "client_secret"


@router.get("")
@router.get("/")
def home(request: Request) -> Response:
    return _to(f"{ROOT}/groups" if _session(request) else f"{ROOT}/signin")


def _signin_page(*, error: str = "", sp_error: str = "", tenant: str = "",
                 client_id: str = "") -> Response:
    """The sign-in page: a token form and a service principal's; an error beside the form
    that was sent (the principal's tenant and app ID kept, its secret never). A refusal is
    the form again, answered 200 as the create page's errors are (a 4xx document is a
    console error in the browser); the cookie it does not set is what tells."""
    return page("signin.html", 200, session=None, title="Sign in", error=error,
                sp_error=sp_error, tenant=tenant, client_id=client_id)


@router.get("/signin")
def signin_form(request: Request) -> Response:
    return _signin_page()


@router.post("/signin")
async def signin(request: Request) -> Response:
    if not _same_origin(request):
        return _refused("A sign-in must come from the portal's own page.")
    form = await _form(request)
    if form.get("way") == "principal":
        return await _principal_signin(request, form)
    token = form.get("token", "").strip()
    if not token:
        return _signin_page(error="Paste a skiff token to sign in.")
    if not await _accepted(request, token):
        return _signin_page(error="That token was not accepted: it is unknown, revoked "
                                       "or expired.")
    return _started(request, token)


async def _principal_signin(request: Request, form: dict[str, str]) -> Response:
    """A service principal's sign-in: its secret exchanged for an access token by the API's
    token endpoint, in process (its refusal shown as the endpoint words it), then as a
    token's sign-in."""
    tenant, client_id = form.get(_TENANT, "").strip(), form.get(_APP, "").strip()
    secret = form.pop(_SECRET, "")
    if not tenant or not client_id or not secret:
        return _signin_page(sp_error="Enter the tenant ID, the application (client) ID "
                                          "and the client secret.",
                            tenant=tenant, client_id=client_id)
    if tenant.strip(".") == "":
        return _signin_page(sp_error="Enter the tenant ID (a GUID, or adfs).",
                            client_id=client_id)
    client = request.client
    try:
        granted = await exchange(request.app, tenant, client_id, secret,
                                 client=(client.host, client.port) if client else
                                 ("127.0.0.1", 0), base_url=str(request.base_url))
    except SignInRefused as refused:
        return _signin_page(sp_error=refused.description, tenant=tenant,
                            client_id=client_id)
    finally:
        del secret
    if not await _accepted(request, granted.access_token):
        return _signin_page(sp_error="The API did not accept the service principal's "
                                          "token.", tenant=tenant, client_id=client_id)
    return _started(request, granted.access_token, expires_in=granted.lifetime_s or None)


async def _accepted(request: Request, token: str) -> bool:
    """Whether the API accepts ``token`` (it may list subscriptions)."""
    try:
        await Arm(request.app, token).subscriptions()
    except ArmFailure as failure:
        if failure.status != 401:
            raise
        return False
    return True


def _started(request: Request, token: str, *, expires_in: float | None = None) -> Response:
    """A new session for ``token`` (ending when it expires), its cookie, and the list."""
    session_id, _ = sessions(request).start(
        token, _who(token), expires_in=_expires_in(token) if expires_in is None else expires_in)
    answer = _to(f"{ROOT}/groups")
    answer.set_cookie(COOKIE, session_id, path="/", secure=True, httponly=True,
                      samesite="strict")
    return answer


@router.post("/signout")
async def signout(request: Request) -> Response:
    session = _session(request)
    if session is not None:
        if not _same_origin(request) or not session.checks((await _form(request)).get(
                "csrf", "")):
            return _refused("A sign-out must come from a page of this session.", session)
        sessions(request).end(request.cookies.get(COOKIE))
    answer = _sign_in_again()
    answer.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return answer


# ---- the groups -----------------------------------------------------------------------------


@router.get("/groups")
async def groups(request: Request, session: Signed) -> Response:
    arm = _arm(request, session)
    query = Query.of(dict(request.query_params))
    try:
        rows = [row_of(g) for g in await arm.groups()]
        shown = page_of(rows, query)
        details = await arm.named((r.subscription, r.resource_group, r.name)
                                  for r in shown.rows)
    except ArmFailure as failure:
        return _expired(failure) or _failed(failure, session)
    shown = replace(shown, rows=tuple(with_instance(r, details.get(r.id.lower()))
                                      for r in shown.rows))
    now = datetime.now(UTC)
    return page("groups.html", session=session, title="Container groups", page=shown,
                age=lambda r: age(r.started, now), link=lambda **c: _list_link(query, **c),
                sorts=_SORT_LABELS)


_SORT_LABELS = {"name": "Name", "resourceGroup": "Resource group",
                "subscription": "Subscription", "location": "Location",
                "provisioningState": "Provisioning", "cpu": "CPU", "memory": "Memory"}


def _list_link(query: Query, **changes: Any) -> str:
    found = query.link(**changes)
    return f"{ROOT}/groups" + (f"?{urlencode(found)}" if found else "")


def _group_path(subscription: str, resource_group: str, name: str) -> str:
    return (f"/subscriptions/{quote(subscription, safe='')}/resourceGroups/"
            f"{quote(resource_group, safe='')}/providers/{PROVIDER}/containerGroups/"
            f"{quote(name, safe='')}")


def _expired(failure: ArmFailure) -> Response | None:
    """A 401 from the API (the token was revoked or expired): sign in again."""
    return _sign_in_again() if failure.status == 401 else None


async def group_read(request: Request, session: Session, subscription: str,
                     resource_group: str, name: str
                     ) -> tuple[str, dict[str, Any], Permissions] | Response:
    """A group's path, its answer and what the caller may do to it; or the page that says
    why not (a 401: sign in again)."""
    arm = _arm(request, session)
    path = _group_path(subscription, resource_group, name)
    try:
        return path, await arm.get(path), await arm.permissions(path)
    except ArmFailure as failure:
        return _expired(failure) or _failed(failure, session)


@router.get("/groups/{subscription}/{resource_group}/{name}")
async def group(subscription: str, resource_group: str, name: str,
                request: Request, session: Signed) -> Response:
    read = await group_read(request, session, subscription, resource_group, name)
    if isinstance(read, Response):
        return read
    path, found, allowed = read
    row = with_instance(row_of(found), found)
    pointless = {"Running": "start", "Stopped": "stop"}.get(row.state)
    actions = {word: label for word, (_, _, action, label) in ACTIONS.items()
               if word != pointless and allowed.allows(f"{PROVIDER}/containerGroups/{action}")}
    logs = allowed.allows(f"{PROVIDER}/containerGroups/containers/logs/read")
    console = allowed.allows(f"{PROVIDER}/containerGroups/containers/exec/action")
    shown_range, metrics, metrics_error = charts.DEFAULT_RANGE, None, ""
    if allowed.allows("Microsoft.Insights/metrics/read"):
        shown_range, params = charts.query_of(request.query_params.get("range", ""))
        try:
            metrics_path = f"{path}/providers/Microsoft.Insights/metrics"
            metrics = charts.charts(await _arm(request, session).get(
                metrics_path, version=METRICS_VERSION, params=params))
            network = charts.network_chart(await _arm(request, session).get(
                metrics_path, version=METRICS_VERSION,
                params=charts.network_query_of(shown_range)))
            if network is not None:
                metrics.append(network)
        except ArmFailure as failure:
            if failure.status == 401:
                return _sign_in_again()
            metrics_error = f"{failure.code}: {failure.message}"
    return page("group.html", session=session, title=name, group=found, row=row,
                metrics=metrics, metrics_error=metrics_error, shown_range=shown_range,
                ranges=charts.labels(), chart_size=(charts.WIDTH, charts.HEIGHT),
                actions=actions, logs=logs, console=console, events=_events(found),
                api_path=path, exported=export_yaml(found, ACI),
                api_version=ACI, age=age(row.started, datetime.now(UTC)),
                containers=found.get("properties", {}).get("containers") or [],
                properties=json.dumps(found, indent=2, sort_keys=True),
                done=request.query_params.get("done", ""))


def _events(group: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The group's and its containers' events, oldest first, each with where it happened."""
    props = group.get("properties", {})
    found = [dict(e, source="group") for e in (props.get("instanceView") or {}).get(
        "events") or []]
    for container in props.get("containers") or []:
        view = container.get("properties", {}).get("instanceView") or {}
        found.extend(dict(e, source=container.get("name", "")) for e in view.get("events") or [])
    return sorted(found, key=lambda e: str(e.get("lastTimestamp") or e.get("firstTimestamp")
                                           or ""))


def _no_action(action: str, session: Session) -> Response:
    return page("error.html", 404, session=session, title="Not found", code="NotFound",
                message=f"There is no action '{action}' on a container group.")


# ---- create -----------------------------------------------------------------------------------


@router.get("/create")
async def create_form(request: Request, session: Signed) -> Response:
    tab = "yaml" if request.query_params.get("tab") == "yaml" else "form"
    return await _create_page(request, session, tab, values_of({}), {}, "")


async def _create_page(request: Request, session: Session, tab: str, values: dict[str, str],
                       errors: dict[str, str], general: str) -> Response:
    """The create page; shown again with errors it is still 200: a page that answers the
    form (a browser reports a 4xx document as a console error)."""
    arm = _arm(request, session)
    try:
        scopes = await arm.resource_groups()
        rights = await arm.each_permissions(
            f"/subscriptions/{quote(s, safe='')}/resourceGroups/{quote(g, safe='')}"
            for s, g in scopes)
    except ArmFailure as failure:
        return _expired(failure) or _failed(failure, session)
    scopes = [scope for scope, allowed in zip(scopes, rights, strict=True)
              if allowed.allows(f"{PROVIDER}/containerGroups/write")]
    return page("create.html", session=session, title="Create container group",
                tab=tab, values=values, errors=errors, general=general,
                scopes=[f"{s}/{g}" for s, g in scopes], networking=NETWORKING,
                policies=RESTART_POLICIES, protocols=PROTOCOLS,
                secrets_dropped=bool(errors or general))


@router.post("/create")
async def create(request: Request, session: Signed) -> Response:
    form = await _form(request, _MAX_CREATE, 64)
    if not _same_origin(request) or not session.checks(form.get("csrf", "")):
        return _refused("This form did not come from a page of this session; open it again.",
                        session)
    tab = "yaml" if form.get("tab") == "yaml" else "form"
    values = values_of(form)
    text = form.get("yaml", "")
    values["yaml"] = "" if has_secrets(text) else text
    try:
        target, body = yaml_body(form) if tab == "yaml" else form_body(form)
    except FormInvalid as invalid:
        return await _create_page(request, session, tab, values, invalid.errors, "")
    path = _group_path(target.subscription, target.resource_group, target.name)
    try:
        await _arm(request, session).call("PUT", path, body=body)
    except ArmFailure as failure:
        if failure.status == 401:
            return _sign_in_again()
        env_count = sum(1 for line in form.get("env", "").splitlines() if line.strip())
        field = field_of(failure.target, failure.code, env_count, tab, volume_kinds(form))
        errors = {field: failure.message} if field else {}
        return await _create_page(request, session, tab, values, errors,
                                  "" if field else f"{failure.code}: {failure.message}")
    return _to(f"{ROOT}/groups/{quote(target.subscription, safe='')}/"
               f"{quote(target.resource_group, safe='')}/{quote(target.name, safe='')}?"
               f"{urlencode({'done': 'create'})}")


# ---- downloads: a container's logs, the group's YAML ------------------------------------------


@router.get("/groups/{subscription}/{resource_group}/{name}/containers/{container}/logs")
async def logs_download(subscription: str, resource_group: str, name: str, container: str,
                        request: Request, session: Signed) -> Response:
    """A container's output as a file (``?previous=1``: the previous instance's)."""
    previous = request.query_params.get("previous") in ("1", "true")
    try:
        found = await _arm(request, session).get(
            f"{_group_path(subscription, resource_group, name)}/containers/"
            f"{quote(container, safe='')}/logs",
            params={"previous": "true"} if previous else None)
    except ArmFailure as failure:
        return _expired(failure) or _failed(failure, session)
    return _download(str(found.get("content") or ""), "text/plain",
                     f"{name}-{container}{'-previous' if previous else ''}.log")


@router.get("/groups/{subscription}/{resource_group}/{name}/export")
async def export(subscription: str, resource_group: str, name: str, request: Request,
                 session: Signed) -> Response:
    """The group as ``skiff container export`` writes it (ACI YAML, secrets left out)."""
    try:
        found = await _arm(request, session).get(_group_path(subscription, resource_group, name))
    except ArmFailure as failure:
        return _expired(failure) or _failed(failure, session)
    return _download(export_yaml(found, ACI), "application/yaml", f"{name}.yaml")


def _download(text: str, media_type: str, filename: str) -> Response:
    safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in filename)
    return Response(text, media_type=f"{media_type}; charset=utf-8",
                    headers={**HEADERS, "Content-Disposition": f'attachment; filename="{safe}"'})


@router.get("/groups/{subscription}/{resource_group}/{name}/{action}")
async def confirm(subscription: str, resource_group: str, name: str, action: str,
                  request: Request, session: Signed) -> Response:
    """The question before an action: a form that posts it (with the session's CSRF)."""
    if action not in ACTIONS:
        return _no_action(action, session)
    return page("confirm.html", session=session, title=f"{ACTIONS[action][3]} {name}",
                action=action, label=ACTIONS[action][3], name=name,
                back=f"{ROOT}/groups/{quote(subscription, safe='')}/"
                     f"{quote(resource_group, safe='')}/{quote(name, safe='')}")


@router.post("/groups/{subscription}/{resource_group}/{name}/{action}")
async def act(subscription: str, resource_group: str, name: str, action: str,
              request: Request, session: Signed) -> Response:
    if not _same_origin(request) or not session.checks((await _form(request)).get("csrf", "")):
        return _refused("This action did not come from a page of this session; open the "
                        "group again and retry.", session)
    if action not in ACTIONS:
        return _no_action(action, session)
    method, suffix, _, _ = ACTIONS[action]
    try:
        await _arm(request, session).call(
            method, _group_path(subscription, resource_group, name) + suffix)
    except ArmFailure as failure:
        return _expired(failure) or _failed(failure, session)
    if action == "delete":
        return _to(f"{ROOT}/groups?{urlencode({'deleted': name})}")
    return _to(f"{ROOT}/groups/{quote(subscription, safe='')}/{quote(resource_group, safe='')}/"
               f"{quote(name, safe='')}?{urlencode({'done': action})}")


# ---- the API, for the pages' scripts ---------------------------------------------------------


@router.get("/arm/{path:path}")
async def arm_get(path: str, request: Request) -> Response:
    """A GET of the API as the session's caller, for a page's script (a log's follow):
    only reads, only under ``/subscriptions/``."""
    session = _session(request)
    if session is None:
        return Response(json.dumps({"error": {"code": "AuthenticationFailed",
                                              "message": "Sign in to the portal again."}}),
                        status_code=401, media_type="application/json", headers=HEADERS)
    params = dict(request.query_params)
    version = params.pop("api-version", ACI)
    if not path.lower().startswith("subscriptions/") or \
            any(part in (".", "..") for part in path.split("/")):
        return Response(json.dumps({"error": {"code": "InvalidResourceType",
                                              "message": "Only /subscriptions/... is read."}}),
                        status_code=404, media_type="application/json", headers=HEADERS)
    try:
        answer = await _arm(request, session).call("GET", "/" + quote(path), version=version,
                                                   params=params)
    except ArmFailure as failure:
        body = {"error": {"code": failure.code, "message": failure.message}}
        return Response(json.dumps(body), status_code=failure.status,
                        media_type="application/json", headers=HEADERS)
    return Response(answer.content, media_type="application/json", headers=HEADERS)
