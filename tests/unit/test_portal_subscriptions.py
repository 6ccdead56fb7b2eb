"""The portal's usage-and-cost and virtual-networks pages in process: quotas and the
metered cost of a running group, the period chosen; networks with their subnets and the
groups placed in each; a Reader without a role in a subscription sees it said, not
emptied."""

from __future__ import annotations

from skiff.portal.subscriptions import network_rows, spends_of
from skiff.testing.documents import one_container_group
from skiff.testing.inprocess import InProcessClient
from tests.unit.test_portal import (  # noqa: F401  (fixtures)
    GROUPS,
    RG,
    SUB,
    admin,
    admin_token,
    browser,
    make_group,
    running,
    served,
    sign_in,
)

NET = f"{RG}/providers/Microsoft.Network/virtualNetworks/net"


def test_the_usage_page_shows_quotas_and_the_running_groups_cost(
        browser: InProcessClient, admin: InProcessClient,  # noqa: F811
        admin_token: str) -> None:  # noqa: F811
    """A running group holds a container group of the quota and is metered: its line is
    in the cost table; the period chosen is marked current."""
    make_group(admin, "metered")
    running(admin, "metered")
    sign_in(browser, admin_token)
    page = browser.get("/portal/usage?timeframe=WeekToDate")
    assert page.status_code == 200, page.text
    assert '<a href="/portal/usage?timeframe=WeekToDate" aria-current="true">' in page.text
    assert '<th scope="row">Container Groups</th><td class="num">1</td>' in page.text
    assert '<th scope="row">metered</th><td>rg</td>' in page.text
    assert "USD" in page.text
    assert "aria-current" in browser.get("/portal/usage?timeframe=bogus").text


def test_cost_rows_make_one_line_per_group() -> None:
    """Meters of one resource add up on its line."""
    rid = f"{GROUPS}/web".lower()
    answer = {"properties": {"columns": [{"name": "PreTaxCost"}, {"name": "UsageQuantity"},
                                         {"name": "ResourceId"}, {"name": "Meter"},
                                         {"name": "Currency"}],
                             "rows": [[0.5, 100, rid, "vCPU Duration", "USD"],
                                      [0.25, 200, rid, "Memory Duration", "USD"]]}}
    [line] = spends_of(answer)
    assert (line.name, line.resource_group, line.vcpu, line.gb, line.cost) == (
        "web", "rg", 100, 200, 0.75)


def test_the_networks_page_shows_subnets_and_their_groups(
        browser: InProcessClient, admin: InProcessClient,  # noqa: F811
        admin_token: str) -> None:  # noqa: F811
    """A group placed in a subnet is listed (a link to it) in that subnet's row."""
    assert admin.put(RG, json={"location": "local"}).status_code == 201
    made = admin.put(NET, json={"location": "local", "properties": {
        "addressSpace": {"addressPrefixes": ["10.7.0.0/16"]},
        "subnets": [{"name": "apps", "properties": {"addressPrefix": "10.7.1.0/24"}},
                    {"name": "spare", "properties": {"addressPrefix": "10.7.2.0/24"}}]}})
    assert made.status_code in (200, 201), made.text
    body = one_container_group("registry.test/b:1", "sleep 3600")
    body["properties"]["subnetIds"] = [{"id": f"{NET}/subnets/apps"}]
    body["properties"]["ipAddress"] = {"type": "Private", "ports": [{"port": 80}]}
    body["properties"]["containers"][0]["properties"]["ports"] = [{"port": 80}]
    placed = admin.put(f"{GROUPS}/inside", json=body)
    assert placed.status_code in (200, 201), placed.text
    sign_in(browser, admin_token)
    page = browser.get("/portal/networks")
    assert page.status_code == 200
    assert "10.7.0.0/16" in page.text
    apps = page.text.split('<th scope="row">apps</th>')[1].split("</tr>")[0]
    assert f'<a href="/portal/groups/{SUB}/rg/inside">inside</a>' in apps
    spare = page.text.split('<th scope="row">spare</th>')[1].split("</tr>")[0]
    assert "inside" not in spare


def test_network_rows_match_subnet_ids_ignoring_case() -> None:
    """ARM ids are compared case-blind."""
    vnet = {"id": NET, "name": "net", "properties": {"subnets": [
        {"id": f"{NET}/subnets/apps", "name": "apps", "properties": {}}]}}
    group = {"id": f"{GROUPS}/g", "name": "g",
             "properties": {"subnetIds": [{"id": f"{NET}/subnets/APPS".upper()}]}}
    [row] = network_rows([vnet], [group])
    assert [g["name"] for g in row["subnets"][0]["groups"]] == ["g"]
