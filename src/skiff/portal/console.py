"""The console: an interactive exec into a container, in the browser, with xterm.js.

The page asks the portal (a form POST of the session, CSRF-checked) to open an exec; the
portal asks the API as the signed-in caller (``POST .../exec``, the az CLI's call, so
the caller's role and tenancy are the API's to judge) and hands the page the websocket's
path and one-time password, never the caller's token. The page's script then speaks
the exec websocket as az does (the password first, then keystrokes; the terminal's
bytes back) on the portal's own origin.

xterm.js and its fit addon come from npm at install time (``src/skiff/portal/vendor``:
a package.json and its lockfile, ``npm ci`` by ``.ci/install``), never committed; they
are served under ``/portal/vendor/``. Without them the page says the console is
unavailable. xterm adds ``<style>`` elements of its own: the console page's policy lets
in only those stamped with the response's nonce (``style-src-elem``), which the page's
script stamps on the styles it and xterm create, and nothing else inline.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from skiff.portal.arm import PROVIDER, ArmFailure
from skiff.portal.routes import (
    CSP,
    HEADERS,
    ROOT,
    Signed,
    _arm,
    _form,
    _group_path,
    _same_origin,
    group_read,
    page,
)

#: Where ``npm ci`` puts the console's packages.
VENDOR = Path(__file__).parent / "vendor" / "node_modules"
#: What ``/portal/vendor/`` serves: its name → (the file in VENDOR, its media type).
VENDORED = {
    "xterm.js": ("@xterm/xterm/lib/xterm.js", "text/javascript"),
    "xterm.css": ("@xterm/xterm/css/xterm.css", "text/css"),
    "addon-fit.js": ("@xterm/addon-fit/lib/addon-fit.js", "text/javascript"),
}
#: A Host header fit to name in a policy (anything else: the policy names only 'self').
_HOST = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")
_MAX_COMMAND = 4096

router = APIRouter(prefix=ROOT, include_in_schema=False)


def installed() -> bool:
    """Whether xterm.js is there to serve (``npm ci`` in the vendor directory ran)."""
    return all((VENDOR / path).is_file() for path, _ in VENDORED.values())


@router.get("/vendor/{name}")
def vendored(name: str) -> Response:
    found = VENDORED.get(name)
    if found is None or not (VENDOR / found[0]).is_file():
        return Response("not installed", status_code=404, media_type="text/plain",
                        headers={"X-Content-Type-Options": "nosniff"})
    return FileResponse(VENDOR / found[0], media_type=found[1],
                        headers={"X-Content-Type-Options": "nosniff",
                                 "Cache-Control": "max-age=3600"})


def console_policy(host: str, nonce: str) -> str:
    """The console page's policy: the portal's, with the exec websocket of this origin
    named (``'self'`` covers it in CSP 3; older browsers need ``wss:`` said) and the
    ``<style>`` elements of this response's nonce."""
    connect = "connect-src 'self'" + (f" wss://{host}" if _HOST.match(host) else "")
    return CSP.replace("connect-src 'self'", connect) + \
        f"; style-src-elem 'self' 'nonce-{nonce}'"


@router.get("/groups/{subscription}/{resource_group}/{name}/containers/{container}/console")
async def console(subscription: str, resource_group: str, name: str, container: str,
                  request: Request, session: Signed) -> Response:
    read = await group_read(request, session, subscription, resource_group, name)
    if isinstance(read, Response):
        return read
    _, found, allowed = read
    names = [c.get("name") for c in found.get("properties", {}).get("containers") or []]
    if container not in names:
        return page("error.html", 404, session=session, title="Not found",
                    code="ContainerNotFound",
                    message=f"The container '{container}' was not found in container group "
                            f"'{name}'.")
    nonce = secrets.token_urlsafe(18)
    answer = page("console.html", session=session, title=f"Console: {container}",
                  group=name, container=container, nonce=nonce, ready=installed(),
                  may=allowed.allows(f"{PROVIDER}/containerGroups/containers/exec/action"),
                  back=f"{ROOT}/groups/{quote(subscription, safe='')}/"
                       f"{quote(resource_group, safe='')}/{quote(name, safe='')}",
                  exec_url=f"{request.url.path.rsplit('/', 1)[0]}/exec")
    answer.headers["Content-Security-Policy"] = console_policy(
        request.headers.get("host", ""), nonce)
    return answer


@router.post("/groups/{subscription}/{resource_group}/{name}/containers/{container}/exec")
async def open_exec(subscription: str, resource_group: str, name: str, container: str,
                    request: Request, session: Signed) -> Response:
    """Open an exec as the session's caller: the websocket's path and one-time password."""
    form = await _form(request)
    if not _same_origin(request) or not session.checks(form.get("csrf", "")):
        return _error(403, "Forbidden", "This console did not come from a page of this "
                                        "session; open it again.")
    command = form.get("command", "").strip() or "/bin/sh"
    if len(command) > _MAX_COMMAND:
        return _error(400, "InvalidRequestContent", "The command is too long.")
    size = {k: _whole(form.get(k, "")) for k in ("rows", "cols")}
    body = {"command": command, "terminalSize": {k: v for k, v in size.items() if v}}
    try:
        answer = (await _arm(request, session).call(
            "POST", f"{_group_path(subscription, resource_group, name)}/containers/"
                    f"{quote(container, safe='')}/exec", body=body)).json()
    except ArmFailure as failure:
        return _error(failure.status, failure.code, failure.message)
    return JSONResponse({"path": urlsplit(str(answer.get("webSocketUri", ""))).path,
                         "password": answer.get("password", "")}, headers=HEADERS)


def _whole(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) < 6 else None


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status,
                        headers=HEADERS)
