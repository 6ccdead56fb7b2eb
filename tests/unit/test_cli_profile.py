"""``skiff container profile ...`` and ``skiff container create --profile`` against the
in-process app (a real store, the fake engine), through the CLI's own client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.unit import test_cli_identity

# The in-process app and the CLI over it: skiff identity's tests' fixtures.
plane, run, ok = test_cli_identity.plane, test_cli_identity.run, test_cli_identity.ok
SECRET = "s3cret-in-a-profile"
PROFILE_YAML = """\
name: web
location: local
properties:
  osType: Linux
  restartPolicy: Never
  shutdownGracePeriod: PT5S
  containers:
  - name: app
    properties:
      image: {image}
      command: [sleep, "300"]
      environmentVariables:
      - name: TOKEN
        secureValue: {secret}
      resources:
        requests: {{cpu: 0.1, memoryInGB: 0.1}}
"""


def write(tmp_path: Path, image: str) -> str:
    path = tmp_path / f"{image.rsplit(':', 1)[-1]}.yaml"
    path.write_text(PROFILE_YAML.format(image=image, secret=SECRET), encoding="utf-8")
    return str(path)


def test_profiles_are_made_revised_shown_listed_and_deleted(run: Any, tmp_path: Path) -> None:
    """create (twice: two revisions), show (current and --revision), revisions, list,
    delete; no secret printed."""
    made = run("container", "profile", "create", "-g", "rg", "-f", write(tmp_path, "busybox:1"))
    assert SECRET not in made.output
    first = ok(made)
    assert (first["name"], first["resourceGroup"], first["revision"]) == ("web", "rg", 1)
    assert first["shutdownGracePeriod"] == "PT5S"
    second = ok(run("container", "profile", "create", "-g", "rg", "-n", "web", "-f",
                    write(tmp_path, "busybox:2")))
    assert (second["revision"], second["registeredRevisions"]) == (2, [1, 2])
    old = ok(run("container", "profile", "show", "-g", "rg", "-n", "web", "--revision", "1"))
    assert old["containers"][0]["properties"]["image"] == "busybox:1"
    listed = ok(run("container", "profile", "revisions", "-g", "rg", "-n", "web"))
    assert [r["revision"] for r in listed] == [1, 2]
    assert [p["name"] for p in ok(run("container", "profile", "list"))] == ["web"]
    assert ok(run("container", "profile", "list", "-g", "other")) == []
    ok(run("container", "profile", "delete", "-g", "rg", "-n", "web"))
    missing = run("container", "profile", "show", "-g", "rg", "-n", "web")
    assert missing.exit_code == 3
    assert "ResourceNotFound" in missing.output


def test_a_group_is_created_from_a_profile_by_name_and_revision(run: Any,
                                                                tmp_path: Path) -> None:
    """--profile NAME --profile-revision 1: the group runs revision 1's image."""
    ok(run("container", "profile", "create", "-g", "rg", "-f", write(tmp_path, "busybox:1")))
    ok(run("container", "profile", "create", "-g", "rg", "-f", write(tmp_path, "busybox:2")))
    group = ok(run("container", "create", "-g", "rg", "-n", "g", "--profile", "web",
                   "--profile-revision", "1"))
    assert group["containers"][0]["image"] == "busybox:1"
    assert group["provisioningState"] == "Succeeded"
    refused = run("container", "create", "-g", "rg", "-n", "g2", "--profile", "web",
                  "--profile-revision", "7")
    assert refused.exit_code == 3
    assert "ContainerGroupProfileRevisionNotFound" in refused.output
