"""ACI container group documents for tests, in one place instead of copied between modules.

:func:`group_body` is a valid body using most features (two containers, an init
container, three volumes, a registry credential, a DNS label): the models' tests
break it one rule at a time, convert and render it. :func:`parse` parses as the
API does. :func:`one_container_group` is the small group end-to-end tests run.
"""

from __future__ import annotations

import base64
from typing import Any

from skiff.models import ContainerGroupBody, parse_container_group

Body = dict[str, Any]

LOCATIONS = ("westeurope", "eastus", "local")
# Secrets in group_body: tests check that none of them leaks into an answer or a message.
SECURE_VALUE = "s3cr3t-Secure-Value-9f2"
REGISTRY_PASSWORD = "Registry-Passw0rd-7c1"  # noqa: S105 -- a test value, meant to be found
SECRET_FILE = "Secret-File-Content-41d"  # noqa: S105 -- a test value, meant to be found
SECRET_B64 = base64.b64encode(SECRET_FILE.encode()).decode()


def group_body() -> Body:
    """A valid body using most features: two containers, an init container, three volumes."""
    return {
        "location": "westeurope",
        "tags": {"team": "web"},
        "properties": {
            "osType": "Linux",
            "containers": [
                {"name": "web", "properties": {
                    "image": "nginx:1.25",
                    "command": ["nginx", "-g", "daemon off;"],
                    "ports": [{"port": 80}],
                    "environmentVariables": [
                        {"name": "MODE", "value": "prod"},
                        {"name": "TOKEN", "secureValue": SECURE_VALUE},
                    ],
                    "resources": {"requests": {"cpu": 1, "memoryInGB": 1.5}},
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    "livenessProbe": {"httpGet": {"port": 80, "path": "/healthz"},
                                      "periodSeconds": 5},
                }},
                {"name": "sidecar", "properties": {
                    "image": "busybox",
                    "command": ["sleep", "inf"],
                    "ports": [{"port": 9000, "protocol": "UDP"}],
                    "resources": {"requests": {"cpu": 0.5, "memoryInGB": 0.5},
                                  "limits": {"cpu": 1.5, "memoryInGB": 1}},
                    "volumeMounts": [{"name": "secrets", "mountPath": "/etc/secrets",
                                      "readOnly": True}],
                    "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}},
                }},
            ],
            "initContainers": [
                {"name": "init", "properties": {"image": "busybox", "command": ["true"],
                                                "volumeMounts": [{"name": "repo",
                                                                  "mountPath": "/repo"}]}},
            ],
            "imageRegistryCredentials": [
                {"server": "registry.example.com", "username": "me",
                 "password": REGISTRY_PASSWORD},
            ],
            "ipAddress": {"type": "Public", "ports": [{"port": 80, "protocol": "TCP"}],
                          "dnsNameLabel": "myweb"},
            "volumes": [
                {"name": "data", "emptyDir": {}},
                {"name": "secrets", "secret": {"key.txt": SECRET_B64}},
                {"name": "repo", "gitRepo": {"repository": "https://example.com/x/y.git",
                                             "revision": "main"}},
            ],
        },
    }


def parse(body: Any, name: str = "mygroup") -> ContainerGroupBody:
    """Parse as the API does, with westeurope as the default location."""
    return parse_container_group(body, name=name, default_location="westeurope",
                                 known_locations=LOCATIONS)


def props(b: Body) -> Body:
    """The body's properties."""
    return b["properties"]  # type: ignore[no-any-return]


def web(b: Body) -> Body:
    """The properties of group_body's first container, web."""
    return props(b)["containers"][0]["properties"]  # type: ignore[no-any-return]


def one_container_group(image: str, script: str, *, cpu: float = 0.1,
                        memory_gb: float = 0.1) -> Body:
    """A group in location ``local`` of one container, ``c``, running ``sh -c script``."""
    return {"location": "local", "properties": {
        "osType": "Linux", "containers": [{"name": "c", "properties": {
            "image": image, "command": ["sh", "-c", script],
            "resources": {"requests": {"cpu": cpu, "memoryInGB": memory_gb}}}}]}}
