"""The API's description as it answers: every status of every operation, and ``Allow``.

FastAPI documents a route's default status and a 422 the API never sends
(request validation answers ARM's 400). Clients and fuzzers read
``/openapi.json`` to learn what an operation may answer, so the description
is completed here from the API's conventions, in one place: ARM's statuses of
writes (PUT 200/201, DELETE 200/202/204, the actions' 202/204) and the ARM
error body on the statuses any operation may answer (400 invalid input or
api-version, 401 authentication, 403 authorization, 404 absent, 409 conflict, 500 unforeseen,
503 busy). A 405 names the methods its path takes in ``Allow``, all of them
(Starlette's names only those of the first route on the path). A location, in a body
or a path, is one of the names the node serves (skiff.models.regions): an ``enum``.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.routing import Match, Route
from starlette.types import Scope

from skiff.api.places import locations
from skiff.models.arm import LOCATION_PATTERN, MAX_RESOURCE_GROUP_NAME, RESOURCE_GROUP_PATTERN

_ERROR_RESPONSE: dict[str, Any] = {
    "title": "ErrorResponse", "type": "object", "required": ["error"], "properties": {
        "error": {"type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string"}, "message": {"type": "string"},
            "target": {"type": "string"}}}}}

_ERRORS = {
    400: "The request is invalid (its body, a name, a query parameter or the api-version).",
    401: "The request carries no valid bearer token.",
    403: "The caller holds no role that allows the operation's action at its scope "
         "(AuthorizationFailed), or may not use a resource the request names.",
    404: "The resource, or its subscription, is not there.",
    409: "The request conflicts with the resource's state.",
    500: "skiff hit an unexpected error (logged).",
    503: "skiff cannot do it now; retry later.",
}
_SUCCESS = {
    200: "OK.", 201: "Created.", 202: "Accepted: the operation goes on; poll "
    "Azure-AsyncOperation.", 204: "No content (done, or nothing to delete).",
}


def success_statuses(method: str, path: str) -> set[int]:
    """The 2xx statuses an operation answers."""
    method = method.upper()
    if method == "PUT":
        return {200, 201}
    if method == "HEAD":  # an existence check: 204, else 404
        return {204}
    if method == "DELETE":
        return {200, 202, 204}
    if method == "POST" and path.endswith("/servicePrincipals"):
        return {201}
    if method == "POST" and path.endswith("/start"):
        return {202}
    if method == "POST" and "/ngroups/" in path and path.endswith("/restart"):
        return {202}  # an NGroup's restart is a long-running operation (a group's is not)
    if method == "POST" and path.endswith(("/restart", "/stop")):
        return {204}
    return {200}


def _complete(operation: dict[str, Any], method: str, path: str,
              served: list[str]) -> None:
    for parameter in operation.get("parameters", []):
        if parameter.get("in") == "path" and parameter.get("name") == "resource_group":
            parameter["schema"] = {**parameter.get("schema", {}), "minLength": 1,
                                   "maxLength": MAX_RESOURCE_GROUP_NAME,
                                   "pattern": RESOURCE_GROUP_PATTERN}
        if parameter.get("in") == "path" and parameter.get("name") == "location":
            parameter["schema"] = {**parameter.get("schema", {}), "enum": served}
    _served_locations(operation.get("requestBody", {}), served)
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)
    wanted = success_statuses(method, path)
    for status in [s for s in responses if s.isdigit() and 200 <= int(s) < 300]:
        if int(status) not in wanted:
            del responses[status]
    for code in sorted(wanted):
        responses.setdefault(str(code), {"description": _SUCCESS[code]})
    for code, description in _ERRORS.items():
        responses[str(code)] = {"description": description, "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}


def _served_locations(node: Any, served: list[str]) -> None:
    """Give every body's ``location`` (the schema skiff.api.bodies writes for it) the
    names the node serves, as an ``enum``."""
    if isinstance(node, dict):
        place = node.get("properties", {}).get("location") \
            if isinstance(node.get("properties"), dict) else None
        if isinstance(place, dict) and place.get("pattern") == LOCATION_PATTERN:
            place["enum"] = served
        for value in node.values():
            _served_locations(value, served)
    elif isinstance(node, list):
        for value in node:
            _served_locations(value, served)


def describe(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, with every status its operations answer."""
    if app.openapi_schema is None:
        # A copy: the bodies' schemas (skiff.api.bodies) are shared, and are changed here.
        schema = copy.deepcopy(get_openapi(title=app.title, version=app.version,
                                           description=app.description, routes=app.routes))
        served = locations(app.state.plane).names()
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                _complete(operation, method, path, served)
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        schemas["ErrorResponse"] = _ERROR_RESPONSE
        app.openapi_schema = schema
    return app.openapi_schema


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route takes on the request's path (for a 405's ``Allow``)."""
    methods: set[str] = set()
    pending: list[Any] = list(app.router.routes)
    while pending:
        route = pending.pop()
        included = getattr(route, "original_router", None)  # FastAPI's included routers
        if included is not None:
            pending.extend(included.routes)
        elif isinstance(route, Route) and route.methods:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                methods |= route.methods
    return sorted(methods)
