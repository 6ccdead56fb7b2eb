"""A container group made from a container group profile revision, on the real engine,
through raw ARM calls (api-version 2025-09-01: no Azure SDK release within the pinned
azure-mgmt-containerinstance < 11 has profiles)."""

from __future__ import annotations

from pathlib import Path

import pytest

from skiff.testing.catalog import BuiltImages
from skiff.testing.documents import one_container_group
from skiff.testing.server import running_server, settled
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root

API = "?api-version=2025-09-01"
RG = "/subscriptions/alice/resourceGroups/rg/providers/Microsoft.ContainerInstance"
PROFILE = f"{RG}/containerGroupProfiles/web"
#: A container that ignores SIGTERM: only SIGKILL, after its grace, ends it.
STUBBORN = "trap '' TERM; echo {word}; while :; do sleep 1; done"


def test_a_group_runs_the_profile_revision_it_names(tmp_path: Path,
                                                    images: BuiltImages) -> None:
    """Revision 1 of a profile (revision 2 exists) runs on the engine: its command's output,
    its containerGroupProfile answered; its shutdownGracePeriod (PT1S) ends the group's
    SIGTERM-deaf container long before the node's 30 s grace, so the DELETE answers 200
    (done) and not 202 (a teardown past the DELETE's 20 s wait)."""
    with running_server(tmp_path / "root", stop_grace_s=30, allow=images.endpoints) as skiff:
        http = skiff.client()
        for word in ("first", "second"):
            profile = one_container_group(images.bb, STUBBORN.format(word=word))
            profile["properties"]["shutdownGracePeriod"] = "PT1S"
            answer = http.put(PROFILE + API, json=profile)
            assert answer.status_code in (200, 201), answer.text
        assert answer.json()["properties"]["registeredRevisions"] == [1, 2]
        group = f"{RG}/containerGroups/g{API}"
        made = http.put(group, json={"location": "local", "properties": {
            "containerGroupProfile": {"id": PROFILE, "revision": 1}}})
        assert made.status_code == 201, made.text
        found = settled(http, group)
        assert found["properties"]["provisioningState"] == "Succeeded", found
        assert found["properties"]["containerGroupProfile"] == {"id": PROFILE, "revision": 1}
        logs = eventually(lambda: http.get(f"{RG}/containerGroups/g/containers/c/logs{API}")
                          .json()["content"], until=lambda text: text.strip() != "",
                          what="the container's output", timeout_s=30)
        assert logs.strip() == "first"
        deleted = http.delete(group, timeout=40)
        assert deleted.status_code == 200, deleted.text
        assert http.get(group).status_code == 404
