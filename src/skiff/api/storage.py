"""Microsoft.Storage routes: storage accounts, their keys and their file shares.

The ARM subset that ``az storage account``, ``az storage share-rm`` and the Azure SDK's
storage management client use, any api-version date: accounts (PUT, GET, lists, PATCH
of tags, DELETE, ``listKeys``, ``regenerateKey``), ``checkNameAvailability``, the
account's one file service (``fileServices/default``) and its shares (PUT, GET, list,
DELETE). Everything answers at once, provisioningState Succeeded: a share's disk is
made before the PUT answers (:class:`~skiff.control.storage.StorageService`).

Account names are unique on the node, as Azure's are worldwide: another tenant's name
is taken (409 ``StorageAccountAlreadyTaken``), yet its account is absent to anyone
else (404). Keys are answered by ``listKeys`` and ``regenerateKey`` alone, and never
logged nor quoted in an error.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from skiff.api.bodies import (
    FILE_SHARE,
    STORAGE_ACCOUNT,
    STORAGE_ACCOUNT_PATCH,
    STORAGE_KEY_NAME,
    STORAGE_NAME_CHECK,
    request_body,
)
from skiff.api.context import (
    ControlPlane,
    Listing,
    allow,
    allow_listing,
    check_api_version,
    json_body,
    plane,
)
from skiff.api.places import locations
from skiff.control.access import Caller
from skiff.control.storage import StorageService, new_key
from skiff.core.shares import ShareInfo, ShareRef
from skiff.core.view import iso
from skiff.errors import ArmError, ShareNotFound
from skiff.models import storage as models
from skiff.store import AccountRecord, subscription_key

router = APIRouter(dependencies=[Depends(check_api_version)])
_PROVIDER = "providers/Microsoft.Storage"
ACCOUNTS = f"/subscriptions/{{subscription}}/resourceGroups/{{resource_group}}/{_PROVIDER}" \
           "/storageAccounts"
ACCOUNT = ACCOUNTS + "/{account}"
FILE_SERVICE = ACCOUNT + "/fileServices/default"
SHARES = FILE_SERVICE + "/shares"
SHARE = SHARES + "/{share}"
SUB_ACCOUNTS = f"/subscriptions/{{subscription}}/{_PROVIDER}/storageAccounts"
CHECK_NAME = f"/subscriptions/{{subscription}}/{_PROVIDER}/checkNameAvailability"
#: The routes' callers, each allowed its ARM action (skiff.control.access): a key is a
#: secret, so listing or regenerating keys is an action of its own (a Reader has neither).
_ACTION = "Microsoft.Storage/storageAccounts"
CanRead = Annotated[Caller, allow(f"{_ACTION}/read")]
CanList = Annotated[Listing, allow_listing(f"{_ACTION}/read")]
CanWrite = Annotated[Caller, allow(f"{_ACTION}/write")]
CanDelete = Annotated[Caller, allow(f"{_ACTION}/delete")]
CanListKeys = Annotated[Caller, allow(f"{_ACTION}/listkeys/action")]
CanRegenerateKey = Annotated[Caller, allow(f"{_ACTION}/regeneratekey/action")]
CanCheckName = Annotated[Caller, allow("Microsoft.Storage/checknameavailability/read")]
CanReadFileService = Annotated[Caller, allow(f"{_ACTION}/fileServices/read")]
CanReadShares = Annotated[Caller, allow(f"{_ACTION}/fileServices/shares/read")]
CanWriteShares = Annotated[Caller, allow(f"{_ACTION}/fileServices/shares/write")]
CanDeleteShares = Annotated[Caller, allow(f"{_ACTION}/fileServices/shares/delete")]


def service(plane_: ControlPlane) -> StorageService:
    if plane_.storage is None:
        raise ArmError(503, "ServiceUnavailable", "File shares are not served by this node.")
    return plane_.storage


def _not_found(name: str, resource_group: str) -> ArmError:
    return ArmError(404, "ResourceNotFound",
                    f"The Resource 'Microsoft.Storage/storageAccounts/{name}' under resource "
                    f"group '{resource_group}' was not found.")


def _find(plane_: ControlPlane, token: Any, subscription: str, resource_group: str,
          name: str) -> AccountRecord | None:
    """The caller's account, or None (another tenant's is as absent)."""
    record = service(plane_).store.get_account(name)
    if record is None or record.subscription != subscription_key(subscription) \
            or record.resource_group.lower() != resource_group.lower():
        return None
    return record


def _account(plane_: ControlPlane, token: Any, subscription: str, resource_group: str,
             name: str) -> AccountRecord:
    record = _find(plane_, token, subscription, resource_group, name)
    if record is None:
        raise _not_found(name, resource_group)
    return record


def _parent(plane_: ControlPlane, token: Any, subscription: str, resource_group: str,
            name: str) -> AccountRecord:
    """The account a share's path names: 404 ParentResourceNotFound, as ARM's, if absent."""
    record = _find(plane_, token, subscription, resource_group, name)
    if record is None:
        raise ArmError(404, "ParentResourceNotFound",
                       "Can not perform requested operation on nested resource. Parent "
                       f"resource '{name}' not found.")
    return record


# ---- accounts ---------------------------------------------------------------------------


@router.put(ACCOUNT, openapi_extra=request_body(STORAGE_ACCOUNT))
async def put_account(subscription: str, resource_group: str, account: str, request: Request,
                      token: CanWrite) -> Response:
    """Create a storage account (StorageV2 or FileStorage), or update its kind, sku, tags."""
    plane_ = plane(request)
    models.check_account_name(account)
    body = models.parse_account(json_body(await request.body()),
                                default_location=plane_.settings.api.location)
    store = service(plane_).store
    location = locations(plane_).place(body.location, "Microsoft.Storage/storageAccounts")
    record, _ = await asyncio.to_thread(
        store.put_account, subscription, resource_group, account, location, body.kind,
        body.sku, body.tags, (new_key(), new_key()))
    return JSONResponse(render_account(plane_, record), status_code=200)


@router.get(ACCOUNT)
def get_account(subscription: str, resource_group: str, account: str, request: Request,
                token: CanRead) -> dict[str, Any]:
    plane_ = plane(request)
    return render_account(plane_, _account(plane_, token, subscription, resource_group,
                                           account))


@router.patch(ACCOUNT, openapi_extra=request_body(STORAGE_ACCOUNT_PATCH))
async def patch_account(subscription: str, resource_group: str, account: str,
                        request: Request, token: CanWrite) -> dict[str, Any]:
    """Change a storage account's tags (the rest of a PATCH is left as it is)."""
    plane_ = plane(request)
    record = _account(plane_, token, subscription, resource_group, account)
    tags = models.parse_tags_patch(json_body(await request.body()))
    if tags is not None:
        changed = await asyncio.to_thread(service(plane_).store.set_account_tags, record.name,
                                          tags)
        record = changed or record
    return render_account(plane_, record)


@router.get(ACCOUNTS)
def list_accounts(subscription: str, resource_group: str, request: Request,
                  token: CanRead) -> dict[str, Any]:
    plane_ = plane(request)
    records = service(plane_).store.list_accounts(subscription, resource_group)
    return {"value": [render_account(plane_, r) for r in records]}


@router.get(SUB_ACCOUNTS)
def list_all_accounts(subscription: str, request: Request, token: CanList) -> dict[str, Any]:
    plane_ = plane(request)
    records = service(plane_).store.list_accounts(subscription)
    return {"value": token.visible([render_account(plane_, r) for r in records])}


@router.delete(ACCOUNT)
async def delete_account(subscription: str, resource_group: str, account: str,
                         request: Request, token: CanDelete) -> Response:
    """Delete a storage account and its shares' data; 409 ShareInUse while a container
    group mounts one of its shares."""
    plane_ = plane(request)
    record = _find(plane_, token, subscription, resource_group, account)
    if record is None:
        return Response(status_code=204)
    await asyncio.to_thread(service(plane_).delete_account, record.name)
    return Response(status_code=200)


@router.post(ACCOUNT + "/listKeys")
def list_keys(subscription: str, resource_group: str, account: str, request: Request,
              token: CanListKeys) -> dict[str, Any]:
    plane_ = plane(request)
    return render_keys(_account(plane_, token, subscription, resource_group, account))


@router.post(ACCOUNT + "/regenerateKey", openapi_extra=request_body(STORAGE_KEY_NAME))
async def regenerate_key(subscription: str, resource_group: str, account: str,
                         request: Request, token: CanRegenerateKey) -> dict[str, Any]:
    """Replace key1 or key2 (``{"keyName": "key1"}``); answers both keys, as listKeys."""
    plane_ = plane(request)
    record = _account(plane_, token, subscription, resource_group, account)
    doc = json_body(await request.body())
    which = doc.get("keyName") if isinstance(doc, dict) else None
    if not isinstance(which, str) or which.lower() not in ("key1", "key2"):
        raise ArmError(400, "InvalidRequestContent",
                       "keyName must be key1 or key2.", target="keyName")
    changed = await asyncio.to_thread(service(plane_).store.set_account_key, record.name,
                                      which.lower(), new_key())
    return render_keys(changed or record)


@router.post(CHECK_NAME, openapi_extra=request_body(STORAGE_NAME_CHECK))
async def check_name(subscription: str, request: Request,
                     token: CanCheckName) -> dict[str, Any]:
    """Whether a storage account name is free (``{"name", "type"}``), as Azure answers."""
    plane_ = plane(request)
    doc = json_body(await request.body())
    name = doc.get("name") if isinstance(doc, dict) else None
    if not isinstance(name, str):
        raise ArmError(400, "InvalidRequestContent", "name must be a string.", target="name")
    problem = models.account_name_problem(name)
    if problem is not None:
        return {"nameAvailable": False, "reason": "AccountNameInvalid", "message": problem}
    if service(plane_).store.get_account(name) is not None:
        return {"nameAvailable": False, "reason": "AlreadyExists",
                "message": f"The storage account named {name} is already taken."}
    return {"nameAvailable": True}


# ---- the file service and its shares ----------------------------------------------------


@router.get(FILE_SERVICE)
def get_file_service(subscription: str, resource_group: str, account: str, request: Request,
                     token: CanReadFileService) -> dict[str, Any]:
    record = _account(plane(request), token, subscription, resource_group, account)
    return {"id": f"{record.resource_id}/fileServices/default", "name": "default",
            "type": models.FILE_SERVICE_TYPE,
            "properties": {"cors": {"corsRules": []},
                           "shareDeleteRetentionPolicy": {"enabled": False}}}


@router.put(SHARE, openapi_extra=request_body(FILE_SHARE))
async def put_share(subscription: str, resource_group: str, account: str, share: str,
                    request: Request, token: CanWriteShares) -> Response:
    """Create a file share (shareQuota in GiB, 5120 by default; metadata), or change an
    existing one's quota and metadata. 201 when created."""
    plane_ = plane(request)
    record = _parent(plane_, token, subscription, resource_group, account)
    models.check_share_name(share)
    raw = await request.body()
    body = models.parse_share(json_body(raw) if raw.strip() else {})
    storage = service(plane_)
    ref = ShareRef(record.name, share)
    existing = await asyncio.to_thread(storage.store.get_share, ref.account, ref.share)
    if existing is None:
        info = await asyncio.to_thread(storage.create_share, ref, models.default_quota(body),
                                       body.metadata)
        return JSONResponse(render_share(record, info), status_code=201)
    info = await asyncio.to_thread(storage.set_share, ref, quota_gib=body.quota_gib,
                                   metadata=body.metadata)
    return JSONResponse(render_share(record, info), status_code=200)


@router.get(SHARE)
async def get_share(subscription: str, resource_group: str, account: str, share: str,
                    request: Request, token: CanReadShares) -> dict[str, Any]:
    """A file share; ``$expand=stats`` adds shareUsageBytes."""
    plane_ = plane(request)
    record = _parent(plane_, token, subscription, resource_group, account)
    usage = "stats" in request.query_params.get("$expand", "").lower()
    try:
        info = await asyncio.to_thread(service(plane_).get_share, ShareRef(record.name, share),
                                       usage=usage)
    except ShareNotFound:
        raise _share_not_found(share, resource_group) from None
    return render_share(record, info)


@router.get(SHARES)
def list_shares(subscription: str, resource_group: str, account: str, request: Request,
                token: CanReadShares) -> dict[str, Any]:
    plane_ = plane(request)
    record = _parent(plane_, token, subscription, resource_group, account)
    return {"value": [render_share(record, info)
                      for info in service(plane_).list_shares(record.name)]}


@router.delete(SHARE)
async def delete_share(subscription: str, resource_group: str, account: str, share: str,
                       request: Request, token: CanDeleteShares) -> Response:
    """Delete a file share and its data; 409 ShareInUse while a container group mounts it."""
    plane_ = plane(request)
    record = _parent(plane_, token, subscription, resource_group, account)
    try:
        await asyncio.to_thread(service(plane_).delete_share, ShareRef(record.name, share))
    except ShareNotFound:
        return Response(status_code=204)
    return Response(status_code=200)


def _share_not_found(share: str, resource_group: str) -> ArmError:
    return ArmError(404, "ResourceNotFound",
                    f"The Resource 'Microsoft.Storage/storageAccounts/fileServices/shares/"
                    f"{share}' under resource group '{resource_group}' was not found.")


# ---- answers ----------------------------------------------------------------------------


def render_account(plane_: ControlPlane, record: AccountRecord) -> dict[str, Any]:
    sku = dict(record.sku)
    sku.setdefault("tier", "Premium" if str(sku.get("name", "")).lower().startswith("premium")
                   else "Standard")
    created = iso(record.created_at)
    # As Azure leaves out the endpoints of services an account lacks: none when this node
    # serves no Azure Files (skiff serve --files-listen none).
    file = service(plane_).file_endpoint(record.name)
    endpoints = {"file": file} if file else {}
    return {
        "id": record.resource_id, "name": record.name, "type": models.ACCOUNT_TYPE,
        "location": record.location, "kind": record.kind, "sku": sku, "tags": record.tags,
        "properties": {
            "provisioningState": "Succeeded",
            "primaryEndpoints": endpoints,
            "primaryLocation": record.location, "statusOfPrimary": "available",
            "creationTime": created, "supportsHttpsTrafficOnly": True,
            "minimumTlsVersion": "TLS1_2", "allowSharedKeyAccess": True,
            "keyCreationTime": {"key1": created, "key2": created},
        },
    }


def render_keys(record: AccountRecord) -> dict[str, Any]:
    return {"keys": [{"keyName": name, "value": value, "permissions": "FULL"}
                     for name, value in zip(("key1", "key2"), record.keys, strict=True)]}


def render_share(record: AccountRecord, info: ShareInfo) -> dict[str, Any]:
    props: dict[str, Any] = {
        "shareQuota": info.quota_gib, "metadata": dict(info.metadata),
        "lastModifiedTime": iso(info.last_modified), "enabledProtocols": "SMB",
        "accessTier": "TransactionOptimized", "leaseStatus": "unlocked",
        "leaseState": "available",
    }
    if info.usage_bytes is not None:
        props["shareUsageBytes"] = info.usage_bytes
    return {"id": f"{record.resource_id}/fileServices/default/shares/{info.ref.share}",
            "name": info.ref.share, "type": models.SHARE_TYPE, "etag": info.etag,
            "properties": props}
