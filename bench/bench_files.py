"""Azure Files data plane benchmark: the official SDK uploads and downloads a file
over loopback HTTPS, beside ``cp`` of the same file into the share's directory.

Run: ``python3 bench/bench_files.py [--mib 256] [--rounds 3] [--concurrency 1]``.
The server runs in a process of its own (as ``skiff serve`` would: the SDK and the
server do not share a GIL) over plain directories (FakeFileShares) in a temporary
directory on the data root's filesystem; figures are medians in MB/s (10^6 bytes).
Target: upload and download >= 150 MB/s for 256 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def serve(base: Path) -> None:
    """The server side: a fake account and share, served until stdin closes."""
    from skiff.api.tls import ensure_certificates
    from skiff.core.shares import ShareRef
    from skiff.files import serving
    from skiff.server import bind
    from skiff.testing.fakefiles import FakeFileShares

    tls = ensure_certificates(base, "127.0.0.1")
    shares = FakeFileShares(base / "shares")
    keys = shares.add_account("bench")
    shares.create_share(ShareRef("bench", "data"))
    sock, listen = bind("127.0.0.1:0")
    server = serving.start(sock, listen, shares, cert=tls.cert, key=tls.key)
    print(json.dumps({"url": server.url, "key": keys[0], "ca": str(tls.ca),
                      "root": str(shares.root(ShareRef("bench", "data")))}), flush=True)
    sys.stdin.read()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    from azure.storage.fileshare import ShareServiceClient

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR", "/var/tmp")) as tmp:
        base = Path(tmp)
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(base)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            info = json.loads(server.stdout.readline())
            service = ShareServiceClient(f"{info['url']}/bench",
                                         credential={"account_name": "bench",
                                                     "account_key": info["key"]},
                                         connection_verify=info["ca"])
            share = service.get_share_client("data")
            source = base / "source.bin"
            with source.open("wb") as f:
                for _ in range(args.mib):
                    f.write(os.urandom(1024 * 1024))
            size = source.stat().st_size
            root = Path(info["root"])
            up, down, cp = [], [], []
            for i in range(args.rounds):
                target = root / f"cp-{i}.bin"
                start = time.perf_counter()
                shutil.copyfile(source, target)
                os.sync()
                cp.append(size / (time.perf_counter() - start) / 1e6)
                target.unlink()

                file = share.get_file_client(f"sdk-{i}.bin")
                start = time.perf_counter()
                with source.open("rb") as f:
                    file.upload_file(f, max_concurrency=args.concurrency)
                up.append(size / (time.perf_counter() - start) / 1e6)

                back = base / "back.bin"
                start = time.perf_counter()
                with back.open("wb") as f:
                    file.download_file(max_concurrency=args.concurrency).readinto(f)
                down.append(size / (time.perf_counter() - start) / 1e6)
                assert back.stat().st_size == size
                back.unlink()
                file.delete_file()
            service.close()
        finally:
            assert server.stdin is not None
            server.stdin.close()
            server.wait(timeout=30)
    print(f"Azure Files data plane, {args.mib} MiB, {args.rounds} rounds, "
          f"SDK max_concurrency={args.concurrency} (medians, MB/s):")
    print(f"  SDK upload    {statistics.median(up):8.1f}   (rounds: "
          f"{', '.join(f'{x:.0f}' for x in up)})")
    print(f"  SDK download  {statistics.median(down):8.1f}   (rounds: "
          f"{', '.join(f'{x:.0f}' for x in down)})")
    print(f"  cp + sync     {statistics.median(cp):8.1f}   (rounds: "
          f"{', '.join(f'{x:.0f}' for x in cp)})")


if __name__ == "__main__":
    main()
