"""The layers' import contracts (as kopf's .importlinter): each layer imports only downward.

Checked on the source's syntax trees, module-level imports only: an import inside a
function (a node-local CLI command loading the engine) or under ``TYPE_CHECKING``
loads nothing when the module is imported. A second check imports the light entry
points in a fresh interpreter and lists what they loaded.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import skiff

SRC = Path(skiff.__file__).parent

#: layer → the packages of skiff it must not import at module level.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    # The contract: plain data and pure functions, on the standard library.
    "skiff.core": ("skiff.engine", "skiff.store", "skiff.api", "skiff.control", "skiff.models",
                   "skiff.cli", "skiff.client", "skiff.dns", "skiff.server", "skiff.testing"),
    # ARM models: the API's shapes, mapped onto the contract, never onto an engine.
    "skiff.models": ("skiff.engine", "skiff.store", "skiff.api", "skiff.control", "skiff.cli",
                     "skiff.dns", "skiff.server", "skiff.testing"),
    # The node engine knows nothing of the API, the store or the control plane.
    "skiff.engine": ("skiff.api", "skiff.store", "skiff.control", "skiff.models", "skiff.cli",
                     "skiff.client", "skiff.server", "skiff.testing"),
    # The store keeps records; it runs nothing.
    "skiff.store": ("skiff.engine", "skiff.api", "skiff.control", "skiff.cli", "skiff.server",
                    "skiff.testing"),
    # The control plane drives an engine through the contract, never a concrete one.
    "skiff.control": ("skiff.engine", "skiff.api", "skiff.cli", "skiff.server", "skiff.testing"),
    # Routes reach the engine through the control plane's Engine, never a concrete one.
    "skiff.api": ("skiff.engine", "skiff.cli", "skiff.server", "skiff.testing"),
    # The CLI talks HTTP; node-local commands import the engine or store inside the command.
    "skiff.cli": ("skiff.engine", "skiff.store", "skiff.api", "skiff.control", "skiff.server",
                  "skiff.dns", "skiff.models", "skiff.kube", "skiff.testing"),
    "skiff.client": ("skiff.engine", "skiff.store", "skiff.api", "skiff.control", "skiff.cli",
                     "skiff.models", "skiff.server", "skiff.testing"),
    "skiff.dns": ("skiff.engine", "skiff.store", "skiff.api", "skiff.control", "skiff.cli",
                  "skiff.models", "skiff.server", "skiff.testing"),
    # the identity endpoint inside groups: sockets in, answers from a callable
    "skiff.metadata": ("skiff.engine", "skiff.store", "skiff.api", "skiff.control", "skiff.cli",
                       "skiff.client", "skiff.models", "skiff.dns", "skiff.server",
                       "skiff.testing"),
    # the Azure Files data plane: over the FileShares contract only
    "skiff.files": ("skiff.engine", "skiff.store", "skiff.api", "skiff.control", "skiff.cli",
                    "skiff.client", "skiff.models", "skiff.dns", "skiff.server", "skiff.testing"),
    # ACI documents (create's body, YAML files, export): pure, shared by the CLI and portal
    "skiff.documents": ("skiff.engine", "skiff.store", "skiff.api", "skiff.control",
                        "skiff.cli", "skiff.client", "skiff.models", "skiff.dns",
                        "skiff.server", "skiff.testing", "skiff.portal"),
    # the web portal: a client of the API in process (its answers), never beneath it
    "skiff.portal": ("skiff.engine", "skiff.store", "skiff.api", "skiff.control", "skiff.cli",
                     "skiff.client", "skiff.models", "skiff.dns", "skiff.server",
                     "skiff.testing"),
    # the Kubernetes backend: a second engine, given the contract's GroupSpec like the first
    "skiff.kube": ("skiff.engine", "skiff.store", "skiff.api", "skiff.control", "skiff.cli",
                   "skiff.client", "skiff.models", "skiff.dns", "skiff.metadata", "skiff.files",
                   "skiff.portal", "skiff.server", "skiff.testing"),
}


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def module_level_imports(path: Path, module: str) -> Iterator[tuple[int, str]]:
    """(line, imported module) of each import run when ``module`` is imported."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    pending: list[ast.stmt] = list(ast.parse(path.read_text()).body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, ast.If):
            if not _is_type_checking(node):
                pending.extend(node.body)
            pending.extend(node.orelse)
        elif isinstance(node, ast.Try):
            pending.extend([*node.body, *node.orelse, *node.finalbody,
                            *(s for h in node.handlers for s in h.body)])
        elif isinstance(node, ast.With):
            pending.extend(node.body)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            yield node.lineno, base
            for alias in node.names:  # ``from skiff import engine`` imports skiff.engine
                yield node.lineno, f"{base}.{alias.name}"


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations() -> list[str]:
    found = []
    for module, path in _modules():
        for layer, forbidden in FORBIDDEN.items():
            if not _within(module, layer):
                continue
            for line, imported in module_level_imports(path, module):
                bad = [f for f in forbidden if _within(imported, f)]
                if bad:
                    found.append(f"{module}:{line} imports {imported} ({layer} must not import "
                                 f"{bad[0]})")
    return found


def test_layers_import_only_downward() -> None:
    """No module imports, at module level, a layer its own layer must not reach."""
    assert violations() == []


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The checker finds a module-level import, relative or absolute, and skips function and
    TYPE_CHECKING imports (so a green contract test means something)."""
    pkg = tmp_path / "skiff" / "models"
    pkg.mkdir(parents=True)
    source = pkg / "bad.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from ..engine.images import ImageStore\n"
        "import skiff.store\n"
        "if TYPE_CHECKING:\n    from skiff.engine import network\n"
        "def f():\n    from skiff.engine import runtime\n")
    found = [name for _, name in module_level_imports(source, "skiff.models.bad")]
    assert "skiff.engine.images" in found
    assert "skiff.store" in found
    assert not any(name.startswith(("skiff.engine.network", "skiff.engine.runtime"))
                   for name in found)


def _loaded_by(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\n"
                          "print('\\n'.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True, timeout=60)
    return set(out.stdout.split())


_ENGINE = ("skiff.engine", "skiff.store", "skiff.server", "skiff.control", "sqlite3")


@pytest.mark.parametrize(("code", "forbidden"), [
    ("import skiff.models", (*_ENGINE, "skiff.api", "skiff.dns", "zstandard", "ctypes")),
    ("import skiff.core.spec, skiff.core.view, skiff.core.reference, skiff.core.engine",
     (*_ENGINE, "skiff.api", "skiff.models", "pydantic", "zstandard", "ctypes")),
    ("import skiff.kube.objects, skiff.kube.naming, skiff.kube.streams",
     (*_ENGINE, "skiff.api", "skiff.models", "pydantic", "yaml", "kubernetes")),
    # The kubernetes backend loads the official client when an engine is made, not before:
    # neither importing it nor `skiff serve --help` does.
    ("import skiff.kube.engine, skiff.server",
     ("kubernetes",)),
    ("from click.testing import CliRunner\nfrom skiff.cli.main import main\n"
     "assert CliRunner().invoke(main, ['serve', '--help']).exit_code == 0",
     ("kubernetes", "skiff.kube")),
    # httpx, the CLI's client, loads zstandard itself (a response decoder).
    ("from click.testing import CliRunner\nfrom skiff.cli.main import main\n"
     "assert CliRunner().invoke(main, ['--help']).exit_code == 0\n"
     "assert CliRunner().invoke(main, ['image', '--help']).exit_code == 0",
     (*_ENGINE, "skiff.api", "skiff.models", "uvicorn", "fastapi")),
])
def test_light_entry_points_load_no_engine(code: str, forbidden: tuple[str, ...]) -> None:
    """Importing the ARM models or the contract, or running ``skiff --help``, loads no engine,
    no store and none of the engine's heavy dependencies (zstandard, ctypes mounts)."""
    loaded = _loaded_by(code)
    assert sorted(m for m in loaded if any(_within(m, f) for f in forbidden)) == []


def test_the_cli_start_loads_neither_httpx_command_line_nor_the_sdk_models() -> None:
    """A CLI command that prints no group (``-o none``, ``--help``) loads neither httpx's own
    command line (rich, pygments) nor the Azure SDK's models: ~70 ms of every start."""
    loaded = _loaded_by("from click.testing import CliRunner\nfrom skiff.cli.main import main\n"
                        "assert CliRunner().invoke(main, ['container', 'create', '--help'])"
                        ".exit_code == 0\nimport httpx")
    assert "httpx" in loaded
    heavy = ("rich", "pygments", "azure.mgmt.containerinstance.models")
    assert sorted(m for m in loaded if any(_within(m, f) for f in heavy)) == []


_CLI_HEAVY = (*_ENGINE, "skiff.api", "skiff.models", "skiff.settings", "uvicorn", "fastapi",
              "pydantic", "websockets", "yaml", "jmespath", "trio", "anyio")


@pytest.mark.parametrize("argv", [
    ["--help"], ["container", "--help"], ["container", "create", "--help"],
    ["network", "--help"], ["kube", "render", "--help"],
])
def test_the_cli_start_loads_only_what_the_command_needs(argv: list[str]) -> None:
    """``skiff --help`` and the API commands' start load none of the node's modules (the
    settings included), nor websockets (exec/attach only), yaml (--file, export, -o yaml
    only) or jmespath (--query only): each is milliseconds of every command's start."""
    loaded = _loaded_by("from click.testing import CliRunner\nfrom skiff.cli.main import main\n"
                        f"assert CliRunner().invoke(main, {argv!r}).exit_code == 0")
    assert sorted(m for m in loaded if any(_within(m, f) for f in _CLI_HEAVY)) == []
    if argv == ["--help"]:  # the listing comes from the table: no command's module
        assert sorted(m for m in loaded if m.startswith("skiff.cli.")) == ["skiff.cli.main"]


def test_the_cli_loads_its_heavy_modules_when_asked() -> None:
    """The lazy imports are there when needed: --query compiles with jmespath, -o yaml
    prints with yaml (the commands' own tests check the output itself)."""
    loaded = _loaded_by("from skiff.cli.output import emit, _compile_query\n"
                        "emit({'a': 1}, 'yaml', _compile_query(None, None, 'a'))")
    assert {"yaml", "jmespath"} <= loaded


def test_the_top_level_table_matches_the_commands() -> None:
    """``skiff --help`` lists the commands from a table: it names each command's own
    module and attribute, and its short help is the command's own."""
    import click

    from skiff.cli.main import COMMANDS, main

    ctx = click.Context(main)
    for name, (_, _, short) in COMMANDS.items():
        command = main.get_command(ctx, name)
        assert command is not None
        assert command.name == name
        assert command.get_short_help_str(200) == short


def test_the_client_data_root_is_the_nodes() -> None:
    """The client's default data root (where admin.token and ca.pem are) is the node's,
    defined twice so that the client need not import the node's settings."""
    from skiff.client.http import DEFAULT_DATA_ROOT
    from skiff.settings import DEFAULT_DATA_ROOT as NODE_DATA_ROOT

    assert DEFAULT_DATA_ROOT == NODE_DATA_ROOT


@pytest.mark.parametrize(("argv", "code"), [
    (["--help"], 0), (["nope"], 2), (["container", "show", "-g", "a", "-n", "b"], 1),
])
def test_the_entry_point_keeps_the_exit_code(argv: list[str], code: int) -> None:
    """``python3 -m skiff`` (the fast exit of :func:`skiff.cli.main.run`) exits as the
    command did, and what it printed is all there."""
    done = subprocess.run([sys.executable, "-m", "skiff", *argv], capture_output=True,
                          text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(SRC.parent),
                               "SKIFF_DATA_ROOT": "/nonexistent", "SKIFF_TOKEN": ""})
    assert done.returncode == code, done.stderr
    assert (done.stdout + done.stderr).strip()
    if code == 0:
        assert "container" in done.stdout
        assert done.stdout.endswith("\n")


def test_the_entry_point_sends_requests_without_trio() -> None:
    """``run`` keeps trio (~60 ms, which httpcore imports when it can) out of a command's
    process, and httpx's client still works without it."""
    loaded = _loaded_by("import sys\nfrom skiff.cli import main as cli\n"
                        "cli.os._exit = lambda code: None\n"
                        "cli.run(['--version'])\n"
                        "import httpx\nhttpx.Client().close()\n"
                        "assert sys.modules['trio'] is None  # blocked, not imported")
    assert "httpcore._sync.connection_pool" in loaded
    assert sorted(m for m in loaded if m.startswith("trio.")) == []
