"""The web portal in a real browser: Debian's Chromium, driven by Playwright, against a
real skiff serving real groups. Sign in, see the list, open a group, read a line its
container printed in the live logs, stop it and delete it; create a group with the form
(after the API refused a field, shown next to it), see it Running, open its console and
run `echo hello` in it; create one from the YAML tab.

Every page must load without a console error or an uncaught exception (the CSP refusing
something shows as one); each test saves a screenshot in its tmp dir. A navigation
Chromium aborts with ERR_NETWORK_CHANGED (skiff adding interfaces as groups start) is
retried, not a failure. One server and one browser serve the module.
"""

from __future__ import annotations

import os
import shutil
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from skiff.testing.catalog import BuiltImages
from skiff.testing.documents import one_container_group
from skiff.testing.server import RunningServer, running_server, settled
from skiff.testing.waiting import eventually

playwright = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.root

CHROMIUM = "/usr/bin/chromium"
SUB = "portal-test"
API = "?api-version=2023-05-01"
GROUPS = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerInstance/" \
         "containerGroups"
LINE = "hello-from-the-portal-test"
#: Where the README's screenshots live (written when SKIFF_PORTAL_SCREENSHOTS is set).
DOCS = Path(__file__).resolve().parents[2] / "docs"
#: axe-core, installed from npm by .ci/install (tests/e2e/portal's package-lock).
AXE = Path(__file__).resolve().parent / "portal" / "node_modules" / "axe-core" / "axe.min.js"


#: How Playwright words a navigation Chromium aborted because the host's network changed:
#: the error itself, or the navigation replaced (by its error page, or by Chromium's own
#: retry of the same address).
_NETWORK_CHANGED = ("ERR_NETWORK_CHANGED", "is interrupted by another navigation to")
#: How long a navigation is tried again while the host's network keeps changing.
_RETRY_S = 30.0


@dataclass
class Browser:
    """One page of a Chromium, and the console errors it has seen."""

    page: Any
    errors: list[str] = field(default_factory=list)

    def goto(self, url: str) -> None:
        """Load ``url``, again if Chromium aborted it because the host's network changed
        (a GET: loading it twice is harmless)."""
        def load() -> None:
            self.page.goto(url, wait_until="load")

        self._retried(load, load)

    def follow(self, name: str) -> None:
        """Follow the link named ``name`` (by its address: retried as :meth:`goto`)."""
        href = self.page.get_by_role("link", name=name, exact=True).get_attribute("href")
        assert href, name
        self.goto(href)

    def submit(self, name: str, fill: Callable[[], None] = lambda: None) -> None:
        """Fill the form (``fill``), press its button ``name`` and wait for the page it
        leads to. Aborted by a network change before the answer arrived (the page still,
        or again, where it was, or Chromium's error page), the form is loaded, filled and
        pressed again (the portal's actions are idempotent: stop, start, delete)."""
        before = self.page.url

        def press() -> None:
            fill()
            with self.page.expect_navigation(wait_until="load"):
                self.page.get_by_role("button", name=name, exact=True).click()

        def recover() -> None:
            if self.page.url == before or self.page.url.startswith("chrome-error:"):
                self.goto(before)
                press()

        self._retried(press, recover)

    def _retried(self, go: Callable[[], object], recover: Callable[[], None]) -> None:
        """``go``, and ``recover`` after each abort by a network change, for up to
        :data:`_RETRY_S` (changes come in bursts while a group's interfaces are made: a
        short pause lets a burst pass rather than spending every try inside it)."""
        deadline = time.monotonic() + _RETRY_S
        attempt = 0
        while True:
            try:
                (go if attempt == 0 else recover)()
                return
            except playwright.Error as exc:
                if not any(sign in str(exc) for sign in _NETWORK_CHANGED) \
                        or time.monotonic() > deadline:
                    raise
            attempt += 1
            time.sleep(0.25)

    def accessible(self) -> None:
        """axe-core's WCAG 2 A and AA checks find nothing on the page. (Evaluated through
        the DevTools protocol, which the page's CSP does not govern: the page itself
        still runs no inline script.)"""
        assert AXE.is_file(), "run .ci/install (npm ci in tests/e2e/portal)"
        self.page.evaluate(AXE.read_text())
        found = self.page.evaluate("""async () => (await axe.run(document, {runOnly:
            {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}}))
            .violations.map(v => `${v.id} (${v.impact}): ${v.help} at ` +
                            v.nodes.map(n => n.target.join(' ')).join(', '))""")
        assert found == [], found

    def no_errors(self) -> None:
        found = [e for e in self.errors if "ERR_NETWORK_CHANGED" not in e]
        self.errors.clear()
        assert found == [], found


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory,
           images: BuiltImages) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("portal") / "root",
                        allow=images.endpoints) as running:
        yield running


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None:
        pytest.skip("needs Debian's chromium (.ci/install installs it)")
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM,
                                         args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def browser(chromium: Any, server: RunningServer) -> Iterator[Browser]:
    """A signed-out page (its own context: cookies of its own); the server's CA is its own,
    so the context accepts its certificate."""
    context = chromium.new_context(ignore_https_errors=True, base_url=server.url,
                                   viewport={"width": 1280, "height": 800})
    page = context.new_page()
    watched = Browser(page)
    page.on("console", lambda m: watched.errors.append(f"console: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: watched.errors.append(f"page error: {e}"))
    try:
        yield watched
    finally:
        context.close()


def api(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30,
                        verify=ssl.create_default_context(cafile=server.ca),
                        headers={"Authorization": f"Bearer {server.token}"})


def shoot(browser: Browser, tmp_path: Path, name: str) -> None:
    """A screenshot in the test's tmp dir (and in docs/ when asked to refresh them)."""
    browser.page.screenshot(path=str(tmp_path / name), full_page=True)
    if os.environ.get("SKIFF_PORTAL_SCREENSHOTS"):
        shutil.copy(tmp_path / name, DOCS / name)


def test_sign_in_and_see_the_groups(server: RunningServer, images: BuiltImages,
                                    browser: Browser, tmp_path: Path) -> None:
    """Signed out, the portal asks for a token; signed in with the admin token, the list
    shows the running groups with their state and address."""
    with api(server) as http:
        for name in ("web", "worker"):
            body = one_container_group(images.bb, f"echo {LINE}; sleep 3600")
            assert http.put(f"{GROUPS}/{name}{API}", json=body).status_code == 201
        for name in ("web", "worker"):
            assert settled(http, f"{GROUPS}/{name}{API}", 60)["properties"][
                "provisioningState"] == "Succeeded"
    page = browser.page
    browser.goto("/portal/")
    assert page.url.endswith("/portal/signin")
    browser.accessible()
    browser.submit("Sign in", lambda: page.get_by_label("Token").fill(server.token))
    assert page.url.endswith("/portal/groups")
    table = page.get_by_role("table")
    for name in ("web", "worker"):
        assert table.get_by_role("link", name=name, exact=True).is_visible()
    assert page.get_by_text("Running").first.is_visible()
    assert server.token not in page.content()
    shoot(browser, tmp_path, "portal-groups.png")
    browser.accessible()
    browser.no_errors()


def test_a_group_shows_its_logs_and_is_stopped_then_deleted(
        server: RunningServer, browser: Browser, tmp_path: Path) -> None:
    """From the list, the group page shows its container Running and, in the followed
    logs, the line it printed; Stop (confirmed) stops it; Delete (confirmed) removes it."""
    page = browser.page
    browser.goto("/portal/groups")
    browser.follow("web")
    assert page.get_by_role("heading", name="web", exact=True).is_visible()
    output = page.locator("#log-output")
    playwright.expect(output).to_contain_text(LINE, timeout=20_000)
    shoot(browser, tmp_path, "portal-group.png")
    browser.accessible()

    browser.follow("Stop")
    browser.accessible()
    browser.submit("Stop")
    assert page.get_by_role("status").inner_text() == "Stop requested."
    with api(server) as http:
        eventually(lambda: http.get(f"{GROUPS}/web{API}").json()["properties"].get(
            "instanceView", {}).get("state") == "Stopped", what="web stops", timeout_s=60)
    browser.goto(page.url)
    playwright.expect(page.locator("#group-state")).to_have_text("Stopped")

    browser.follow("Delete")
    browser.submit("Delete")
    assert page.url.split("?")[0].endswith("/portal/groups")
    with api(server) as http:
        eventually(lambda: http.get(f"{GROUPS}/web{API}").status_code == 404,
                   what="web is deleted", timeout_s=60)
    browser.goto(page.url)
    assert page.get_by_role("table").get_by_role("link", name="web", exact=True).count() == 0
    browser.no_errors()


def signed_in(browser: Browser, server: RunningServer) -> None:
    """The browser signed in (as the module's earlier tests leave it, or now)."""
    browser.goto("/portal/groups")
    if browser.page.url.endswith("/portal/signin"):
        browser.submit("Sign in", lambda: browser.page.get_by_label("Token").fill(server.token))


def resource_group(server: RunningServer) -> None:
    with api(server) as http:
        assert http.put(f"/subscriptions/{SUB}/resourcegroups/rg?api-version=2022-09-01",
                        json={"location": "local"}).status_code in (200, 201)


def test_create_with_the_form_then_run_echo_hello_in_its_console(
        server: RunningServer, images: BuiltImages, browser: Browser, tmp_path: Path) -> None:
    """The create form, refused by the API for its name (the message under the name
    field, the secure variable not shown again), then accepted: the group's page shows it
    Running; its console runs `echo hello` and prints hello."""
    resource_group(server)
    signed_in(browser, server)
    page = browser.page
    browser.goto("/portal/create")
    browser.accessible()

    def fill(name: str) -> Callable[[], None]:
        def go() -> None:
            page.get_by_label("Resource group").select_option(f"{SUB}/rg")
            page.get_by_label("Container group name").fill(name)
            page.get_by_label("Image").fill(images.bb)
            page.get_by_label("CPU cores").fill("0.2")
            page.get_by_label("Memory (GB)").fill("0.2")
            page.get_by_label("None").check()
            page.get_by_label("Secure environment variables").fill("PORTAL_SECRET=hush-hush")
            page.get_by_label("Command override").fill(f"sh -c 'echo {LINE}; sleep 3600'")
        return go

    browser.submit("Create", fill("Not_Valid"))
    playwright.expect(page.locator("#name-error")).to_contain_text("is invalid")
    assert page.get_by_label("Container group name").get_attribute("aria-invalid") == "true"
    assert "hush-hush" not in page.content()
    shoot(browser, tmp_path, "portal-create.png")
    browser.accessible()

    browser.submit("Create", fill("made"))
    assert page.url.split("?")[0].endswith(f"/portal/groups/{SUB}/rg/made")
    with api(server) as http:
        try:
            assert settled(http, f"{GROUPS}/made{API}", 90)["properties"][
                "provisioningState"] == "Succeeded"
            browser.goto(page.url)
            playwright.expect(page.locator("#group-state")).to_have_text("Running")

            browser.follow("Connect to made")
            playwright.expect(page.locator("#console-status")).to_have_text("Connected.",
                                                                            timeout=20_000)
            page.locator("#terminal").click()
            page.keyboard.type("echo hello\n")
            page.wait_for_function("""() => [...document.querySelectorAll('.xterm-rows > div')]
                .some(row => row.textContent.trim() === 'hello')""", timeout=20_000)
            shoot(browser, tmp_path, "portal-console.png")
            browser.accessible()
            browser.no_errors()
        finally:
            http.delete(f"{GROUPS}/made{API}")


def test_create_from_the_yaml_tab(server: RunningServer, images: BuiltImages,
                                  browser: Browser) -> None:
    """An ACI YAML file pasted in the YAML tab makes its group (the browser lands on it)."""
    resource_group(server)
    signed_in(browser, server)
    page = browser.page
    browser.goto("/portal/create?tab=yaml")
    browser.accessible()
    text = (f"name: from-yaml\nlocation: local\nproperties:\n  osType: Linux\n"
            f"  restartPolicy: Never\n  containers:\n  - name: app\n    properties:\n"
            f"      image: {images.bb}\n      command: [sh, -c, 'echo {LINE}']\n"
            "      resources:\n        requests:\n          cpu: 0.1\n"
            "          memoryInGB: 0.1\n")

    def fill() -> None:
        page.get_by_label("Resource group").select_option(f"{SUB}/rg")
        page.get_by_label("YAML", exact=True).fill(text)

    with api(server) as http:
        try:
            browser.submit("Create", fill)
            assert page.url.split("?")[0].endswith(f"/portal/groups/{SUB}/rg/from-yaml")
            assert page.get_by_role("heading", name="from-yaml", exact=True).is_visible()
            assert http.get(f"{GROUPS}/from-yaml{API}").status_code == 200
            browser.no_errors()
        finally:
            browser.goto("/portal/groups")  # its logs' follow stops before the group goes
            http.delete(f"{GROUPS}/from-yaml{API}")


def test_metrics_storage_usage_and_networks_pages(server: RunningServer, images: BuiltImages,
                                                  browser: Browser, tmp_path: Path) -> None:
    """The group page draws its metrics (a figure per metric, its table behind a
    disclosure; the group's network beside CPU and memory); the storage pages list an
    account and its share, a file uploaded into the share is listed and downloads the
    same, a directory is made, refused deletion while it holds a file (the data plane's
    message on the confirmation), then emptied and deleted; the usage and the networks pages show a
    running group's cost and the subnet a network has. Each page passes axe."""
    resource_group(server)
    signed_in(browser, server)
    storage = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Storage/" \
              "storageAccounts/portalfiles"
    vnet = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/" \
           "virtualNetworks/portalnet"
    with api(server) as http:
        body = one_container_group(images.bb, "sleep 3600")
        assert http.put(f"{GROUPS}/charted{API}", json=body).status_code in (200, 201)
        assert http.put(f"{storage}?api-version=2023-01-01", json={
            "location": "local", "kind": "StorageV2",
            "sku": {"name": "Standard_LRS"}}).status_code == 200
        assert http.put(f"{storage}/fileServices/default/shares/docs?api-version=2023-01-01",
                        json={"properties": {"shareQuota": 1}}).status_code in (200, 201)
        assert http.put(f"{vnet}?api-version=2023-09-01", json={
            "location": "local", "properties": {
                "addressSpace": {"addressPrefixes": ["10.42.0.0/16"]},
                "subnets": [{"name": "apps", "properties": {
                    "addressPrefix": "10.42.1.0/24"}}]}}).status_code in (200, 201)
        try:
            assert settled(http, f"{GROUPS}/charted{API}", 60)["properties"][
                "provisioningState"] == "Succeeded"
            metrics = (f"{GROUPS}/charted/providers/Microsoft.Insights/metrics"
                       "?api-version=2018-01-01&metricnames=CpuUsage&interval=PT1M")
            eventually(lambda: any("average" in p for s in http.get(metrics).json()["value"][0][
                "timeseries"] for p in s["data"]), what="a metrics sample", timeout_s=60)
            page = browser.page

            browser.goto(f"/portal/groups/{SUB}/rg/charted?range=1h")
            figure = page.locator("#chart-CpuUsage")
            assert "CPU (millicores)" in figure.locator("figcaption").inner_text()
            assert figure.get_by_role("img").count() == 1
            assert figure.locator("polyline").count() >= 1
            figure.get_by_text("CPU as a table").click()
            assert figure.get_by_role("table").is_visible()
            page.locator("#metrics").screenshot(path=str(tmp_path / "portal-metrics.png"))
            if os.environ.get("SKIFF_PORTAL_SCREENSHOTS"):
                shutil.copy(tmp_path / "portal-metrics.png", DOCS / "portal-metrics.png")
            network = page.locator("#chart-Network")
            assert "Network (KiB/s)" in network.locator("figcaption").inner_text()
            assert network.get_by_role("img").count() == 1
            network.get_by_text("Network as a table").click()
            assert network.get_by_role("columnheader", name="received").is_visible()
            browser.accessible()

            browser.goto("/portal/groups")
            browser.follow("Storage")
            browser.accessible()
            browser.follow("portalfiles")
            browser.follow("docs")
            assert page.get_by_text("This directory is empty.").is_visible()
            source = tmp_path / "hello.txt"
            source.write_bytes(b"hello from the portal\n")
            browser.submit("Upload", lambda: page.get_by_label("Upload a file here")
                           .set_input_files(str(source)))
            playwright.expect(page.get_by_role("status")).to_have_text("Uploaded hello.txt.")
            shoot(browser, tmp_path, "portal-storage.png")
            browser.accessible()
            with page.expect_download() as download:
                page.get_by_role("link", name="Download hello.txt").click()
            assert Path(download.value.path()).read_bytes() == b"hello from the portal\n"

            share = page.url.split("?")[0]
            browser.submit("Make directory",
                           lambda: page.get_by_label("New directory here").fill("notes"))
            playwright.expect(page.get_by_role("status")).to_have_text("Made directory notes.")
            browser.follow("notes/")
            browser.submit("Upload", lambda: page.get_by_label("Upload a file here")
                           .set_input_files(str(source)))
            browser.goto(share)
            browser.follow("Delete notes/")
            browser.accessible()
            browser.submit("Delete")
            playwright.expect(page.get_by_role("alert")).to_have_text(
                "DirectoryNotEmpty: The specified directory is not empty.")
            browser.accessible()
            browser.follow("Cancel")
            browser.follow("notes/")
            browser.follow("Delete hello.txt")
            browser.submit("Delete")
            playwright.expect(page.get_by_role("status")).to_have_text("Deleted hello.txt.")
            browser.goto(share)
            browser.follow("Delete notes/")
            browser.submit("Delete")
            playwright.expect(page.get_by_role("status")).to_have_text("Deleted notes.")
            assert page.get_by_role("link", name="notes/").count() == 0
            browser.accessible()

            browser.follow("Usage and cost")
            assert page.get_by_role("row", name="charted").count() == 1
            shoot(browser, tmp_path, "portal-usage.png")
            browser.accessible()

            browser.follow("Virtual networks")
            assert page.get_by_role("heading", name="portalnet").is_visible()
            assert page.get_by_text("10.42.1.0/24").is_visible()
            shoot(browser, tmp_path, "portal-networks.png")
            browser.accessible()
            browser.no_errors()
        finally:
            http.delete(f"{GROUPS}/charted{API}")
            http.delete(f"{storage}?api-version=2023-01-01")
            http.delete(f"{vnet}?api-version=2023-09-01")


def test_sign_in_with_a_service_principal_that_is_a_reader(
        server: RunningServer, images: BuiltImages, chromium: Any, tmp_path: Path) -> None:
    """A Reader service principal made through the API signs in with its tenant, app ID
    and secret, in a browser of its own: a wrong secret first (the token endpoint's
    AADSTS refusal beside the form, the app ID kept, the secret field empty), then the
    right one; it sees a group of its resource group without Stop, Restart or Delete.
    Every page passes axe without a console error."""
    resource_group(server)
    scope = f"/subscriptions/{SUB}/resourceGroups/rg"
    context = chromium.new_context(ignore_https_errors=True, base_url=server.url,
                                   viewport={"width": 1280, "height": 800})
    with api(server) as http:
        made = http.post("/skiff/servicePrincipals", json={
            "displayName": "portal-reader", "role": "Reader", "scopes": [scope]})
        assert made.status_code == 201, made.text
        principal = made.json()
        body = one_container_group(images.bb, "sleep 3600")
        assert http.put(f"{GROUPS}/readable{API}", json=body).status_code in (200, 201)
        try:
            assert settled(http, f"{GROUPS}/readable{API}", 60)["properties"][
                "provisioningState"] == "Succeeded"
            browser = Browser(context.new_page())
            page = browser.page
            page.on("console", lambda m: browser.errors.append(f"console: {m.text}")
                    if m.type == "error" else None)
            page.on("pageerror", lambda e: browser.errors.append(f"page error: {e}"))

            def fill(secret: str) -> Callable[[], None]:
                def typed() -> None:
                    page.get_by_label("Tenant ID").fill(principal["tenant"])
                    page.get_by_label("Application (client) ID").fill(principal["appId"])
                    page.get_by_label("Client secret").fill(secret)
                return typed

            browser.goto("/portal/signin")
            shoot(browser, tmp_path, "portal-signin.png")
            browser.accessible()
            browser.submit("Sign in with the service principal", fill("skiff-not-the-secret"))
            playwright.expect(page.get_by_role("alert")).to_contain_text("AADSTS7000215")
            assert page.get_by_label("Application (client) ID").input_value() == \
                principal["appId"]
            assert page.get_by_label("Client secret").input_value() == ""
            assert "skiff-not-the-secret" not in page.content()
            browser.accessible()
            assert browser.errors == [], browser.errors
            browser.submit("Sign in with the service principal", fill(principal["password"]))
            assert page.url.endswith("/portal/groups")
            assert page.get_by_text("Signed in: portal-reader").is_visible()
            browser.follow("readable")
            assert page.get_by_role("heading", name="readable", exact=True).is_visible()
            for action in ("Stop", "Restart", "Delete"):
                assert page.get_by_role("link", name=action, exact=True).count() == 0
            assert principal["password"] not in page.content()
            browser.accessible()
            browser.no_errors()
        finally:
            context.close()
            http.delete(f"{GROUPS}/readable{API}")
