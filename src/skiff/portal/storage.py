"""The portal's storage pages: accounts, their file shares, and a share's files.

Accounts and shares are the Microsoft.Storage ARM API's answers to the signed-in caller
(:mod:`skiff.portal.arm`); a share's directories and files are the Azure Files data
plane's (:mod:`skiff.portal.files`), signed with the account's key, which the API gives
the caller only if its role may list keys (``listKeys/action``: Owner and Contributor,
not Reader, as in Azure). What changes a share (an upload, a new directory, a delete) is
offered, and done, only where the caller's role may also write the account's shares
(:data:`WRITE`); each is a form POST of the session, its CSRF token and origin checked, a
delete asked for on a page of its own first. An upload is read up to
:data:`MAX_UPLOAD`. A download is streamed: the data plane is asked one range of
:data:`DOWNLOAD_CHUNK` at a time, each sent before the next is read, so a download holds
one chunk in memory whatever the file's size; it has no size bound of its own (the data
plane's file limit, 4 TiB, is the bound), and a browser that goes away stops it between
two chunks. A data plane's refusal of a change (a directory not empty, a name taken) is
shown beside the form that asked for it.
"""

from __future__ import annotations

import email.parser
import email.policy
import logging
import posixpath
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

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
    _form,
    _refused,
    _same_origin,
    _to,
    page,
)

#: Microsoft.Storage's api-version the pages ask (az's storage commands' of 2023).
STORAGE = "2023-01-01"
#: The largest upload (the whole form), read into memory before it is written.
MAX_UPLOAD = 32 * 1024 * 1024
#: A download's step: one Get Range of the data plane (the most a download holds in
#: memory; Azure's largest range with an MD5, and few enough requests per GiB).
DOWNLOAD_CHUNK = 4 * 1024 * 1024
#: ARM's action a change of a share's contents takes, beside the key (``listKeys``).
WRITE = "Microsoft.Storage/storageAccounts/fileServices/shares/write"

router = APIRouter(prefix=ROOT, include_in_schema=False)
log = logging.getLogger(__name__)


def _account_path(subscription: str, resource_group: str, account: str) -> str:
    return (f"/subscriptions/{quote(subscription, safe='')}/resourceGroups/"
            f"{quote(resource_group, safe='')}/providers/Microsoft.Storage/storageAccounts/"
            f"{quote(account, safe='')}")


def _clean(path: str) -> str:
    """A path inside the share, without leading or trailing slashes ('' its root);
    ``..`` and ``.`` are the data plane's to refuse, so they are kept as sent (and sent as
    they are: :meth:`skiff.portal.files.Share._path`)."""
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


async def _writable(request: Request, session: Any, subscription: str, resource_group: str,
                    account: str) -> bool | Response:
    """Whether the caller's role may change the account's shares (:data:`WRITE`); or the
    page that says why that could not be asked."""
    try:
        allowed = await _arm(request, session).permissions(
            _account_path(subscription, resource_group, account))
    except ArmFailure as failure:
        return _expired(failure) or _failed(failure, session)
    return allowed.allows(WRITE)


async def _changing(request: Request, session: Any, fields: dict[str, str], subscription: str,
                    resource_group: str, account: str, share: str) -> Share | Response:
    """The share, for a change posted from one of its pages: the form came from a page of
    this session (origin, CSRF), the caller's role may write shares and list the key;
    or the refusal (403)."""
    if not _same_origin(request) or not session.checks(fields.get("csrf", "")):
        return _refused("This change did not come from a page of this session; open the "
                        "share again and retry.", session)
    writable = await _writable(request, session, subscription, resource_group, account)
    if isinstance(writable, Response):
        return writable
    if not writable:
        return _refused("Your role may not change this account's file shares "
                        f"({WRITE}).", session)
    return await _share(request, session, subscription, resource_group, account, share)


@router.get("/storage/{subscription}/{resource_group}/{account}/{share}")
async def browse(subscription: str, resource_group: str, account: str, share: str,
                 request: Request, session: Signed) -> Response:
    """A directory of the share (``?path=``: below its root), with an upload form."""
    where = _clean(request.query_params.get("path", ""))
    reached = await _share(request, session, subscription, resource_group, account, share)
    if isinstance(reached, Response):
        return reached
    return await _listing(request, session, reached, subscription, resource_group, where,
                          done=request.query_params.get("done", ""))


async def _listing(request: Request, session: Any, reached: Share, subscription: str,
                   resource_group: str, where: str, *, done: str = "", error: str = "",
                   name: str = "") -> Response:
    """A directory's page (``error``: the new directory ``name`` was refused, why)."""
    account, share = reached.account, reached.share
    writable = await _writable(request, session, subscription, resource_group, account)
    if isinstance(writable, Response):
        return writable
    try:
        entries = await reached.list(where)
    except FilesFailure as failure:
        return _files_failed(failure, session)
    crumbs = []
    parts = where.split("/") if where else []
    for i, part in enumerate(parts):
        crumbs.append((part, _link(subscription, resource_group, account, share,
                                   path="/".join(parts[:i + 1]))))
    base = _link(subscription, resource_group, account, share)
    return page("share.html", session=session, title=f"{share}: files", share=share,
                account=account, where=where, entries=entries, crumbs=crumbs,
                root_link=base, shares_link=_link(subscription, resource_group, account),
                subscription=subscription, resource_group=resource_group,
                link=lambda **q: _link(subscription, resource_group, account, share, **q),
                join=lambda name: f"{where}/{name}" if where else name,
                delete_link=lambda name, directory: f"{base}/delete?" + urlencode(
                    {"path": f"{where}/{name}" if where else name,
                     "kind": "directory" if directory else "file"}),
                max_upload_mib=MAX_UPLOAD // (1024 * 1024), writable=writable,
                done=done, mkdir_error=error, mkdir_name=name)


@router.post("/storage/{subscription}/{resource_group}/{account}/{share}/mkdir")
async def make_directory(subscription: str, resource_group: str, account: str, share: str,
                         request: Request, session: Signed) -> Response:
    """A directory made in the one the form was posted from (``path``), named ``name``."""
    fields = await _form(request)
    reached = await _changing(request, session, fields, subscription, resource_group,
                              account, share)
    if isinstance(reached, Response):
        return reached
    where, name = _clean(fields.get("path", "")), fields.get("name", "").strip()
    error = ""
    if not name:
        error = "Name the new directory."
    elif "/" in name or "\\" in name or name in (".", ".."):
        error = "A directory's name is one name, without / or \\ (make its parent first)."
    else:
        try:
            await reached.make_directory(f"{where}/{name}" if where else name)
        except FilesFailure as failure:
            error = f"{failure.code}: {failure.message}"
    if error:  # shown beside the form (200: the page answers the form, as create's)
        return await _listing(request, session, reached, subscription, resource_group,
                              where, error=error, name=name)
    return _to(_link(subscription, resource_group, account, share, path=where,
                     done=f"Made directory {name}"))


def _deleting(path: str, kind: str) -> tuple[str, bool, str, str]:
    """What a delete names: the path, whether a directory, its parent and its name."""
    where = _clean(path)
    parent, _, name = where.rpartition("/")
    return where, kind == "directory", parent, name


@router.get("/storage/{subscription}/{resource_group}/{account}/{share}/delete")
async def delete_confirm(subscription: str, resource_group: str, account: str, share: str,
                         request: Request, session: Signed) -> Response:
    """The question before deleting a file or an empty directory (``?path=&kind=``)."""
    where, directory, parent, name = _deleting(request.query_params.get("path", ""),
                                               request.query_params.get("kind", ""))
    writable = await _writable(request, session, subscription, resource_group, account)
    if isinstance(writable, Response):
        return writable
    if not writable:
        return _refused(f"Your role may not change this account's file shares ({WRITE}).",
                        session)
    return _delete_page(session, subscription, resource_group, account, share, where,
                        directory, parent, name, "")


def _delete_page(session: Any, subscription: str, resource_group: str, account: str,
                 share: str, where: str, directory: bool, parent: str, name: str,
                 error: str) -> Response:
    return page("share_delete.html", session=session,
                title=f"Delete {'directory' if directory else 'file'} {name}",
                share=share, where=where, name=name, directory=directory, error=error,
                back=_link(subscription, resource_group, account, share, path=parent))


@router.post("/storage/{subscription}/{resource_group}/{account}/{share}/delete")
async def delete(subscription: str, resource_group: str, account: str, share: str,
                 request: Request, session: Signed) -> Response:
    """The file, or the empty directory, the form names deleted (a directory with
    something in it is the data plane's to refuse: its message shown on the form)."""
    fields = await _form(request)
    reached = await _changing(request, session, fields, subscription, resource_group,
                              account, share)
    if isinstance(reached, Response):
        return reached
    where, directory, parent, name = _deleting(fields.get("path", ""), fields.get("kind", ""))
    if not where:
        return page("error.html", 400, session=session, title="Nothing to delete",
                    code="InvalidUri", message="The root directory of a share cannot be "
                    "deleted.")
    try:
        await reached.delete(where, directory=directory)
    except FilesFailure as failure:
        return _delete_page(session, subscription, resource_group, account, share, where,
                            directory, parent, name, f"{failure.code}: {failure.message}")
    return _to(_link(subscription, resource_group, account, share, path=parent,
                     done=f"Deleted {name}"))


@router.get("/storage/{subscription}/{resource_group}/{account}/{share}/download")
async def download(subscription: str, resource_group: str, account: str, share: str,
                   request: Request, session: Signed) -> Response:
    """A file of the share (``?path=``), as an attachment streamed a chunk at a time."""
    where = _clean(request.query_params.get("path", ""))
    reached = await _share(request, session, subscription, resource_group, account, share)
    if isinstance(reached, Response):
        return reached
    try:
        size = await reached.size(where)
    except FilesFailure as failure:
        return _files_failed(failure, session)
    return StreamingResponse(
        _chunks(reached, where, size), media_type="application/octet-stream",
        headers={**HEADERS, "Content-Length": str(size),
                 "Content-Disposition": attachment(posixpath.basename(where))})


async def _chunks(reached: Share, path: str, size: int) -> AsyncIterator[bytes]:
    """The file's first ``size`` bytes (its length when the download began), a range at a
    time. A failure once the answer has begun (the file deleted or cut meanwhile) ends
    the stream short of its Content-Length: the browser reports the download failed."""
    offset = 0
    while offset < size:
        try:
            piece = await reached.read(path, offset, min(DOWNLOAD_CHUNK, size - offset))
        except FilesFailure as failure:
            log.warning("download of %s/%s stopped at byte %d: %s", reached.share, path,
                        offset, failure)
            return
        if not piece:
            return
        yield piece
        offset += len(piece)


def attachment(filename: str) -> str:
    """A Content-Disposition naming ``filename`` as RFC 6266 says: ``filename*`` its
    UTF-8 (percent-encoded, RFC 8187), ``filename`` an ASCII stand-in for old clients;
    no quote, backslash, control character or path survives in either."""
    name = "".join(c for c in filename.replace("\\", "/").rsplit("/", 1)[-1]
                   if c.isprintable()).strip(" .") or "file"
    plain = "".join(c if c.isascii() and (c.isalnum() or c in "-._ ") else "_"
                    for c in name)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


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
    reached = await _changing(request, session, fields, subscription, resource_group,
                              account, share)
    if isinstance(reached, Response):
        return reached
    where = _clean(fields.get("path", ""))
    name = posixpath.basename(filename.replace("\\", "/"))
    if not name:
        return page("error.html", 400, session=session, title="No file", code="NoFile",
                    message="Choose a file to upload.")
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
