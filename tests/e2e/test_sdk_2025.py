"""Issue 16's surface through the Azure SDKs that speak it: azure-mgmt-containerinstance
10.2.0b2 (its default api-version 2026-06-01-preview, and 2025-09-01 passed to its client)
and azure-mgmt-standbypool 2.1.0 (2025-10-01), against one real skiff: a profile of two
revisions, a group of revision 1 whose config map changes in place, an NGroup of 2
members scaled to 3, a standby pool of 1 and a claim answered Running.

The project's own install pins azure-mgmt-containerinstance at 10.1 (az's output), so
.ci/install puts the newer SDKs in a venv of their own (:data:`SDK_HOME`), and
sdk2025/scenario.py runs in it, as a subprocess, as test_js_sdk.py runs node. A missing
venv fails the test, saying how to make it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from skiff.testing.catalog import BuiltImages
from skiff.testing.server import RunningServer

pytestmark = pytest.mark.root

#: Where .ci/install makes the venv of the newer SDKs (``$SKIFF_SDK_2025`` overrides).
SDK_HOME = Path(os.environ.get("SKIFF_SDK_2025", "/opt/skiff-sdk-2025"))
SCENARIO = Path(__file__).parent / "sdk2025" / "scenario.py"
SUB = "sdk-2025"


@pytest.mark.parametrize("api_version", ["", "2025-09-01"], ids=["sdk-default", "2025-09-01"])
def test_the_2025_sdks_drive_profiles_config_maps_ngroups_and_pools(
    module_skiff: RunningServer, images: BuiltImages, api_version: str
) -> None:
    """Every step of the scenario answers as the SDKs expect, read back through them."""
    server = module_skiff
    python = SDK_HOME / "bin" / "python"
    assert python.exists(), (f"the 2025 SDKs are not installed: .ci/install makes {SDK_HOME} "
                             "(or set SKIFF_SDK_2025 to a venv holding them)")
    rg = f"rg-{api_version or 'default'}"
    env = {**os.environ, "SKIFF_URL": server.url, "SKIFF_TOKEN": server.token,
           "SKIFF_CA": str(server.ca), "SKIFF_SUBSCRIPTION": SUB, "SKIFF_RG": rg,
           "SKIFF_IMAGE": images.bb, "SKIFF_API_VERSION": api_version}
    env.pop("PYTHONPATH", None)  # the venv's own packages, never the project's
    ran = subprocess.run([str(python), str(SCENARIO)], env=env, capture_output=True,
                         text=True, timeout=400, check=False)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-6000:]
    found = json.loads(ran.stdout.strip().splitlines()[-1])
    assert found["api_version"] == (api_version or "2026-06-01-preview")
    assert found["revisions"] == [1, 2, [1, 2]]
    assert found["listed"] == [1, 2]
    assert found["lifetime"] == [True, True]  # the SDK's date-times, answered as sent
    assert found["by_rg"] == ["app"]
    assert found["by_sub"] is True
    assert found["profile_tags"] == [{"team": "sdk"}, 2, 2]  # tags make no revision
    assert found["errors"] == [
        ["ResourceNotFoundError", 404, "ContainerGroupProfileRevisionNotFound"],
        ["ResourceNotFoundError", 404, "ResourceNotFound"]]
    assert found["group"] == ["Succeeded", 1, {"greeting": "hello"}]
    assert found["in_place"] == [0, 0, True, {"greeting": "bonjour"}]
    assert found["ngroup"] == [2, "Succeeded"]
    assert found["members"] == [[2, "m-"]]
    assert found["ngroup_count"] == [3, 3, ["ng"]]
    assert found["pool"][:2] == ["Succeeded", 1]
    assert "pool" in found["pool"][2]
    assert found["pool_tags"] == [{"team": "sdk"}, 1]
    assert found["views"] == ["latest"]
    assert found["claim"] == ["Succeeded", "Running", True]
    assert found["pools_left"] == []
    assert server.server.plane.store.list_pools(SUB) == []
