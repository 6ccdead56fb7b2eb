"""The JavaScript SDK signs in to skiff: @azure/identity's ClientSecretCredential (the
authority host skiff, instance discovery off) and @azure/arm-containerinstance, both pinned
in tests/e2e/js (``npm ci`` there; .ci/install runs it). The API runs over the fake engine
(no root). Skipped only where node is absent; a missing install fails the test, saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from skiff.testing.inprocess import fake_https

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")

JS = Path(__file__).parent / "js"
SUB = "00000000-0000-0000-0000-00000000a3a3"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"


def test_client_secret_credential_and_the_arm_client(tmp_path: Path) -> None:
    """A Contributor principal signs in with ClientSecretCredential, creates and lists
    a group; another subscription answers AuthorizationFailed."""
    for package in ("identity", "arm-containerinstance"):
        assert (JS / "node_modules" / "@azure" / package).is_dir(), \
            "the JavaScript SDK is not installed: run `npm ci` in tests/e2e/js (.ci/install does)"
    with fake_https(tmp_path / "root") as server:
        record, secret = server.plane.store.create_principal("js")
        server.plane.store.put_assignment("00000000-0000-0000-0000-00000000a3a4",
                                          f"/subscriptions/{SUB}", CONTRIBUTOR,
                                          record.object_id, "ServicePrincipal")
        done = subprocess.run(
            ["node", "signin.cjs", server.url, server.plane.store.tenant_id(), record.app_id,
             secret, SUB],
            cwd=JS, env=os.environ | {"NODE_EXTRA_CA_CERTS": str(server.ca)},
            capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, (done.stdout, done.stderr)
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer == {"state": "Succeeded", "names": ["web"], "refused": "AuthorizationFailed"}
