"""The official ``kubernetes`` client behind a few calls on plain dicts, its errors mapped.

:class:`Cluster` is the only place skiff touches the client: it loads a kubeconfig (or
the in-cluster service account), calls the typed APIs with ``_preload_content=False``
so that objects stay the dicts :mod:`skiff.kube.objects` builds and
:mod:`skiff.kube.status` reads (no model round trip), and turns ``ApiException`` and the
transport's errors into :class:`~skiff.errors.ClusterError` (``status`` 404 for an
object that is not there, 409 for one that is). :class:`Watcher` keeps a list of objects
current: a list, then a watch from its ``resourceVersion``, listed again when the watch
expires (410) or fails; every change is handed to a callback.

The client is imported here, when a :class:`Cluster` is made, so that ``skiff --help``
and the local backend never load it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skiff.errors import ClusterError

log = logging.getLogger(__name__)

Obj = dict[str, Any]

#: Seconds a plain request may take.
REQUEST_TIMEOUT_S = 30.0

#: Kind → (the API's attribute on :class:`Cluster`, the resource's name in the methods).
_KINDS = {
    "Namespace": ("core", "namespace"),
    "Pod": ("core", "namespaced_pod"),
    "ConfigMap": ("core", "namespaced_config_map"),
    "Secret": ("core", "namespaced_secret"),
    "Service": ("core", "namespaced_service"),
    "NetworkPolicy": ("networking", "namespaced_network_policy"),
}
#: Kind → its list across every namespace.
_LIST_ALL = {
    "Pod": ("core", "list_pod_for_all_namespaces"),
    "ConfigMap": ("core", "list_config_map_for_all_namespaces"),
    "Secret": ("core", "list_secret_for_all_namespaces"),
    "Service": ("core", "list_service_for_all_namespaces"),
    "Event": ("core", "list_event_for_all_namespaces"),
    "NetworkPolicy": ("networking", "list_network_policy_for_all_namespaces"),
}


@dataclass(frozen=True)
class Connection:
    """Where the cluster is: a kubeconfig file and context (None: ``$KUBECONFIG`` or
    ``~/.kube/config``, else the Pod's service account when skiff runs in the cluster)."""

    kubeconfig: Path | None = None
    context: str | None = None


class Cluster:
    """The API server, called with dicts; every failure a :class:`ClusterError`."""

    def __init__(self, connection: Connection) -> None:
        from kubernetes import client, config  # the client, here only

        configuration = client.Configuration()
        try:
            if connection.kubeconfig is None and connection.context is None:
                try:
                    config.load_kube_config(client_configuration=configuration)
                except config.ConfigException:
                    config.load_incluster_config(client_configuration=configuration)
            else:
                config.load_kube_config(
                    config_file=None if connection.kubeconfig is None
                    else str(connection.kubeconfig),
                    context=connection.context, client_configuration=configuration)
        except (config.ConfigException, OSError, ValueError, TypeError) as exc:
            raise ClusterError(f"cannot load the cluster's configuration: {exc}") from None
        self.api_client = client.ApiClient(configuration)
        #: ``CoreV1Api``: the streams (logs, exec) are called on it.
        self.core = client.CoreV1Api(self.api_client)
        self.networking = client.NetworkingV1Api(self.api_client)
        self.node = client.NodeV1Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)
        self._api_exception = client.ApiException

    def close(self) -> None:
        self.api_client.close()

    def call(self, api: str, method: str, *args: Any, **kwargs: Any) -> Obj:
        """``getattr(self.<api>, method)(*args, **kwargs)``'s answer as a dict."""
        import urllib3

        fn = getattr(getattr(self, api), method)
        try:
            answer = fn(*args, _preload_content=False,
                        _request_timeout=kwargs.pop("_request_timeout", REQUEST_TIMEOUT_S),
                        **kwargs)
            data = answer.data
        except self._api_exception as exc:
            raise self.error(exc) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ClusterError(f"the cluster did not answer: {exc}") from None
        try:
            found = json.loads(data) if data else {}
        except ValueError:
            raise ClusterError("the cluster answered something that is not JSON") from None
        return found if isinstance(found, dict) else {}

    def error(self, exc: Any) -> ClusterError:
        """An ``ApiException`` as a ClusterError with the Status' message."""
        status = int(getattr(exc, "status", 0) or 0)
        message = str(getattr(exc, "reason", "") or "")
        try:
            body = json.loads(getattr(exc, "body", "") or "{}")
            message = str(body.get("message") or message)
        except (ValueError, AttributeError):
            pass
        return ClusterError(f"the cluster answered {status}: {message[:500]}", status=status)

    # ---- objects ------------------------------------------------------------------

    def _method(self, verb: str, kind: str) -> tuple[str, str]:
        api, resource = _KINDS[kind]
        return api, f"{verb}_{resource}"

    def create(self, obj: Obj) -> Obj:
        api, method = self._method("create", obj["kind"])
        namespace = obj["metadata"].get("namespace")
        return self.call(api, method, *([namespace] if namespace else []), obj)

    def read(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        """The object, or None where there is none."""
        api, method = self._method("read", kind)
        try:
            return self.call(api, method, name, *([namespace] if namespace else []))
        except ClusterError as exc:
            if exc.status == 404:
                return None
            raise

    def read_runtime_class(self, name: str) -> Obj | None:
        """The RuntimeClass (``node.k8s.io/v1``) of that name, or None."""
        try:
            return self.call("node", "read_runtime_class", name)
        except ClusterError as exc:
            if exc.status == 404:
                return None
            raise

    def replace(self, obj: Obj) -> Obj:
        api, method = self._method("replace", obj["kind"])
        namespace = obj["metadata"].get("namespace")
        return self.call(api, method, obj["metadata"]["name"],
                         *([namespace] if namespace else []), obj)

    def delete(self, kind: str, namespace: str | None, name: str, *,
               grace_s: int | None = None) -> bool:
        """Delete the object (its dependents after it, in the background); False if there
        was none."""
        api, method = self._method("delete", kind)
        kwargs: dict[str, Any] = {"propagation_policy": "Background"}
        if grace_s is not None:
            kwargs["grace_period_seconds"] = grace_s
        try:
            self.call(api, method, name, *([namespace] if namespace else []), **kwargs)
        except ClusterError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def list_all(self, kind: str, *, labels: str | None = None,
                 fields: str | None = None) -> Obj:
        """Every object of ``kind`` in every namespace (the list, with its
        ``metadata.resourceVersion``)."""
        api, method = _LIST_ALL[kind]
        kwargs = {k: v for k, v in (("label_selector", labels), ("field_selector", fields))
                  if v}
        return self.call(api, method, **kwargs)

    def apply(self, obj: Obj) -> Obj:
        """Create ``obj``, or replace the one of its name (unconditionally: the API server
        keeps what it allocated, a Service's cluster IP and node ports)."""
        try:
            return self.create(obj)
        except ClusterError as exc:
            if exc.status != 409:
                raise
        return self.replace(obj)


class Watcher(threading.Thread):
    """Keeps ``kind``'s objects (selected by ``labels``/``fields``) current: ``on_list``
    with every object after each (re)list, then ``on_change(type, object)`` for each
    change the watch streams, until :meth:`stop`."""

    def __init__(self, cluster: Cluster, kind: str, *, on_list: Callable[[list[Obj]], None],
                 on_change: Callable[[str, Obj], None], labels: str | None = None,
                 fields: str | None = None, timeout_s: int = 60) -> None:
        super().__init__(daemon=True, name=f"kube-watch-{kind.lower()}")
        self.cluster, self.kind = cluster, kind
        self.on_list, self.on_change = on_list, on_change
        self.labels, self.fields, self.timeout_s = labels, fields, timeout_s
        self.stopping = threading.Event()
        #: Set once the first list has been handed over.
        self.synced = threading.Event()

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        backoff = 0.5
        while not self.stopping.is_set():
            try:
                listing = self.cluster.list_all(self.kind, labels=self.labels,
                                                fields=self.fields)
                self.on_list(list(listing.get("items") or []))
                self.synced.set()
                version = str((listing.get("metadata") or {}).get("resourceVersion") or "")
                while not self.stopping.is_set():
                    version = self._watch(version)
                    backoff = 0.5
            except ClusterError as exc:
                if exc.status != 410:
                    log.warning("watching %ss: %s", self.kind, exc.message)
                    self.stopping.wait(backoff)
                    backoff = min(backoff * 2, 30.0)
            except Exception:  # a watch never dies of one bad answer: list again
                log.exception("watching %ss failed; listing again", self.kind)
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def _watch(self, version: str) -> str:
        """Stream changes from ``version`` until the server ends the watch; the version
        to go on from."""
        import urllib3
        from kubernetes import watch

        api, method = _LIST_ALL[self.kind]
        fn = getattr(getattr(self.cluster, api), method)
        kwargs: dict[str, Any] = {"resource_version": version, "timeout_seconds": self.timeout_s,
                                  "_request_timeout": self.timeout_s + 10,
                                  "allow_watch_bookmarks": True}
        if self.labels:
            kwargs["label_selector"] = self.labels
        if self.fields:
            kwargs["field_selector"] = self.fields
        stream = watch.Watch()
        try:
            for event in stream.stream(fn, **kwargs):
                obj = event.get("raw_object") or {}
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if event.get("type") != "BOOKMARK":
                    self.on_change(str(event.get("type")), obj)
                if self.stopping.is_set():
                    stream.stop()
                    break
        except self.cluster._api_exception as exc:
            raise self.cluster.error(exc) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ClusterError(f"the watch of {self.kind}s broke: {exc}") from None
        return version
