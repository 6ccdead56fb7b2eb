"""The Azure Files REST API (subset) as a plain ASGI app over a :class:`FileShares`.

Addresses are path-style: ``/<account>`` (the service), ``/<account>/<share>`` with
``restype=share`` (a share), ``/<account>/<share>/<path>`` (a directory with
``restype=directory``, else a file). Bodies are streamed: a Put Range (at most
4 MiB, as Azure) is written with ``os.pwrite`` once whole; a Get File is read with
``os.pread`` a chunk at a time. Every failure is Azure's XML error with its
``x-ms-error-code`` header; never a 500 for bad input.

Nothing blocking runs on the event loop: a request is handled in a worker thread (at
most :data:`WORKERS` at once; the rest wait for one), which reads the store and the
share's files. A handler that needs the request's body answers :class:`BodyWanted`:
the body is received on the loop (a slow client holds no thread), then the handler's
continuation writes it in a worker thread. A Get File's chunks are read in worker
threads too, each while the one before it is sent.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import stat
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote

import anyio
import anyio.abc
import anyio.to_thread

from skiff.core.shares import FileShares, ShareInfo, ShareRef
from skiff.errors import (
    NodeStorageFull,
    ShareAlreadyExists,
    ShareError,
    ShareInUse,
    ShareNotFound,
    ShareQuotaTooSmall,
    SkiffError,
    StorageAccountNotFound,
)
from skiff.files import auth, paths
from skiff.files import xml as bodies

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

#: The largest range one Put Range writes (Azure's limit).
MAX_RANGE = 4 * 1024 * 1024
#: The largest file Azure Files holds (4 TiB).
MAX_FILE = 4 * 1024 ** 4
#: Bytes per read of a Get File answer.
READ_CHUNK = 1024 * 1024
#: Requests handled at once (worker threads doing their file and store I/O); more wait.
WORKERS = 16
#: The version answered when a request names none.
VERSION = "2025-05-05"
#: Where a file's or directory's properties live (content headers, metadata, created).
XATTR = "user.skiff.azfile"
MAX_QUOTA_GIB = 102400

_SHARE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")
_META_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_CONTENT = ("content-type", "content-encoding", "content-language", "cache-control",
            "content-disposition", "content-md5")


class Fail(Exception):
    """An Azure error answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _not_found() -> Fail:
    return Fail(404, "ResourceNotFound", "The specified resource does not exist.")


def _parent_not_found() -> Fail:
    return Fail(404, "ParentNotFound", "The specified parent path does not exist.")


def _share_not_found() -> Fail:
    return Fail(404, "ShareNotFound", "The specified share does not exist.")


def _bad_header(name: str) -> Fail:
    return Fail(400, "InvalidHeaderValue",
                f"The value for one of the HTTP headers is not in the correct format. "
                f"Header: {name}")


def _out_of_range(name: str) -> Fail:
    return Fail(400, "OutOfRangeInput", f"One of the request inputs is out of range: {name}.")


def _http_date(when: float) -> str:
    return formatdate(when, usegmt=True)


def _iso(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest // 100:07d}Z"


def _now_iso() -> str:
    return _iso(time.time_ns())


def _etag_of(st: os.stat_result) -> str:
    return f'"0x{st.st_ctime_ns:X}"'


def _share_etag(info: ShareInfo) -> str:
    etag = info.etag or f"0x{int(info.last_modified * 1e7):X}"
    return etag if etag.startswith('"') else f'"{etag}"'


def _space_error() -> Fail:
    # 403, as Azure Files' error table gives it (not 413: the request is not too large).
    return Fail(403, "ShareSizeLimitReached", "The specified share is full.")


class Request:
    """What one request brings (headers lowercase, query decoded)."""

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.method: str = scope["method"]
        raw = scope.get("raw_path") or scope["path"].encode()
        self.raw_path = raw.decode("latin-1").split("?", 1)[0]
        self.query_pairs = auth.decoded_query(scope.get("query_string", b"").decode("latin-1"))
        self.query = {k.lower(): v for k, v in self.query_pairs}
        headers: dict[str, str] = {}
        for name, value in scope.get("headers", []):
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1").strip()
            headers[key] = f"{headers[key]},{text}" if key in headers else text
        self.headers = headers
        self.receive = receive
        client = scope.get("client") or ("", 0)
        self.client_ip = client[0] or ""
        self.scheme = scope.get("scheme", "https")
        self.request_id = str(uuid.uuid4())

    def metadata(self) -> dict[str, str]:
        meta = {}
        for name, value in self.headers.items():
            if name.startswith("x-ms-meta-"):
                key = name[len("x-ms-meta-"):]
                if not _META_NAME.match(key):
                    raise Fail(400, "InvalidMetadata",
                               "The metadata specified is invalid. It has characters that "
                               "are not permitted.")
                meta[key] = value
        return meta

    def int_header(self, name: str, low: int, high: int) -> int | None:
        value = self.headers.get(name)
        if value is None:
            return None
        try:
            number = int(value)
        except ValueError:
            raise _bad_header(name) from None
        if not low <= number <= high:
            raise _out_of_range(name)
        return number

    async def body(self, limit: int) -> bytes:
        chunks = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise Fail(400, "InvalidInput", "The request body ended early.")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise Fail(413, "RequestBodyTooLarge",
                           "The request body is too large and exceeds the maximum "
                           f"permissible limit. MaxLimit:{limit}")
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)


class Answer:
    def __init__(self, status: int, body: bytes = b"",
                 headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}
        #: A file to stream instead of ``body``: (fd, offset, length); the app closes fd.
        self.stream: tuple[int, int, int] | None = None


class BodyWanted:
    """A handler's answer when it needs the request's body: the app receives it on the
    event loop (at most ``limit`` bytes), then runs ``then(body)`` in a worker thread for
    the answer. ``abandon`` runs instead when the body never comes whole (the client
    went, or sent too much): it releases what the handler holds (an open file)."""

    def __init__(self, limit: int, then: Callable[[bytes], Answer],
                 abandon: Callable[[], None] | None = None) -> None:
        self.limit = limit
        self.then = then
        self.abandon = abandon or (lambda: None)


#: What a handler answers: the answer, or a request for the body first.
Outcome = Answer | BodyWanted


def _props_of(fd: int) -> dict[str, Any]:
    try:
        return dict(json.loads(os.getxattr(fd, XATTR)))
    except (OSError, ValueError):
        return {}


def _set_props(fd: int, props: dict[str, Any]) -> None:
    try:
        os.setxattr(fd, XATTR, json.dumps(props, separators=(",", ":")).encode())
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _space_error() from exc
        raise


def _smb_headers(st: os.stat_result, props: dict[str, Any], directory: bool,
                 parent_id: str = "0") -> dict[str, str]:
    created = props.get("created") or st.st_mtime_ns
    return {
        "x-ms-file-attributes": "Directory" if directory else "Archive",
        "x-ms-file-creation-time": _iso(int(created)),
        "x-ms-file-last-write-time": _iso(st.st_mtime_ns),
        "x-ms-file-change-time": _iso(st.st_ctime_ns),
        "x-ms-file-permission-key": bodies.PERMISSION_KEY,
        "x-ms-file-id": str(st.st_ino),
        "x-ms-file-parent-id": parent_id,
    }


class FilesApp:
    """The ASGI app: ``FilesApp(shares, endpoint=...)``; ``endpoint`` is the public URL
    base (``https://HOST:PORT``) answered in listings."""

    def __init__(self, shares: FileShares, *, endpoint: str, workers: int = WORKERS) -> None:
        self.shares = shares
        self.endpoint = endpoint.rstrip("/")
        self._workers = anyio.CapacityLimiter(workers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            await send({"type": f"{message['type']}.complete"})
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        outcome = await self._in_worker(request, self.handle, request)
        while isinstance(outcome, BodyWanted):
            wanted = outcome
            try:
                body = await request.body(wanted.limit)
            except Fail as fail:
                wanted.abandon()
                outcome = self.error(request, fail)
                break
            except BaseException:
                wanted.abandon()
                raise
            outcome = await self._in_worker(request, wanted.then, body)
        await self.respond(request, outcome, send)

    async def _in_worker(self, request: Request, step: Callable[..., Outcome],
                         *args: Any) -> Outcome:
        """``step(*args)`` in a worker thread; a failure as Azure's error answer."""
        return await anyio.to_thread.run_sync(self._answered, request, step, *args,
                                              limiter=self._workers)

    def _answered(self, request: Request, step: Callable[..., Outcome],
                  *args: Any) -> Outcome:
        try:
            return step(*args)
        except Fail as fail:
            answer = self.error(request, fail)
        except paths.BadName:
            answer = self.error(request, Fail(400, "InvalidResourceName",
                                              "The specifed resource name contains invalid "
                                              "characters."))
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                answer = self.error(request, _space_error())
            elif exc.errno == errno.ENAMETOOLONG:
                answer = self.error(request, Fail(400, "InvalidFileOrDirectoryPathName",
                                                  "File or directory path is too long."))
            else:
                log.warning("files: %s %s failed: %s", request.method, request.raw_path,
                            exc.strerror)
                answer = self.error(request, Fail(500, "InternalError",
                                                  "The server encountered an internal error. "
                                                  "Please retry the request."))
        except Exception:  # a bug of ours: Azure's 500, the traceback in the log only
            log.exception("files: %s %s failed", request.method, request.raw_path)
            answer = self.error(request, Fail(500, "InternalError",
                                              "The server encountered an internal error. "
                                              "Please retry the request."))
        return answer

    def error(self, request: Request, fail: Fail) -> Answer:
        body = bodies.error(fail.code, fail.message, request.request_id, _now_iso())
        return Answer(fail.status, body, {"x-ms-error-code": fail.code,
                                          "content-type": "application/xml"})

    async def respond(self, request: Request, answer: Answer, send: Send) -> None:
        headers = {"x-ms-request-id": request.request_id,
                   "x-ms-version": request.headers.get("x-ms-version", VERSION),
                   "date": _http_date(time.time()), "server": "skiff-files"}
        headers.update(answer.headers)
        length = answer.stream[2] if answer.stream else len(answer.body)
        if "content-length" not in headers:
            headers["content-length"] = str(length)
        await send({"type": "http.response.start", "status": answer.status,
                    "headers": [(k.encode(), v.encode("latin-1")) for k, v in headers.items()]})
        if request.method == "HEAD":
            if answer.stream:
                os.close(answer.stream[0])
            await send({"type": "http.response.body", "body": b""})
            return
        if answer.stream is None:
            await send({"type": "http.response.body", "body": answer.body})
            return
        fd, offset, remaining = answer.stream
        try:
            if length == 0:
                await send({"type": "http.response.body", "body": b""})
                return
            async with anyio.create_task_group() as tasks:
                # Chunk n+1 is read (in a worker thread) while chunk n is sent.
                ahead = _ReadAhead(tasks, fd, self._workers)
                ahead.start(offset, min(READ_CHUNK, remaining))
                while remaining > 0:
                    chunk = await ahead.result()
                    offset += len(chunk)
                    remaining -= len(chunk)
                    if remaining > 0:
                        ahead.start(offset, min(READ_CHUNK, remaining))
                    await send({"type": "http.response.body", "body": chunk,
                                "more_body": remaining > 0})
        finally:
            os.close(fd)

    # --- dispatch ---------------------------------------------------------------------

    def handle(self, request: Request) -> Outcome:
        parts = request.raw_path.split("/")[1:]
        account = unquote(parts[0]) if parts else ""
        if not account:
            raise Fail(400, "InvalidUri", "The requested URI does not represent any resource "
                       "on the server.")
        share = unquote(parts[1]) if len(parts) > 1 else ""
        path = unquote("/".join(parts[2:])) if len(parts) > 2 else ""
        restype = request.query.get("restype", "")
        comp = request.query.get("comp", "")
        method = request.method
        if not share:
            access = auth.Access("s", "l" if comp == "list" else
                                 ("r" if method in ("GET", "HEAD") else "w"))
            self.authenticate(request, account, access)
            return self.service(request, account, comp, restype)
        if share and not path and restype == "share":
            permission = {"GET": "r", "HEAD": "r", "DELETE": "d"}.get(method, "w")
            if method == "PUT" and not comp:
                permission = "c"
            self.authenticate(request, account, auth.Access("c", permission, share))
            return self.share(request, ShareRef(account, share), comp)
        if restype == "directory":
            permission = {"GET": "l" if comp == "list" else "r", "HEAD": "r",
                          "DELETE": "d"}.get(method, "w")
            if method == "PUT" and not comp:
                permission = "c"
            self.authenticate(request, account, auth.Access("o", permission, share, path))
            return self.directory(request, ShareRef(account, share), path, comp)
        if not path:
            raise Fail(400, "InvalidQueryParameterValue",
                       "Value for one of the query parameters specified in the request URI "
                       "is invalid: restype.")
        permission = {"GET": "r", "HEAD": "r", "DELETE": "d"}.get(method, "w")
        if method == "PUT" and not comp:
            permission = "c"
        self.authenticate(request, account, auth.Access("o", permission, share, path))
        return self.file(request, ShareRef(account, share), path, comp)

    def authenticate(self, request: Request, account: str, access: auth.Access) -> None:
        try:
            keys = self.shares.account_keys(account)
        except StorageAccountNotFound:
            keys = ("", "")  # no account: every signature fails, as a wrong one does
        try:
            authorization = request.headers.get("authorization")
            if authorization:
                auth.check_shared_key(authorization, keys, account, request.method,
                                      request.headers, request.raw_path, request.query_pairs)
                auth.check_date(request.headers, time.time())
            elif "sig" in request.query:
                auth.check_sas(request.query, keys, account, access,
                               client_ip=request.client_ip, scheme=request.scheme)
            else:
                raise Fail(401, "NoAuthenticationInformation",
                           "Server failed to authenticate the request. Please refer to the "
                           "information in the www-authenticate header.")
        except auth.AuthFailed as exc:
            raise Fail(403, "AuthenticationFailed", str(exc)) from None
        except auth.NotPermitted as exc:
            raise Fail(403, exc.code, str(exc)) from None

    # --- service ----------------------------------------------------------------------

    def service(self, request: Request, account: str, comp: str, restype: str) -> Outcome:
        if comp == "list" and request.method == "GET":
            return self.list_shares(request, account)
        if restype == "service" and comp == "properties":
            if request.method == "GET":
                return Answer(200, bodies.SERVICE_PROPERTIES, {"content-type": "application/xml"})
            if request.method == "PUT":
                return BodyWanted(64 * 1024, lambda _: Answer(202))
        raise Fail(400, "UnsupportedQueryParameter" if comp else "InvalidUri",
                   "One of the query parameters specified in the request URI is not supported.")

    def list_shares(self, request: Request, account: str) -> Answer:
        prefix = request.query.get("prefix", "")
        marker = request.query.get("marker", "")
        maxresults = self._maxresults(request)
        include = {i.strip().lower() for i in request.query.get("include", "").split(",")}
        try:
            infos = self.shares.list_shares(account)
        except StorageAccountNotFound:
            infos = []
        names = sorted((i for i in infos if i.ref.share.startswith(prefix)
                        and i.ref.share >= marker), key=lambda i: i.ref.share)
        limit = maxresults or 5000
        page, rest = names[:limit], names[limit:]
        items = [(i.ref.share, _http_date(i.last_modified), _share_etag(i), i.quota_gib,
                  dict(i.metadata) if "metadata" in include else None) for i in page]
        body = bodies.shares(f"{self.endpoint}/{account}/", prefix, marker, maxresults, items,
                             rest[0].ref.share if rest else "")
        return Answer(200, body, {"content-type": "application/xml"})

    @staticmethod
    def _maxresults(request: Request) -> int | None:
        text = request.query.get("maxresults")
        if text is None:
            return None
        try:
            number = int(text)
        except ValueError:
            raise Fail(400, "InvalidQueryParameterValue",
                       "Value for one of the query parameters specified in the request URI "
                       "is invalid: maxresults.") from None
        if number < 1:
            raise Fail(400, "OutOfRangeQueryParameterValue",
                       "One of the query parameters specified in the request URI is outside "
                       "the permissible range: maxresults.")
        return min(number, 5000)

    # --- shares -----------------------------------------------------------------------

    def _share_headers(self, info: ShareInfo) -> dict[str, str]:
        headers = {"etag": _share_etag(info), "last-modified": _http_date(info.last_modified)}
        headers.update({f"x-ms-meta-{k}": v for k, v in info.metadata.items()})
        return headers

    def share(self, request: Request, ref: ShareRef, comp: str) -> Outcome:
        method = request.method
        try:
            if method == "PUT" and not comp:
                if not _SHARE_NAME.match(ref.share):
                    raise Fail(400, "InvalidResourceName",
                               "The specifed resource name contains invalid characters.")
                quota = request.int_header("x-ms-share-quota", 1, MAX_QUOTA_GIB)
                info = self.shares.create_share(ref, quota, request.metadata())
                return Answer(201, headers=self._share_headers(info))
            if method == "DELETE" and not comp:
                self.shares.delete_share(ref)
                return Answer(202)
            if method in ("GET", "HEAD") and not comp:
                info = self.shares.get_share(ref)
                headers = self._share_headers(info)
                headers.update({"x-ms-share-quota": str(info.quota_gib),
                                "x-ms-access-tier": "TransactionOptimized",
                                "x-ms-enabled-protocols": "SMB"})
                return Answer(200, headers=headers)
            if method == "PUT" and comp == "properties":
                quota = request.int_header("x-ms-share-quota", 1, MAX_QUOTA_GIB)
                info = self.shares.set_share(ref, quota_gib=quota)
                return Answer(200, headers=self._share_headers(info))
            if method == "PUT" and comp == "metadata":
                info = self.shares.set_share(ref, metadata=request.metadata())
                return Answer(200, headers=self._share_headers(info))
            if method == "GET" and comp == "stats":
                info = self.shares.get_share(ref, usage=True)
                return Answer(200, bodies.stats(info.usage_bytes or 0),
                              {**self._share_headers(info), "content-type": "application/xml"})
            if comp == "acl" and method in ("GET", "HEAD"):
                info = self.shares.get_share(ref)
                return Answer(200, bodies.ACL, {**self._share_headers(info),
                                                "content-type": "application/xml"})
            if comp == "acl" and method == "PUT":
                return BodyWanted(64 * 1024, lambda body: self.set_acl(ref, body))
        except ShareNotFound:
            raise _share_not_found() from None
        except StorageAccountNotFound:
            raise _share_not_found() from None
        except ShareAlreadyExists:
            raise Fail(409, "ShareAlreadyExists", "The specified share already exists.") from None
        except ShareInUse:
            raise Fail(409, "ShareInUse", "The share is mounted by a container group; "
                       "delete or stop the group first.") from None
        except ShareQuotaTooSmall as exc:
            raise Fail(400, "InvalidHeaderValue", f"{exc} Header: x-ms-share-quota") from None
        except NodeStorageFull as exc:
            raise Fail(409, "InsufficientStorageCapacity", str(exc)) from None
        except ShareError as exc:
            raise Fail(400, exc.code, str(exc)) from None
        raise Fail(400, "UnsupportedHttpVerb" if not comp else "UnsupportedQueryParameter",
                   "The resource doesn't support the specified HTTP verb or query parameter.")

    def set_acl(self, ref: ShareRef, body: bytes) -> Answer:
        if b"<SignedIdentifier>" in body:
            raise Fail(400, "FeatureNotSupported", "Stored access policies are not supported.")
        try:
            info = self.shares.get_share(ref)
        except (ShareNotFound, StorageAccountNotFound):
            raise _share_not_found() from None
        return Answer(200, headers=self._share_headers(info))

    def _root(self, ref: ShareRef) -> os.PathLike[str]:
        try:
            return self.shares.root(ref)
        except (ShareNotFound, StorageAccountNotFound):
            raise _share_not_found() from None
        except SkiffError as exc:
            raise Fail(500, "InternalError", str(exc)) from None

    def _quota_bytes(self, ref: ShareRef) -> int:
        try:
            return self.shares.get_share(ref).quota_gib * 1024 ** 3
        except (ShareNotFound, StorageAccountNotFound):
            raise _share_not_found() from None

    # --- directories ------------------------------------------------------------------

    def directory(self, request: Request, ref: ShareRef, path: str, comp: str) -> Outcome:
        root = self._root(ref)
        parts = paths.split(path)
        method = request.method
        if method == "GET" and comp == "list":
            return self.list_entries(request, ref, root, parts)
        if method == "PUT" and not comp:
            if not parts:
                raise Fail(409, "ResourceAlreadyExists", "The specified resource already exists.")
            meta = request.metadata()
            with self._parent(root, parts) as parent:
                try:
                    os.mkdir(parts[-1], 0o777, dir_fd=parent)
                except FileExistsError:
                    raise Fail(409, "ResourceAlreadyExists",
                               "The specified resource already exists.") from None
                fd = os.open(parts[-1], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                             dir_fd=parent)
                try:
                    os.fchmod(fd, 0o777)
                    props: dict[str, Any] = {"meta": meta, "created": time.time_ns()}
                    _set_props(fd, props)
                    st = os.fstat(fd)
                    return Answer(201, headers=self._item_headers(st, props, True))
                finally:
                    os.close(fd)
        if method == "DELETE" and not comp:
            if not parts:
                raise Fail(400, "InvalidUri", "The root directory of a share cannot be deleted.")
            with self._parent(root, parts) as parent:
                try:
                    st = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
                except FileNotFoundError:
                    raise _not_found() from None
                if not stat.S_ISDIR(st.st_mode) and not stat.S_ISREG(st.st_mode):
                    raise _not_found()  # a symlink planted in the share: never an entry
                if not stat.S_ISDIR(st.st_mode):
                    raise Fail(409, "ResourceTypeMismatch", "The specified resource type does "
                               "not match the type of the existing resource.")
                try:
                    os.rmdir(parts[-1], dir_fd=parent)
                except OSError as exc:
                    if exc.errno == errno.ENOTEMPTY:
                        raise Fail(409, "DirectoryNotEmpty",
                                   "The specified directory is not empty.") from None
                    raise
                return Answer(202)
        if method in ("GET", "HEAD", "PUT") and comp in ("", "metadata", "properties"):
            try:
                with paths.directory(root, parts) as fd:  # type: ignore[arg-type]
                    props = _props_of(fd)
                    if method == "PUT" and comp == "metadata":
                        props["meta"] = request.metadata()
                        _set_props(fd, props)
                    elif method == "PUT" and comp == "properties":
                        _set_props(fd, props)  # SMB properties: accepted, times kept by the host
                    elif method == "PUT":
                        raise Fail(400, "UnsupportedHttpVerb",
                                   "The resource doesn't support the specified HTTP verb.")
                    st = os.fstat(fd)
                    headers = self._item_headers(st, props, True)
                    if method != "PUT":
                        headers.update({f"x-ms-meta-{k}": v
                                        for k, v in props.get("meta", {}).items()})
                    return Answer(200, headers=headers)
            except paths.Missing:
                raise _not_found() from None
        raise Fail(400, "UnsupportedQueryParameter",
                   "One of the query parameters specified in the request URI is not supported.")

    @contextlib.contextmanager
    def _parent(self, root: os.PathLike[str], parts: list[str]) -> Any:
        try:
            with paths.directory(root, parts[:-1]) as fd:  # type: ignore[arg-type]
                yield fd
        except paths.Missing:
            raise _parent_not_found() from None

    def _item_headers(self, st: os.stat_result, props: dict[str, Any],
                      directory: bool) -> dict[str, str]:
        headers = {"etag": _etag_of(st), "last-modified": _http_date(st.st_ctime),
                   "x-ms-request-server-encrypted": "true", "x-ms-server-encrypted": "true"}
        headers.update(_smb_headers(st, props, directory))
        return headers

    def list_entries(self, request: Request, ref: ShareRef, root: os.PathLike[str],
                     parts: list[str]) -> Answer:
        prefix = request.query.get("prefix", "")
        marker = request.query.get("marker", "")
        maxresults = self._maxresults(request)
        include = {i.strip().lower() for i in request.query.get("include", "").split(",")}
        extended = request.headers.get("x-ms-file-extended-info", "").lower() == "true"
        try:
            with paths.directory(root, parts) as fd:  # type: ignore[arg-type]
                directory_id = str(os.fstat(fd).st_ino)
                names = sorted(n for n in os.listdir(fd) if n.startswith(prefix)
                               and (not marker or n >= marker) and _listable(n))
                limit = maxresults or 5000
                items: list[str] = []
                next_marker = ""
                for name in names:
                    try:
                        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    is_dir = stat.S_ISDIR(st.st_mode)
                    if not is_dir and not stat.S_ISREG(st.st_mode):
                        continue  # symlinks, sockets: not Azure Files entries
                    if len(items) == limit:
                        next_marker = name
                        break
                    times = None
                    if "timestamps" in include:
                        times = {"CreationTime": _iso(st.st_mtime_ns),
                                 "LastAccessTime": _iso(st.st_atime_ns),
                                 "LastWriteTime": _iso(st.st_mtime_ns),
                                 "ChangeTime": _iso(st.st_ctime_ns),
                                 "Last-Modified": _http_date(st.st_ctime)}
                    items.append(bodies.entry(
                        "Directory" if is_dir else "File", name, str(st.st_ino),
                        size=None if is_dir else st.st_size, times=times,
                        etag=_etag_of(st) if "etag" in include else None,
                        attributes=("Directory" if is_dir else "Archive")
                        if ("attributes" in include or extended) else None))
        except paths.Missing:
            raise _not_found() from None
        body = bodies.entries(f"{self.endpoint}/{ref.account}/", ref.share, "/".join(parts),
                              directory_id, prefix, marker, maxresults, items, next_marker)
        return Answer(200, body, {"content-type": "application/xml"})

    # --- files ------------------------------------------------------------------------

    def _open_file(self, root: os.PathLike[str], parts: list[str], flags: int) -> int:
        try:
            with paths.directory(root, parts[:-1]) as parent:  # type: ignore[arg-type]
                try:
                    fd = os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
                except OSError as exc:
                    if exc.errno in (errno.ENOENT, errno.ELOOP, errno.EISDIR, errno.ENXIO):
                        raise _not_found() from None
                    raise
        except paths.Missing:
            raise _not_found() from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise _not_found()
        return fd

    def _file_headers(self, st: os.stat_result, props: dict[str, Any]) -> dict[str, str]:
        headers = self._item_headers(st, props, False)
        headers["x-ms-type"] = "File"
        content = props.get("content", {})
        headers["content-type"] = content.get("content-type") or "application/octet-stream"
        for name in ("content-encoding", "content-language", "cache-control",
                     "content-disposition"):
            if content.get(name):
                headers[name] = content[name]
        return headers

    def file(self, request: Request, ref: ShareRef, path: str, comp: str) -> Outcome:
        root = self._root(ref)
        parts = paths.split(path)
        method = request.method
        if method == "PUT" and not comp:
            return self.create_file(request, ref, root, parts)
        if method == "PUT" and comp == "range":
            return self.put_range(request, ref, root, parts)
        if method in ("GET", "HEAD") and not comp:
            return self.get_file(request, root, parts)
        if method == "DELETE" and not comp:
            with self._parent(root, parts) as parent:
                try:
                    st = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
                except FileNotFoundError:
                    raise _not_found() from None
                if stat.S_ISDIR(st.st_mode):
                    raise Fail(409, "ResourceTypeMismatch", "The specified resource type does "
                               "not match the type of the existing resource.")
                if not stat.S_ISREG(st.st_mode):
                    raise _not_found()
                os.unlink(parts[-1], dir_fd=parent)
            return Answer(202)
        if method == "PUT" and comp in ("properties", "metadata"):
            fd = self._open_file(root, parts, os.O_RDWR)
            try:
                props = _props_of(fd)
                if comp == "metadata":
                    props["meta"] = request.metadata()
                else:
                    size = request.int_header("x-ms-content-length", 0, MAX_FILE)
                    if size is not None:
                        if size > self._quota_bytes(ref):
                            raise _space_error()
                        os.ftruncate(fd, size)
                    props["content"] = self._content_headers(request)
                _set_props(fd, props)
                return Answer(200, headers=self._item_headers(os.fstat(fd), props, False))
            finally:
                os.close(fd)
        if method == "GET" and comp == "rangelist":
            fd = self._open_file(root, parts, os.O_RDONLY)
            try:
                st = os.fstat(fd)
                spans = _data_spans(fd, st.st_size)
                headers = self._item_headers(st, {}, False)
                headers["x-ms-content-length"] = str(st.st_size)
                headers["content-type"] = "application/xml"
                return Answer(200, bodies.ranges(spans), headers)
            finally:
                os.close(fd)
        raise Fail(400, "UnsupportedQueryParameter",
                   "One of the query parameters specified in the request URI is not supported.")

    @staticmethod
    def _content_headers(request: Request) -> dict[str, str]:
        return {name: request.headers[f"x-ms-{name}"] for name in _CONTENT
                if request.headers.get(f"x-ms-{name}")}

    def create_file(self, request: Request, ref: ShareRef, root: os.PathLike[str],
                    parts: list[str]) -> Answer:
        if request.headers.get("x-ms-type", "file").lower() != "file":
            raise _bad_header("x-ms-type")
        size = request.int_header("x-ms-content-length", 0, MAX_FILE)
        if size is None:
            raise Fail(400, "MissingRequiredHeader",
                       "An HTTP header that's mandatory for this request is not specified. "
                       "Header: x-ms-content-length")
        if size > self._quota_bytes(ref):
            raise _space_error()
        meta = request.metadata()
        content = self._content_headers(request)
        with self._parent(root, parts) as parent:
            try:
                fd = os.open(parts[-1], os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o666, dir_fd=parent)
            except OSError as exc:
                if exc.errno == errno.EISDIR:
                    raise Fail(409, "ResourceTypeMismatch", "The specified resource type does "
                               "not match the type of the existing resource.") from None
                if exc.errno == errno.ELOOP:
                    raise Fail(409, "ResourceTypeMismatch", "The specified resource is not a "
                               "file.") from None
                raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise Fail(409, "ResourceTypeMismatch", "The specified resource is not a file.")
            os.fchmod(fd, 0o666)
            os.ftruncate(fd, 0)
            os.ftruncate(fd, size)
            props: dict[str, Any] = {"meta": meta, "content": content,
                                     "created": time.time_ns()}
            _set_props(fd, props)
            return Answer(201, headers=self._item_headers(os.fstat(fd), props, False))
        finally:
            os.close(fd)

    def put_range(self, request: Request, ref: ShareRef, root: os.PathLike[str],
                  parts: list[str]) -> Outcome:
        header = "x-ms-range" if "x-ms-range" in request.headers else "range"
        start, end = _parse_range(request.headers.get(header), header)
        if end is None:
            raise _bad_header(header)
        write = request.headers.get("x-ms-write", "").lower()
        if write not in ("update", "clear"):
            raise _bad_header("x-ms-write")
        length = end - start + 1
        if length > MAX_RANGE:
            raise Fail(413, "RequestBodyTooLarge", "The request body is too large and exceeds "
                       f"the maximum permissible limit. MaxLimit:{MAX_RANGE}")
        if write == "update":
            declared = request.headers.get("content-length")
            if declared is not None and declared != str(length):
                raise Fail(400, "InvalidHeaderValue", "The value for one of the HTTP "
                           "headers is not in the correct format. Header: Content-Length")
        fd = self._open_file(root, parts, os.O_RDWR)
        try:
            if end >= os.fstat(fd).st_size:
                raise Fail(416, "InvalidRange", "The range specified is invalid for the current "
                           "size of the resource.")
        except BaseException:
            os.close(fd)
            raise

        def written(data: bytes) -> Answer:
            try:
                return self._write_range(request, fd, start, end, write, data)
            finally:
                os.close(fd)

        return BodyWanted(MAX_RANGE if write == "update" else 0, written,
                          lambda: os.close(fd))

    def _write_range(self, request: Request, fd: int, start: int, end: int, write: str,
                     data: bytes) -> Answer:
        digest = b""
        if write == "update":
            if len(data) != end - start + 1:
                raise Fail(400, "InvalidHeaderValue", "The value for one of the HTTP "
                           "headers is not in the correct format. Header: Content-Length")
            given = request.headers.get("content-md5")
            if given:  # checked (and answered) when sent: MD5 costs ~2 ms a MiB
                digest = hashlib.md5(data, usedforsecurity=False).digest()
                try:
                    expected = base64.b64decode(given.encode("latin-1"), validate=True)
                except ValueError:
                    raise Fail(400, "InvalidMd5", "The MD5 value specified in the request "
                               "is invalid. The MD5 value must be 128 bits and "
                               "Base64-encoded.") from None
                if expected != digest:
                    raise Fail(400, "Md5Mismatch", "The MD5 value specified in the "
                               "request did not match with the MD5 value calculated by "
                               "the server.")
            _pwrite_all(fd, data, start)
        else:
            zeros = b"\0" * min(end - start + 1, READ_CHUNK)
            offset = start
            while offset <= end:
                n = min(len(zeros), end + 1 - offset)
                _pwrite_all(fd, zeros[:n], offset)
                offset += n
        headers = self._item_headers(os.fstat(fd), {}, False)
        for name in list(headers):
            if name.startswith("x-ms-file-"):
                del headers[name]
        if digest:
            headers["content-md5"] = base64.b64encode(digest).decode()
        headers["x-ms-file-last-write-time"] = _iso(os.fstat(fd).st_mtime_ns)
        return Answer(201, headers=headers)

    def get_file(self, request: Request, root: os.PathLike[str], parts: list[str]) -> Answer:
        fd = self._open_file(root, parts, os.O_RDONLY)
        try:
            st = os.fstat(fd)
            props = _props_of(fd)
            headers = self._file_headers(st, props)
            headers.update({f"x-ms-meta-{k}": v for k, v in props.get("meta", {}).items()})
            headers["accept-ranges"] = "bytes"
            md5 = props.get("content", {}).get("content-md5")
            size = st.st_size
            header = "x-ms-range" if "x-ms-range" in request.headers else "range"
            spec = request.headers.get(header)
            if spec and request.method == "GET":
                start, end = _parse_range(spec, header)
                if start >= size:
                    raise Fail(416, "InvalidRange", "The range specified is invalid for the "
                               "current size of the resource.")
                end = size - 1 if end is None else min(end, size - 1)
                length = end - start + 1
                headers["content-range"] = f"bytes {start}-{end}/{size}"
                if request.headers.get("x-ms-range-get-content-md5", "").lower() == "true":
                    if length > MAX_RANGE:
                        raise _out_of_range("x-ms-range-get-content-md5")
                    headers["content-md5"] = base64.b64encode(hashlib.md5(
                        os.pread(fd, length, start), usedforsecurity=False).digest()).decode()
                if md5:
                    headers["x-ms-content-md5"] = md5
                answer = Answer(206, headers=headers)
                answer.stream = (fd, start, length)
            else:
                if md5:
                    headers["content-md5"] = md5
                answer = Answer(200, headers=headers)
                answer.stream = (fd, 0, size)
            headers["content-length"] = str(answer.stream[2])
            return answer
        except BaseException:
            os.close(fd)
            raise


class _ReadAhead:
    """One read of a file at a time in a worker thread, started before it is awaited."""

    def __init__(self, tasks: anyio.abc.TaskGroup, fd: int,
                 workers: anyio.CapacityLimiter) -> None:
        self._tasks = tasks
        self._fd = fd
        self._workers = workers
        self._done = anyio.Event()
        self._chunk = b""
        self._error: BaseException | None = None

    def start(self, offset: int, size: int) -> None:
        self._done = anyio.Event()
        self._tasks.start_soon(self._read, offset, size)

    async def _read(self, offset: int, size: int) -> None:
        try:
            self._chunk = await anyio.to_thread.run_sync(_pread_chunk, self._fd, size, offset,
                                                         limiter=self._workers)
        except Exception as exc:  # given to the awaiting side
            self._error = exc
        finally:
            self._done.set()

    async def result(self) -> bytes:
        await self._done.wait()
        if self._error is not None:
            raise self._error
        return self._chunk


def _pread_chunk(fd: int, size: int, offset: int) -> bytes:
    chunk = os.pread(fd, size, offset)
    return chunk or b"\0" * size  # truncated meanwhile: the length promised, as zeros


def _listable(name: str) -> bool:
    """Whether a name a container wrote can be answered in XML (valid UTF-8, no control
    characters); others are left out of listings."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return not any(ord(c) < 0x20 for c in name)


def _parse_range(spec: str | None, header: str) -> tuple[int, int | None]:
    match = _RANGE.match((spec or "").strip())
    if not match:
        raise _bad_header(header)
    start = int(match.group(1))
    end = int(match.group(2)) if match.group(2) else None
    if end is not None and end < start:
        raise Fail(416, "InvalidRange", "The range specified is invalid for the current size "
                   "of the resource.")
    return start, end


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _data_spans(fd: int, size: int) -> list[tuple[int, int]]:
    """The file's written ranges (its holes left out where the filesystem tells them)."""
    spans = []
    offset = 0
    try:
        while offset < size:
            try:
                data = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:
                    break
                raise
            hole = os.lseek(fd, data, os.SEEK_HOLE)
            spans.append((data, min(hole, size) - 1))
            offset = hole
    except OSError:
        return [(0, size - 1)] if size else []
    return spans
