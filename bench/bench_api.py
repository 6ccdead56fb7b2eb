"""API benchmark: a container group through the ACI REST API, as a client sees it.

Run as root: ``python3 bench/bench_api.py [--rounds N]``. Everything is local:
a docker-registry on loopback, a busybox-static image already cached, a real
skiff server (HTTPS, store, reconcile loop, engine) on a loopback port, and
podman for the baseline. The server runs in this process (as in tests/e2e);
the timing client runs in a process of its own, as a real client would, so
that its work does not share the server's interpreter lock (and with what it
imported frozen out of its collector, ``benchkit.lean_client``: a real client
has not loaded the server). Figures are
medians (p50) and p90 over N rounds, over HTTPS with keep-alive clients:

- PUT of a 1-container group → its operation ``Succeeded`` and the container
  ``Running`` (PUT, then the ``Azure-AsyncOperation`` URL polled in a tight
  loop, not the SDK's 1 s ``Retry-After``, then a GET that shows it running):
  target p50 <= 150 ms and at most half of the baseline, ``podman run -d
  --rm IMAGE sleep 3600`` of the same image, timed in the same run;
- GET of a group: target p50 <= 5 ms;
- listing 1,000 groups, every page (``nextLink``): target p90 <= 100 ms. The
  groups are written straight into the store, stopped and ``Succeeded``, so
  that no container starts; then PUT → Running again, beside them (admission
  sums what the running groups hold, in the store), against PUT → Running
  just before they were stored (the ratio);
- 50 creates at once (one thread and connection each): how many succeed,
  the wall time, p50/p90 per create; then all are deleted.

podman is installed with apt-get if missing. It runs with its own
containers.conf (``CONTAINERS_CONF``), storage, run, temporary and network
directories under the benchmark's work directory, never the system's: its
defaults exceed this machine's hard limits (``default_ulimits``) and crun
refuses hybrid cgroups (``runtime = "runc"``), see DESIGN.md. Everything is
removed at the end, also when the benchmark fails: groups, server, registry,
podman's containers, storage, bridge and firewall chains, cgroups, the
server's run directory.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import shlex
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchkit import lean_client, percentiles
from skiff.api.context import PROVIDER
from skiff.engine.runtime import cgroups
from skiff.models import parse_container_group
from skiff.server import Server
from skiff.settings import QuotaSettings
from skiff.testing.images import ImageSpec, Layout, busybox_layer, push
from skiff.testing.registry import running_registry
from skiff.testing.server import running_server

SUB = "11111111-2222-3333-4444-555555555555"
API = "api-version=2023-05-01"
# Handles SIGTERM (PID 1 ignores it otherwise), so deletes need no grace period.
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
TARGETS = {"put": 150.0, "get": 5.0, "list": 100.0}


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


# ---- the server -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """Where a client finds the server: all a client process needs."""

    url: str
    ca: str
    token: str


@contextlib.contextmanager
def serving(data_root: Path, registry: str) -> Iterator[tuple[Server, Endpoint]]:
    """A skiff server in this process (skiff.testing.server), its tenants' pulls allowed
    to reach the local ``registry`` (``HOST:PORT``), and where clients find it."""
    # The benchmark's tenant stores 1,000 groups and creates ~100 in minutes: past ACI's
    # default quotas, which are not what is measured.
    roomy = QuotaSettings(container_groups=100_000, creates_per_5_minutes=100_000,
                          creates_per_hour=100_000, deletes_per_5_minutes=100_000,
                          deletes_per_hour=100_000)
    with running_server(data_root, pool_size=4, allow=(registry,), quotas=roomy) as running:
        yield running.server, Endpoint(running.url, str(running.ca), running.token)


def group_body(image: str) -> dict[str, Any]:
    return {"location": "local", "properties": {
        "osType": "Linux", "containers": [{"name": "main", "properties": {
            "image": image, "command": SLEEPER,
            "resources": {"requests": {"cpu": 0.02, "memoryInGB": 0.05}}}}]}}


def fill_store(server: Server, image: str, rg: str, count: int) -> None:
    """``count`` groups written straight into the store, stopped and Succeeded: no container
    starts, and the reconcile loop has nothing to do for them."""
    plane = server.plane
    location = plane.settings.api.location
    for i in range(count):
        name = f"many-{i:05d}"
        body = parse_container_group(group_body(image), name=name, default_location=location,
                                     known_locations=[location])
        record, _ = plane.store.put_group(SUB, rg, name, body.location, body.to_stored(), {})
        plane.store.set_desired(SUB, rg, name, "stopped")
        plane.store.set_provisioning(record.uid, "Succeeded")


# ---- the client (in a process of its own) ---------------------------------------------------


class Api:
    """A keep-alive HTTPS client of one skiff, polling without ARM's 1 s Retry-After."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.http = httpx.Client(base_url=endpoint.url, timeout=60,
                                 verify=ssl.create_default_context(cafile=endpoint.ca),
                                 headers={"Authorization": f"Bearer {endpoint.token}"})

    def close(self) -> None:
        self.http.close()

    @staticmethod
    def group_path(rg: str, name: str | None = None) -> str:
        path = f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/{PROVIDER}/containerGroups"
        return path if name is None else f"{path}/{name}"

    @staticmethod
    def _ok(response: httpx.Response, *codes: int) -> httpx.Response:
        if response.status_code not in codes:
            raise RuntimeError(f"{response.request.method} {response.request.url.path}: "
                               f"{response.status_code} {response.text[:300]}")
        return response

    def wait(self, response: httpx.Response, *, timeout_s: float = 60) -> None:
        """Poll the answer's Azure-AsyncOperation URL until it says Succeeded."""
        url = response.headers["Azure-AsyncOperation"]
        deadline = time.monotonic() + timeout_s
        while True:
            status = self._ok(self.http.get(url), 200).json()
            if status["status"] == "Succeeded":
                return
            if status["status"] != "InProgress":
                raise RuntimeError(f"operation {status['status']}: {status.get('error')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"operation still InProgress after {timeout_s} s")

    def create(self, rg: str, name: str, body: dict[str, Any]) -> None:
        """PUT, wait for the operation, GET: the group provisioned, its container running."""
        self.wait(self._ok(self.http.put(f"{self.group_path(rg, name)}?{API}", json=body), 201))
        props = self.get(rg, name)["properties"]
        state = props["containers"][0]["properties"]["instanceView"]["currentState"]["state"]
        if props["provisioningState"] != "Succeeded" or state != "Running":
            raise RuntimeError(f"{name}: {props['provisioningState']}, container {state}")

    def get(self, rg: str, name: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._ok(self.http.get(f"{self.group_path(rg, name)}?{API}"),
                                          200).json()
        return answer

    def delete(self, rg: str, name: str) -> None:
        response = self._ok(self.http.delete(f"{self.group_path(rg, name)}?{API}"),
                            200, 202, 204)
        if response.status_code == 202:
            self.wait(response)

    def list(self, rg: str) -> list[dict[str, Any]]:
        """Every group of ``rg``, following nextLink."""
        found: list[dict[str, Any]] = []
        url: str | None = f"{self.group_path(rg)}?{API}"
        while url is not None:
            page = self._ok(self.http.get(url), 200).json()
            found.extend(page["value"])
            url = page.get("nextLink")
        return found


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


_client: dict[str, Any] = {}  # the client process's state: its endpoint and connection


def _client_start(endpoint: Endpoint) -> None:
    lean_client()  # this process imported the whole server: see benchkit
    _client["endpoint"] = endpoint
    _client["api"] = Api(endpoint)


def client_creates(image: str, rounds: int) -> list[float]:
    """PUT → Succeeded and Running, ``rounds`` times; each group deleted after."""
    api: Api = _client["api"]
    times = []
    for _ in range(rounds):
        name = _name("put")
        start = time.perf_counter()
        api.create("bench", name, group_body(image))
        times.append((time.perf_counter() - start) * 1e3)
        api.delete("bench", name)
    return times


def client_gets(image: str, rounds: int) -> list[float]:
    """GET of one running group, ``rounds`` times."""
    api: Api = _client["api"]
    name = _name("get")
    api.create("bench", name, group_body(image))
    try:
        api.get("bench", name)
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            api.get("bench", name)
            times.append((time.perf_counter() - start) * 1e3)
        return times
    finally:
        api.delete("bench", name)


def client_lists(rg: str, count: int, rounds: int) -> list[float]:
    """The whole of ``rg`` (``count`` groups), every page, ``rounds`` times."""
    api: Api = _client["api"]
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        found = api.list(rg)
        times.append((time.perf_counter() - start) * 1e3)
        if len(found) != count:
            raise RuntimeError(f"listed {len(found)} groups, not {count}")
    return times


def client_crowd(image: str, count: int) -> dict[str, Any]:
    """``count`` creates at once, one thread and connection each; then all deleted."""
    apis = [Api(_client["endpoint"]) for _ in range(count)]
    names = [_name("crowd") for _ in range(count)]
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(count)

    def one(api: Api, name: str) -> None:
        barrier.wait()
        start = time.perf_counter()
        try:
            api.create("bench", name, group_body(image))
        except Exception as exc:  # counted, not raised: the figure is how many succeed
            with lock:
                errors.append(f"{name}: {exc}")
            return
        with lock:
            times.append((time.perf_counter() - start) * 1e3)

    try:
        for api in apis:  # connections open (TLS done) before the clock starts
            api.http.get(f"/subscriptions/{SUB}/resourceGroups?{API}")
        start = time.perf_counter()
        _all([threading.Thread(target=one, args=(api, name))
              for api, name in zip(apis, names, strict=True)])
        wall = time.perf_counter() - start
        start = time.perf_counter()
        _all([threading.Thread(target=api.delete, args=("bench", name))
              for api, name in zip(apis, names, strict=True)])
        delete_wall = time.perf_counter() - start
    finally:
        for api in apis:
            api.close()
    return {"succeeded": len(times), "errors": errors, "wall_s": wall, "times": times,
            "delete_wall_s": delete_wall}


def _all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@contextlib.contextmanager
def client_process(endpoint: Endpoint) -> Iterator[ProcessPoolExecutor]:
    """One fresh interpreter (spawned, not forked: the server has threads) for the client."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_client_start, initargs=(endpoint,)) as pool:
        yield pool


# ---- podman, the baseline -------------------------------------------------------------------


class Podman:
    """podman with its own configuration, storage and state, all under ``work``."""

    def __init__(self, work: Path) -> None:
        work.mkdir(parents=True, exist_ok=True)
        conf = work / "containers.conf"
        conf.write_text(
            "[containers]\n"
            "# podman's defaults exceed this machine's hard limits.\n"
            'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n\n'
            "[engine]\n"
            "# crun refuses this machine's hybrid cgroups.\n"
            'runtime = "runc"\n\n'
            "[network]\n"
            f'network_config_dir = "{work / "networks"}"\n')
        self.env = dict(os.environ, CONTAINERS_CONF=str(conf))
        self.argv = ["podman", "--root", str(work / "storage"), "--runroot", str(work / "run"),
                     "--tmpdir", str(work / "tmp")]

    @staticmethod
    def ensure_installed() -> None:
        if shutil.which("podman"):
            return
        print("installing podman (apt-get) for the baseline...", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "podman"], check=True, env=env)

    def __call__(self, *args: str, check: bool = True) -> str:
        done = subprocess.run([*self.argv, *args], env=self.env, capture_output=True, text=True,
                              check=False, stdin=subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout.strip()

    def runs(self, image: str, rounds: int) -> list[float]:
        """``podman run -d --rm IMAGE sleep 3600`` timed to its return; removed after."""
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            cid = self("run", "-d", "--rm", image, "sleep", "3600")
            times.append((time.perf_counter() - start) * 1e3)
            self("rm", "-f", "-t", "0", cid, check=False)
        return times

    def clean(self) -> None:
        self("rm", "-a", "-f", "-t", "0", check=False)
        self("system", "reset", "-f", check=False)


class HostState:
    """What podman (netavark, cgroupfs) makes outside its own directories, to undo after:
    its bridge, its firewall chains, its cgroup parent, netavark's IPAM directory."""

    IPAM_DIR = Path("/run/containers")

    def __init__(self) -> None:
        self.links = self._links()
        self.cgroups = self._cgroups()
        self.chains = self._netavark_chains()
        self.ipam_dir = self.IPAM_DIR.exists()

    @staticmethod
    def _links() -> set[str]:
        return set(os.listdir("/sys/class/net"))

    @staticmethod
    def _cgroups() -> set[str]:
        return {f"{h.name}/{c.name}" for h in cgroups.hierarchies() for c in h.iterdir()
                if c.is_dir()}

    @staticmethod
    def _rules(table: str) -> list[str]:
        done = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True,
                              check=False)
        return done.stdout.splitlines()

    def _netavark_chains(self) -> bool:
        return any(rule.startswith("-N NETAVARK") for table in ("filter", "nat")
                   for rule in self._rules(table))

    def restore(self) -> None:
        for link in self._links() - self.links:
            if link.startswith("podman"):
                subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)
        for child in self._cgroups() - self.cgroups:
            if child.endswith("/libpod_parent"):
                cgroups.remove(child.split("/", 1)[1])
        if not self.chains:  # ours alone: no other podman had made them
            for table in ("filter", "nat"):
                rules = self._rules(table)
                for rule in rules:
                    if rule.startswith("-A ") and " -j NETAVARK" in rule:
                        subprocess.run(["iptables", "-t", table, "-D", *shlex.split(rule)[1:]],
                                       capture_output=True, check=False)
                chains = [rule.split()[1] for rule in rules if rule.startswith("-N NETAVARK")]
                for flag in ("-F", "-X"):
                    for chain in chains:
                        subprocess.run(["iptables", "-t", table, flag, chain],
                                       capture_output=True, check=False)
        if not self.ipam_dir:
            shutil.rmtree(self.IPAM_DIR, ignore_errors=True)


def local_image(cleanup: contextlib.ExitStack, work: Path) -> tuple[str, str, Podman]:
    """A busybox image on a docker-registry on loopback, pulled by a podman of its own
    (under ``work``): the registry's ``HOST:PORT``, the image, the podman; all removed
    by ``cleanup``."""
    layout = Layout(work / "layout")
    layout.tag("1", layout.image(ImageSpec(layers=[busybox_layer])))
    registry = cleanup.enter_context(running_registry(work / "registry"))
    push(work / "layout", "1", registry.host, "bench/busybox")
    image = f"{registry.host}/bench/busybox:1"
    podman = Podman(work / "podman")
    cleanup.callback(podman.clean)
    podman("pull", "--quiet", "--tls-verify=false", image)
    return registry.host, image, podman


@dataclass
class Bench:
    """A benchmark's node: a server with a client process, a local image, podman."""

    server: Server
    endpoint: Endpoint
    image: str
    podman: Podman
    remote: Any  # remote(fn, *args): fn(*args) in the client process, its result
    load_before: str


@contextlib.contextmanager
def local_bench() -> Iterator[Bench]:
    """Everything a run needs (podman installed if missing), warmed up (an image pull,
    caches, the network pool); everything removed after, also when the run fails. SIGTERM
    unwinds like Ctrl-C does, through the clean-ups."""
    signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))
    Podman.ensure_installed()
    load_before = _load()
    host = HostState()
    work = Path(tempfile.mkdtemp(prefix="skiff-bench-"))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, work, ignore_errors=True)
        cleanup.callback(host.restore)
        registry, image, podman = local_image(cleanup, work)
        server, endpoint = cleanup.enter_context(serving(work / "root", registry))
        client = cleanup.enter_context(client_process(endpoint))

        def remote(fn: Any, *fn_args: Any) -> Any:
            return client.submit(fn, *fn_args).result()

        remote(client_creates, image, 3)
        podman.runs(image, 3)
        yield Bench(server, endpoint, image, podman, remote, load_before)


# ---- the run -----------------------------------------------------------------------------------


def _row(what: str, samples: list[float], target: str = "", met: bool | None = None) -> str:
    p50, p90 = percentiles(samples)
    verdict = "" if met is None else (" met" if met else " MISSED")
    return f"{what:<46} {p50:>8.1f}ms {p90:>8.1f}ms  {target}{verdict}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--list-groups", type=int, default=1000)
    parser.add_argument("--concurrent", type=int, default=50)
    args = parser.parse_args()
    with local_bench() as bench:
        server, image, podman, remote = bench.server, bench.image, bench.podman, bench.remote
        load_before = bench.load_before
        podman_before = podman.runs(image, args.rounds)
        put = remote(client_creates, image, args.rounds)
        podman_after = podman.runs(image, args.rounds)
        get = remote(client_gets, image, max(200, args.rounds * 10))
        crowd = remote(client_crowd, image, args.concurrent) if args.concurrent else {}
        listed: list[float] = []
        put_crowded: list[float] = []
        put_alone: list[float] = []
        if args.list_groups:
            put_alone = remote(client_creates, image, args.rounds)  # the same phase's baseline
            fill_store(server, image, "bench-list", args.list_groups)
            listed = remote(client_lists, "bench-list", args.list_groups, args.rounds)
            put_crowded = remote(client_creates, image, args.rounds)
        load_after = _load()

    podman_p50 = statistics.median(podman_before + podman_after)
    put_p50 = statistics.median(put)
    print(f"{'what':<46} {'p50':>10} {'p90':>10}  target")
    print(_row("podman run -d --rm (baseline, before)", podman_before))
    print(_row("PUT group → Succeeded, container Running", put,
               f"p50 <= {TARGETS['put']:.0f} ms and <= podman/2 ({podman_p50 / 2:.1f} ms):",
               put_p50 <= min(TARGETS["put"], podman_p50 / 2)))
    print(_row("podman run -d --rm (baseline, after)", podman_after))
    print(_row("GET group (keep-alive)", get, f"p50 <= {TARGETS['get']:.0f} ms:",
               statistics.median(get) <= TARGETS["get"]))
    if listed:
        print(_row(f"list {args.list_groups} groups (every page)", listed,
                   f"p90 <= {TARGETS['list']:.0f} ms:",
                   percentiles(listed)[1] <= TARGETS["list"]))
        print(_row("PUT → Running, just before they are stored", put_alone))
        print(_row(f"PUT → Running, {args.list_groups} more groups stored", put_crowded,
                   f"ratio (p50): "
                   f"{statistics.median(put_crowded) / statistics.median(put_alone):.2f}x"))
    if crowd:
        if crowd["times"]:
            print(_row(f"{args.concurrent} creates at once, each", crowd["times"]))
        print(f"{args.concurrent} creates at once: {crowd['succeeded']} succeeded, wall "
              f"{crowd['wall_s']:.2f} s; all deleted in {crowd['delete_wall_s']:.2f} s")
        for error in crowd["errors"][:5]:
            print(f"  failed: {error}")
    print(f"PUT → Running vs podman run -d (p50): {put_p50 / podman_p50:.2f}x")
    print(f"machine: before, {load_before}; after, {load_after}")


if __name__ == "__main__":
    main()
