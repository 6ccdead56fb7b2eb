"""The identity endpoint in the node's group lifecycle: opened inside each group's
namespace with its network (runc and gVisor), answering for that group alone, withdrawn
when the group goes, and opened again when a restarted skiff adopts the group."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest

from skiff.engine.group.supervisor import Supervisor
from skiff.engine.network.networks import Networks
from skiff.metadata import MetadataEndpoint, MetadataReply
from skiff.testing.catalog import BuiltImages
from skiff.testing.engine import wait_view
from skiff.testing.groups import FAST_BACKOFF, GroupMaker, box

pytestmark = pytest.mark.root

TOKEN = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=r"


def answer(group_id: str, query: Mapping[str, str]) -> MetadataReply:
    """Tells who asked: the group the endpoint took the request for."""
    return MetadataReply(200, {"group": group_id, "resource": query["resource"]})


def serving(networks: Networks) -> MetadataEndpoint:
    endpoint = MetadataEndpoint(answer)
    networks.serve_metadata = endpoint.serve
    networks.withdraw_metadata = endpoint.withdraw
    return endpoint


@pytest.fixture
def endpoint(engine: Supervisor) -> Iterator[MetadataEndpoint]:
    served = serving(engine.networks)
    try:
        yield served
    finally:
        served.close()


def ask(engine: Supervisor, group_id: str, isolation: str, header: bool = True) -> str:
    """What the endpoint answers from inside the group's container ``c``: with wget on runc,
    with nc in a sandbox (busybox wget's read comes too early under gVisor's host network
    stack in this runsc build, whatever the server)."""
    if isolation == "sandbox":
        head = "Metadata: true\\r\\n" if header else ""
        script = (f"printf 'GET {TOKEN} HTTP/1.1\\r\\n{head}\\r\\n' | "
                  "nc 169.254.169.254 80")
    else:
        flag = "--header 'Metadata: true' " if header else ""
        script = f"wget -q -O- {flag}'http://169.254.169.254{TOKEN}' 2>&1"
    session = engine.exec(group_id, "c", ["sh", "-c", script])
    try:
        out, _ = session.process.communicate(timeout=60)
    finally:
        session.close()
    return out.decode(errors="replace")


def running(engine: Supervisor, group_id: str) -> None:
    wait_view(engine, group_id, lambda v: v.containers[0].current.state == "Running")


def test_each_group_is_answered_as_itself(engine: Supervisor, endpoint: MetadataEndpoint,
                                          images: BuiltImages, group: GroupMaker) -> None:
    """Two groups each get the answer for their own id; the header is required; once a
    group is deleted its endpoint is withdrawn and the other's still answers."""
    first = group(box(images, "c", "sleep 300"))
    second = group(box(images, "c", "sleep 300"))
    for spec in (first, second):
        engine.run(spec)
        running(engine, spec.id)
    assert endpoint.groups() == sorted((first.id, second.id))
    for spec in (first, second):
        assert f'"group":"{spec.id}"' in ask(engine, spec.id, group.isolation)
    assert "400" in ask(engine, first.id, group.isolation, header=False)
    engine.delete(first.id)
    assert endpoint.groups() == [second.id]
    assert f'"group":"{second.id}"' in ask(engine, second.id, group.isolation)
    engine.stop(second.id)
    assert endpoint.groups() == []


def test_a_restarted_skiff_serves_its_adopted_groups_again(
    engine: Supervisor, endpoint: MetadataEndpoint, images: BuiltImages, group: GroupMaker
) -> None:
    """A group run by an earlier skiff (its endpoint gone with that process) is answered
    again once the next skiff adopts it, its container untouched."""
    spec = group(box(images, "c", "sleep 300"))
    earlier_networks = Networks(engine.settings.data_root, engine.settings.network)
    earlier_endpoint = serving(earlier_networks)
    earlier = Supervisor(engine.settings, networks=earlier_networks, backoff=FAST_BACKOFF)
    try:
        earlier.run(spec)
        running(earlier, spec.id)
        assert earlier_endpoint.groups() == [spec.id]
    finally:
        earlier.close()
        earlier_networks.close()
        earlier_endpoint.close()  # that process is gone: so are its sockets
    cid = engine.view(spec.id).containers[0].cid
    pid = engine.runtime.status(cid).pid
    engine.run(spec)
    running(engine, spec.id)
    assert endpoint.groups() == [spec.id]
    assert f'"group":"{spec.id}"' in ask(engine, spec.id, group.isolation)
    assert engine.runtime.status(cid).pid == pid
