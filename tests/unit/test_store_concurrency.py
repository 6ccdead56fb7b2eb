"""Unit tests for skiff.store under many threads, and its speed (figures printed with -s)."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from skiff.settings import QuotaSettings
from skiff.store import GroupRecord, Store
from skiff.store.admission import Admission, CapacityExceeded, DnsLabelInUse, QuotaExceeded

SUB = "00000000-0000-0000-0000-000000000001"
T = TypeVar("T")


def body(n: int = 0) -> dict[str, Any]:
    """A container group body of realistic size (two containers, env, ports)."""
    return {"properties": {"osType": "Linux", "restartPolicy": "Always", "containers": [
        {"name": f"c{i}", "properties": {
            "image": f"registry.example/app:{n}", "command": ["/bin/sh", "-c", "serve"],
            "ports": [{"protocol": "TCP", "port": 8080 + i}],
            "environmentVariables": [{"name": f"VAR{j}", "value": "x" * 20} for j in range(5)],
            "resources": {"requests": {"cpu": 0.5, "memoryInGB": 0.5}}}}
        for i in range(2)],
        "ipAddress": {"type": "Public", "ports": [{"protocol": "TCP", "port": 8080}]}}}


def at_once(n: int, work: Callable[[int], T]) -> list[T]:
    """Run ``work(0..n-1)`` on n threads released together; re-raises any thread's error."""
    barrier = threading.Barrier(n)

    def run(i: int) -> T:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "store.db") as s:
        yield s


@pytest.fixture(scope="module")
def thousand(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """A store holding 1,000 groups in 10 resource groups."""
    with Store(tmp_path_factory.mktemp("thousand") / "store.db") as s:
        for i in range(1000):
            s.put_group(SUB, f"RG-{i % 10}", f"group-{i:04}", "westus", body(i), {"i": str(i)})
        yield s


# --- concurrency -------------------------------------------------------------------------------


def test_fifty_threads_create_fifty_groups(store: Store) -> None:
    """Fifty threads creating different groups at once all succeed."""
    results = at_once(50, lambda i: store.put_group(SUB, f"rg{i % 4}", f"g{i}", "westus",
                                                    body(i), {}))
    assert all(created for _, created in results)
    assert len({record.uid for record, _ in results}) == 50
    page, _ = store.list_groups(SUB)
    assert len(page) == 50
    assert store.count_groups(SUB) == 50


def test_twenty_threads_create_the_same_group(store: Store) -> None:
    """Twenty racing PUTs of one group (in any case) create it once; the others update it."""
    results = at_once(20, lambda i: store.put_group(SUB, "RG" if i % 2 else "rg",
                                                    "Web" if i % 3 else "web", "westus",
                                                    body(), {}))
    assert sum(created for _, created in results) == 1
    assert len({record.uid for record, _ in results}) == 1
    assert {record.generation for record, _ in results} == {1}
    assert len(store.list_groups(SUB)[0]) == 1
    assert len(store.list_resource_groups(SUB)) == 1


def test_two_stores_on_one_file_create_the_same_group(tmp_path: Path) -> None:
    """Two stores on one file (as two processes would be) racing for one group create it
    once: SQLite's write lock decides, not the stores' thread locks."""
    with Store(tmp_path / "s.db") as one, Store(tmp_path / "s.db") as two:
        results = at_once(20, lambda i: (one if i % 2 else two).put_group(
            SUB, "rg", "web", "westus", body(), {}))
        assert sum(created for _, created in results) == 1
        assert len({record.uid for record, _ in results}) == 1
        uids = [one.put_group(SUB, "rg", f"g{i}", "westus", body(), {})[0].uid
                for i in range(10)]
        won = at_once(10, lambda i: (one if i % 2 else two).claim_dns_label("shared", uids[i]))
        assert won.count(True) == 1


def test_dns_label_races_have_one_winner(store: Store) -> None:
    """Twenty groups claiming one label at once: exactly one gets it."""
    uids = [store.put_group(SUB, "rg", f"g{i}", "westus", body(), {})[0].uid for i in range(20)]
    won = at_once(20, lambda i: store.claim_dns_label("popular", uids[i]))
    assert won.count(True) == 1
    assert store.dns_label_holder("popular") == uids[won.index(True)]


def _admitted(store: Store, i: int, admission: Admission, label: str | None = None) -> bool:
    """Whether group ``g<i>`` (1 core, 1 GB) was admitted and written."""
    try:
        store.put_group(SUB, "rg", f"g{i}", "westus", body(i), {}, admission=admission,
                        label=None if label is None else (lambda uid: label))
    except (CapacityExceeded, QuotaExceeded, DnsLabelInUse):
        return False
    return True


def test_admission_races_have_as_many_winners_as_fit(tmp_path: Path) -> None:
    """Twenty PUTs of 1 core at once, from two stores on one file (two processes), on a
    node of 3 cores: exactly three are written; then one subscription quota of 4 cores
    lets exactly one more in of twenty."""
    node = Admission(cpu=3, memory_gb=100, quotas=QuotaSettings().limits(SUB), region="westus")
    with Store(tmp_path / "s.db") as one, Store(tmp_path / "s.db") as two:
        won = at_once(20, lambda i: _admitted(one if i % 2 else two, i, node))
        assert won.count(True) == 3
        assert one.count_groups(SUB) == 3
        quota = Admission(cpu=100, memory_gb=100, region="westus",
                          quotas=QuotaSettings(standard_cores=4).limits(SUB))
        won = at_once(20, lambda i: _admitted(one if i % 2 else two, 100 + i, quota))
        assert won.count(True) == 1
        assert one.quota_usage(SUB)["StandardCores"] == 4


def test_a_label_lost_in_a_race_leaves_no_group(store: Store) -> None:
    """Twenty new groups claiming one label at once: one is written, holding it; the
    others are refused and leave nothing behind (the claim is the write's transaction)."""
    roomy = Admission(cpu=100, memory_gb=100, quotas=QuotaSettings().limits(SUB),
                      region="westus")
    won = at_once(20, lambda i: _admitted(store, i, roomy, label="Popular"))
    assert won.count(True) == 1
    assert store.count_groups(SUB) == 1
    winner = store.get_group(SUB, "rg", f"g{won.index(True)}")
    assert winner is not None
    assert store.dns_label_holder("popular") == winner.uid


def test_token_checks_under_concurrency(store: Store) -> None:
    """Tokens check right from many threads while others are made and revoked meanwhile."""
    tokens = [store.create_token(SUB if i % 2 else None, f"t{i}") for i in range(20)]
    doomed = [store.create_token(SUB, f"doomed{i}") for i in range(20)]
    revoked = threading.Event()

    def check(i: int) -> None:
        record, secret = tokens[i]
        for n in range(100):
            assert store.check_token(secret) == record
            if i == 0 and n == 50:
                for gone, _ in doomed:
                    assert store.revoke_token(gone.id)
                revoked.set()
            if i % 5 == 1:
                store.create_token(None, f"new{i}-{n}")
        revoked.wait()
        assert store.check_token(doomed[i][1]) is None

    at_once(20, check)
    assert len(store.list_tokens()) == 20 + 4 * 100


def test_readers_see_whole_commits_while_a_writer_writes(store: Store) -> None:
    """Readers never see a generation go backwards, nor a body from one write with the
    generation of another, while the reconcile loop and the API write."""
    record, _ = store.put_group(SUB, "rg", "web", "westus", body(0), {})
    stop = threading.Event()

    def write(i: int) -> None:
        if i == 0:
            for n in range(1, 60):
                store.put_group(SUB, "rg", "web", "westus", body(n), {})
            stop.set()
        elif i == 1:
            while not stop.is_set():
                current = store.get_group_by_uid(record.uid)
                assert current is not None
                store.set_provisioning(record.uid, "Succeeded", generation=current.generation)
        else:
            last = 0
            while not stop.is_set():
                current = store.get_group(SUB, "rg", "web")
                assert current is not None
                assert current.generation >= last
                image = current.body["properties"]["containers"][0]["properties"]["image"]
                assert image == f"registry.example/app:{current.generation - 1}"
                last = current.generation

    at_once(8, write)
    final = store.get_group_by_uid(record.uid)
    assert final is not None
    assert final.generation == 60


# --- paging and speed --------------------------------------------------------------------------


def test_pages_of_a_thousand_groups_chain(thousand: Store) -> None:
    """1,000 groups in pages of 100 chain through their markers without gaps or repeats, in
    order. (How fast is bench/bench_api.py's to say, not a test's.)"""
    seen: list[GroupRecord] = []
    pages, marker = 0, None
    while True:
        page, marker = thousand.list_groups(SUB, limit=100, after=marker)
        seen += page
        pages += 1
        if marker is None:
            break
    assert pages == 10
    keys = [(g.resource_group.lower(), g.name) for g in seen]
    assert len(set(keys)) == 1000
    assert keys == sorted(keys)


def test_latency_of_get_and_put(thousand: Store) -> None:
    """get_group and put_group are quick enough to sit in an API request (p50 printed)."""
    gets, puts = [], []
    for i in range(0, 1000, 5):
        started = time.perf_counter()
        assert thousand.get_group(SUB, f"rg-{i % 10}", f"GROUP-{i:04}") is not None
        gets.append(time.perf_counter() - started)
    for i in range(200):
        started = time.perf_counter()
        thousand.put_group(SUB, "latency", f"g{i}", "westus", body(i), {})
        puts.append(time.perf_counter() - started)
    get_p50, put_p50 = statistics.median(gets) * 1e3, statistics.median(puts) * 1e3
    get_p99 = statistics.quantiles(gets, n=100)[98] * 1e3
    put_p99 = statistics.quantiles(puts, n=100)[98] * 1e3
    print(f"\nget_group p50 {get_p50:.3f} ms, p99 {get_p99:.3f} ms; "
          f"put_group (new group, fsynced) p50 {put_p50:.3f} ms, p99 {put_p99:.3f} ms")
    assert get_p50 < 5
    assert put_p50 < 100
