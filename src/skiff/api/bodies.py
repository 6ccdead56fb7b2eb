"""The request bodies of the API, as JSON schemas for its OpenAPI description.

The routes read their bodies from the request themselves (ARM's errors, not
FastAPI's, must answer a bad one: :mod:`skiff.models.parse` validates), so
FastAPI cannot describe them. These schemas say what the routes take, for
``/openapi.json`` and the clients and fuzzers that read it; they are abridged
(the models hold every rule) and never used to validate.
"""

from __future__ import annotations

from typing import Any

from skiff.models.arm import LOCATION_PATTERN, MAX_LOCATION

# ACI's names: lowercase letters, digits and '-', not at either end (no '--' either,
# which a pattern cannot say briefly).
_NAME = {"type": "string", "pattern": "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"}
# ARM's tag limits (skiff.models.arm).
_TAGS = {"type": "object", "maxProperties": 50,
         "propertyNames": {"minLength": 1, "maxLength": 512, "pattern": "^[^<>%&\\\\?/]*$"},
         "additionalProperties": {"type": "string", "maxLength": 256}}
_LOCATION = {"type": "string", "minLength": 1, "maxLength": MAX_LOCATION,
             "pattern": LOCATION_PATTERN}
_PORT = {"type": "object", "required": ["port"], "properties": {
    "protocol": {"type": "string", "enum": ["TCP", "UDP"]},
    "port": {"type": "integer", "minimum": 1, "maximum": 65535}}}
_RESOURCES = {"type": "object", "required": ["cpu", "memoryInGB"], "properties": {
    "cpu": {"type": "number", "exclusiveMinimum": 0},
    "memoryInGB": {"type": "number", "exclusiveMinimum": 0}}}
_ENV = {"type": "object", "required": ["name"], "properties": {
    "name": {"type": "string", "pattern": "^[A-Za-z0-9_]{1,63}$"},
    "value": {"type": "string"}, "secureValue": {"type": "string"}}}
_CONTAINER = {"type": "object", "required": ["name", "properties"], "properties": {
    "name": _NAME,
    "properties": {"type": "object", "required": ["image", "resources"], "properties": {
        "image": {"type": "string", "minLength": 1},
        "command": {"type": "array", "items": {"type": "string"}},
        "ports": {"type": "array", "items": _PORT},
        "environmentVariables": {"type": "array", "items": _ENV},
        "resources": {"type": "object", "required": ["requests"], "properties": {
            "requests": _RESOURCES, "limits": _RESOURCES}},
        # Keys are file names in /mnt/configmap/<container>/ (skiff.models.rules).
        "configMap": {"type": "object", "properties": {"keyValuePairs": {
            "type": "object", "additionalProperties": {"type": "string"},
            "propertyNames": {"pattern": "^[-._a-zA-Z0-9]{1,253}$"}}}}}}}}

CONTAINER_GROUP: dict[str, Any] = {
    "title": "ContainerGroup", "type": "object", "required": ["properties"],
    "properties": {
        "location": _LOCATION,
        "tags": _TAGS,
        "identity": {"type": "object", "required": ["type"], "properties": {
            "type": {"type": "string", "enum": ["SystemAssigned", "UserAssigned",
                                                "SystemAssigned, UserAssigned", "None"]},
            "userAssignedIdentities": {"type": "object",
                                       "additionalProperties": {"type": "object"}}}},
        "properties": {"type": "object", "required": ["containers", "osType"], "properties": {
            "osType": {"type": "string", "enum": ["Linux", "Windows"]},
            "restartPolicy": {"type": "string", "enum": ["Always", "OnFailure", "Never"]},
            "sku": {"type": "string", "enum": ["Standard", "Dedicated", "Confidential"]},
            "priority": {"type": "string", "enum": ["Regular", "Spot"]},
            "containers": {"type": "array", "minItems": 1, "maxItems": 60, "items": _CONTAINER},
            "ipAddress": {"type": "object", "required": ["ports", "type"], "properties": {
                "ports": {"type": "array", "minItems": 1, "maxItems": 5, "items": _PORT},
                "type": {"type": "string", "enum": ["Public", "Private"]},
                "dnsNameLabel": {"type": "string"}}}}}}}

_GUID = {"type": "string",
         "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"}
_ROLES = ["8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "b24988ac-6180-42a0-ab88-20f7382dd24c",
          "acdd72a7-3d97-46b9-8ea0-e9b62cb98f8c"]

ROLE_ASSIGNMENT: dict[str, Any] = {
    "title": "RoleAssignmentCreateParameters", "type": "object", "required": ["properties"],
    "properties": {"properties": {
        "type": "object", "required": ["roleDefinitionId", "principalId"], "properties": {
            "roleDefinitionId": {"type": "string", "enum": _ROLES},
            "principalId": _GUID,
            "principalType": {"type": "string",
                              "enum": ["ServicePrincipal", "User", "Group"]}}}}}

SERVICE_PRINCIPAL: dict[str, Any] = {
    "title": "ServicePrincipalCreate", "type": "object", "required": ["displayName"],
    "properties": {"displayName": {"type": "string", "minLength": 1, "maxLength": 120},
                   "role": {"type": "string", "enum": ["Owner", "Contributor", "Reader"]},
                   "scopes": {"type": "array", "items": {"type": "string"}}}}

CREDENTIAL_RESET: dict[str, Any] = {
    "title": "CredentialReset", "type": "object", "properties": {"append": {"type": "boolean"}}}

TAGS_PATCH: dict[str, Any] = {
    "title": "Resource", "type": "object", "required": ["tags"], "properties": {"tags": _TAGS}}

EXEC_REQUEST: dict[str, Any] = {
    "title": "ContainerExecRequest", "type": "object", "required": ["command"], "properties": {
        "command": {"type": "string", "minLength": 1},
        "terminalSize": {"type": "object", "properties": {
            "rows": {"type": "integer", "minimum": 1, "maximum": 65535},
            "cols": {"type": "integer", "minimum": 1, "maximum": 65535}}}}}

RESOURCE_GROUP: dict[str, Any] = {
    "title": "ResourceGroup", "type": "object", "required": ["location"], "properties": {
        "location": _LOCATION, "tags": _TAGS}}


_CIDR = {"type": "string", "pattern": r"^([0-9]{1,3}\.){3}[0-9]{1,3}/[0-9]{1,2}$"}
_SUBNET_PROPERTIES = {"type": "object", "properties": {
    "addressPrefix": _CIDR, "addressPrefixes": {"type": "array", "items": _CIDR},
    "delegations": {"type": "array", "items": {"type": "object"}}}}

SUBNET: dict[str, Any] = {
    "title": "Subnet", "type": "object", "required": ["properties"], "properties": {
        "properties": _SUBNET_PROPERTIES}}

VIRTUAL_NETWORK: dict[str, Any] = {
    "title": "VirtualNetwork", "type": "object", "required": ["properties"], "properties": {
        "location": _LOCATION,
        "tags": _TAGS,
        "properties": {"type": "object", "required": ["addressSpace"], "properties": {
            "addressSpace": {"type": "object", "required": ["addressPrefixes"], "properties": {
                "addressPrefixes": {"type": "array", "minItems": 1, "items": _CIDR}}},
            "subnets": {"type": "array", "items": {
                "type": "object", "required": ["name", "properties"], "properties": {
                    "name": {"type": "string"}, "properties": _SUBNET_PROPERTIES}}}}}}}

# Microsoft.Storage (skiff.models.storage holds the rules).
STORAGE_ACCOUNT: dict[str, Any] = {
    "title": "StorageAccountCreateParameters", "type": "object",
    "required": ["location", "kind", "sku"], "properties": {
        "location": _LOCATION, "tags": _TAGS,
        "kind": {"type": "string", "enum": ["StorageV2", "FileStorage"]},
        "sku": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 64}}},
        "properties": {"type": "object"}}}

STORAGE_ACCOUNT_PATCH: dict[str, Any] = {
    "title": "StorageAccountUpdateParameters", "type": "object", "properties": {
        "tags": _TAGS}}

USER_ASSIGNED_IDENTITY: dict[str, Any] = {
    "title": "Identity", "type": "object", "required": ["location"], "properties": {
        "location": _LOCATION, "tags": _TAGS}}

IDENTITY_PATCH: dict[str, Any] = {
    "title": "IdentityUpdate", "type": "object", "properties": {"tags": _TAGS}}

STORAGE_KEY_NAME: dict[str, Any] = {
    "title": "StorageAccountRegenerateKeyParameters", "type": "object",
    "required": ["keyName"], "properties": {
        "keyName": {"type": "string", "enum": ["key1", "key2"]}}}

STORAGE_NAME_CHECK: dict[str, Any] = {
    "title": "StorageAccountCheckNameAvailabilityParameters", "type": "object",
    "required": ["name"], "properties": {
        "name": {"type": "string"},
        "type": {"type": "string", "enum": ["Microsoft.Storage/storageAccounts"]}}}

FILE_SHARE: dict[str, Any] = {
    "title": "FileShare", "type": "object", "properties": {
        "properties": {"type": "object", "properties": {
            "shareQuota": {"type": "integer", "minimum": 1, "maximum": 102400},
            "metadata": {"type": "object", "additionalProperties": {"type": "string"}}}}}}

_SUM = {"type": "object", "required": ["name", "function"], "properties": {
    "name": {"type": "string", "enum": ["PreTaxCost", "Cost", "CostUSD", "PreTaxCostUSD",
                                        "UsageQuantity"]},
    "function": {"type": "string", "enum": ["Sum"]}}}

COST_QUERY: dict[str, Any] = {
    "title": "QueryDefinition", "type": "object", "required": ["type", "timeframe", "dataset"],
    "properties": {
        "type": {"type": "string", "enum": ["Usage", "ActualCost", "AmortizedCost"]},
        "timeframe": {"type": "string", "enum": ["MonthToDate", "BillingMonthToDate",
                                                 "TheLastMonth", "TheLastBillingMonth",
                                                 "WeekToDate"]},
        "dataset": {"type": "object", "additionalProperties": False, "properties": {
            "granularity": {"type": "string", "enum": ["Daily", "Monthly", "None"]},
            "aggregation": {"type": "object", "maxProperties": 2,
                            "additionalProperties": _SUM},
            "grouping": {"type": "array", "maxItems": 2, "items": {
                "type": "object", "required": ["type", "name"], "properties": {
                    "type": {"type": "string", "enum": ["Dimension"]},
                    "name": {"type": "string", "enum": ["ResourceId", "ResourceGroup",
                                                       "ResourceGroupName", "Meter"]}}}}}}}}


def request_body(schema: dict[str, Any]) -> dict[str, Any]:
    """A route's ``openapi_extra``: it takes a JSON body of ``schema``."""
    return {"requestBody": {"required": True,
                            "content": {"application/json": {"schema": schema}}}}
