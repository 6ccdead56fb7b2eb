"""The JavaScript ACI SDK (``@azure/arm-containerinstance``, pinned in tests/e2e/js) against a
real skiff: create in ``eastus``, getOutboundNetworkDependenciesEndpoints, and what
beginDeleteAndWait gives back (the deleted group, as from ACI).

Skipped only where node is absent; the packages come from ``npm ci`` in tests/e2e/js
(.ci/install runs it), and a missing install fails the test, saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from skiff.testing.catalog import BuiltImages
from skiff.testing.server import RunningServer

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")]

JS = Path(__file__).parent / "js"
SUB = "11111111-2222-3333-4444-555555555555"


def test_js_sdk_scenario(skiff: RunningServer, images: BuiltImages) -> None:
    assert (JS / "node_modules" / "@azure" / "arm-containerinstance").is_dir(), \
        "the JavaScript SDK is not installed: run `npm ci` in tests/e2e/js (.ci/install does)"
    env = {**os.environ, "SKIFF_URL": skiff.url, "SKIFF_TOKEN": skiff.token,
           "SKIFF_SUBSCRIPTION": SUB, "SKIFF_IMAGE": images.bb,
           "NODE_EXTRA_CA_CERTS": str(skiff.ca)}
    ran = subprocess.run(["node", "scenario.mjs"], cwd=JS, env=env, capture_output=True,
                         text=True, timeout=120, check=False)
    assert ran.returncode == 0, ran.stderr
    found = json.loads(ran.stdout.strip().splitlines()[-1])
    assert found["created"] == {"location": "eastus", "provisioningState": "Succeeded"}
    assert found["outbound"] == []
    assert found["deleted"] == {
        "name": "jsweb", "location": "eastus", "image": images.bb,
        "id": f"/subscriptions/{SUB}/resourceGroups/jsrg/providers/"
              "Microsoft.ContainerInstance/containerGroups/jsweb"}
    assert found["gone"] is True
    assert found["absent"] == {}  # the SDK's reading of a 204 (no such group), as from ACI
    assert skiff.server.plane.engine.group_ids() == []
