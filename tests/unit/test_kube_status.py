"""Unit tests for skiff.kube.status: Pod status and Events read back as ACI's instance view.

No cluster was there to record from: the Pods and Events here are built from the
Kubernetes API reference (PodStatus, ContainerStatus, ContainerState, core/v1 Event) and
each one is checked against Kubernetes' strict schema first, so a misspelt field fails.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from skiff.kube.status import container_state, group_view, timestamp
from skiff.testing.kube import validate

T0 = "2026-12-06T04:00:00Z"
T1 = "2026-12-06T04:00:05Z"
T2 = "2026-12-06T04:01:00Z"


def pod(phase: str, statuses: list[dict[str, Any]], *, init: list[dict[str, Any]] | None = None,
        **status: Any) -> dict[str, Any]:
    """A Pod of the group ``web`` (containers app and log, init container setup and a
    gitRepo clone) with the status given, valid under Kubernetes' schema."""
    obj = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "web", "namespace": "skiff-rg-0123456789"},
           "spec": {"initContainers": [{"name": "git--repo", "image": "git"},
                                       {"name": "setup", "image": "busybox"}],
                    "containers": [{"name": "app", "image": "nginx"},
                                   {"name": "log", "image": "busybox"}]},
           "status": {"phase": phase, "containerStatuses": statuses,
                      "initContainerStatuses": init or [], **status}}
    validate(obj)
    return obj


def running(name: str, *, restarts: int = 0, last: dict[str, Any] | None = None,
            ready: bool = True) -> dict[str, Any]:
    status = {"name": name, "image": "img", "imageID": "sha256:ab", "ready": ready,
              "restartCount": restarts, "containerID": f"containerd://{name}-1",
              "state": {"running": {"startedAt": T1}}}
    if last is not None:
        status["lastState"] = last
    return status


def waiting(name: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"name": name, "image": "img", "imageID": "", "ready": False, "restartCount": 0,
            "state": {"waiting": {"reason": reason, "message": message}}}


def terminated(name: str, code: int, reason: str) -> dict[str, Any]:
    return {"name": name, "image": "img", "imageID": "sha256:ab", "ready": False,
            "restartCount": 0, "containerID": f"containerd://{name}-0",
            "state": {"terminated": {"exitCode": code, "reason": reason, "startedAt": T0,
                                     "finishedAt": T1}}}


def event(reason: str, message: str, *, field_path: str | None = None, count: int = 1,
          type_: str = "Normal", last: str = T1) -> dict[str, Any]:
    involved: dict[str, Any] = {"kind": "Pod", "name": "web", "namespace": "skiff-rg"}
    if field_path is not None:
        involved["fieldPath"] = field_path
    obj = {"apiVersion": "v1", "kind": "Event",
           "metadata": {"name": f"web.{reason.lower()}", "namespace": "skiff-rg"},
           "involvedObject": involved, "reason": reason, "message": message, "type": type_,
           "count": count, "firstTimestamp": T0, "lastTimestamp": last}
    validate(obj)
    return obj


@pytest.mark.parametrize(("phase", "state"), [
    ("Pending", "Pending"), ("Running", "Running"), ("Succeeded", "Succeeded"),
    ("Failed", "Failed"), ("Unknown", "Pending")])
def test_the_pods_phase_is_the_groups_state(phase: str, state: str) -> None:
    """Kubernetes' phases are ACI's states; Unknown (a lost node) reads Pending."""
    view = group_view(pod(phase, []), group_id="g", name="web")
    assert view.state == state
    assert group_view(pod(phase, []), group_id="g", name="web", stopped=True).state == "Stopped"


def test_containers_states_restarts_and_previous_state() -> None:
    """A restarted container: Running now, its last termination as previousState, its
    restart count, ready and container id; a container not reported yet is Waiting."""
    last = {"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": T0,
                           "finishedAt": T1}}
    view = group_view(pod("Running", [running("app", restarts=3, last=last)]),
                      group_id="g", name="web")
    app, log = view.containers
    assert (app.name, app.restart_count, app.ready, app.cid) == ("app", 3, True,
                                                                 "containerd://app-1")
    assert app.current.state == "Running"
    assert app.current.start_time == timestamp(T1)
    assert app.previous is not None
    assert (app.previous.state, app.previous.exit_code, app.previous.detail_status) == (
        "Terminated", 137, "OOMKilled")
    assert app.previous.finish_time == timestamp(T1)
    assert (log.name, log.current.state, log.previous) == ("log", "Waiting", None)


def test_init_containers_are_reported_without_skiffs_own() -> None:
    """Init containers' statuses are the view's init containers; the gitRepo clone skiff
    added is not one of the tenant's."""
    view = group_view(pod("Running", [running("app"), running("log")],
                          init=[terminated("git--repo", 0, "Completed"),
                                terminated("setup", 0, "Completed")]),
                      group_id="g", name="web")
    assert [c.name for c in view.init_containers] == ["setup"]
    (setup,) = view.init_containers
    assert (setup.init, setup.current.state, setup.current.exit_code,
            setup.current.detail_status) == (True, "Terminated", 0, "Completed")


def test_events_go_to_their_container_or_the_group() -> None:
    """An Event whose fieldPath names a container is that container's; others the
    group's; count, type and times as Kubernetes gave them, in time order."""
    events = [event("BackOff", "Back-off restarting failed container", count=4,
                    field_path="spec.containers{app}", type_="Warning", last=T2),
              event("Pulled", "Successfully pulled image", field_path="spec.containers{app}"),
              event("Scheduled", "Successfully assigned skiff-rg/web to node-1")]
    view = group_view(pod("Running", [running("app")]), group_id="g", name="web",
                      events=events)
    app = view.containers[0]
    assert [e.name for e in app.events] == ["Pulled", "BackOff"]
    backoff = app.events[1]
    assert (backoff.count, backoff.type) == (4, "Warning")
    assert (backoff.first_timestamp, backoff.last_timestamp) == (timestamp(T0), timestamp(T2))
    assert [e.name for e in view.events] == ["Scheduled"]


def test_a_public_groups_ip_is_its_load_balancers_once_given() -> None:
    """None while the load balancer is pending, then its ingress IP; a private group's
    is the Pod's IP."""
    service: dict[str, Any] = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
               "status": {"loadBalancer": {}}}
    validate(service)
    base = pod("Running", [running("app")], podIP="10.244.1.7")
    assert group_view(base, group_id="g", name="web", service=service).ip is None
    given = copy.deepcopy(service)
    given["status"]["loadBalancer"]["ingress"] = [{"ip": "20.1.2.3"}]
    validate(given)
    assert group_view(base, group_id="g", name="web", service=given).ip == "20.1.2.3"
    assert group_view(base, group_id="g", name="web").ip == "10.244.1.7"


@pytest.mark.parametrize(("statuses", "extra", "words"), [
    ([waiting("app", "ImagePullBackOff", 'Back-off pulling image "nginx:nope"')], {},
     "container 'app': ImagePullBackOff: Back-off pulling image"),
    ([waiting("app", "CreateContainerConfigError", 'secret "web.env" not found')], {},
     "CreateContainerConfigError"),
    ([], {"reason": "Evicted", "message": "The node was low on resource: memory."},
     "Evicted: The node was low on resource: memory."),
])
def test_what_keeps_a_group_from_running_is_its_failure(statuses: list[dict[str, Any]],
                                                        extra: dict[str, Any],
                                                        words: str) -> None:
    """Images that cannot be pulled, containers that cannot be made, an eviction: the
    group's failure, in Kubernetes' words."""
    phase = "Failed" if extra else "Pending"
    view = group_view(pod(phase, statuses, **extra), group_id="g", name="web")
    assert view.failure is not None
    assert words in view.failure


def test_a_crash_loop_is_not_a_failure_of_the_group() -> None:
    """CrashLoopBackOff is a container's waiting detail, as ACI shows it, not the
    group's failure (the restart policy is working)."""
    view = group_view(pod("Running", [waiting("app", "CrashLoopBackOff", "back-off 40s")]),
                      group_id="g", name="web")
    assert view.failure is None
    assert view.containers[0].current.detail_status == "CrashLoopBackOff"


def test_states_without_detail_and_times() -> None:
    """An empty state is Waiting; RFC 3339 times parse with or without fractions."""
    assert container_state(None).state == "Waiting"
    assert container_state({}).state == "Waiting"
    assert timestamp("2026-12-06T04:00:00.500000Z") == timestamp(T0) + 0.5  # type: ignore[operator]
    assert timestamp(None) is None


def test_a_failed_init_container_fails_the_group_in_the_local_engines_words() -> None:
    """A Failed Pod whose init container exited 3 (restartPolicy Never): the group's
    failure names the init container and its exit code; the app container never ran."""
    view = group_view(pod("Failed", [waiting("app", "PodInitializing")],
                          init=[terminated("setup", 3, "Error")]),
                      group_id="g", name="web")
    assert view.failure == "init container setup failed with exit code 3"
    assert view.containers[0].current.state == "Waiting"


SCHEDULING = "0/3 nodes are available: 1 Insufficient nvidia.com/gpu, 2 node(s) didn't " \
             "match Pod's node affinity/selector."


def test_an_unschedulable_pod_is_a_group_waiting_not_failed() -> None:
    """A Pod no node can take (PodScheduled False, Unschedulable) and the scheduler's
    FailedScheduling Event: Pending, containers Waiting, the Event a Warning of the
    group's, no failure (a node freed or added places it later)."""
    condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": SCHEDULING, "lastTransitionTime": T0}
    view = group_view(pod("Pending", [], conditions=[condition]), group_id="g", name="web",
                      events=[event("FailedScheduling", SCHEDULING, type_="Warning")])
    assert view.state == "Pending"
    assert [c.current.state for c in view.containers] == ["Waiting", "Waiting"]
    assert view.failure is None
    assert [(e.name, e.type, e.message) for e in view.events] == [
        ("FailedScheduling", "Warning", SCHEDULING)]


def test_the_condition_stands_in_for_an_expired_scheduling_event() -> None:
    """Events live an hour: without the scheduler's Event, the condition's message is the
    group's FailedScheduling Warning, at the condition's time; a scheduled Pod has none."""
    condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": SCHEDULING, "lastTransitionTime": T1}
    view = group_view(pod("Pending", [], conditions=[condition]), group_id="g", name="web")
    (found,) = view.events
    assert (found.name, found.type, found.message) == ("FailedScheduling", "Warning",
                                                       SCHEDULING)
    assert found.last_timestamp == timestamp(T1)
    scheduled = {"type": "PodScheduled", "status": "True", "lastTransitionTime": T1}
    assert group_view(pod("Pending", [], conditions=[scheduled]), group_id="g",
                      name="web").events == []
