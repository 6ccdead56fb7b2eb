"""The API's bounds, in process (httpx over ASGI, the FakeEngine): bodies, names, statuses.

Every route that parses a body refuses one too large, nested too deep, or
holding a number Python will not read, with ARM's 400 ``InvalidRequestContent``
(never a 500 or a dropped connection); every request refuses an invalid resource
group name (but one already stored); ``/openapi.json`` documents what the routes
answer, and every 405 says in ``Allow`` what its path takes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from skiff.api.app import create_app
from skiff.api.context import MAX_BODY_BYTES, ControlPlane
from skiff.errors import ImageNotFound
from skiff.testing.fake import FakeEngine
from skiff.testing.inprocess import InProcessClient, fake_plane
from skiff.testing.waiting import eventually

API = "?api-version=2023-05-01"
RG = "/subscriptions/sub-1/resourceGroups/rg"
GROUP = f"{RG}/providers/Microsoft.ContainerInstance/containerGroups/g"
VNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/v"
IMAGE = "registry.test/busybox:1"
GROUP_BODY: dict[str, Any] = {"location": "local", "properties": {
    "osType": "Linux", "containers": [{"name": "c", "properties": {
        "image": IMAGE, "command": ["sleep", "300"],
        "resources": {"requests": {"cpu": 0.5, "memoryInGB": 0.5}}}}]}}
VNET_BODY: dict[str, Any] = {"location": "local", "properties": {
    "addressSpace": {"addressPrefixes": ["10.210.0.0/16"]},
    "subnets": [{"name": "default", "properties": {"addressPrefix": "10.210.1.0/24"}}]}}


class Api(InProcessClient):
    """A client of subscription ``sub-1``, called as ``api(method, url, ...)``."""

    def __init__(self, portal: BlockingPortal, plane: ControlPlane) -> None:
        _, token = plane.store.create_token("sub-1", "tests")
        super().__init__(portal, create_app(plane), token)
        self.plane = plane

    def __call__(self, method: str, url: str, **options: Any) -> httpx.Response:
        return self.request(method, url, **options)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with fake_plane(tmp_path) as plane, start_blocking_portal() as portal:
        yield Api(portal, plane)


def refused(answer: httpx.Response, code: str = "InvalidRequestContent") -> None:
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == code, answer.text


def body_routes(api: Api) -> list[tuple[str, str]]:
    """Every route that parses a body, each with what it needs in place."""
    assert api("PUT", f"{GROUP}{API}", json=GROUP_BODY).status_code == 201
    assert api("PUT", f"{VNET}{API}", json=VNET_BODY).status_code == 201

    def running() -> bool:
        view = api("GET", f"{GROUP}{API}").json()["properties"]["containers"][0]["properties"]
        return bool(view["instanceView"]["currentState"]["state"] == "Running")

    eventually(running, what="the group runs")
    return [("PUT", GROUP), ("PATCH", GROUP), ("PUT", RG), ("PUT", VNET),
            ("PUT", f"{VNET}/subnets/default"), ("POST", f"{GROUP}/containers/c/exec")]


def nested(depth: int) -> bytes:
    return b'{"tags": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"


BAD_BODIES = {
    "arrays 1,000 deep": b'{"location": ' + b"[" * 1000 + b"]" * 1000 + b"}",
    "tags 20,000 deep": nested(20_000),
    "an integer of 4,301 digits": b'{"location": "local", "n": 1' + b"0" * 4300 + b"}",
    "NaN": b'{"location": NaN}',
    "not JSON": b"{",
    "empty": b"",
}


@pytest.mark.parametrize("what", list(BAD_BODIES))
def test_every_body_route_refuses_unreadable_bodies(api: Api, what: str) -> None:
    """Deep nesting, huge integers, NaN, broken or empty JSON: 400 on every body route."""
    for method, path in body_routes(api):
        answer = api(method, f"{path}{API}", content=BAD_BODIES[what],
                     headers={"Content-Type": "application/json"})
        refused(answer)
        assert len(answer.text) < 1000, (method, path)  # no echo of the body


def test_nesting_up_to_the_bound_is_read(api: Api) -> None:
    """64 levels are parsed (the value is then judged by the route's own rules)."""
    answer = api("PUT", f"{RG}{API}", content=b'{"location": "local", "x": '
                 + b"[" * 63 + b"]" * 63 + b"}")
    assert answer.status_code == 201, answer.text


def test_bodies_over_the_limit_are_refused_unread(api: Api) -> None:
    """A declared length over 4 MB, or chunks that pass it, answer 400, not a 500."""
    big = b'{"location": "local", "x": "' + b"a" * MAX_BODY_BYTES + b'"}'
    for method, path in body_routes(api):
        refused(api(method, f"{path}{API}", content=big))

        async def chunks() -> AsyncIterator[bytes]:
            yield big[:MAX_BODY_BYTES]
            yield big[MAX_BODY_BYTES:]

        refused(api(method, f"{path}{API}", content=chunks()))


@pytest.mark.parametrize("name", ["a%0Ab", "a%00b", "%2E%2E", "x" * 5000, "rg.", "a%20b"])
def test_every_put_refuses_an_invalid_resource_group_name(api: Api, name: str) -> None:
    """Resource groups, container groups and networks: InvalidResourceGroup, nothing made."""
    base = f"/subscriptions/sub-1/resourceGroups/{name}"
    for path, doc in ((base, {"location": "local"}),
                      (f"{base}/providers/Microsoft.ContainerInstance/containerGroups/g",
                       GROUP_BODY),
                      (f"{base}/providers/Microsoft.Network/virtualNetworks/v", VNET_BODY)):
        refused(api("PUT", f"{path}{API}", json=doc), "InvalidResourceGroup")
    assert api.plane.store.list_resource_groups("sub-1") == []
    assert api.plane.store.list_groups(None, limit=10)[0] == []


@pytest.mark.parametrize("name", ["a%0Ab", "a%00b", "%2E%2E", "x" * 5000, "rg.", "a%20b"])
def test_every_method_refuses_an_invalid_resource_group_name(api: Api, name: str) -> None:
    """A GET, list, DELETE or action under an invalid name is ARM's 400
    InvalidResourceGroup too (ARM checks the name before looking), not a 404 or a 204."""
    base = f"/subscriptions/sub-1/resourceGroups/{name}"
    group = f"{base}/providers/Microsoft.ContainerInstance/containerGroups/g"
    vnet = f"{base}/providers/Microsoft.Network/virtualNetworks/v"
    for method, path in (("GET", base), ("DELETE", base), ("GET", group), ("DELETE", group),
                         ("POST", f"{group}/restart"), ("GET", f"{group}/containers/c/logs"),
                         ("GET", f"{base}/providers/Microsoft.ContainerInstance/"
                                 "containerGroups"),
                         ("GET", vnet), ("DELETE", vnet), ("GET", f"{vnet}/subnets")):
        refused(api(method, f"{path}{API}"), "InvalidResourceGroup")


def test_a_stored_resource_group_an_older_rule_let_in_can_still_go(api: Api) -> None:
    """A resource group the store holds under a name the rule now refuses (made before it)
    is read, listed and deleted with what is in it; a PUT under it is refused."""
    store = api.plane.store
    store.put_resource_group("sub-1", "legacy.", "local", {})
    store.put_group("sub-1", "legacy.", "g", "local", GROUP_BODY, {})
    base = "/subscriptions/sub-1/resourceGroups/legacy."
    group = f"{base}/providers/Microsoft.ContainerInstance/containerGroups/g"
    assert api("GET", f"{base}{API}").status_code == 200
    assert api("GET", f"{group}{API}").status_code == 200
    refused(api("PUT", f"{group}{API}", json=GROUP_BODY), "InvalidResourceGroup")
    assert api("DELETE", f"{base}{API}").status_code == 202
    eventually(lambda: store.get_group("sub-1", "legacy.", "g") is None,
               what="the legacy group deleted")


def test_a_valid_unusual_resource_group_name_is_accepted(api: Api) -> None:
    """Parentheses, periods inside and 90 characters are ARM's rule, and pass."""
    name = "(my.rg_" + "x" * 82 + ")"
    assert len(name) == 90
    answer = api("PUT", f"/subscriptions/sub-1/resourceGroups/{quote(name)}{API}",
                 json={"location": "local"})
    assert answer.status_code == 201, answer.text


@pytest.mark.parametrize(("doc", "code"), [
    ({"location": ""}, "LocationRequired"),
    ({"location": 7}, "LocationRequired"),
    ({"location": "local", "tags": {"n": 1}}, "InvalidTagValue"),
    ({"location": "local", "tags": {f"t{i}": "v" for i in range(10_000)}}, "InvalidTagCount"),
])
def test_resource_group_puts_apply_arms_rules(api: Api, doc: dict[str, Any], code: str) -> None:
    """An empty location, a tag value that is not a string, 10,000 tags: refused."""
    refused(api("PUT", f"{RG}{API}", json=doc), code)


def test_tags_patch_applies_arms_rules(api: Api) -> None:
    """PATCH refuses what PUT refuses: numbers as values, too many tags, reserved names."""
    assert api("PUT", f"{GROUP}{API}", json=GROUP_BODY).status_code == 201
    for tags, code in (({"n": 5}, "InvalidTagValue"),
                       ({f"t{i}": "v" for i in range(51)}, "InvalidTagCount"),
                       ({"a/b": "v"}, "InvalidTagNameCharacters")):
        refused(api("PATCH", f"{GROUP}{API}", json={"tags": tags}), code)
    assert api("PATCH", f"{GROUP}{API}", json={"tags": {"ok": "yes"}}).status_code == 200


def test_a_group_that_failed_says_why_in_its_instance_view(api: Api) -> None:
    """The reason a group failed is its instanceView's detailStatus, not only the operation's."""
    engine = api.plane.engine
    assert isinstance(engine, FakeEngine)
    engine.pull_errors[IMAGE] = ImageNotFound("manifest unknown")
    assert api("PUT", f"{GROUP}{API}", json=GROUP_BODY).status_code == 201

    def detail() -> str | None:
        view = api("GET", f"{GROUP}{API}").json()["properties"].get("instanceView", {})
        return view.get("detailStatus")  # type: ignore[no-any-return]

    assert "manifest unknown" in str(eventually(detail, what="the group's detailStatus"))


def test_openapi_documents_every_status(api: Api) -> None:
    """Each operation documents its 2xx and ARM's error statuses, and no 422 it never sends."""
    schema = api("GET", "/openapi.json").json()
    assert "ErrorResponse" in schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            documented = set(operation["responses"])
            assert {"400", "401", "404", "409", "500", "503"} <= documented, (method, path)
            assert "422" not in documented, (method, path)
            assert any(s.startswith("2") for s in documented), (method, path)
    group = schema["paths"]["/subscriptions/{subscription}/resourceGroups/{resource_group}/"
                            "providers/Microsoft.ContainerInstance/containerGroups/{name}"]
    assert {"200", "201"} <= set(group["put"]["responses"])
    assert {"202", "204"} <= set(group["delete"]["responses"])
    parameter = next(p for p in group["put"]["parameters"] if p["name"] == "resource_group")
    assert parameter["schema"]["maxLength"] == 90
    assert "pattern" in parameter["schema"]


def test_every_405_says_what_its_path_allows(api: Api) -> None:
    """On every documented path, a method it does not take gets 405 with the full Allow."""
    schema = api("GET", "/openapi.json").json()
    for path, operations in schema["paths"].items():
        url = (path.replace("{", "").replace("}", "") + API)
        allowed = {m.upper() for m in operations}
        for method in {"GET", "PUT", "PATCH", "DELETE", "POST"} - allowed:
            answer = api(method, url)
            assert answer.status_code == 405, (method, path, answer.text)
            assert answer.json()["error"]["code"] == "MethodNotAllowed"
            named = {m.strip() for m in answer.headers["Allow"].split(",")}
            assert named - {"HEAD"} == allowed - {"HEAD"}, (method, path, named)
