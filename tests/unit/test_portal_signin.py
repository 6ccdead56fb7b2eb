"""The portal's sign-in with a service principal, in process: the tenant, app ID and
secret exchanged by the API's own token endpoint (its sign-in events recorded), a refusal
shown in the endpoint's words without the secret, cross-site posts refused, the session
ended when the principal's token expires, and a Reader offered no write action."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import pytest
from anyio.from_thread import start_blocking_portal

from skiff.api.app import create_app
from skiff.control.identity import TOKEN_LIFETIME_S
from skiff.portal import mount
from skiff.portal.arm import SignInRefused, exchange
from skiff.portal.sessions import COOKIE, Sessions
from skiff.testing.inprocess import BASE, InProcessClient, fake_plane
from tests.unit.test_portal import (  # noqa: F401  (fixtures)
    RG,
    SAME_ORIGIN,
    SUB,
    admin,
    admin_token,
    browser,
    csrf_of,
    make_group,
    served,
)

SIGN_INS = "Microsoft.Authorization/signIns/action"


def principal(admin: InProcessClient, **body: Any) -> dict[str, Any]:  # noqa: F811
    """A new service principal (``body``: its role and scopes), as create-for-rbac
    answers: appId, password, tenant."""
    made = admin.post("/skiff/servicePrincipals", json={"displayName": "portal-sp", **body})
    assert made.status_code in (200, 201), made.text
    found: dict[str, Any] = made.json()
    return found


def sign_in_as(browser: InProcessClient, made: dict[str, Any],  # noqa: F811
               secret: str | None = None, headers: dict[str, str] | None = None) -> Any:
    return browser.post("/portal/signin", data={
        "way": "principal", "tenant": made["tenant"], "client_id": made["appId"],
        "client_secret": made["password"] if secret is None else secret},
        headers=SAME_ORIGIN if headers is None else headers)


def sign_ins(admin: InProcessClient) -> list[dict[str, Any]]:  # noqa: F811
    """The tenant's sign-in events of the last minutes, oldest first."""
    now = time.time()

    def naive(ts: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))

    window = quote(f"eventTimestamp ge {naive(now - 600)} and eventTimestamp le "
                   f"{naive(now + 5)}")
    answer = admin.get("/providers/Microsoft.Insights/eventtypes/management/values"
                       f"?api-version=2015-04-01&$filter={window}")
    assert answer.status_code == 200, answer.text
    return [e for e in answer.json()["value"] if e["operationName"]["value"] == SIGN_INS]


def test_a_service_principal_signs_in_and_its_sign_in_is_the_tenants_event(
        browser: InProcessClient, admin: InProcessClient) -> None:  # noqa: F811
    """Tenant, app ID and secret give a session (the list, the principal's name in the
    header); the secret is in no answer or cookie; the tenant's log has the sign-in."""
    made = principal(admin)
    answer = sign_in_as(browser, made)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/portal/groups"
    assert made["password"] not in answer.headers["set-cookie"]
    listed = browser.get("/portal/groups")
    assert listed.status_code == 200
    assert "Signed in: portal-sp" in listed.text
    assert made["password"] not in listed.text
    events = sign_ins(admin)
    assert [(e["caller"], e["status"]["value"]) for e in events] == [
        (made["appId"], "Succeeded")]


@pytest.mark.parametrize(("change", "code", "status"), [
    ({"client_secret": "skiff-wrong-secret-value"}, "AADSTS7000215", 200),
    ({"client_id": "00000000-0000-0000-0000-00000000dead"}, "AADSTS700016", 200),
    ({"tenant": "not-this-tenant"}, "AADSTS90002", 200),
])
def test_a_refusal_is_the_endpoints_beside_the_form_and_the_secret_is_not_shown(
        browser: InProcessClient, admin: InProcessClient,  # noqa: F811
        change: dict[str, str], code: str, status: int) -> None:
    """A wrong secret, an unknown app or tenant: the page again with the token endpoint's
    AADSTS code beside the principal's form, the tenant and app ID kept, the secret (good
    or bad) nowhere in it, no session; a wrong secret is a failed sign-in event."""
    made = principal(admin)
    form = {"way": "principal", "tenant": made["tenant"], "client_id": made["appId"],
            "client_secret": made["password"], **change}
    answer = browser.post("/portal/signin", data=form, headers=SAME_ORIGIN)
    assert answer.status_code == status
    assert 'id="principal-error"' in answer.text
    assert code in answer.text
    assert 'id="token-error"' not in answer.text
    assert f'value="{form["client_id"]}"' in answer.text
    assert f'value="{form["tenant"]}"' in answer.text
    assert form["client_secret"] not in answer.text
    assert made["password"] not in answer.text
    assert "set-cookie" not in answer.headers
    assert browser.get("/portal/groups").status_code == 303
    if code == "AADSTS7000215":
        assert [(e["caller"], e["status"]["value"]) for e in sign_ins(admin)] == [
            (made["appId"], "Failed")]


def test_a_form_with_a_field_missing_is_refused_without_asking(
        browser: InProcessClient, admin: InProcessClient) -> None:  # noqa: F811
    """No secret: the form says what to enter, and nothing reaches the token endpoint
    (no sign-in event)."""
    made = principal(admin)
    answer = sign_in_as(browser, made, secret="")
    assert answer.status_code == 200
    assert "Enter the tenant ID" in answer.text
    assert sign_ins(admin) == []


def test_a_cross_site_principal_sign_in_is_refused_before_the_exchange(
        browser: InProcessClient, admin: InProcessClient) -> None:  # noqa: F811
    """From another origin (or a cross-site fetch) the sign-in is 403, no session, and no
    sign-in was tried (no event)."""
    made = principal(admin)
    for headers in ({"Origin": "https://evil.example"},
                    {"Sec-Fetch-Site": "cross-site", "Origin": "null"}):
        answer = sign_in_as(browser, made, headers=headers)
        assert answer.status_code == 403
        assert "set-cookie" not in answer.headers
    assert browser.get("/portal/groups").status_code == 303
    assert sign_ins(admin) == []


def test_the_session_ends_when_the_principals_token_expires(tmp_path: Path) -> None:
    """The session lives as long as the access token the secret was exchanged for: just
    before, the list; at its expiry, back to sign-in (nothing renews it)."""
    now = [1000.0]
    with fake_plane(tmp_path) as plane, start_blocking_portal() as loop:
        app = mount(create_app(plane), Sessions(clock=lambda: now[0]))
        admin = InProcessClient(loop, app, plane.store.create_token(None, "admin")[1],
                                suffix="?api-version=2023-05-01")
        browser = InProcessClient(loop, app, None)
        made = principal(admin)
        assert sign_in_as(browser, made).status_code == 303
        now[0] += TOKEN_LIFETIME_S - 5
        assert browser.get("/portal/groups").status_code == 200
        now[0] += 5
        answer = browser.get("/portal/groups")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/portal/signin"


def test_a_pasted_jwt_session_ends_with_the_token_too(
        browser: InProcessClient, admin: InProcessClient,  # noqa: F811
        admin_token: str, served: Any) -> None:  # noqa: F811
    """A service principal's token pasted in the token form gives a session that expires
    with the token's ``exp``; an opaque skiff token's session does not say."""
    made = principal(admin)
    token = browser.post(f"/{made['tenant']}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": made["appId"],
        "client_secret": made["password"], "scope": f"{BASE}/.default"}).json()["access_token"]
    answer = browser.post("/portal/signin", data={"token": token}, headers=SAME_ORIGIN)
    assert answer.status_code == 303
    kept: Sessions = served.app.state.portal_sessions
    session = kept.get(answer.cookies[COOKIE])
    assert session is not None
    assert session.expires is not None
    assert 0 < session.expires - session.started <= TOKEN_LIFETIME_S
    opaque = browser.post("/portal/signin", data={"token": admin_token}, headers=SAME_ORIGIN)
    session = kept.get(opaque.cookies[COOKIE])
    assert session is not None
    assert session.expires is None


def test_a_reader_principal_is_offered_no_write_action(
        browser: InProcessClient, admin: InProcessClient) -> None:  # noqa: F811
    """A service principal that is Reader of the resource group, signed in with its
    secret, sees the group without Stop, Restart or Delete, and no resource group to
    create in."""
    make_group(admin, "web")
    made = principal(admin, role="Reader", scopes=[RG])
    assert sign_in_as(browser, made).status_code == 303
    page = browser.get(f"/portal/groups/{SUB}/rg/web")
    assert page.status_code == 200
    for label in (">Stop<", ">Restart<", ">Delete<", ">Start<"):
        assert label not in page.text
    create = browser.get("/portal/create")
    assert f"{SUB}/rg" not in create.text
    assert csrf_of(page.text)


def test_an_endpoint_answer_that_is_not_entras_is_a_refusal_not_a_500() -> None:
    """A token endpoint that answers something other than Entra's JSON (a proxy's page, a
    200 without a token) is a refusal with its status, never an exception of the page."""
    async def text(scope: Any, receive: Any, send: Any) -> None:
        body = b"<html>bad gateway</html>" if scope["path"].startswith("/t/") else b"{}"
        await send({"type": "http.response.start", "status": 502 if body[0] == 60 else 200,
                    "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": body})

    async def asked(tenant: str) -> SignInRefused:
        with pytest.raises(SignInRefused) as refused:
            await exchange(text, tenant, "app", "secret")
        return refused.value

    bad_gateway = anyio.run(asked, "t")
    assert bad_gateway.status == 502
    assert "502" in bad_gateway.description
    no_token = anyio.run(asked, "u")
    assert no_token.status == 502
    assert "no token" in no_token.description
