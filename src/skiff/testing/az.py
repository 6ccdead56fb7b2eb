"""The real az CLI (azure-cli), for tests that drive it against a running skiff.

CI installs a pinned azure-cli (:data:`PINNED`) in a venv of its own, at
:data:`AZ_HOME` (``.ci/install``). :func:`find` looks for ``az`` where it may be:
``$SKIFF_AZ``, then ``/opt/skiff-az/bin/az``, then ``PATH``. An :class:`Az` runs it
isolated from the machine's own az: a configuration directory of its own (no login,
defaults or extensions of the user's leak in, nothing is left behind), the caller's
``AZURE_*`` variables dropped, telemetry and surveys off, output JSON, a timeout, and
the test server's CA trusted (``REQUESTS_CA_BUNDLE``). Its answer is the parsed JSON.

    with az_cli(ca=server.ca) as az:
        az("storage", "share", "create", "-n", "data", "--connection-string", conn)

Secrets given as options (``--connection-string``, ``--account-key``, ...) never
appear in an :class:`AzFailed` message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The azure-cli version CI installs (.ci/install); tests are written against it.
PINNED = "2.91.0"
#: Where CI installs it: a venv, its az at ``bin/az``.
AZ_HOME = Path("/opt/skiff-az")
#: Seconds one az command may take by default (az starts in ~1 s, most commands ~2 s).
TIMEOUT_S = 120.0
#: Options whose value is a secret: masked in messages.
SECRET_OPTIONS = frozenset({"--connection-string", "--account-key", "--sas-token",
                            "--password", "--secret", "--client-secret",
                            "--registry-password", "--azure-file-volume-account-key"})
#: Where a missing az is sent to.
HOW_TO_INSTALL = (f"azure-cli is not installed: .ci/install puts az {PINNED} in "
                  f"{AZ_HOME}; or set SKIFF_AZ to an az executable")


def find() -> str | None:
    """The az executable to run: ``$SKIFF_AZ``, then :data:`AZ_HOME`'s, then az on
    ``PATH``; None when there is none."""
    given = os.environ.get("SKIFF_AZ")
    if given:
        return given if os.access(given, os.X_OK) else None
    pinned = AZ_HOME / "bin" / "az"
    if os.access(pinned, os.X_OK):
        return str(pinned)
    return shutil.which("az")


def masked(args: Sequence[str]) -> list[str]:
    """``args`` with the values of :data:`SECRET_OPTIONS` replaced by ``***``."""
    shown: list[str] = []
    hide = False
    for arg in args:
        if hide:
            shown.append("***")
            hide = False
            continue
        name, eq, _ = arg.partition("=")
        if name in SECRET_OPTIONS:
            shown.append(f"{name}=***" if eq else arg)
            hide = not eq
        else:
            shown.append(arg)
    return shown


class AzFailed(Exception):
    """az exited non-zero (or ran past its timeout: ``returncode`` None)."""

    def __init__(self, args: Sequence[str], returncode: int | None, stdout: str,
                 stderr: str) -> None:
        what = "timed out" if returncode is None else f"exited {returncode}"
        super().__init__(f"az {' '.join(masked(args))} {what}: {stderr.strip()[-2000:]}")
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


@dataclass(frozen=True)
class AzResult:
    """One finished az command: its exit status, output, and stdout parsed (None if empty
    or not JSON)."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def data(self) -> Any:
        try:
            return json.loads(self.stdout) if self.stdout.strip() else None
        except ValueError:
            return None


@dataclass(frozen=True)
class Az:
    """An az executable run isolated: ``config_dir`` is its ``AZURE_CONFIG_DIR``; ``ca``
    (a PEM file) the CA bundle its HTTPS trusts (None: the system's)."""

    executable: str
    config_dir: Path
    ca: Path | None = None
    timeout_s: float = TIMEOUT_S

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment az runs in: the caller's without its ``AZURE_*`` variables,
        then the isolation's, then ``extra``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
        env.update({
            "AZURE_CONFIG_DIR": str(self.config_dir),
            "AZURE_CORE_COLLECT_TELEMETRY": "false",
            "AZURE_CORE_SURVEY_MESSAGE": "false",
            "AZURE_CORE_OUTPUT": "json",
            "AZURE_CORE_NO_COLOR": "true",
            "AZURE_CORE_DISABLE_PROGRESS_BAR": "true",
            "AZURE_CORE_ONLY_SHOW_ERRORS": "true",  # no preview/deprecation warnings
        })
        if self.ca is not None:
            env["REQUESTS_CA_BUNDLE"] = str(self.ca)
        env.update(extra or {})
        return env

    def run(self, *args: str, env: Mapping[str, str] | None = None,
            cwd: Path | str | None = None, timeout_s: float | None = None) -> AzResult:
        """Run ``az ARGS`` (``--output json`` added unless given); its result whatever
        its exit status. AzFailed if it runs past ``timeout_s``."""
        argv = list(args)
        if not any(a in ("-o", "--output") or a.startswith("--output=") for a in argv):
            argv += ["--output", "json"]
        try:
            done = subprocess.run([self.executable, *argv], env=self.environment(env),
                                  cwd=cwd, capture_output=True, text=True,
                                  timeout=timeout_s or self.timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) \
                else (exc.stdout or "")
            err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) \
                else (exc.stderr or "")
            raise AzFailed(argv, None, out, err) from None
        return AzResult(done.returncode, done.stdout, done.stderr)

    def __call__(self, *args: str, env: Mapping[str, str] | None = None,
                 cwd: Path | str | None = None, timeout_s: float | None = None) -> Any:
        """Run ``az ARGS``; its output parsed as JSON (None when it prints nothing).
        AzFailed when it exits non-zero."""
        result = self.run(*args, env=env, cwd=cwd, timeout_s=timeout_s)
        if result.returncode != 0:
            raise AzFailed(args, result.returncode, result.stdout, result.stderr)
        return result.data

    def trusting(self, ca: Path | None) -> Az:
        """This az, its HTTPS trusting the CA certificate(s) in ``ca``."""
        return dataclasses.replace(self, ca=ca)

    def version(self) -> str:
        """azure-cli's version (``az version``)."""
        return str(self("version")["azure-cli"])


@contextlib.contextmanager
def az_cli(*, ca: Path | None = None, executable: str | None = None,
           timeout_s: float = TIMEOUT_S) -> Iterator[Az]:
    """An :class:`Az` with a fresh configuration directory, removed after. LookupError
    (:data:`HOW_TO_INSTALL`) when no az is found."""
    found = executable or find()
    if found is None:
        raise LookupError(HOW_TO_INSTALL)
    with tempfile.TemporaryDirectory(prefix="skiff-az-") as config:
        yield Az(found, Path(config), ca, timeout_s)
