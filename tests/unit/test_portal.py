"""The web portal in process (the API and portal over a real store and the FakeEngine, a
cookie-keeping client playing the browser): sign-in and its cookie, the headers every
page carries, CSRF and origin checks, the groups list (filter, sort, pages), a group's
page, its actions (offered by role, confirmed, applied) and the logs the page reads."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI

from skiff.api.app import create_app
from skiff.api.context import ControlPlane
from skiff.portal import mount
from skiff.portal.arm import Arm
from skiff.portal.sessions import COOKIE, Sessions
from skiff.portal.views import Query, page_of, row_of
from skiff.testing.documents import one_container_group
from skiff.testing.inprocess import BASE, InProcessClient, fake_plane
from skiff.testing.waiting import eventually

API = "?api-version=2023-05-01"
SUB = "00000000-0000-0000-0000-0000000000a1"
RG = f"/subscriptions/{SUB}/resourceGroups/rg"
GROUPS = f"{RG}/providers/Microsoft.ContainerInstance/containerGroups"
SAME_ORIGIN = {"Origin": BASE}


@dataclass
class Served:
    """The API with the portal mounted, over a fake plane, and the event loop its
    in-process clients run on."""

    plane: ControlPlane
    app: FastAPI
    loop: BlockingPortal

    def client(self, token: str | None, suffix: str = "") -> InProcessClient:
        return InProcessClient(self.loop, self.app, token, suffix=suffix)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with fake_plane(tmp_path) as plane, start_blocking_portal() as loop:
        yield Served(plane, mount(create_app(plane)), loop)


@pytest.fixture
def admin_token(served: Served) -> str:
    return served.plane.store.create_token(None, "admin")[1]


@pytest.fixture
def admin(served: Served, admin_token: str) -> InProcessClient:
    """The API as the admin (api-version on every URL)."""
    return served.client(admin_token, API)


@pytest.fixture
def browser(served: Served) -> InProcessClient:
    """A browser's requests: no Authorization header, cookies kept."""
    return served.client(None)


def sign_in(browser: InProcessClient, token: str) -> None:
    answer = browser.post("/portal/signin", data={"token": token}, headers=SAME_ORIGIN)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/portal/groups"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def make_group(admin: InProcessClient, name: str, script: str = "echo hello-portal; sleep 3600",
               cpu: float = 0.1) -> None:
    if admin.get(RG).status_code == 404:
        assert admin.put(RG, json={"location": "local"}).status_code == 201
    answer = admin.put(f"{GROUPS}/{name}", json=one_container_group("registry.test/b:1", script,
                                                                     cpu=cpu))
    assert answer.status_code in (200, 201), answer.text


def state(admin: InProcessClient, name: str) -> str:
    view = admin.get(f"{GROUPS}/{name}").json()["properties"].get("instanceView") or {}
    return str(view.get("state", ""))


def running(admin: InProcessClient, name: str) -> None:
    eventually(lambda: state(admin, name) == "Running", what=f"{name} runs")


def test_sign_in_sets_a_strict_cookie_and_never_shows_the_token(
        browser: InProcessClient, admin_token: str) -> None:
    """A good token gives an HttpOnly, Secure, SameSite=Strict __Host- cookie holding a
    random id, not the token; a bad one is refused with a message and no cookie."""
    refused = browser.post("/portal/signin", data={"token": "skf_nope"}, headers=SAME_ORIGIN)
    assert refused.status_code == 200
    assert "not accepted" in refused.text
    assert "set-cookie" not in refused.headers
    answer = browser.post("/portal/signin", data={"token": admin_token}, headers=SAME_ORIGIN)
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/"):
        assert flag.lower() in cookie.lower(), cookie
    assert admin_token not in cookie
    listed = browser.get("/portal/groups")
    assert listed.status_code == 200
    assert admin_token not in listed.text


def test_every_page_carries_the_policy_and_anonymous_pages_send_to_sign_in(
        browser: InProcessClient, admin_token: str) -> None:
    """Sign-in and the list carry the CSP (no inline script) and nosniff; without a
    session the list and a group redirect to sign-in, and the static files are served."""
    for path in ("/portal/groups", f"/portal/groups/{SUB}/rg/g", "/portal/"):
        answer = browser.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/portal/signin"
    form = browser.get("/portal/signin")
    assert "script-src 'self'" in form.headers["content-security-policy"]
    assert "unsafe-inline" not in form.headers["content-security-policy"]
    assert form.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in form.text
    sign_in(browser, admin_token)
    listed = browser.get("/portal/groups")
    assert "frame-ancestors 'none'" in listed.headers["content-security-policy"]
    assert browser.get("/portal/static/portal.css").status_code == 200


def test_a_cross_site_post_is_refused(browser: InProcessClient, admin: InProcessClient,
                                      admin_token: str) -> None:
    """A sign-in from another origin, and an action without the session's CSRF token or
    from another origin, are refused 403; the group keeps running."""
    evil = {"Origin": "https://evil.example"}
    for headers in (evil, {"Sec-Fetch-Site": "cross-site", "Origin": "null"}):
        assert browser.post("/portal/signin", data={"token": admin_token},
                            headers=headers).status_code == 403
    make_group(admin, "web")
    running(admin, "web")
    sign_in(browser, admin_token)
    page = browser.get(f"/portal/groups/{SUB}/rg/web/stop")
    csrf = csrf_of(page.text)
    for data, headers in (({}, SAME_ORIGIN), ({"csrf": "forged"}, SAME_ORIGIN),
                          ({"csrf": csrf}, evil)):
        answer = browser.post(f"/portal/groups/{SUB}/rg/web/stop", data=data, headers=headers)
        assert answer.status_code == 403, answer.text
    assert state(admin, "web") == "Running"


def test_the_list_filters_sorts_and_pages(browser: InProcessClient, admin: InProcessClient,
                                          admin_token: str) -> None:
    """Groups show with state, IP and size; a filter keeps the matching ones; a sort by CPU
    descending puts the largest first."""
    make_group(admin, "alpha", cpu=0.2)
    make_group(admin, "beta", cpu=0.5)
    running(admin, "alpha")
    running(admin, "beta")
    sign_in(browser, admin_token)
    listed = browser.get("/portal/groups").text
    assert "2 groups" in listed
    assert "Running" in listed
    assert listed.index(">alpha<") < listed.index(">beta<")
    assert ">beta<" not in browser.get("/portal/groups?q=alph").text
    by_cpu = browser.get("/portal/groups?sort=cpu&order=desc").text
    assert by_cpu.index(">beta<") < by_cpu.index(">alpha<")
    assert browser.get("/portal/groups?sort=nonsense&page=x").status_code == 200


def test_pages_of_rows() -> None:
    """page_of: 120 rows are 3 pages of 50; a page past the end is the last; the filter
    needs every word."""
    rows = [row_of({"id": f"{RG}/providers/Microsoft.ContainerInstance/containerGroups/g{i:03}",
                    "name": f"g{i:03}", "location": "local",
                    "properties": {"containers": []}}) for i in range(120)]
    first = page_of(rows, Query())
    assert (first.pages, first.number, first.total) == (3, 1, 120)
    assert [r.name for r in first.rows][:2] == ["g000", "g001"]
    last = page_of(rows, Query(page=9))
    assert last.number == 3
    assert len(last.rows) == 20
    assert page_of(rows, Query(text="g11 rg")).total == 10
    assert Query.of({"sort": "cpu", "order": "desc", "page": "2"}).link(page=3) == {
        "sort": "cpu", "order": "desc", "page": "3"}


def test_a_group_page_shows_containers_events_logs_and_stops_it(
        browser: InProcessClient, admin: InProcessClient, admin_token: str) -> None:
    """The group page shows state, the container, events and properties; the logs the page
    reads hold the container's line; a confirmed stop stops it, a delete deletes it."""
    make_group(admin, "web")
    running(admin, "web")
    sign_in(browser, admin_token)
    page = browser.get(f"/portal/groups/{SUB}/rg/web")
    assert page.status_code == 200
    for text in ("Running", "registry.test/b:1", "Started", "Stop", "Delete",
                 "&#34;osType&#34;"):
        assert text in page.text
    logs = browser.get(f"/portal/arm{GROUPS}/web/containers/c/logs{API}&tail=10")
    assert logs.status_code == 200
    assert "hello-portal" in logs.json()["content"]
    assert browser.get(f"/portal/arm/providers/x{API}").status_code == 404
    assert browser.get(f"/portal/arm/subscriptions/%2E%2E/metadata/endpoints{API}"
                       ).status_code == 404
    csrf = csrf_of(browser.get(f"/portal/groups/{SUB}/rg/web/stop").text)
    stopped = browser.post(f"/portal/groups/{SUB}/rg/web/stop", data={"csrf": csrf},
                           headers=SAME_ORIGIN)
    assert stopped.status_code == 303
    eventually(lambda: state(admin, "web") == "Stopped", what="web stops")
    deleted = browser.post(f"/portal/groups/{SUB}/rg/web/delete", data={"csrf": csrf},
                           headers=SAME_ORIGIN)
    assert deleted.status_code == 303
    eventually(lambda: admin.get(f"{GROUPS}/web").status_code == 404, what="web is gone")


def test_a_reader_is_offered_no_actions_and_sees_only_its_resource_group(
        browser: InProcessClient, admin: InProcessClient) -> None:
    """A resource group's Reader sees its group without Stop/Delete, not a group of
    another resource group, and its forced POST gets the API's 403."""
    make_group(admin, "web")
    other = f"/subscriptions/{SUB}/resourceGroups/other"
    assert admin.put(other, json={"location": "local"}).status_code == 201
    assert admin.put(f"{other}/providers/Microsoft.ContainerInstance/containerGroups/secretive",
                     json=one_container_group("registry.test/b:1", "sleep 3600")
                     ).status_code == 201
    principal = admin.post("/skiff/servicePrincipals", json={
        "displayName": "r", "role": "Reader", "scopes": [RG]}).json()
    answer = browser.post(f"/{principal['tenant']}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": principal["appId"],
        "client_secret": principal["password"], "scope": f"{BASE}/.default"})
    sign_in(browser, answer.json()["access_token"])
    listed = browser.get("/portal/groups").text
    assert ">web<" in listed
    assert "secretive" not in listed
    page = browser.get(f"/portal/groups/{SUB}/rg/web").text
    assert ">Stop<" not in page
    assert ">Delete<" not in page
    forced = browser.post(f"/portal/groups/{SUB}/rg/web/stop", data={"csrf": csrf_of(page)},
                          headers=SAME_ORIGIN)
    assert forced.status_code == 403
    assert "AuthorizationFailed" in forced.text
    assert browser.get(f"/portal/groups/{SUB}/other/secretive").status_code == 403


def reader_token(browser: InProcessClient, admin: InProcessClient, scope: str) -> str:
    """A token of a new service principal that is Reader at ``scope``."""
    principal = admin.post("/skiff/servicePrincipals", json={
        "displayName": "r", "role": "Reader", "scopes": [scope]}).json()
    answer = browser.post(f"/{principal['tenant']}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": principal["appId"],
        "client_secret": principal["password"], "scope": f"{BASE}/.default"})
    return str(answer.json()["access_token"])


def names_read(client: InProcessClient, names: str) -> list[dict[str, Any]]:
    answer = client.get(f"/subscriptions/{SUB}/providers/Microsoft.ContainerInstance/"
                        f"containerGroups?names={names}")
    assert answer.status_code == 200, answer.text
    assert "nextLink" not in answer.json()
    found: list[dict[str, Any]] = answer.json()["value"]
    return found


def test_a_names_read_answers_the_named_groups_as_their_gets(admin: InProcessClient) -> None:
    """The list's ``names`` answers each named group as its GET does (instance view
    included), in the order named, once each; one that does not exist is left out."""
    make_group(admin, "web")
    make_group(admin, "db")
    running(admin, "web")
    running(admin, "db")
    found = names_read(admin, "rg/db,RG/web,rg/gone,nowhere/web,rg/db")
    assert [g["name"] for g in found] == ["db", "web"]
    for group in found:
        got = admin.get(f"{GROUPS}/{group['name']}").json()
        assert group["id"] == got["id"]
        assert group["properties"]["instanceView"]["state"] == "Running"
        assert group["properties"]["containers"][0]["properties"]["instanceView"] == \
            got["properties"]["containers"][0]["properties"]["instanceView"]


@pytest.mark.parametrize("names", ["web", "rg/web/x", "rg/", "/web", "",
                                   ",".join(f"rg/g{i}" for i in range(101))])
def test_a_malformed_names_read_is_refused(admin: InProcessClient, names: str) -> None:
    """``names`` not of rg/name pairs, or of more than 100, is 400 InvalidRequestContent
    (its target: names), not a 500."""
    answer = admin.get(f"/subscriptions/{SUB}/providers/Microsoft.ContainerInstance/"
                       f"containerGroups?names={names}")
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "InvalidRequestContent"
    assert answer.json()["error"]["target"] == "names"


def test_a_names_read_answers_a_reader_only_what_it_may_read(
        served: Served, browser: InProcessClient, admin: InProcessClient) -> None:
    """A resource group's Reader that names a group of another resource group (or another
    subscription) gets nothing of it, through the API and through the portal's batched
    read; its own group it gets, instance view included."""
    make_group(admin, "web")
    other = f"/subscriptions/{SUB}/resourceGroups/other"
    assert admin.put(other, json={"location": "local"}).status_code == 201
    assert admin.put(f"{other}/providers/Microsoft.ContainerInstance/containerGroups/secretive",
                     json=one_container_group("registry.test/b:1", "sleep 3600")
                     ).status_code == 201
    running(admin, "web")
    token = reader_token(browser, admin, RG)
    reader = served.client(token, API)
    assert [g["name"] for g in names_read(reader, "other/secretive,rg/web")] == ["web"]
    assert names_read(reader, "other/secretive") == []
    elsewhere = reader.get("/subscriptions/00000000-0000-0000-0000-0000000000b2/providers/"
                           "Microsoft.ContainerInstance/containerGroups?names=rg/web")
    assert elsewhere.status_code == 403
    arm = Arm(served.app, token)
    found = served.loop.call(arm.named, [(SUB, "other", "secretive"), (SUB, "rg", "web"),
                                         ("00000000-0000-0000-0000-0000000000b2", "rg", "x")])
    assert list(found) == [f"{GROUPS}/web".lower()]
    assert found[f"{GROUPS}/web".lower()]["properties"]["instanceView"]["state"] == "Running"


@pytest.mark.parametrize("top", ["0", "1001", "-1", "two", "", "²",
                                 pytest.param("1" * 5000, id="5000-digits")])
def test_a_lists_top_pages_by_it_and_a_bad_one_is_refused(admin: InProcessClient,
                                                          top: str) -> None:
    """``$top=2`` pages 3 groups 2 then 1, its nextLink keeping it; a ``$top`` that is not
    1 to 1000 is 400 InvalidRequestContent."""
    for name in ("a", "b", "c"):
        make_group(admin, name)
    lists = f"/subscriptions/{SUB}/providers/Microsoft.ContainerInstance/containerGroups"
    first = admin.get(f"{lists}?$top=2").json()
    assert [g["name"] for g in first["value"]] == ["a", "b"]
    assert "%24top=2" in first["nextLink"]
    second = admin.get(first["nextLink"].split("/", 3)[3]).json()
    assert [g["name"] for g in second["value"]] == ["c"]
    assert "nextLink" not in second
    assert len(admin.get(f"{lists}?$top=1000").json()["value"]) == 3
    refused = admin.get(f"{lists}?$top={top}")
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "InvalidRequestContent"


def test_a_group_deleted_between_list_and_read_is_a_row_without_state(
        browser: InProcessClient, admin: InProcessClient, admin_token: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The list page's rows come from the list; a group deleted before their batched read
    shows as its list item (no state, restarts or age), the others as they run."""
    make_group(admin, "web")
    make_group(admin, "gone")
    running(admin, "web")
    running(admin, "gone")
    listed: list[dict[str, Any]] = admin.get(
        f"/subscriptions/{SUB}/providers/Microsoft.ContainerInstance/containerGroups"
    ).json()["value"]
    assert admin.delete(f"{GROUPS}/gone").status_code in (200, 202, 204)
    eventually(lambda: admin.get(f"{GROUPS}/gone").status_code == 404, what="gone is gone")

    async def stale(_: Arm) -> list[dict[str, Any]]:
        return listed

    monkeypatch.setattr(Arm, "groups", stale)
    sign_in(browser, admin_token)
    page = browser.get("/portal/groups")
    assert page.status_code == 200
    rows = {name: row for name, row in re.findall(r'>(web|gone)</a></td>(.*?)</tr>',
                                                  page.text, re.S)}
    assert "Running" in rows["web"]
    assert "Running" not in rows["gone"]
    assert "state-unknown" in rows["gone"]


def test_sign_out_ends_the_session(browser: InProcessClient, admin_token: str) -> None:
    """After sign-out the cookie's session is gone: the list sends to sign-in again."""
    sign_in(browser, admin_token)
    csrf = csrf_of(browser.get("/portal/groups").text)
    answer = browser.post("/portal/signout", data={"csrf": csrf}, headers=SAME_ORIGIN)
    assert answer.status_code == 303
    assert browser.get("/portal/groups").status_code == 303


def test_sessions_expire_when_idle_and_make_room() -> None:
    """A session idle longer than its idle time is gone; at capacity the oldest goes."""
    now = [0.0]
    kept = Sessions(idle_s=10, lifetime_s=100, capacity=2, clock=lambda: now[0])
    first, _ = kept.start("t1", "a")
    now[0] = 5
    second, _ = kept.start("t2", "b")
    third, _ = kept.start("t3", "c")
    assert kept.get(first) is None
    assert kept.get(second) is not None
    now[0] = 14.9
    assert kept.get(third) is not None
    now[0] = 30
    assert kept.get(third) is None


