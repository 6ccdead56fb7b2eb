"""The portal's console, downloads and export in process: the console page's policy and
its exec (the API's, as the caller, CSRF-checked; the page gets a websocket path and a
one-time password, never the token), the page without xterm.js installed, a container's
logs and the group's ACI YAML as files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped,unused-ignore]

from skiff.portal import console
from skiff.testing.inprocess import InProcessClient
from tests.unit.test_portal import (  # noqa: F401  (fixtures)
    GROUPS,
    SAME_ORIGIN,
    SUB,
    admin,
    admin_token,
    browser,
    csrf_of,
    make_group,
    running,
    served,
    sign_in,
)

PAGE = f"/portal/groups/{SUB}/rg/web"


@pytest.fixture
def signed(browser: InProcessClient, admin: InProcessClient,  # noqa: F811
           admin_token: str) -> InProcessClient:  # noqa: F811
    """A signed-in browser and a running group ``web`` (container ``c``)."""
    make_group(admin, "web")
    running(admin, "web")
    sign_in(browser, admin_token)
    return browser


def test_the_console_page_allows_the_websocket_and_nonced_styles_only(
        signed: InProcessClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The group page links the running container's console; its page has xterm loaded
    from /portal/vendor/ after its own load, its policy names this origin's wss: and a
    nonce for <style> elements (fresh per response), and still no inline script."""
    group = signed.get(PAGE).text
    assert f'href="{PAGE}/containers/c/console"' in group
    page = signed.get(f"{PAGE}/containers/c/console")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    nonce = re.search(r'data-nonce="([^"]+)"', page.text)
    assert nonce is not None
    assert f"style-src-elem 'self' 'nonce-{nonce.group(1)}'" in policy
    assert "connect-src 'self' wss://" in policy
    assert "script-src 'self';" in policy
    assert "unsafe-inline" not in policy
    again = signed.get(f"{PAGE}/containers/c/console").headers["content-security-policy"]
    assert again != policy
    if console.installed():
        # xterm.js is added by console.js once the page has loaded, never a script of
        # the page's own that its load would wait for.
        assert 'data-scripts="/portal/vendor/xterm.js /portal/vendor/addon-fit.js"' in page.text
        assert '<script src="/portal/vendor/' not in page.text
        assert '<link rel="stylesheet" href="/portal/vendor/' not in page.text
        assert "Starting the terminal" in page.text
        assert signed.get("/portal/vendor/xterm.js").status_code == 200
    assert signed.get("/portal/vendor/package.json").status_code == 404

    monkeypatch.setattr(console, "VENDOR", tmp_path)
    bare = signed.get(f"{PAGE}/containers/c/console")
    assert "The console is unavailable" in bare.text
    assert "/portal/vendor/" not in bare.text
    assert signed.get("/portal/vendor/xterm.js").status_code == 404
    assert signed.get(f"{PAGE}/containers/nope/console").status_code == 404


def test_an_exec_is_opened_as_the_caller_with_the_sessions_csrf(
        signed: InProcessClient, admin_token: str) -> None:  # noqa: F811
    """The page's POST gets the exec websocket's path and a one-time password (not the
    token); without the session's CSRF token, or from another site, nothing is opened; a
    container that is not there is the API's error."""
    csrf = csrf_of(signed.get(f"{PAGE}/containers/c/console").text)
    url = f"{PAGE}/containers/c/exec"
    opened = signed.post(url, data={"csrf": csrf, "command": "/bin/sh", "rows": "30",
                                    "cols": "100"}, headers=SAME_ORIGIN)
    assert opened.status_code == 200, opened.text
    answer = opened.json()
    assert re.fullmatch(r"/ws/exec/[\w-]+", answer["path"])
    assert answer["password"]
    assert admin_token not in opened.text
    assert signed.post(url, data={"csrf": "forged"}, headers=SAME_ORIGIN).status_code == 403
    assert signed.post(url, data={"csrf": csrf}, headers={"Origin": "https://evil.example"}
                       ).status_code == 403
    missing = signed.post(f"{PAGE}/containers/nope/exec", data={"csrf": csrf},
                          headers=SAME_ORIGIN)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "ContainerNotFound"


def test_logs_and_the_groups_yaml_download_as_files(signed: InProcessClient,
                                                    admin: InProcessClient) -> None:  # noqa: F811
    """Download gives the container's output (and ?previous=1 the previous instance's)
    as an attachment; Export gives the ACI YAML `skiff container export` writes, without
    state or secret values, which the create page's YAML tab takes back."""
    body = admin.get(f"{GROUPS}/web").json()
    logs = signed.get(f"{PAGE}/containers/c/logs")
    assert logs.status_code == 200
    assert logs.headers["content-disposition"] == 'attachment; filename="web-c.log"'
    assert "hello-portal" in logs.text
    previous = signed.get(f"{PAGE}/containers/c/logs?previous=1")
    assert previous.status_code == 200
    assert previous.headers["content-disposition"] == 'attachment; filename="web-c-previous.log"'
    exported = signed.get(f"{PAGE}/export")
    assert exported.status_code == 200
    assert exported.headers["content-disposition"] == 'attachment; filename="web.yaml"'
    document = yaml.safe_load(exported.text)
    assert document["name"] == "web"
    assert "instanceView" not in document["properties"]
    assert document["properties"]["containers"][0]["properties"]["image"] == \
        body["properties"]["containers"][0]["properties"]["image"]
    group = signed.get(PAGE).text
    assert group.count('<section id="export"') == 1
    assert group.index('<section id="export"') > group.index("<main")
