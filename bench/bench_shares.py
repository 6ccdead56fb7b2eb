"""File share benchmark: what an azureFile volume adds to a group's start, and what
making a share of Azure's default quota (5120 GiB) costs.

Run as root: ``python3 bench/bench_shares.py [--rounds N]``. One engine, its rounds
alternating a group without a volume and the same group mounting a share (the
resolver is a dict of keys: the storage service's check is not the engine's cost),
so both share the machine's moods. Each figure is "run group, 1 container" (the
container's process running). Target: the share adds <= 5 ms to the median.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench_groups import _percentiles, _spec
from skiff.core.shares import DEFAULT_QUOTA_GIB, ShareRef
from skiff.core.spec import AzureFileVolume, GroupSpec, Volume, VolumeMount
from skiff.engine import mounts
from skiff.engine.group.supervisor import Supervisor
from skiff.engine.shares import LoopShares
from skiff.settings import Settings
from skiff.testing.engine import cached_busybox, supervising

REF = ShareRef("benchacct", "data")
KEY = "YmVuY2g="


class Keys:
    def check(self, ref: ShareRef, key: str) -> None:
        assert ref == REF
        assert key == KEY


def with_share(spec: GroupSpec) -> GroupSpec:
    container = replace(spec.containers[0],
                        volume_mounts=(VolumeMount("files", "/mnt/files"),))
    return replace(spec, containers=(container,), volumes=(
        Volume("files", AzureFileVolume(account=REF.account, share=REF.share, key=KEY)),))


def one_start(engine: Supervisor, spec: GroupSpec) -> float:
    """Milliseconds from run() to the container running; the group deleted after."""
    start = time.perf_counter()
    view = engine.run(spec)
    took = (time.perf_counter() - start) * 1e3
    assert all(c.current.state == "Running" for c in view.containers), view
    engine.delete(spec.id)
    return took


def make_default_share(work: Path, rounds: int) -> tuple[list[float], int]:
    """Milliseconds to create (mkfs and mount) a 5120 GiB share, and its real bytes."""
    took, real = [], 0
    for i in range(rounds):
        disks = LoopShares(work / f"mk{i}", replace(Settings().shares, overcommit=1e6))
        ref = ShareRef("acct", f"share{i}")
        start = time.perf_counter()
        disks.create(ref, DEFAULT_QUOTA_GIB)
        took.append((time.perf_counter() - start) * 1e3)
        real = (disks.top / "acct" / f"share{i}.img").stat().st_blocks * 512
        disks.remove(ref)
    return took, real


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="skiff-bench-"))
    times: dict[str, list[float]] = {"no volume": [], "azureFile volume": []}
    try:
        with contextlib.ExitStack() as stack:
            stack.callback(mounts.unmount_below, work)
            shares = LoopShares(work / "root" / "shares")
            shares.create(REF, 1)
            engine = stack.enter_context(supervising(
                Settings(data_root=work / "root"), pool_size=4, shares=shares,
                resolver=Keys()))
            image = stack.enter_context(cached_busybox(engine, work / "img"))
            for _ in range(3):  # warm-up: caches, pools, seccomp profile
                one_start(engine, _spec(image, 1))
                one_start(engine, with_share(_spec(image, 1)))
            for _ in range(args.rounds):
                times["no volume"].append(one_start(engine, _spec(image, 1)))
                times["azureFile volume"].append(
                    one_start(engine, with_share(_spec(image, 1))))
            made, real = make_default_share(work, max(3, args.rounds // 10))
    finally:
        mounts.unmount_below(work)
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'run group, 1 container':<44} {'p50':>8} {'p90':>8}")
    for name, samples in times.items():
        p50, p90 = _percentiles(samples)
        print(f"{name:<44} {p50:>6.1f}ms {p90:>6.1f}ms")
    added = statistics.median(times["azureFile volume"]) - statistics.median(times["no volume"])
    print(f"p50 added by the share: {added:+.1f} ms (target <= 5 ms)")
    p50, p90 = _percentiles(made)
    print(f"{'create a 5120 GiB share (mkfs + mount)':<44} {p50:>6.1f}ms {p90:>6.1f}ms; "
          f"{real / (1 << 20):.0f} MiB on disk")


if __name__ == "__main__":
    main()
