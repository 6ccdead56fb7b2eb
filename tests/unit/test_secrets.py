"""Secrets never reach what users read: engine error texts are scrubbed of every secret
of their group (skiff.core.secrets), in the engine's views, its files (0600 in 0700) and
the control plane's stored errors, and a PUT refusing a bad value never quotes it."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skiff.control.reconciler import Reconciler
from skiff.core.secrets import MASK, scrub, secrets_of
from skiff.core.spec import (
    Container,
    EnvVar,
    GroupSpec,
    RegistryCredentialSpec,
    SecretVolume,
    Volume,
)
from skiff.core.view import GroupView, State
from skiff.engine.group.record import Group, GroupFiles, snapshot, sync_views
from skiff.errors import ArmError, ImageNotFound, RuntimeFailure
from skiff.models import parse_container_group
from skiff.store import Store
from skiff.testing.fake import FakeEngine

SECRET = "hunter2-s3cret"
IMAGE = "registry.test/busybox:1"


def group_spec(secret: str = SECRET) -> GroupSpec:
    return GroupSpec(id="g1", name="grp", containers=(Container(
        "c", IMAGE, ("sleep", "300"), env=(EnvVar("TOKEN", secret, secure=True),
                                           EnvVar("PLAIN", "visible"))),),
        credentials=(RegistryCredentialSpec("registry.test", "me", "pa55word"),),
        volumes=(Volume("s", SecretVolume((("f", base64.b64encode(b"file-secret").decode()),))),))


# ---- scrub and secrets_of --------------------------------------------------------------

def test_secrets_of_a_spec_are_its_secure_values_passwords_and_secret_files() -> None:
    """Secure env values, registry passwords, secret files as given and decoded; a plain
    env value is no secret."""
    found = secrets_of(group_spec())
    assert {SECRET, "pa55word", "file-secret"} <= set(found)
    assert "visible" not in found


@pytest.mark.parametrize(("text", "expected"), [
    (f'exec: "{SECRET}": executable file not found', f'exec: "{MASK}": executable file not found'),
    (f"{SECRET}{SECRET}", MASK + MASK),
    ("nothing secret here", "nothing secret here"),
])
def test_scrub_replaces_every_occurrence(text: str, expected: str) -> None:
    """Every occurrence of a secret becomes the mask; other text stays as it was."""
    assert scrub(text, [SECRET]) == expected


def test_scrub_catches_the_quoted_forms_of_a_secret_with_a_nul() -> None:
    """A NUL in a secret: Go's %q / repr form (\\x00), JSON's (\\u0000) and the pieces
    around the NUL (a C string ends there) are all masked."""
    secret = "abcd\0efgh"
    for text in ('env "TOKEN=abcd\\x00efgh" invalid', 'value "abcd\\u0000efgh"',
                 "truncated at abcd", "tail efgh"):
        assert "abcd" not in scrub(text, [secret])
        assert "efgh" not in scrub(text, [secret])


def test_scrub_takes_the_longest_secret_first_and_ignores_empty_ones() -> None:
    """A secret inside another leaves nothing of the longer one; an empty secret masks
    nothing."""
    assert scrub("key=secret-long", ["secret", "secret-long", ""]) == f"key={MASK}"
    assert scrub("text", [""]) == "text"


# ---- the engine's record and files -----------------------------------------------------

def failed_group(spec: GroupSpec) -> Group:
    """A group whose container failed to start with runc quoting its secure value."""
    group = Group(spec, GroupView(spec.id, spec.name))
    sync_views(group)
    view = group.view.containers[0]
    message = f'exec: "{SECRET}": executable file not found in $PATH'
    view.event("Failed", f"failed to start container c: {message}", warning=True)
    view.transition(State("Terminated", 1.0, 128, 1.0, message))
    group.fail(f"container c: {message}")
    return group


def test_a_groups_view_and_failure_never_quote_its_secrets() -> None:
    """snapshot(): detailStatus, events and the group's failure show the mask."""
    view = snapshot(failed_group(group_spec()))
    text = json.dumps(view.to_json())
    assert SECRET not in text
    assert MASK in view.containers[0].current.detail_status
    assert MASK in view.containers[0].events[-1].message
    assert view.failure is not None
    assert MASK in view.failure


def test_group_files_are_the_engines_alone_and_hold_no_secret(tmp_path: Path) -> None:
    """groups/<uid>.json: 0600 in a 0700 directory, even one an earlier skiff made more
    open, and no secret in it."""
    root = tmp_path / "groups"
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)  # noqa: S103 - the more open directory of an earlier skiff
    old = root / "old.json"
    old.write_text("{}")
    os.chmod(old, 0o644)
    files = GroupFiles(root)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE(old.stat().st_mode) == 0o600
    files.save(failed_group(group_spec()))
    [saved] = [p for p in root.glob("*.json") if p != old]
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert SECRET not in saved.read_text()
    assert files.ids() == ["g1"]


# ---- the control plane -----------------------------------------------------------------

@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "skiff.db") as s:
        yield s


def document(secure: Any = SECRET, image: str = IMAGE) -> dict[str, Any]:
    return {"location": "local", "properties": {"osType": "Linux", "containers": [{
        "name": "c", "properties": {
            "image": image, "command": ["sleep", "300"],
            "environmentVariables": [{"name": "TOKEN", "secureValue": secure}],
            "resources": {"requests": {"cpu": 0.5, "memoryInGB": 0.5}}}}]}}


def converge_failing(store: Store, engine: FakeEngine, image: str = IMAGE) -> dict[str, str]:
    """PUT the document, converge once; the stored error."""
    body = parse_container_group(document(image=image), name="g", default_location="local",
                                 known_locations=["local"]).to_stored()
    record, _ = store.put_group("sub-1", "rg", "g", "local", body, {})
    store.create_operation("sub-1", "local", record.resource_id, "create",
                           generation=record.generation)
    Reconciler(store, engine).converge(record.uid)
    current = store.get_group_by_uid(record.uid)
    assert current is not None
    assert current.error is not None
    [op] = store.operations_for(record.resource_id, status=None)
    assert op.error == current.error
    return current.error


def test_an_engine_error_quoting_a_secret_is_stored_scrubbed(store: Store) -> None:
    """A SkiffError whose message quotes a secure value is stored (group and operation)
    with the mask: the control plane's second line holds even if the engine's failed."""
    engine = FakeEngine()
    engine.fail("run", RuntimeFailure(f'runc: exec "{SECRET}" failed'))
    error = converge_failing(store, engine)
    assert error == {"code": "ContainerRuntimeFailed", "message": f'runc: exec "{MASK}" failed'}


def test_a_group_failure_quoting_a_secret_is_stored_scrubbed(store: Store) -> None:
    """A view.failure quoting a secure value (here an image pull's) is stored masked."""
    engine = FakeEngine()
    engine.pull_errors["registry.test/nope:1"] = ImageNotFound(f"no such tag {SECRET}")
    error = converge_failing(store, engine, image="registry.test/nope:1")
    assert SECRET not in error["message"]
    assert MASK in error["message"]


@pytest.mark.parametrize("secure", [f"{SECRET}\0tail", [SECRET], {"v": SECRET}])
def test_an_invalid_secure_value_is_refused_without_quoting_it(secure: Any) -> None:
    """A secureValue with a NUL, or not a string, is a 400 with a
    message and target that never hold the value."""
    with pytest.raises(ArmError) as refused:
        parse_container_group(document(secure), name="g", default_location="local",
                              known_locations=["local"])
    assert refused.value.status == 400
    assert SECRET not in repr(refused.value.__dict__)
    assert SECRET not in str(refused.value)
