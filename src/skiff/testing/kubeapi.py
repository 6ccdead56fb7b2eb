"""A fake Kubernetes API server: a real HTTP server on loopback, objects in memory.

The Kubernetes backend (:mod:`skiff.kube.engine`) talks to a cluster through the official
``kubernetes`` client; its unit tests point that client at this server, so the requests
it sends and the answers it parses are real HTTP and real JSON, with no cluster. It speaks
the part of the REST API the engine uses:

- ``create`` (POST), ``get``, ``replace`` (PUT), ``patch`` (merge and strategic merge
  patches are both applied as a JSON merge patch, RFC 7386), ``delete`` and ``list``
  with a ``labelSelector`` (``k=v``, ``k!=v``, ``k``) and simple ``fieldSelector``\\s;
- ``watch`` (``?watch=true``): JSON lines over a chunked response, from a
  ``resourceVersion`` on, ended after ``timeoutSeconds``;
- uids, ``resourceVersion``\\s (one counter, as etcd's revision), ``creationTimestamp``,
  ``409 AlreadyExists``, ``404 NotFound`` and ``409 Conflict`` on a stale
  ``resourceVersion`` as ``Status`` objects;
- the garbage collector's cascade: deleting an object deletes every object whose owner
  references all name deleted objects;
- namespaces, nodes with ``allocatable``, RuntimeClasses (``node.k8s.io/v1``) and
  NetworkPolicies (``networking.k8s.io/v1``); ``metrics.k8s.io`` PodMetrics where a test
  sets :attr:`FakeKubeApi.pod_metrics`, else absent (404), as without metrics-server.

Its answers were built from the Kubernetes API reference and the client's models
(``kubernetes.client.models``), which parse them: no cluster was there to record from, so
what a real API server adds (defaulting, admission, the kubelet) is not here. Tests play
the kubelet and the scheduler through :meth:`FakeKubeApi.set_pod_status` and
:meth:`FakeKubeApi.add_event`.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

Obj = dict[str, Any]

#: Resource (URL plural) → (kind, apiVersion, namespaced).
RESOURCES: dict[str, tuple[str, str, bool]] = {
    "namespaces": ("Namespace", "v1", False),
    "nodes": ("Node", "v1", False),
    "pods": ("Pod", "v1", True),
    "configmaps": ("ConfigMap", "v1", True),
    "secrets": ("Secret", "v1", True),
    "services": ("Service", "v1", True),
    "events": ("Event", "v1", True),
    "networkpolicies": ("NetworkPolicy", "networking.k8s.io/v1", True),
    "runtimeclasses": ("RuntimeClass", "node.k8s.io/v1", False),
}
_GROUPS = {"v1": "/api/v1", "networking.k8s.io/v1": "/apis/networking.k8s.io/v1",
           "node.k8s.io/v1": "/apis/node.k8s.io/v1"}


#: The PodMetrics list of every namespace (metrics-server's ``metrics.k8s.io``).
METRICS_PODS = "/apis/metrics.k8s.io/v1beta1/pods"


def now_text() -> str:
    """Now, as the API server writes times (RFC 3339, seconds, ``Z``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target: Any, patch: Any) -> Any:
    """``patch`` applied to ``target`` as RFC 7386 says: objects merge, null removes."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _selected(obj: Obj, labels: str | None, fields: str | None) -> bool:
    have = obj["metadata"].get("labels") or {}
    for term in filter(None, (labels or "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if have.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if have.get(key.rstrip("=")) != value:
                return False
        elif term.startswith("!"):
            if term[1:] in have:
                return False
        elif term not in have:
            return False
    for term in filter(None, (fields or "").split(",")):
        key, value = term.split("=", 1)
        found: Any = obj
        for part in key.split("."):
            found = found.get(part) if isinstance(found, dict) else None
        if str(found) != value and not (found is None and value == ""):
            return False
    return True


class ApiError(Exception):
    """An answer other than 2xx, as a ``Status`` object."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> Obj:
        return {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}


@dataclass
class _Change:
    revision: int
    type: str
    resource: str
    obj: Obj


@dataclass
class FakeKubeApi:
    """The objects, their history for watches, and the HTTP server serving them."""

    objects: dict[tuple[str, str, str], Obj] = field(default_factory=dict)
    history: list[_Change] = field(default_factory=list)
    revision: int = 100
    #: Every request as ``METHOD path`` (for tests that count what the engine asks).
    requests: list[str] = field(default_factory=list)
    lock: threading.Condition = field(default_factory=threading.Condition)
    closing: bool = False
    #: ``metrics.k8s.io/v1beta1`` PodMetrics (None: the API is not served, 404, as on a
    #: cluster without metrics-server).
    pod_metrics: list[Obj] | None = None
    server: ThreadingHTTPServer | None = None
    thread: threading.Thread | None = None

    # ---- the store ---------------------------------------------------------------

    def _record(self, kind: str, resource: str, obj: Obj) -> Obj:
        self.revision += 1
        obj["metadata"]["resourceVersion"] = str(self.revision)
        self.history.append(_Change(self.revision, kind, resource, copy.deepcopy(obj)))
        del self.history[:-2000]
        self.lock.notify_all()
        return obj

    def create(self, resource: str, namespace: str, obj: Obj) -> Obj:
        """Store a new object (AlreadyExists if its name is taken)."""
        kind, version, namespaced = RESOURCES[resource]
        obj = copy.deepcopy(obj)
        obj.setdefault("metadata", {})
        name = obj["metadata"].get("name")
        if not name:
            raise ApiError(422, "Invalid", f"{kind} has no metadata.name")
        with self.lock:
            if namespaced and ("namespaces", "", namespace) not in self.objects:
                raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found')
            key = (resource, namespace if namespaced else "", name)
            if key in self.objects:
                raise ApiError(409, "AlreadyExists", f'{resource} "{name}" already exists')
            obj.update(apiVersion=version, kind=kind)
            meta = obj["metadata"]
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_text())
            if namespaced:
                meta["namespace"] = namespace
            if resource == "pods":
                obj.setdefault("status", {"phase": "Pending"})
            if resource == "services" and obj.get("spec", {}).get("type") != "ExternalName":
                obj.setdefault("spec", {}).setdefault(
                    "clusterIP", f"10.96.0.{self.revision % 250 + 2}")
            self.objects[key] = obj
            return copy.deepcopy(self._record("ADDED", resource, obj))

    def get(self, resource: str, namespace: str, name: str) -> Obj:
        with self.lock:
            return copy.deepcopy(self._get(resource, namespace, name))

    def _get(self, resource: str, namespace: str, name: str) -> Obj:
        namespaced = RESOURCES[resource][2]
        found = self.objects.get((resource, namespace if namespaced else "", name))
        if found is None:
            raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
        return found

    def replace(self, resource: str, namespace: str, name: str, obj: Obj) -> Obj:
        """Replace an object (Conflict if ``obj`` names an older resourceVersion)."""
        with self.lock:
            old = self._get(resource, namespace, name)
            given = (obj.get("metadata") or {}).get("resourceVersion")
            if given and given != old["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {resource} '
                                                f'"{name}": the object has been modified')
            new = copy.deepcopy(obj)
            new.update(apiVersion=old["apiVersion"], kind=old["kind"])
            meta = new.setdefault("metadata", {})
            for kept in ("uid", "creationTimestamp", "namespace"):
                if kept in old["metadata"]:
                    meta[kept] = old["metadata"][kept]
            if resource == "pods" and "status" not in new:
                new["status"] = old.get("status", {})
            if resource == "services":
                new.setdefault("spec", {}).setdefault("clusterIP", old["spec"].get("clusterIP"))
                if "status" in old and "status" not in new:
                    new["status"] = old["status"]
            self.objects[(resource, old["metadata"].get("namespace", ""), name)] = new
            return copy.deepcopy(self._record("MODIFIED", resource, new))

    def patch(self, resource: str, namespace: str, name: str, patch: Obj) -> Obj:
        with self.lock:
            old = self._get(resource, namespace, name)
            new = merge_patch(old, patch)
            for kept in ("uid", "creationTimestamp", "namespace", "name"):
                if kept in old["metadata"]:
                    new["metadata"][kept] = old["metadata"][kept]
            self.objects[(resource, old["metadata"].get("namespace", ""), name)] = new
            return copy.deepcopy(self._record("MODIFIED", resource, new))

    def delete(self, resource: str, namespace: str, name: str) -> Obj:
        """Delete an object, and (as the garbage collector) every object it alone owns."""
        with self.lock:
            obj = self._get(resource, namespace, name)
            self._delete(resource, obj)
            return copy.deepcopy(obj)

    def _delete(self, resource: str, obj: Obj) -> None:
        meta = obj["metadata"]
        self.objects.pop((resource, meta.get("namespace", ""), meta["name"]), None)
        self._record("DELETED", resource, obj)
        if resource == "namespaces":
            for key, other in list(self.objects.items()):
                if key[1] == meta["name"]:
                    self._delete(key[0], other)
            return
        gone = meta["uid"]
        live = {o["metadata"]["uid"] for o in self.objects.values()}
        for key, other in list(self.objects.items()):
            owners = other["metadata"].get("ownerReferences") or []
            if key in self.objects and any(o["uid"] == gone for o in owners) \
                    and not any(o["uid"] in live for o in owners):
                self._delete(key[0], other)

    def list(self, resource: str, namespace: str | None, *, labels: str | None = None,
             fields: str | None = None) -> list[Obj]:
        with self.lock:
            return [copy.deepcopy(o) for (r, ns, _), o in sorted(self.objects.items())
                    if r == resource and (namespace is None or ns == namespace)
                    and _selected(o, labels, fields)]

    def changes(self, resource: str, namespace: str | None, since: int, *,
                labels: str | None, fields: str | None, until: float) -> Iterator[_Change]:
        """The changes to ``resource`` after revision ``since``, as they come, until the
        monotonic time ``until`` (or the server closes)."""
        seen = since
        while True:
            with self.lock:
                found = [c for c in self.history if c.revision > seen and c.resource == resource
                         and (namespace is None or c.obj["metadata"].get("namespace") == namespace)
                         and _selected(c.obj, labels, fields)]
                if not found:
                    if self.history and self.history[-1].revision > seen:
                        seen = self.history[-1].revision
                    left = until - time.monotonic()
                    if left <= 0 or self.closing:
                        return
                    self.lock.wait(min(left, 0.2))
                    continue
                seen = found[-1].revision
            yield from found

    # ---- what tests play: the kubelet, the scheduler, the cluster's operator ----------

    def set_pod_status(self, namespace: str, name: str, status: Obj) -> Obj:
        """Set a Pod's ``status`` (as the kubelet reports it)."""
        return self._set_status("pods", namespace, name, status)

    def _set_status(self, resource: str, namespace: str, name: str, status: Obj) -> Obj:
        with self.lock:
            old = self._get(resource, namespace, name)
            old["status"] = copy.deepcopy(status)
            return copy.deepcopy(self._record("MODIFIED", resource, old))

    def set_service_ingress(self, namespace: str, name: str, ip: str) -> Obj:
        """Give a LoadBalancer Service its address (as the cloud's controller does)."""
        return self._set_status("services", namespace, name,
                                {"loadBalancer": {"ingress": [{"ip": ip}]}})

    def add_event(self, namespace: str, pod: str, reason: str, message: str, *,
                  field_path: str | None = None, type_: str = "Normal") -> Obj:
        """An Event about Pod ``pod`` (as the kubelet records one)."""
        pod_obj = self.get("pods", namespace, pod)
        involved = {"kind": "Pod", "namespace": namespace, "name": pod,
                    "uid": pod_obj["metadata"]["uid"], "apiVersion": "v1"}
        if field_path:
            involved["fieldPath"] = field_path
        stamp = now_text()
        return self.create("events", namespace, {
            "metadata": {"name": f"{pod}.{uuid.uuid4().hex[:16]}", "namespace": namespace},
            "involvedObject": involved, "reason": reason, "message": message, "type": type_,
            "count": 1, "firstTimestamp": stamp, "lastTimestamp": stamp,
            "source": {"component": "kubelet"}})

    def add_node(self, name: str, *, cpu: str = "4", memory: str = "16Gi",
                 ready: bool = True, gpus: int = 0, gpu_product: str | None = None) -> Obj:
        """A node with the allocatable given; ``gpus`` NVIDIA GPUs (the device plugin's
        resource, and the GPU pools' taint), labelled ``gpu_product`` (GFD's
        ``nvidia.com/gpu.product``) if given."""
        allocatable = {"cpu": cpu, "memory": memory, "pods": "110"}
        node: Obj = {"metadata": {"name": name}}
        if gpus:
            allocatable["nvidia.com/gpu"] = str(gpus)
            node["spec"] = {"taints": [{"key": "nvidia.com/gpu", "value": "present",
                                        "effect": "NoSchedule"}]}
        if gpu_product is not None:
            node["metadata"]["labels"] = {"nvidia.com/gpu.product": gpu_product}
        self.create("nodes", "", node)
        return self._set_status("nodes", "", name, {
            "allocatable": allocatable, "capacity": allocatable,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]})

    def set_unschedulable(self, namespace: str, name: str, message: str) -> Obj:
        """The scheduler finds no node for Pod ``name``: its PodScheduled condition False
        (Unschedulable) and a FailedScheduling Warning Event, as kube-scheduler writes."""
        stamp = now_text()
        self._set_status("pods", namespace, name, {"phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": message, "lastTransitionTime": stamp}]})
        return self.add_event(namespace, name, "FailedScheduling", message, type_="Warning")

    def add_runtime_class(self, name: str, handler: str = "runsc") -> Obj:
        return self.create("runtimeclasses", "", {"metadata": {"name": name},
                                                  "handler": handler})

    # ---- serving ------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def start(self) -> FakeKubeApi:
        api = self

        class Handler(_Handler):
            fake = api

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       name="fake-kube-api")
        self.thread.start()
        return self

    def close(self) -> None:
        with self.lock:
            self.closing = True
            self.lock.notify_all()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.thread is not None:
            self.thread.join(timeout=5)

    def kubeconfig(self, path: Path, *, context: str = "fake") -> Path:
        """Write a kubeconfig file naming this server (no credentials: none are asked)."""
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {}}],
            "contexts": [{"name": context, "context": {"cluster": "fake", "user": "fake"}}],
        }))
        return path


class _Handler(BaseHTTPRequestHandler):
    fake: FakeKubeApi
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, code: int, body: Obj) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else {}

    def _route(self) -> tuple[str, str, str | None, str | None, dict[str, str]]:
        """(resource, namespace, name, subresource, query) of the request's path."""
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        path = url.path.rstrip("/")
        for prefix in sorted(_GROUPS.values(), key=len, reverse=True):
            if path.startswith(prefix + "/"):
                parts = path[len(prefix) + 1:].split("/")
                break
        else:
            raise ApiError(404, "NotFound", f"the server could not find {url.path}")
        namespace = ""
        if parts[0] == "namespaces" and len(parts) >= 3:
            namespace, parts = parts[1], parts[2:]
        resource = parts[0]
        if resource not in RESOURCES or len(parts) > 3 \
                or _GROUPS[RESOURCES[resource][1]] != prefix:
            raise ApiError(404, "NotFound", f"the server could not find {url.path}")
        name = parts[1] if len(parts) > 1 else None
        sub = parts[2] if len(parts) > 2 else None
        return resource, namespace, name, sub, query

    def _handle(self, method: str) -> None:
        self.fake.requests.append(f"{method} {urlsplit(self.path).path}")
        try:
            if method == "GET" and urlsplit(self.path).path == METRICS_PODS \
                    and self.fake.pod_metrics is not None:
                query = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
                items = [copy.deepcopy(m) for m in self.fake.pod_metrics
                         if _selected(m, query.get("labelSelector"), None)]
                self._send(200, {"apiVersion": "metrics.k8s.io/v1beta1",
                                 "kind": "PodMetricsList", "metadata": {}, "items": items})
                return
            resource, namespace, name, sub, query = self._route()
            if method == "GET" and name is None and query.get("watch", "").lower() in ("true", "1"):
                self._watch(resource, namespace or None, query)
                return
            self._send(200 if method != "POST" else 201,
                       self._answer(method, resource, namespace, name, sub, query))
        except ApiError as exc:
            self._send(exc.code, exc.status())

    def _answer(self, method: str, resource: str, namespace: str, name: str | None,
                sub: str | None, query: dict[str, str]) -> Obj:
        fake = self.fake
        if name is None:
            if method == "POST":
                return fake.create(resource, namespace, self._body())
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", f"{method} of a collection")
            kind, version, _ = RESOURCES[resource]
            items = fake.list(resource, namespace or None, labels=query.get("labelSelector"),
                              fields=query.get("fieldSelector"))
            return {"apiVersion": version, "kind": kind + "List",
                    "metadata": {"resourceVersion": str(fake.revision)}, "items": items}
        if sub not in (None, "status"):
            raise ApiError(404, "NotFound", f"no subresource {sub}")
        if method == "GET":
            return fake.get(resource, namespace, name)
        if method == "PUT":
            body = self._body()
            if sub == "status":
                return fake._set_status(resource, namespace, name, body.get("status") or {})
            return fake.replace(resource, namespace, name, body)
        if method == "PATCH":
            body = self._body()
            if isinstance(body, list):
                raise ApiError(415, "UnsupportedMediaType", "JSON patches are not served here")
            return fake.patch(resource, namespace, name, body)
        if method == "DELETE":
            fake.delete(resource, namespace, name)
            return {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Success",
                    "details": {"name": name, "kind": resource}}
        raise ApiError(405, "MethodNotAllowed", method)

    def _watch(self, resource: str, namespace: str | None, query: dict[str, str]) -> None:
        since = int(query.get("resourceVersion") or self.fake.revision)
        oldest = self.fake.history[0].revision if self.fake.history else 0
        until = time.monotonic() + float(query.get("timeoutSeconds") or 1800)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        try:
            if since < oldest - 1:
                gone = ApiError(410, "Expired", f"too old resource version: {since}").status()
                chunk(json.dumps({"type": "ERROR", "object": gone}).encode() + b"\n")
            else:
                for change in self.fake.changes(resource, namespace, since,
                                                labels=query.get("labelSelector"),
                                                fields=query.get("fieldSelector"),
                                                until=until):
                    chunk(json.dumps({"type": change.type, "object": change.obj}).encode()
                          + b"\n")
            chunk(b"")
        except OSError:
            self.close_connection = True  # the client went away

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")
