"""Secrets an engine error quotes never reach the view or the group's file (issue 11).

runc quotes what it cannot run: a command named after a secure value, or an
environment value holding a NUL byte (refused at PUT, but the engine's own
callers may pass one). The container's detailStatus and events, the group's
failure and ``groups/<uid>.json`` show ``***`` instead; the file is 0600 in a
0700 directory.
"""

from __future__ import annotations

import json
import stat
import uuid

import pytest

from skiff.core.secrets import MASK
from skiff.core.spec import Container, EnvVar, Resources, RestartPolicy
from skiff.engine.group.record import safe_name
from skiff.engine.group.supervisor import Supervisor
from skiff.testing.catalog import BuiltImages
from skiff.testing.groups import group_spec

pytestmark = pytest.mark.root


def visible(engine: Supervisor, group_id: str) -> tuple[str, str]:
    """Everything a user may read of the group: its view, and its file on disk."""
    view = json.dumps(engine.view(group_id).to_json())
    path = engine.settings.data_root / "groups" / f"{safe_name(group_id)}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    return view, path.read_text()


def test_a_start_failure_quoting_a_secure_value_shows_the_mask(
    engine: Supervisor, images: BuiltImages
) -> None:
    """A command named after a secure value: runc's "executable file not found" error
    reaches detailStatus, events and the group file as ***, never as the value."""
    secret = "sv-" + uuid.uuid4().hex
    spec = group_spec(Container(name="c", image=images.bb, command=(secret,),
                                env=(EnvVar("TOKEN", secret, secure=True),),
                                resources=Resources(cpu=0.5, memory_gb=0.25)),
                      restart_policy=RestartPolicy.NEVER)
    view = engine.run(spec)
    container = view.containers[0]
    assert container.current.state == "Terminated"
    assert MASK in container.current.detail_status
    assert any(MASK in e.message for e in container.events if e.name == "Failed")
    for text in visible(engine, spec.id):
        assert secret not in text


def test_a_secure_value_with_a_nul_never_shows(engine: Supervisor, images: BuiltImages) -> None:
    """A secure value with a NUL byte (the engine accepts it): whatever runc makes of it,
    neither the view nor the group file quotes the value or a piece of it."""
    pieces = ("sv-" + uuid.uuid4().hex[:12], uuid.uuid4().hex[:12])
    spec = group_spec(Container(name="c", image=images.bb, command=("sleep", "300"),
                                env=(EnvVar("TOKEN", "\0".join(pieces), secure=True),),
                                resources=Resources(cpu=0.5, memory_gb=0.25)),
                      restart_policy=RestartPolicy.NEVER)
    engine.run(spec)
    for text in visible(engine, spec.id):
        for piece in pieces:
            assert piece not in text
