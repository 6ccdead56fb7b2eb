"""The portal's storage pages: accounts, their file shares, and a share's files.

Accounts and shares are the Microsoft.Storage ARM API's answers to the signed-in caller
(:mod:`skiff.portal.arm`); a share's directories and files are the Azure Files data
plane's (:mod:`skiff.portal.files`), signed with the account's key, which the API gives
the caller only if its role may list keys (``listKeys/action``: Owner and Contributor,
not Reader, as in Azure). An upload is a form POST (``multipart/form-data``) of the
session, its CSRF token and origin checked, read up to :data:`MAX_UPLOAD`; a download is
answered up to :data:`MAX_DOWNLOAD` (larger files: ``skiff storage file download``).
"""

from __future__ import annotations

import email.parser
import email.policy
import posixpath
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from skiff.files.app import FilesApp
from skiff.portal.arm import ArmFailure
from skiff.portal.files import FilesFailure, Share
from skiff.portal.routes import (
    HEADERS,
    ROOT,
    Signed,
    _arm,
    _expired,
    _failed,
    _refused,
    _same_origin,
    _to,
    page,
)

#: Microsoft.Storage's api-version the pages ask (az's storage commands' of 2023).
STORAGE = "2023-01-01"
#: The largest upload (the whole form), read into memory before it is written.
MAX_UPLOAD = 32 * 1024 * 1024
#: The largest download answered from the page (the data plane's answer is buffered).
MAX_DOWNLOAD = 64 * 1024 * 1024

router = APIRouter(prefix=ROOT, include_in_schema=False)


def _account_path(subscription: str, resource_group: str, account: str) -> str:
    return (f"/subscriptions/{quote(subscription, safe='')}/resourceGroups/"
            f"{quote(resource_group, safe='')}/providers/Microsoft.Storage/storageAccounts/"
            f"{quote(account, safe='')}")


def _clean(path: str) -> str:
    """A path inside the share, without leading or trailing slashes ('' its root);
    ``..`` and ``.`` are the data plane's to refuse, so they are kept as sent."""
    return "/".join(p for p in path.split("/") if p)


def _link(subscription: str, resource_group: str, account: str, share: str = "",
          **query: str) -> str:
    url = f"{ROOT}/storage/{quote(subscription, safe='')}/{quote(resource_group, safe='')}/" \
          f"{quote(account, safe='')}"
    if share:
        url += f"/{quote(share, safe='')}"
    found = {k: v for k, v in query.items() if v}
    return url + (f"?{urlencode(found)}" if found else "")


def _files_app(request: Request) -> FilesApp | None:
    """The data plane over the node's shares, made once per app (None: no storage)."""
    state = request.app.state
    found: FilesApp | None = getattr(state, "portal_files", None)
    if found is None:
        shares = getattr(state.plane, "storage", None)
        if shares is None:
            return None
        found = state.portal_files = FilesApp(shares, endpoint="https://files.invalid")
    return found


@router.get("/storage")
async def accounts(request: Request, session: Signed) -> Response:
    """Every storage account of every subscription the caller sees."""
    arm = _arm(request, session)
    found: list[dict[str, Any]] = []
    try:
        for subscription in await arm.subscriptions():
            try:
                found += await arm.listing(
                    f"/subscriptions/{quote(subscription, safe='')}/providers/"
                    "Microsoft.Storage/storageAccounts", version=STORAGE)
            except ArmFailure as failure:
                if failure.status not in (403, 404):
                    raise
    except ArmFailure as failure:
        return _expired(failure) or _failed(failure, session)
    rows = []
    for account in sorted(found, key=lambda a: (str(a.get("name", "")), str(a.get("id", "")))):
        parts = str(account.get("id", "")).split("/")
        rows.append({"name": account.get("name", ""), "subscription": parts[2],
                     "resource_group": parts[4], "location": account.get("location", ""),
                     "kind": account.get("kind", ""),
                     "sku": (account.get("sku") or {}).get("name", ""),
                     "endpoint": ((account.get("properties") or {}).get("primaryEndpoints")
                                  or {}).get("file", "")})
    return page("storage.html", session=session, title="Storage accounts", accounts=rows,
                link=_link)


@router.get("/storage/{subscription}/{resource_group}/{account}")
async def shares(subscription: str, resource_group: str, account: str, request: Request,
                 session: Signed) -> Response:
    """An account's file shares."""
    arm = _arm(request, session)
    path = _account_path(subscription, resource_group, account)
    try:
        found = await arm.get(path, version=STORAGE)
        items = await arm.listing(f"{path}/fileServices/default/shares", version=STORAGE)
    except ArmFailure as failure:
        return _expired(failure) or _failed(failure, session)
    rows = [{"name": s.get("name", ""),
             "quota": (s.get("properties") or {}).get("shareQuota"),
             "used": (s.get("properties") or {}).get("shareUsageBytes")} for s in items]
    return page("shares.html", session=session, title=f"{account}: file shares",
                account=found, shares=sorted(rows, key=lambda r: str(r["name"])),
                subscription=subscription, resource_group=resource_group, link=_link)


async def _share(request: Request, session: Any, subscription: str, resource_group: str,
                 account: str, share: str) -> Share | Response:
    """The share as the account key's holder reaches it, the key asked of the API as the
    caller; or the page that says why not."""
    app = _files_app(request)
    if app is None:
        return page("error.html", 404, session=session, title="Not served",
                    code="NoFileEndpoint", message="This node serves no file shares.")
    try:
        keys = (await _arm(request, session).call(
            "POST", f"{_account_path(subscription, resource_group, account)}/listKeys",
            version=STORAGE)).json()
    except ArmFailure as failure:
        if failure.status == 403:
            return page("error.html", 403, session=session, title="Refused",
                        code=failure.code, message="Reading a share's files takes the "
                        "account's key, and your role may not list the keys "
                        "(Microsoft.Storage/storageAccounts/listKeys/action).")
        return _expired(failure) or _failed(failure, session)
    client = request.client
    return Share(app, account, str(keys["keys"][0]["value"]), share,
                 (client.host, client.port) if client else ("127.0.0.1", 0))


def _files_failed(failure: FilesFailure, session: Any) -> Response:
    return page("error.html", failure.status, session=session, title=failure.code,
                code=failure.code, message=failure.message)


@router.get("/storage/{subscription}/{resource_group}/{account}/{share}")
async def browse(subscription: str, resource_group: str, account: str, share: str,
                 request: Request, session: Signed) -> Response:
    """A directory of the share (``?path=``: below its root), with an upload form."""
    where = _clean(request.query_params.get("path", ""))
    reached = await _share(request, session, subscription, resource_group, account, share)
    if isinstance(reached, Response):
        return reached
    try:
        entries = await reached.list(where)
    except FilesFailure as failure:
        return _files_failed(failure, session)
    crumbs = []
    parts = where.split("/") if where else []
    for i, part in enumerate(parts):
        crumbs.append((part, _link(subscription, resource_group, account, share,
                                   path="/".join(parts[:i + 1]))))
    return page("share.html", session=session, title=f"{share}: files", share=share,
                account=account, where=where, entries=entries, crumbs=crumbs,
                root_link=_link(subscription, resource_group, account, share),
                shares_link=_link(subscription, resource_group, account),
                subscription=subscription, resource_group=resource_group,
                link=lambda **q: _link(subscription, resource_group, account, share, **q),
                join=lambda name: f"{where}/{name}" if where else name,
                max_upload_mib=MAX_UPLOAD // (1024 * 1024),
                done=request.query_params.get("done", ""))


@router.get("/storage/{subscription}/{resource_group}/{account}/{share}/download")
async def download(subscription: str, resource_group: str, account: str, share: str,
                   request: Request, session: Signed) -> Response:
    """A file of the share (``?path=``), as an attachment."""
    where = _clean(request.query_params.get("path", ""))
    reached = await _share(request, session, subscription, resource_group, account, share)
    if isinstance(reached, Response):
        return reached
    try:
        if await reached.size(where) > MAX_DOWNLOAD:
            return page("error.html", 413, session=session, title="Too large",
                        code="FileTooLarge", message=f"The portal downloads files of up to "
                        f"{MAX_DOWNLOAD // (1024 * 1024)} MiB; use `skiff storage file "
                        "download` (or az) for this one.")
        data = await reached.read(where)
    except FilesFailure as failure:
        return _files_failed(failure, session)
    name = "".join(c if c.isalnum() or c in "-._" else "_"
                   for c in posixpath.basename(where)) or "file"
    return Response(data, media_type="application/octet-stream",
                    headers={**HEADERS, "Content-Disposition": f'attachment; filename="{name}"'})


@router.post("/storage/{subscription}/{resource_group}/{account}/{share}/upload")
async def upload(subscription: str, resource_group: str, account: str, share: str,
                 request: Request, session: Signed) -> Response:
    """A file posted from the share's page, written into the directory it names."""
    read = await _multipart(request, MAX_UPLOAD)
    if read is None:
        return page("error.html", 413, session=session, title="Too large",
                    code="RequestBodyTooLarge", message=f"The portal uploads files of up to "
                    f"{MAX_UPLOAD // (1024 * 1024)} MiB; use `skiff storage file upload` (or "
                    "az) for larger ones.")
    fields, filename, data = read
    if not _same_origin(request) or not session.checks(fields.get("csrf", "")):
        return _refused("This upload did not come from a page of this session; open the "
                        "share again and retry.", session)
    where = _clean(fields.get("path", ""))
    name = posixpath.basename(filename.replace("\\", "/"))
    if not name:
        return page("error.html", 400, session=session, title="No file", code="NoFile",
                    message="Choose a file to upload.")
    reached = await _share(request, session, subscription, resource_group, account, share)
    if isinstance(reached, Response):
        return reached
    try:
        await reached.write(f"{where}/{name}" if where else name, data)
    except FilesFailure as failure:
        return _files_failed(failure, session)
    return _to(_link(subscription, resource_group, account, share, path=where,
                     done=f"Uploaded {name}"))


async def _multipart(request: Request, limit: int
                     ) -> tuple[dict[str, str], str, bytes] | None:
    """A ``multipart/form-data`` form's text fields, its file's name and bytes; None when
    it is larger than ``limit`` (read no further than that)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    kind = request.headers.get("content-type", "")
    if not kind.lower().startswith("multipart/form-data"):
        return {}, "", b""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {kind}\r\n\r\n".encode("latin-1") + bytes(body))
    fields: dict[str, str] = {}
    filename, data = "", b""
    for part in message.iter_parts() if message.is_multipart() else ():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        content = payload if isinstance(payload, bytes) else b""
        if part.get_filename() is not None:
            filename, data = str(part.get_filename()), content
        elif isinstance(name, str):
            fields[name] = content.decode("utf-8", "replace")
    return fields, filename, data
