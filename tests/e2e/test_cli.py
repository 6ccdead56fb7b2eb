"""``skiff container ...`` against a real skiff: the az-style CLI drives real containers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped,unused-ignore]
from click.testing import CliRunner, Result

from skiff.cli.main import main
from skiff.client import SkiffClient
from skiff.testing.catalog import BuiltImages
from skiff.testing.gitserver import git, git_daemon
from skiff.testing.server import RunningServer, running_server
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root

RG = "cli-rg"
# A fresh id per container instance: tells one instance's output from the next one's.
INSTANCE_ID = "$(cat /proc/sys/kernel/random/uuid)"


def cli(skiff: RunningServer, *args: str, input: str | None = None) -> Result:
    """Run ``skiff container ARGS`` against the test skiff, as a user would."""
    def factory() -> SkiffClient:
        return SkiffClient(skiff.url, skiff.token, ca=str(skiff.ca))

    return CliRunner().invoke(main, ["container", *args], obj=factory, input=input)


def ok(result: Result) -> Result:
    """The result, after checking the command succeeded (else its stderr in the failure)."""
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.output
    return result


def refused(result: Result) -> str:
    """The command's one error line, after checking it failed the way az fails."""
    assert result.exit_code != 0, result.stdout
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("ERROR: ("), lines
    return lines[0]


def create(skiff: RunningServer, images: BuiltImages, name: str, script: str,
           *extra: str) -> dict[str, Any]:
    """Create a one-container group from flags running ``sh -c script``; the printed group."""
    result = ok(cli(skiff, "create", "-g", RG, "-n", name, "--image", images.bb,
                    "--cpu", "0.1", "--memory", "0.1", "--command-line", f"sh -c '{script}'",
                    *extra))
    group: dict[str, Any] = json.loads(result.stdout)
    return group


def logs(skiff: RunningServer, name: str, *extra: str) -> str:
    return ok(cli(skiff, "logs", "-g", RG, "-n", name, *extra)).stdout


def state(skiff: RunningServer, name: str) -> str:
    result = ok(cli(skiff, "show", "-g", RG, "-n", name, "--query", "instanceView.state",
                    "-o", "tsv"))
    return result.stdout.strip()


def test_create_from_flags_waits_and_prints_the_group(
    skiff: RunningServer, images: BuiltImages
) -> None:
    """create with az's flags waits for the deployment and prints the group as az does."""
    group = create(skiff, images, "flags", "echo $GREETING; sleep 300",
                   "--environment-variables", "GREETING=hello", "MODE=test",
                   "--secure-environment-variables", "TOKEN=hush-hush-42",
                   "--restart-policy", "OnFailure")
    assert group["provisioningState"] == "Succeeded"
    assert (group["name"], group["resourceGroup"], group["osType"]) == ("flags", RG, "Linux")
    assert group["restartPolicy"] == "OnFailure"
    assert "properties" not in group
    (container,) = group["containers"]
    assert container["command"] == ["sh", "-c", "echo $GREETING; sleep 300"]
    assert container["resources"]["requests"] == {"cpu": 0.1, "memoryInGb": 0.1}
    assert container["instanceView"]["currentState"]["state"] == "Running"
    assert container["environmentVariables"] == [
        {"name": "GREETING", "value": "hello"}, {"name": "MODE", "value": "test"},
        {"name": "TOKEN"}]
    assert "hush-hush-42" not in json.dumps(group)
    eventually(lambda: logs(skiff, "flags"), until=lambda out: "hello" in out,
               what="the container's output", timeout_s=15)


def test_create_from_a_yaml_file_deploys_every_container(
    skiff: RunningServer, images: BuiltImages, tmp_path: Path
) -> None:
    """create --file deploys an ACI YAML file's two containers; show and list see them."""
    def container(name: str, script: str) -> dict[str, Any]:
        return {"name": name, "properties": {
            "image": images.bb, "command": ["sh", "-c", script],
            "resources": {"requests": {"cpu": 0.1, "memoryInGB": 0.1}}}}

    deployment = {"apiVersion": "2023-05-01", "location": "local", "name": "pair",
                  "type": "Microsoft.ContainerInstance/containerGroups",
                  "tags": {"team": "cli"},
                  "properties": {"osType": "Linux", "restartPolicy": "Always", "containers": [
                      container("first", "echo one; sleep 300"),
                      container("second", "echo two; sleep 300")]}}
    path = tmp_path / "pair.yaml"
    path.write_text(yaml.safe_dump(deployment))
    group = json.loads(ok(cli(skiff, "create", "-g", RG, "--file", str(path))).stdout)
    assert group["provisioningState"] == "Succeeded"
    assert group["tags"] == {"team": "cli"}
    assert [c["name"] for c in group["containers"]] == ["first", "second"]
    assert {c["instanceView"]["currentState"]["state"] for c in group["containers"]} == {
        "Running"}
    table = ok(cli(skiff, "show", "-g", RG, "-n", "pair", "-o", "table")).stdout.splitlines()
    assert table[0].split()[:3] == ["Name", "ResourceGroup", "Status"]
    assert set(table[1]) <= {"-", " "}
    assert table[2].split()[:3] == ["pair", RG, "Running"]
    assert "0.2 core/0.2 gb" in table[2]
    listed = ok(cli(skiff, "list", "-o", "tsv", "--query",
                    "[].{n: name, rg: resourceGroup, c: length(containers)}"))
    assert listed.stdout == f"pair\t{RG}\t2\n"
    eventually(lambda: logs(skiff, "pair", "--container-name", "second"),
               until=lambda out: out == "two\n", what="the second container's output",
               timeout_s=15)


def test_logs_tail_and_previous_after_a_restart(skiff: RunningServer, images: BuiltImages) -> None:
    """logs --tail gives the last lines; after restart, --previous gives the old instance's."""
    create(skiff, images, "logs", f"echo id-{INSTANCE_ID}; echo two; echo three; sleep 300")
    eventually(lambda: logs(skiff, "logs"), until=lambda out: out.endswith("three\n"),
               what="the container's output", timeout_s=15)
    first = logs(skiff, "logs").splitlines()[0]
    assert first.startswith("id-")
    assert logs(skiff, "logs", "--tail", "1") == "three\n"
    assert logs(skiff, "logs", "--tail", "2") == "two\nthree\n"
    ok(cli(skiff, "restart", "-g", RG, "-n", "logs"))
    eventually(lambda: logs(skiff, "logs"), until=lambda out: out.endswith("three\n"),
               what="the new instance's output", timeout_s=15)
    assert logs(skiff, "logs", "--previous").splitlines()[0] == first
    assert logs(skiff, "logs").splitlines()[0] != first


def test_exec_runs_a_command_and_gives_its_output(
    skiff: RunningServer, images: BuiltImages
) -> None:
    """exec --exec-command without a terminal runs the command, prints its output and ends
    with its exit code."""
    create(skiff, images, "exec", "sleep 300", "--environment-variables", "WHO=world")
    result = ok(cli(skiff, "exec", "-g", RG, "-n", "exec", "--exec-command",
                    "sh -c 'echo hello $WHO; id -u'"))
    assert result.stdout.replace("\r\n", "\n") == "hello world\n0\n"
    failed = cli(skiff, "exec", "-g", RG, "-n", "exec", "--exec-command", "sh -c 'exit 3'")
    assert failed.exit_code == 3, failed.output  # the command's, as the CLI's own
    missing = cli(skiff, "exec", "-g", RG, "-n", "exec", "--container-name", "nope",
                  "--exec-command", "true")
    assert "(ContainerNotFound)" in refused(missing)
    unclosed = cli(skiff, "exec", "-g", RG, "-n", "exec", "--exec-command", "echo 'unclosed")
    assert refused(unclosed).startswith("ERROR: (InvalidRequestContent) The command cannot be")


def test_attach_streams_the_output_until_the_container_exits(
    skiff: RunningServer, images: BuiltImages
) -> None:
    """attach prints the container's output from its start and returns when it exits."""
    create(skiff, images, "attach", "echo before; sleep 5; echo after", "--restart-policy", "Never")
    result = ok(cli(skiff, "attach", "-g", RG, "-n", "attach"))
    assert result.stdout.splitlines() == ["before", "after"]


def test_stop_start_and_restart(skiff: RunningServer, images: BuiltImages) -> None:
    """stop stops every container, start runs them again, restart gives a new instance."""
    create(skiff, images, "cycle", f"echo id-{INSTANCE_ID}; sleep 300")
    ok(cli(skiff, "stop", "-g", RG, "-n", "cycle"))
    assert state(skiff, "cycle") == "Stopped"
    ok(cli(skiff, "start", "-g", RG, "-n", "cycle"))
    assert state(skiff, "cycle") == "Running"
    eventually(lambda: logs(skiff, "cycle"), until=lambda out: out.startswith("id-"),
               what="the started instance's output", timeout_s=15)
    before = logs(skiff, "cycle")
    ok(cli(skiff, "restart", "-g", RG, "-n", "cycle"))
    assert state(skiff, "cycle") == "Running"
    eventually(lambda: logs(skiff, "cycle"), until=lambda out: out.startswith("id-"),
               what="the new instance's output", timeout_s=15)
    assert logs(skiff, "cycle") != before


def test_export_writes_yaml_that_creates_the_group_again(
    skiff: RunningServer, images: BuiltImages, tmp_path: Path
) -> None:
    """export -f writes an ACI YAML file without state or secrets that create --file takes."""
    create(skiff, images, "exported", "sleep 300",
           "--secure-environment-variables", "KEY=s3cr3t-v4l")
    path = tmp_path / "exported.yaml"
    ok(cli(skiff, "export", "-g", RG, "-n", "exported", "-f", str(path)))
    text = path.read_text()
    assert "s3cr3t-v4l" not in text
    assert text.startswith("# Secrets are not exported.")
    assert "environmentVariables[0].secureValue (KEY)" in text
    exported = yaml.safe_load(text)
    assert exported["apiVersion"] == "2023-05-01"
    assert exported["name"] == "exported"
    assert "provisioningState" not in exported["properties"]
    assert "instanceView" not in exported["properties"]["containers"][0]["properties"]
    ok(cli(skiff, "delete", "-g", RG, "-n", "exported", "--yes"))
    exported["properties"]["containers"][0]["properties"]["environmentVariables"][0][
        "secureValue"] = "s3cr3t-v4l"
    path.write_text(yaml.safe_dump(exported))
    again = json.loads(ok(cli(skiff, "create", "-g", RG, "-f", str(path))).stdout)
    assert again["provisioningState"] == "Succeeded"


def test_delete_removes_the_group(skiff: RunningServer, images: BuiltImages) -> None:
    """delete --yes removes the group and its containers; show then exits 3 with one line."""
    create(skiff, images, "doomed", "sleep 300")
    ok(cli(skiff, "delete", "-g", RG, "-n", "doomed", "--yes"))
    assert skiff.server.plane.engine.group_ids() == []
    # Its operation ends a moment before the store forgets it (shown Deleting meanwhile).
    gone = eventually(lambda: cli(skiff, "show", "-g", RG, "-n", "doomed"),
                      until=lambda result: result.exit_code != 0,
                      what="show of the deleted group fails")
    assert gone.exit_code == 3
    assert "(ResourceNotFound)" in refused(gone)
    assert json.loads(ok(cli(skiff, "list", "-g", RG)).stdout) == []


@pytest.mark.parametrize(("args", "code"), [
    (["-n", "Bad_Name", "--image", "busybox"], "InvalidContainerGroupName"),
    (["-n", "bad", "--image", "no such image"], "InvalidImageReference"),
])
def test_refused_create_from_flags_prints_one_error_line(
    skiff: RunningServer, args: list[str], code: str
) -> None:
    """A create the API refuses prints one ERROR: (Code) message line and exits 1."""
    result = cli(skiff, "create", "-g", RG, *args)
    assert result.exit_code == 1
    assert refused(result).startswith(f"ERROR: ({code}) ")
    assert result.stdout == ""
    assert skiff.server.plane.store.get_group(
        "00000000-0000-0000-0000-000000000000", RG, args[1]) is None


WINDOWS = {"name": "win", "location": "local", "properties": {
    "osType": "Windows", "containers": [{"name": "c", "properties": {
        "image": "mcr.microsoft.com/windows/nanoserver:ltsc2022",
        "resources": {"requests": {"cpu": 1, "memoryInGB": 1}}}}]}}
NOT_A_LIST = {"name": "odd", "properties": {"osType": "Linux", "containers": 5}}
ENV_NOT_OBJECTS = {"name": "odd", "properties": {"osType": "Linux", "containers": [{
    "name": "c", "properties": {"image": "busybox", "environmentVariables": ["A=1"],
                                "resources": {"requests": {"cpu": 1, "memoryInGB": 1}}}}]}}


@pytest.mark.parametrize(("document", "code"), [
    (WINDOWS, "InvalidOsType"),
    (NOT_A_LIST, "InvalidRequestContent"),
    (ENV_NOT_OBJECTS, "InvalidRequestContent"),
])
def test_refused_create_from_a_file_prints_one_error_line(
    skiff: RunningServer, tmp_path: Path, document: dict[str, Any], code: str
) -> None:
    """A YAML file the API refuses (Windows, misshapen) gives the API's one error line, exit 1."""
    path = tmp_path / "group.yaml"
    path.write_text(yaml.safe_dump(document))
    result = cli(skiff, "create", "-g", RG, "--file", str(path))
    assert result.exit_code == 1
    assert refused(result).startswith(f"ERROR: ({code}) ")


def test_create_mounts_secrets_and_a_git_repository_as_az_s_flags_say(
    tmp_path: Path, images: BuiltImages
) -> None:
    """--secrets at --secrets-mount-path and --gitrepo-url/-dir/-revision/-mount-path (a
    repository served by a git daemon on the node's loopback, which the node allows) are
    in the running container: a file per secret holding its value, the repository cloned
    at the revision asked into the directory named, under the mount path; no secret value
    is printed."""
    work = tmp_path / "work"
    git("init", "-q", "-b", "main", str(work))
    (work / "app").mkdir()
    (work / "app" / "hello.txt").write_text("cloned-at-the-first-commit\n")
    git("add", "app", cwd=work)
    git("commit", "-q", "-m", "first", cwd=work)
    first = git("rev-parse", "HEAD", cwd=work)
    (work / "app" / "hello.txt").write_text("the-second-commit\n")
    git("commit", "-q", "-am", "second", cwd=work)
    served = tmp_path / "served"
    git("clone", "-q", "--bare", str(work), str(served / "repo.git"))
    with git_daemon(served) as port, running_server(
            tmp_path / "root", allow=(*images.endpoints, f"127.0.0.1:{port}")) as server:
        script = ("for f in token note; do cat /mnt/secrets/$f; echo; done; "
                  "cat /src/repo/app/hello.txt; sleep 300")
        result = ok(cli(server, "create", "-g", RG, "-n", "volumes", "--image", images.bb,
                        "--cpu", "0.1", "--memory", "0.1", "--command-line",
                        f"sh -c '{script}'",
                        "--secrets", "token=s3cret-value-77", "note=über geheim",
                        "--secrets-mount-path", "/mnt/secrets",
                        "--gitrepo-url", f"git://127.0.0.1:{port}/repo.git",
                        "--gitrepo-dir", "repo", "--gitrepo-revision", first,
                        "--gitrepo-mount-path", "/src"))
        group = json.loads(result.stdout)
        assert group["provisioningState"] == "Succeeded"
        assert "s3cret-value-77" not in result.output
        assert [v["name"] for v in group["volumes"]] == ["secrets", "gitrepo"]
        assert group["volumes"][1]["gitRepo"] == {
            "repository": f"git://127.0.0.1:{port}/repo.git", "directory": "repo",
            "revision": first}
        out = eventually(lambda: logs(server, "volumes"),
                         until=lambda text: "cloned-at" in text,
                         what="the container's output", timeout_s=30)
        assert out.splitlines()[:3] == ["s3cret-value-77", "über geheim",
                                        "cloned-at-the-first-commit"]
