"""The portal's way to the API: ARM requests to the same app, in process, as the caller.

The portal is a client of the ACI REST API like az or an SDK: every page is made of the
answers the API gives the signed-in caller's token, so authorization, tenancy and the
activity log are the API's, by construction, and nothing the caller could not read
through the API reaches a page. Requests go to the app's ASGI interface (no socket, no
TLS), with the browser's address as the client, so the API records and bounds them as
the browser's. A service principal's sign-in goes the same way, to the token endpoint
(:func:`exchange`): its checks, its refusals and its sign-in events, not a copy of them.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
from starlette.types import ASGIApp

ACI = "2023-05-01"
RESOURCES = "2022-09-01"
AUTHORIZATION = "2022-04-01"
PROVIDER = "Microsoft.ContainerInstance"
#: The audience of the tokens the portal asks for: Azure's resource manager, which skiff's
#: API accepts as its own at whatever address it is reached (its configured one may not
#: be the one the browser used).
ARM_AUDIENCE = "https://management.azure.com/"
#: How many subscriptions' lists (and pages' group reads) run at once.
_CONCURRENCY = 8
#: Groups named in one batched read (the API answers up to 100; a list page shows 50).
_NAMED = 50
#: Groups asked for in one page of a list (the API's most): each page is a request,
#: passing the API's middleware and a hop to a worker thread and back, whose wake-ups,
#: on a busy machine, cost more than the page's work.
_TOP = 1000


class SignInRefused(Exception):
    """The token endpoint refused a sign-in: its status and its words (Entra's
    ``error_description``: the AADSTS code, the message, the trace ids)."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status, self.description = status, description


@dataclass(frozen=True)
class Granted:
    """An access token the token endpoint issued, and its lifetime in seconds."""

    access_token: str = field(repr=False)
    lifetime_s: float


async def exchange(app: ASGIApp, tenant: str, client_id: str, secret: str, *,
                   client: tuple[str, int] = ("127.0.0.1", 0),
                   base_url: str = "https://portal.invalid") -> Granted:
    """A service principal's client-credentials grant, asked of the app's own token
    endpoint in process (``client``: the browser's address, which its sign-in event
    records; ``base_url``: the address the browser reached, which the token's issuer
    names) for a token to :data:`ARM_AUDIENCE`; :class:`SignInRefused` if it says no.
    The secret goes in the request's body, as a form, and nowhere else."""
    transport = httpx.ASGITransport(app=app, client=client)
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
        answer = await http.post(f"/{quote(tenant, safe='')}/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": client_id,
            "client_secret": secret, "scope": f"{ARM_AUDIENCE}.default"})
    try:
        body = answer.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise SignInRefused(answer.status_code if answer.status_code >= 400 else 502,
                            f"The token endpoint answered {answer.status_code} "
                            f"{answer.reason_phrase}.")
    if answer.status_code >= 400 or not isinstance(body.get("access_token"), str):
        raise SignInRefused(answer.status_code if answer.status_code >= 400 else 502,
                            str(body.get("error_description") or body.get("error")
                                or "The token endpoint issued no token."))
    lifetime = body.get("expires_in")
    return Granted(body["access_token"],
                   float(lifetime) if isinstance(lifetime, int | float) else 0.0)


class ArmFailure(Exception):
    """An ARM error the API answered: its status, code and message (shown as they are)."""

    def __init__(self, status: int, code: str, message: str, target: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message
        #: What the error concerns (ARM's ``target``: a body's field path), if it says.
        self.target = target


@dataclass
class Arm:
    """The API as one caller (``token``) sees it."""

    app: ASGIApp
    token: str
    #: The browser's (host, port): the API's client for these requests.
    client: tuple[str, int] = ("127.0.0.1", 0)

    async def call(self, method: str, path: str, *, version: str = ACI,
                   params: dict[str, str] | None = None, body: Any = None) -> httpx.Response:
        """One request (``body``: its JSON, if any); an ARM error answer raises
        :class:`ArmFailure`."""
        transport = httpx.ASGITransport(app=self.app, client=self.client)
        query = {"api-version": version, **(params or {})}
        async with httpx.AsyncClient(transport=transport, base_url="https://portal.invalid",
                                     headers={"Authorization": f"Bearer {self.token}"}) as http:
            answer = await http.request(method, path, params=query, json=body)
        if answer.status_code >= 400:
            raise _failure(answer)
        return answer

    async def get(self, path: str, *, version: str = ACI,
                  params: dict[str, str] | None = None) -> Any:
        return (await self.call("GET", path, version=version, params=params)).json()

    async def listing(self, path: str, *, version: str = ACI,
                      params: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Every item of a collection, its ``nextLink`` pages followed (``params`` asked of
        each page)."""
        items: list[dict[str, Any]] = []
        asked = dict(params or {})
        while True:
            page = await self.get(path, version=version, params=asked)
            items.extend(page.get("value", []))
            token = _skip_token(page.get("nextLink"))
            if token is None:
                return items
            asked = {**(params or {}), "$skipToken": token}

    async def subscriptions(self) -> list[str]:
        found = await self.listing("/subscriptions", version=RESOURCES)
        return [str(s["subscriptionId"]) for s in found]

    async def resource_groups(self) -> list[tuple[str, str]]:
        """Every (subscription, resource group) the caller sees, sorted."""
        found: list[tuple[str, str]] = []
        for subscription in await self.subscriptions():
            try:
                found += [(subscription, str(g["name"])) for g in await self.listing(
                    f"/subscriptions/{subscription}/resourcegroups", version=RESOURCES)]
            except ArmFailure as failure:
                if failure.status not in (403, 404):
                    raise
        return sorted(found, key=lambda s: (s[0], s[1].lower()))

    async def groups(self) -> list[dict[str, Any]]:
        """The container groups of every subscription the caller sees (those of a
        subscription it may not list, as the API refuses them, left out)."""
        limit = asyncio.Semaphore(_CONCURRENCY)

        async def of(subscription: str) -> list[dict[str, Any]]:
            async with limit:
                try:
                    return await self.listing(
                        f"/subscriptions/{subscription}/providers/{PROVIDER}/containerGroups",
                        params={"$top": str(_TOP)})
                except ArmFailure as failure:
                    if failure.status in (403, 404):
                        return []
                    raise

        lists = await asyncio.gather(*(of(s) for s in await self.subscriptions()))
        return [group for found in lists for group in found]

    async def named(self, groups: Iterable[tuple[str, str, str]]) -> dict[str, dict[str, Any]]:
        """The GET answers of ``groups`` ((subscription, resource group, name)), by their
        ids in lower case, read a subscription at a time through the list's ``names``
        (skiff's batched read: one request, not one per group, each group judged as its
        GET would be). A group gone meanwhile, or one the caller may no longer read, is
        absent; so are a subscription's all, should the caller no longer see it."""
        by_subscription: dict[str, list[str]] = {}
        for subscription, resource_group, name in groups:
            by_subscription.setdefault(subscription, []).append(f"{resource_group}/{name}")
        limit = asyncio.Semaphore(_CONCURRENCY)

        async def of(subscription: str, names: list[str]) -> list[dict[str, Any]]:
            async with limit:
                try:
                    found: list[dict[str, Any]] = (await self.get(
                        f"/subscriptions/{quote(subscription, safe='')}/providers/{PROVIDER}/"
                        "containerGroups", params={"names": ",".join(names)})).get("value", [])
                    return found
                except ArmFailure as failure:
                    if failure.status in (403, 404):
                        return []
                    raise

        lists = await asyncio.gather(*(
            of(subscription, names[at:at + _NAMED])
            for subscription, names in by_subscription.items()
            for at in range(0, len(names), _NAMED)))
        return {str(group.get("id", "")).lower(): group for found in lists for group in found}

    async def each_permissions(self, scopes: Iterable[str]) -> list[Permissions]:
        """:meth:`permissions` at each scope, a few at once."""
        limit = asyncio.Semaphore(_CONCURRENCY)

        async def one(scope: str) -> Permissions:
            async with limit:
                return await self.permissions(scope)

        return list(await asyncio.gather(*(one(s) for s in scopes)))

    async def permissions(self, scope: str) -> Permissions:
        found = await self.get(f"{scope}/providers/Microsoft.Authorization/permissions",
                               version=AUTHORIZATION)
        return Permissions(tuple((tuple(p.get("actions", ())), tuple(p.get("notActions", ())))
                                 for p in found.get("value", [])))


@dataclass(frozen=True)
class Permissions:
    """What ARM's ``permissions`` list says a caller may do at one scope: an action is
    allowed when one entry's actions match it and that entry's notActions do not
    (wildcards, case ignored, as ARM matches them)."""

    entries: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]

    def allows(self, action: str) -> bool:
        key = action.lower()
        return any(any(fnmatch.fnmatchcase(key, a.lower()) for a in actions)
                   and not any(fnmatch.fnmatchcase(key, n.lower()) for n in not_actions)
                   for actions, not_actions in self.entries)


def _skip_token(next_link: Any) -> str | None:
    """The ``$skipToken`` of a list's ``nextLink`` (None: the last page)."""
    if not isinstance(next_link, str) or not next_link:
        return None
    found = parse_qs(urlsplit(next_link).query).get("$skipToken")
    return found[0] if found else None


def _failure(answer: httpx.Response) -> ArmFailure:
    try:
        error = answer.json().get("error") or {}
        target = error.get("target")
        return ArmFailure(answer.status_code, str(error.get("code", "Error")),
                          str(error.get("message", answer.reason_phrase)),
                          str(target) if target else None)
    except (ValueError, AttributeError):
        return ArmFailure(answer.status_code, "Error", answer.reason_phrase)
