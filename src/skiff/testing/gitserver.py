"""A real ``git daemon`` on the loopback, for the tests of gitRepo volumes.

A group's clone runs in the node's fetch namespace, where ``file://`` and local paths are
refused (they would read the node's own files): a repository a test offers must be
served over the network, as a tenant's would be. ``git daemon`` is the smallest real
server git speaks to; it is started on a free loopback port, waited for until it says it
listens, and stopped (terminate, wait, kill) even when the test fails.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

from skiff.testing.registry import free_port

#: How long the daemon may take to say it listens.
_START_S = 15.0


def git(*args: str, cwd: Path | None = None) -> str:
    """``git ARGS`` with no user or system configuration, a fixed author; its stdout."""
    env = {"PATH": os.environ["PATH"], "HOME": "/nonexistent", "GIT_CONFIG_GLOBAL": os.devnull,
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True)
    return done.stdout.strip()


@contextlib.contextmanager
def git_daemon(served: Path) -> Iterator[int]:
    """Serve every bare repository under ``served`` (``git://127.0.0.1:PORT/NAME.git``)
    while the block runs; yields the port."""
    port = free_port()
    daemon = subprocess.Popen(
        ["git", "daemon", "--export-all", f"--base-path={served}", "--listen=127.0.0.1",
         f"--port={port}", "--reuseaddr", "--verbose", "--log-destination=stderr", str(served)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ready = threading.Event()

    def drain() -> None:  # the daemon says when it listens; its log must not fill the pipe
        assert daemon.stderr is not None
        for line in daemon.stderr:
            if "Ready to rumble" in line:
                ready.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        if not ready.wait(timeout=_START_S):
            raise RuntimeError(f"git daemon did not start (exit {daemon.poll()})")
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        yield port
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        reader.join(timeout=10)
