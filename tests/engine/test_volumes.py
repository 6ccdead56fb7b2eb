"""Group volumes on the host: emptyDir, secret tmpfs and gitRepo clones from a real git daemon.

Only a secret volume mounts (a tmpfs): its tests are marked ``root``; emptyDir,
gitRepo and every refusal run as any user.
"""

from __future__ import annotations

import base64
import errno
import os
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from skiff.core.spec import EmptyDirVolume, GitRepoVolume, SecretVolume, Volume
from skiff.engine.group.supervisor import Supervisor
from skiff.engine.volumes.manager import Volumes
from skiff.errors import (
    GitRepoUnreachable,
    GitRepoVolumeFailed,
    InvalidGitRepoVolume,
    InvalidInput,
    InvalidSecretVolume,
    InvalidVolume,
    SkiffError,
    UnsupportedVolumeType,
)
from skiff.settings import VolumeSettings
from skiff.testing.gitserver import git, git_daemon
from skiff.testing.registry import free_port

GROUP = "g1"
SECRET_TEXT = "s3cr3t-Pa55-xyzzy"  # must never show in a message


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def mounts() -> dict[Path, tuple[str, set[str]]]:
    """Mount point → (filesystem type, mount and superblock options), from mountinfo."""
    found = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            point = Path(fields[4].replace("\\040", " "))
            found[point] = (fields[sep + 1], {*fields[5].split(","), *fields[sep + 3].split(",")})
    return found


def mount_ids(path: Path) -> list[str]:
    """The ids of the mounts at ``path``, bottom first."""
    with open("/proc/self/mountinfo") as f:
        return [fields[0] for fields in map(str.split, f)
                if Path(fields[4].replace("\\040", " ")) == path.resolve()]


def mounts_below(path: Path) -> list[Path]:
    return [p for p in mounts() if p.is_relative_to(path.resolve())]


def all_messages(exc: BaseException) -> str:
    """The text of an error and of every error it was raised from."""
    texts = []
    seen: BaseException | None = exc
    while seen is not None:
        texts += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(texts)


@pytest.fixture
def data_root(tmp_path: Path) -> Iterator[Path]:
    """A fresh data root (with a blank in its name); whatever a test left mounted goes after it."""
    root = tmp_path / "data root"
    root.mkdir()
    yield root
    for point in sorted(mounts_below(root), key=lambda p: -len(p.parts)):
        subprocess.run(["umount", "-l", str(point)], check=False)


@pytest.fixture
def volumes(data_root: Path) -> Volumes:
    return Volumes(data_root)


@pytest.fixture
def spy_git(tmp_path: Path) -> tuple[VolumeSettings, Path]:
    """Settings whose git is a script that only records that it ran."""
    marker = tmp_path / "git-ran"
    script = tmp_path / "spy-git"
    script.write_text(f"#!/bin/sh\necho \"$@\" >> '{marker}'\nexit 1\n")
    script.chmod(0o755)
    return VolumeSettings(git=str(script)), marker


# --- a real git daemon -------------------------------------------------------------------------


@dataclass(frozen=True)
class GitServer:
    url: str  # git://127.0.0.1:PORT/repo.git
    port: int
    first: str  # the first commit: tag v1, branch "old"
    second: str  # the second commit: main's tip


@pytest.fixture(scope="module")
def git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    """A bare repository with two commits, a tag and a branch, served by ``git daemon``."""
    base = tmp_path_factory.mktemp("git")
    work = base / "work"
    git("init", "-q", "-b", "main", str(work))
    (work / "README").write_text("one\n")
    git("add", "README", cwd=work)
    git("commit", "-q", "-m", "first", cwd=work)
    git("tag", "v1", cwd=work)
    git("branch", "old", cwd=work)
    first = git("rev-parse", "HEAD", cwd=work)
    (work / "README").write_text("two\n")
    (work / "extra").write_text("added\n")
    git("add", "README", "extra", cwd=work)
    git("commit", "-q", "-m", "second", cwd=work)
    second = git("rev-parse", "HEAD", cwd=work)
    served = base / "served"
    git("clone", "-q", "--bare", str(work), str(served / "repo.git"))

    with git_daemon(served) as port:
        yield GitServer(f"git://127.0.0.1:{port}/repo.git", port, first, second)


def head(repo: Path) -> str:
    return git("rev-parse", "HEAD", cwd=repo)


# --- layout, emptyDir, idempotence -------------------------------------------------------------


def test_empty_dir_is_a_writable_directory_that_cleanup_removes(
    volumes: Volumes, data_root: Path
) -> None:
    """An emptyDir is <root>/volumes/<group>/<name>, mode 0777 in a 0700 group dir; cleanup
    deletes all of it."""
    got = volumes.prepare(GROUP, [Volume("cache", EmptyDirVolume())])
    group = data_root / "volumes" / GROUP
    assert got == {"cache": group / "cache"}
    assert stat.S_IMODE(group.stat().st_mode) == 0o700
    assert stat.S_IMODE((group / "cache").stat().st_mode) == 0o777
    assert list((group / "cache").iterdir()) == []
    volumes.cleanup(GROUP)
    assert not group.exists()
    assert list((data_root / "volumes").iterdir()) == []


def test_prepare_again_keeps_volumes_as_they_are(volumes: Volumes) -> None:
    """Preparing twice returns the same paths and keeps an emptyDir's files."""
    spec = [Volume("a", EmptyDirVolume()), Volume("b", EmptyDirVolume())]
    first = volumes.prepare(GROUP, spec)
    (first["a"] / "state").write_text("kept")
    assert volumes.prepare(GROUP, spec) == first
    assert (first["a"] / "state").read_text() == "kept"
    assert volumes.paths(GROUP) == first


def test_cleanup_and_paths_of_an_unknown_group_do_nothing(volumes: Volumes) -> None:
    """cleanup is idempotent and paths of a group with no volumes is empty."""
    volumes.cleanup("nothing-here")
    volumes.prepare(GROUP, [Volume("a", EmptyDirVolume())])
    volumes.cleanup(GROUP)
    volumes.cleanup(GROUP)
    assert volumes.paths(GROUP) == {}


@pytest.mark.parametrize(
    ("group", "names"),
    [
        ("", ["a"]),
        ("../escape", ["a"]),
        (".hidden", ["a"]),
        (GROUP, ["../up"]),
        (GROUP, ["a/b"]),
        (GROUP, [".partial"]),
        (GROUP, ["a", "a"]),
    ],
)
def test_bad_group_ids_and_volume_names_are_refused(
    volumes: Volumes, data_root: Path, group: str, names: list[str]
) -> None:
    """Ids and names that are not one plain path component, or repeat, create nothing."""
    with pytest.raises(InvalidVolume):
        volumes.prepare(group, [Volume(n, EmptyDirVolume()) for n in names])
    assert not (data_root / "volumes").exists()
    assert not (data_root.parent / "up").exists()


@dataclass(frozen=True)
class ShareVolume:
    """A volume source skiff has no driver for."""

    share: str


def test_an_unknown_kind_is_refused_before_anything_is_made(
    volumes: Volumes, data_root: Path
) -> None:
    """A source type without a driver raises UnsupportedVolumeType, even after a good volume."""
    spec = [Volume("a", EmptyDirVolume()), Volume("share", ShareVolume("s"))]  # type: ignore[arg-type]
    with pytest.raises(UnsupportedVolumeType, match="ShareVolume") as caught:
        volumes.prepare(GROUP, spec)
    assert caught.value.code == "UnsupportedVolumeType"
    assert isinstance(caught.value, InvalidInput)
    assert not (data_root / "volumes").exists()


def test_a_registered_driver_makes_its_kind(data_root: Path) -> None:
    """The drivers mapping is the extension point: a new source type gets its driver."""

    class ShareDriver:
        def check(self, name: str, source: Any) -> None:
            pass

        def ready(self, path: Path, source: Any) -> bool:
            return path.is_dir()

        def create(self, name: str, path: Path, source: Any) -> None:
            path.mkdir()
            (path / "share").write_text(source.share)

    volumes = Volumes(data_root, drivers={ShareVolume: ShareDriver()})
    got = volumes.prepare(GROUP, [Volume("s", ShareVolume("files"))])  # type: ignore[arg-type]
    assert (got["s"] / "share").read_text() == "files"
    volumes.cleanup(GROUP)
    assert not got["s"].exists()


# --- secret ------------------------------------------------------------------------------------

BINARY = bytes(range(256)) * 3


@pytest.mark.root
def test_secret_files_are_decoded_exactly_onto_a_read_only_tmpfs(volumes: Volumes) -> None:
    """Each entry is a 0444 file with the exact decoded bytes, on a small noexec,nosuid,nodev,
    read-only tmpfs."""
    files = (("token", b64(SECRET_TEXT.encode())), ("blob.bin", b64(BINARY)),
             ("empty", ""), ("tls.crt", b64(b"-----BEGIN-----\n") + "\n"))
    path = volumes.prepare(GROUP, [Volume("creds", SecretVolume(files))])["creds"]
    assert sorted(os.listdir(path)) == ["blob.bin", "empty", "tls.crt", "token"]
    assert (path / "token").read_bytes() == SECRET_TEXT.encode()
    assert (path / "blob.bin").read_bytes() == BINARY
    assert (path / "empty").read_bytes() == b""
    assert (path / "tls.crt").read_bytes() == b"-----BEGIN-----\n"
    assert {stat.S_IMODE((path / f).stat().st_mode) for f in os.listdir(path)} == {0o444}
    fstype, options = mounts()[path.resolve()]
    assert fstype == "tmpfs"
    assert {"ro", "nosuid", "nodev", "noexec", "size=1024k", "mode=755"} <= options
    with pytest.raises(OSError, match="Read-only file system") as caught:
        (path / "token").write_text("changed")
    assert caught.value.errno == errno.EROFS


@pytest.mark.root
def test_cleanup_unmounts_the_secret_and_leaves_nothing(volumes: Volumes, data_root: Path) -> None:
    """After cleanup the tmpfs is no longer mounted and the group's directory is gone."""
    path = volumes.prepare(GROUP, [Volume("creds", SecretVolume((("k", b64(b"v")),)))])["creds"]
    assert path.resolve() in mounts()
    volumes.cleanup(GROUP)
    assert mounts_below(data_root) == []
    assert not (data_root / "volumes" / GROUP).exists()


@pytest.mark.root
def test_preparing_a_secret_again_keeps_its_mount_until_its_content_changes(
    volumes: Volumes,
) -> None:
    """The same secret stays the mount it is; a changed one replaces it (a busy old mount is
    detached) and is the only mount there."""
    spec = [Volume("creds", SecretVolume((("k", b64(b"one")),)))]
    path = volumes.prepare(GROUP, spec)["creds"]
    with open(path / "k", "rb") as held:  # keeps the first tmpfs alive, and its device number
        volumes.prepare(GROUP, spec)
        assert os.fstat(held.fileno()).st_dev == path.stat().st_dev
        volumes.prepare(GROUP, [Volume("creds", SecretVolume((("k", b64(b"two")),)))])
        assert os.fstat(held.fileno()).st_dev != path.stat().st_dev
        assert held.read() == b"one"
    assert (path / "k").read_bytes() == b"two"
    assert len(mount_ids(path)) == 1


@pytest.mark.parametrize("content", [f"{SECRET_TEXT}!!", "YWJj$", "YWJjZA=x", "é" + SECRET_TEXT])
def test_bad_base64_is_refused_without_leaking_or_leaving_anything(
    volumes: Volumes, data_root: Path, content: str
) -> None:
    """Invalid base64 raises InvalidSecretVolume naming the file, not its content, and creates
    nothing, not even the volumes listed before it."""
    spec = [Volume("a", EmptyDirVolume()),
            Volume("ok", SecretVolume((("good", b64(SECRET_TEXT.encode())),))),
            Volume("bad", SecretVolume((("token", content),)))]
    with pytest.raises(InvalidSecretVolume, match="'token' is not valid base64") as caught:
        volumes.prepare(GROUP, spec)
    assert caught.value.code == "InvalidSecretVolume"
    assert SECRET_TEXT not in all_messages(caught.value)
    assert content not in all_messages(caught.value)
    assert not (data_root / "volumes").exists()
    assert mounts_below(data_root) == []


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", ".", "", "..evil", "/etc/evil", "x\0y"])
def test_secret_file_names_that_leave_the_volume_are_refused(
    volumes: Volumes, tmp_path: Path, data_root: Path, name: str
) -> None:
    """A file name that is not one plain component is refused before anything is made."""
    spec = [Volume("creds", SecretVolume((("fine", b64(b"x")), (name, b64(SECRET_TEXT.encode())))))]
    with pytest.raises(InvalidSecretVolume, match="not a plain file name") as caught:
        volumes.prepare(GROUP, spec)
    assert SECRET_TEXT not in all_messages(caught.value)
    assert not (data_root / "volumes").exists()
    assert mounts_below(data_root) == []
    assert not any("evil" in p.name for p in tmp_path.rglob("*"))


def test_a_file_given_twice_is_refused(volumes: Volumes, data_root: Path) -> None:
    """Two entries with one name are ambiguous: refused."""
    spec = [Volume("creds", SecretVolume((("k", b64(b"1")), ("k", b64(b"2")))))]
    with pytest.raises(InvalidSecretVolume, match="given twice"):
        volumes.prepare(GROUP, spec)
    assert not (data_root / "volumes").exists()


@pytest.mark.root
def test_a_secret_larger_than_its_tmpfs_is_refused(data_root: Path) -> None:
    """A secret must fit its tmpfs (whole pages per file): exactly full fits, one byte more
    does not."""
    volumes = Volumes(data_root, VolumeSettings(secret_size_bytes=64 * 1024))
    full = [Volume("s", SecretVolume((("a", b64(b"x" * 32 * 1024)), ("b", b64(b"y" * 32 * 1024)))))]
    path = volumes.prepare(GROUP, full)["s"]
    assert (path / "b").read_bytes() == b"y" * 32 * 1024
    volumes.cleanup(GROUP)
    over = [Volume("s", SecretVolume((("a", b64(b"x" * 32 * 1024)), ("b", b64(b"y" * 32 * 1024)),
                                      ("c", b64(b"z")))))]
    with pytest.raises(InvalidSecretVolume, match="more than the 65536 bytes"):
        volumes.prepare(GROUP, over)
    assert not (data_root / "volumes" / GROUP).exists()


@pytest.mark.root
def test_a_secret_is_made_read_only_once_a_writer_elsewhere_lets_go(tmp_path: Path) -> None:
    """The read-only remount is refused (EBUSY) while any process holds a file of the tmpfs
    open for writing, as a child forked by another thread does for a moment: it is tried
    again until the writer lets go, within its bound, and the volume ends read-only."""
    import threading

    from skiff.engine import mounts
    from skiff.engine.volumes.secret import _remount_read_only

    point = tmp_path / "tmpfs"
    point.mkdir()
    assert mounts.mount("tmpfs", point, "tmpfs", 0, "size=1m") == 0
    try:
        writer = os.open(point / "f", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        assert _remount_read_only(point, within_s=0) == errno.EBUSY
        threading.Timer(0.2, os.close, (writer,)).start()
        assert _remount_read_only(point) == 0
        with pytest.raises(OSError, match="Read-only file system") as refused:
            (point / "g").write_bytes(b"x")
        assert refused.value.errno == errno.EROFS
    finally:
        mounts.unmount(point)


# --- gitRepo -----------------------------------------------------------------------------------


def test_clone_of_the_default_branch_lands_in_the_repository_named_directory(
    volumes: Volumes, git_server: GitServer
) -> None:
    """Without directory nor revision the volume holds <repo name>/ at the default branch."""
    path = volumes.prepare(GROUP, [Volume("src", GitRepoVolume(git_server.url))])["src"]
    assert os.listdir(path) == ["repo"]
    assert (path / "repo" / "README").read_text() == "two\n"
    assert head(path / "repo") == git_server.second
    assert not list(path.parent.glob(".*"))  # no staging directory left


@pytest.mark.parametrize(
    ("revision", "readme", "which"),
    [
        ("v1", "one\n", "first"),
        ("old", "one\n", "first"),
        ("main", "two\n", "second"),
        ("FIRST", "one\n", "first"),
        ("FIRST7", "one\n", "first"),
    ],
)
def test_clone_at_a_tag_a_branch_or_a_commit(
    volumes: Volumes, git_server: GitServer, revision: str, readme: str, which: str
) -> None:
    """revision may name a tag, a branch, a full or an abbreviated commit."""
    want = getattr(git_server, which)
    revision = {"FIRST": git_server.first, "FIRST7": git_server.first[:7]}.get(revision, revision)
    volume = Volume("src", GitRepoVolume(git_server.url, directory=".", revision=revision))
    path = volumes.prepare(GROUP, [volume])["src"]
    assert (path / "README").read_text() == readme
    assert head(path) == want
    assert (path / "extra").exists() == (which == "second")


@pytest.mark.parametrize(("directory", "inside"), [(".", "."), ("app", "app"),
                                                   ("deep/er/app", "deep/er/app"),
                                                   ("./x", "x")])
def test_clone_into_a_directory_of_the_volume(
    volumes: Volumes, git_server: GitServer, directory: str, inside: str
) -> None:
    """directory '.' makes the volume the repository; a relative path puts it below."""
    path = volumes.prepare(GROUP, [Volume("src", GitRepoVolume(git_server.url, directory))])["src"]
    assert (path / inside / "README").read_text() == "two\n"
    assert (path / inside / ".git").is_dir()


def test_a_prepared_clone_is_not_cloned_again(volumes: Volumes, git_server: GitServer) -> None:
    """Preparing again keeps the clone (and what was written into it)."""
    spec = [Volume("src", GitRepoVolume(git_server.url, "."))]
    path = volumes.prepare(GROUP, spec)["src"]
    (path / "local").write_text("kept")
    volumes.prepare(GROUP, spec)
    assert (path / "local").read_text() == "kept"
    volumes.cleanup(GROUP)
    assert not path.parent.exists()


@pytest.mark.parametrize(
    ("repository", "directory", "revision"),
    [
        ("file:///srv/repo.git", None, None),
        ("/srv/repo.git", None, None),
        ("./repo", None, None),
        ("ext::sh -c touch% /tmp/skiff-pwned", None, None),
        ("--upload-pack=touch /tmp/skiff-pwned", None, None),
        ("-u touch /tmp/skiff-pwned http://127.0.0.1/x", None, None),
        ("ssh://git@127.0.0.1/repo.git", None, None),
        ("git@127.0.0.1:repo.git", None, None),
        ("http::http://127.0.0.1/x", None, None),
        ("https://", None, None),
        ("http://-oProxyCommand=x/r", None, None),
        ("http://127.0.0.1/x y", None, None),
        ("http://[::1/x", None, None),
        ("git://127.0.0.1/repo.git", "/abs", None),
        ("git://127.0.0.1/repo.git", "../up", None),
        ("git://127.0.0.1/repo.git", "a/../../up", None),
        ("git://127.0.0.1/repo.git", "", None),
        ("git://127.0.0.1/repo.git", None, "--output=/tmp/skiff-pwned"),
        ("git://127.0.0.1/repo.git", None, ""),
        ("git://127.0.0.1/repo.git", None, "main; touch x"),
    ],
)
def test_unsafe_repositories_directories_and_revisions_run_nothing(
    data_root: Path, spy_git: tuple[VolumeSettings, Path],
    repository: str, directory: str | None, revision: str | None,
) -> None:
    """Anything but an http(s):// or git:// URL, a relative directory and a plain revision is
    refused before git runs or a directory is made."""
    settings, marker = spy_git
    volumes = Volumes(data_root, settings)
    with pytest.raises(InvalidGitRepoVolume) as caught:
        volumes.prepare(GROUP, [Volume("src", GitRepoVolume(repository, directory, revision))])
    assert caught.value.code == "InvalidGitRepoVolume"
    assert not marker.exists()
    assert not (data_root / "volumes").exists()
    assert not Path("/tmp/skiff-pwned").exists()


def test_the_spy_git_would_have_been_seen(
    data_root: Path, spy_git: tuple[VolumeSettings, Path]
) -> None:
    """The refusal test's spy works: a valid URL does run it (and its failure is reported)."""
    settings, marker = spy_git
    with pytest.raises(GitRepoVolumeFailed):
        Volumes(data_root, settings).prepare(GROUP, [Volume("s", GitRepoVolume("git://h/r"))])
    assert "clone --quiet --no-recurse-submodules -- git://h/r" in marker.read_text()
    assert "protocol.ext.allow=never" in marker.read_text()


@pytest.mark.root
def test_an_unreachable_repository_fails_fast_and_leaves_nothing(
    volumes: Volumes, data_root: Path
) -> None:
    """A closed port is a transient GitRepoUnreachable naming the repository, within seconds;
    the volumes made before it are removed."""
    url = f"git://127.0.0.1:{free_port()}/repo.git"
    spec = [Volume("a", EmptyDirVolume()), Volume("s", SecretVolume((("k", b64(b"v")),))),
            Volume("src", GitRepoVolume(url))]
    started = time.monotonic()
    with pytest.raises(GitRepoUnreachable) as caught:
        volumes.prepare(GROUP, spec)
    assert time.monotonic() - started < 10
    assert caught.value.code == "GitRepoVolumeFailed"
    assert caught.value.transient
    assert url in caught.value.message
    assert not (data_root / "volumes" / GROUP).exists()
    assert mounts_below(data_root) == []


def test_a_server_that_never_answers_times_out(data_root: Path) -> None:
    """A server that accepts and stays silent fails the volume at the timeout, not never."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"git://127.0.0.1:{silent.getsockname()[1]}/repo.git"
        volumes = Volumes(data_root, VolumeSettings(git_timeout_s=1.0))
        started = time.monotonic()
        with pytest.raises(GitRepoUnreachable, match="did not answer within 1 s"):
            volumes.prepare(GROUP, [Volume("src", GitRepoVolume(url))])
        assert time.monotonic() - started < 10
    assert not (data_root / "volumes" / GROUP).exists()


def test_credentials_in_a_repository_url_stay_out_of_messages(
    volumes: Volumes, data_root: Path
) -> None:
    """A user and password in the URL are redacted from the error."""
    url = f"http://user:{SECRET_TEXT}@127.0.0.1:{free_port()}/repo.git"
    with pytest.raises(GitRepoUnreachable) as caught:
        volumes.prepare(GROUP, [Volume("src", GitRepoVolume(url))])
    assert SECRET_TEXT not in str(caught.value)
    assert "***@127.0.0.1" in str(caught.value)


def test_an_unknown_revision_is_a_clear_error(
    volumes: Volumes, data_root: Path, git_server: GitServer
) -> None:
    """A revision that is no branch, tag or commit fails naming it and the repository."""
    with pytest.raises(GitRepoVolumeFailed, match="revision 'nope' is no branch, tag or commit "
                       f"of {git_server.url}") as caught:
        volumes.prepare(GROUP, [Volume("src", GitRepoVolume(git_server.url, revision="nope"))])
    assert not isinstance(caught.value, GitRepoUnreachable)
    assert not (data_root / "volumes" / GROUP).exists()


def test_a_missing_repository_is_a_final_error(
    volumes: Volumes, data_root: Path, git_server: GitServer
) -> None:
    """A repository the server does not have fails, naming it, and is not worth retrying."""
    url = f"git://127.0.0.1:{git_server.port}/missing.git"
    with pytest.raises(GitRepoVolumeFailed) as caught:
        volumes.prepare(GROUP, [Volume("src", GitRepoVolume(url))])
    assert url in caught.value.message
    assert not caught.value.transient
    assert isinstance(caught.value, SkiffError)
    assert not (data_root / "volumes" / GROUP).exists()


@pytest.mark.root
def test_a_groups_clone_reaches_a_git_server_on_the_node_only_once_allowed(
    engine: Supervisor, git_server: GitServer
) -> None:
    """A group's clones run in the fetch namespace: a git daemon on the node's loopback is
    out of reach (it fails as a closed port does) until the node allows its endpoint."""
    spec = [Volume("src", GitRepoVolume(git_server.url, "."))]
    with pytest.raises(GitRepoUnreachable, match="connection failed"):
        engine.volumes.prepare(GROUP, spec)
    engine.fetching.allow(f"127.0.0.1:{git_server.port}")
    path = engine.volumes.prepare(GROUP, spec)["src"]
    assert head(path) == git_server.second
    engine.volumes.cleanup(GROUP)
