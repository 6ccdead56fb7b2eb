"""Tests of skiff.engine.images.layers.unpack_layer: what a layer's tar entries become
on disk, which compressions are read, the diff-id check, and the archives it refuses.

They run as root (as CI does): they chown, mknod and set trusted.* xattrs in tmp_path.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from skiff.engine.images.layers import unpack_layer
from skiff.errors import DigestMismatch, LayerRejected, UnsupportedImage
from skiff.testing.images import LayerBuilder

pytestmark = pytest.mark.root  # chown, mknod and trusted.* xattrs

MTIME = 1_600_000_000
OPAQUE = "trusted.overlay.opaque"
# The diff-id of the empty layer Docker writes: a tar of two zero blocks.
EMPTY_TAR_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
# Paths outside tmp_path that a broken unpacker could write to.
WATCHED = (Path("/evil"), Path("/tmp/evil"), Path("/etc/passwd"))


# ---- building layers ------------------------------------------------------------


def info(name: str, kind: bytes = tarfile.REGTYPE, *, mode: int = 0o644, uid: int = 0,
         gid: int = 0, mtime: int = MTIME, link: str = "", major: int = 0, minor: int = 0,
         xattrs: dict[str, str] | None = None) -> tarfile.TarInfo:
    """A tar header with every field given, names taken verbatim (even hostile ones)."""
    entry = tarfile.TarInfo(name)
    entry.type, entry.mode, entry.uid, entry.gid, entry.mtime = kind, mode, uid, gid, mtime
    entry.linkname = link
    entry.devmajor, entry.devminor = major, minor
    if xattrs:
        entry.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
    return entry


def add(b: LayerBuilder, entry: tarfile.TarInfo, data: bytes = b"") -> None:
    """Append ``entry`` (with ``data`` if it is a regular file) to the builder's tar."""
    if entry.isreg():
        entry.size = len(data)
        b.tar.addfile(entry, io.BytesIO(data))
    else:
        b.tar.addfile(entry)


def layer(*entries: tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]) -> bytes:
    """A plain tar layer of crafted entries."""
    b = LayerBuilder()
    for e in entries:
        if isinstance(e, tuple):
            add(b, *e)
        else:
            add(b, e)
    return b.tar_bytes()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def zstd(data: bytes) -> bytes:
    return bytes(zstandard.ZstdCompressor().compress(data))


# ---- where layers are unpacked --------------------------------------------------

Snapshot = dict[str, tuple[object, ...]]


def _describe(path: Path) -> tuple[object, ...]:
    st = path.lstat()
    if stat.S_ISREG(st.st_mode):
        body: object = hashlib.sha256(path.read_bytes()).hexdigest()
    elif stat.S_ISLNK(st.st_mode):
        body = os.readlink(path)
    else:
        body = st.st_rdev
    xattrs = sorted((name, os.getxattr(path, name, follow_symlinks=False))
                    for name in os.listxattr(path, follow_symlinks=False))
    return (st.st_mode, st.st_uid, st.st_gid, st.st_nlink, st.st_size, st.st_ino,
            st.st_mtime_ns, st.st_ctime_ns, body, tuple(xattrs))


@dataclass
class Site:
    """``dest`` to unpack into, with ``sentinel`` (a directory) and ``outside`` (a file)
    next to it that no layer may touch."""

    root: Path
    blobs: Path
    dest: Path
    sentinel: Path
    outside: Path

    def blob(self, data: bytes) -> Path:
        path = self.blobs / f"layer-{len(list(self.blobs.iterdir()))}"
        path.write_bytes(data)
        return path

    def unpack(self, data: bytes, diff_id: str | None = None) -> str:
        return unpack_layer(self.blob(data), self.dest, diff_id)

    def snapshot(self) -> Snapshot:
        """Everything outside ``dest`` that an escaping layer could change."""
        seen: Snapshot = {}
        for top, dirs, files in os.walk(self.root):
            base = Path(top)
            if base == self.root:
                dirs.remove(self.dest.name)
            for name in dirs + files:
                seen[str(base / name)] = _describe(base / name)
        seen[str(self.root)] = _describe(self.root)
        for path in WATCHED:
            seen[str(path)] = _describe(path) if os.path.lexists(path) else ("absent",)
        return seen

    def assert_rejected(self, data: bytes) -> None:
        """Unpacking ``data`` raises LayerRejected and changes nothing outside ``dest``."""
        blob = self.blob(data)
        before = self.snapshot()
        with pytest.raises(LayerRejected):
            unpack_layer(blob, self.dest, None)
        assert self.snapshot() == before


@pytest.fixture
def umask() -> Iterator[None]:
    """The usual umask 022 while the test runs, whatever the runner's is."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def site(tmp_path: Path, umask: None) -> Site:
    root = tmp_path / "site"
    dest, sentinel = root / "dest", root / "sentinel"
    blobs = tmp_path / "blobs"
    for d in (root, dest, sentinel, sentinel / "sub", blobs):
        d.mkdir()
    (sentinel / "secret").write_bytes(b"secret")
    (sentinel / "sub" / "b").write_bytes(b"b")
    outside = root / "outside"
    outside.write_bytes(b"outside")
    for p in (sentinel / "secret", sentinel / "sub" / "b", sentinel / "sub", sentinel, outside):
        os.utime(p, (1_000_000_000, 1_000_000_000))
    return Site(root, blobs, dest, sentinel, outside)


# ---- regular files and directories ----------------------------------------------


def test_regular_file_content_mode_owner_and_mtime_are_kept(site: Site) -> None:
    """A regular file keeps its bytes, permission bits, uid:gid and mtime."""
    site.unpack(layer((info("etc/app.conf", mode=0o640, uid=1000, gid=1000, mtime=1_234_567_890),
                       b"key=value\n")))
    path = site.dest / "etc" / "app.conf"
    st = path.lstat()
    assert path.read_bytes() == b"key=value\n"
    assert stat.S_ISREG(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert (st.st_uid, st.st_gid) == (1000, 1000)
    assert st.st_mtime == 1_234_567_890


def test_empty_file_is_created(site: Site) -> None:
    """A zero-length regular file is created, empty."""
    b = LayerBuilder()
    b.file("empty")
    site.unpack(b.tar_bytes())
    assert (site.dest / "empty").read_bytes() == b""


def test_large_file_spanning_many_read_chunks_is_copied_intact(site: Site) -> None:
    """A file bigger than the 1 MiB copy chunk arrives byte for byte, through gzip too."""
    data = os.urandom(3 * (1 << 20) + 12345)
    b = LayerBuilder()
    b.file("big.bin", data)
    b.file("after", b"tail")
    tar = b.tar_bytes()
    assert site.unpack(gzip.compress(tar)) == sha(tar)
    assert (site.dest / "big.bin").read_bytes() == data
    assert (site.dest / "after").read_bytes() == b"tail"


def test_layer_builder_files_unpack_with_builder_defaults(site: Site) -> None:
    """Files written by LayerBuilder land with its mode, owner and fixed mtime."""
    b = LayerBuilder()
    b.dir("srv", uid=1000, gid=1000)
    b.file("srv/data", b"payload", mode=0o600, uid=1000, gid=1000)
    site.unpack(b.tar_bytes())
    st = (site.dest / "srv" / "data").lstat()
    assert (site.dest / "srv" / "data").read_bytes() == b"payload"
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, 1000, 1000)
    assert st.st_mtime == 1_700_000_000


def test_directory_mode_owner_and_mtime_are_kept_after_children_are_written(site: Site) -> None:
    """A directory's mtime survives the entries written into it later, as do its mode and owner."""
    site.unpack(layer(
        info("d", tarfile.DIRTYPE, mode=0o750, uid=1000, gid=1001, mtime=1_500_000_000),
        info("d/e", tarfile.DIRTYPE, mode=0o700, mtime=1_400_000_000),
        (info("d/e/f", mtime=1_600_000_000), b"x"),
        (info("d/g", mtime=1_600_000_000), b"y"),
    ))
    d, e = (site.dest / "d").lstat(), (site.dest / "d" / "e").lstat()
    assert stat.S_ISDIR(d.st_mode)
    assert (stat.S_IMODE(d.st_mode), d.st_uid, d.st_gid) == (0o750, 1000, 1001)
    assert d.st_mtime == 1_500_000_000
    assert stat.S_IMODE(e.st_mode) == 0o700
    assert e.st_mtime == 1_400_000_000
    assert (site.dest / "d" / "e" / "f").lstat().st_mtime == 1_600_000_000


def test_read_only_directory_still_receives_its_children(site: Site) -> None:
    """A directory with mode 0o555 gets the entries that follow it and keeps its mode."""
    b = LayerBuilder()
    b.dir("ro", mode=0o555)
    b.file("ro/f", b"in")
    site.unpack(b.tar_bytes())
    assert (site.dest / "ro" / "f").read_bytes() == b"in"
    assert stat.S_IMODE((site.dest / "ro").lstat().st_mode) == 0o555


def test_implicit_parent_directories_are_created(site: Site) -> None:
    """Parents missing from the archive are made as root-owned 0o755 directories."""
    b = LayerBuilder()
    b.file("a/b/c/file", b"deep")
    site.unpack(b.tar_bytes())
    assert (site.dest / "a" / "b" / "c" / "file").read_bytes() == b"deep"
    for rel in ("a", "a/b", "a/b/c"):
        st = (site.dest / rel).lstat()
        assert stat.S_ISDIR(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o755
        assert (st.st_uid, st.st_gid) == (0, 0)


def test_implicit_parent_directories_do_not_depend_on_umask(site: Site) -> None:
    """Implicit parents are 0o755 even when the unpacking process has umask 077."""
    b = LayerBuilder()
    b.file("usr/lib/libx.so", b"elf")
    blob = site.blob(b.tar_bytes())
    old = os.umask(0o077)
    try:
        unpack_layer(blob, site.dest, None)
    finally:
        os.umask(old)
    assert stat.S_IMODE((site.dest / "usr").lstat().st_mode) == 0o755
    assert stat.S_IMODE((site.dest / "usr" / "lib").lstat().st_mode) == 0o755


def test_explicit_directory_entry_after_implicit_parent_sets_its_metadata(site: Site) -> None:
    """A directory entry that follows its own children still applies its mode, owner and mtime."""
    site.unpack(layer(
        (info("opt/tool/bin", mode=0o755), b"#!"),
        info("opt/tool", tarfile.DIRTYPE, mode=0o700, uid=1000, gid=1000, mtime=1_111_111_111),
    ))
    st = (site.dest / "opt" / "tool").lstat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o700, 1000, 1000)
    assert st.st_mtime == 1_111_111_111
    assert (site.dest / "opt" / "tool" / "bin").read_bytes() == b"#!"


def test_dot_slash_names_and_root_entry_land_in_dest(site: Site) -> None:
    """Names like ./a//b are normalised and the archive's own ./ root entry is skipped."""
    site.unpack(layer(
        info("./", tarfile.DIRTYPE, mode=0o755),
        info("./etc", tarfile.DIRTYPE),
        (info("./etc//hostname"), b"box\n"),
    ))
    assert (site.dest / "etc" / "hostname").read_bytes() == b"box\n"
    assert sorted(os.listdir(site.dest)) == ["etc"]


def test_long_pax_names_are_unpacked(site: Site) -> None:
    """Paths longer than the 100-byte ustar field, carried in PAX headers, are unpacked."""
    rel = "/".join(f"segment{i:02d}" for i in range(20)) + "/file.txt"
    assert len(rel) > 100
    b = LayerBuilder()
    b.file(rel, b"long")
    site.unpack(b.tar_bytes())
    assert (site.dest / rel).read_bytes() == b"long"


def test_gnu_format_long_names_are_unpacked(site: Site) -> None:
    """A GNU-format tar with a ././@LongLink name unpacks the same way."""
    rel = "g/" + "n" * 150
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        entry = info(rel, mode=0o600, uid=1000, gid=1000)
        entry.size = 3
        tar.addfile(entry, io.BytesIO(b"gnu"))
    site.unpack(buf.getvalue())
    st = (site.dest / rel).lstat()
    assert (site.dest / rel).read_bytes() == b"gnu"
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, 1000, 1000)


# ---- special permission bits ----------------------------------------------------


def test_setuid_bit_is_kept_on_a_non_root_owned_file(site: Site) -> None:
    """0o4755 survives the chown to 1000:1000 (which would clear setuid if done after chmod)."""
    site.unpack(layer((info("usr/bin/su", mode=0o4755, uid=1000, gid=1000), b"elf")))
    st = (site.dest / "usr" / "bin" / "su").lstat()
    assert stat.S_IMODE(st.st_mode) == 0o4755
    assert (st.st_uid, st.st_gid) == (1000, 1000)


def test_setuid_root_file_keeps_its_bit(site: Site) -> None:
    """A setuid-root binary keeps 0o4755 and owner 0:0."""
    b = LayerBuilder()
    b.file("bin/mount", b"elf", mode=0o4755)
    site.unpack(b.tar_bytes())
    st = (site.dest / "bin" / "mount").lstat()
    assert stat.S_IMODE(st.st_mode) == 0o4755
    assert (st.st_uid, st.st_gid) == (0, 0)


def test_setgid_bit_is_kept_on_files_and_directories(site: Site) -> None:
    """The setgid bit survives on a file (0o2755) and a directory (0o2775), owned by group 1000."""
    site.unpack(layer(
        info("shared", tarfile.DIRTYPE, mode=0o2775, uid=0, gid=1000),
        (info("usr/bin/wall", mode=0o2755, uid=0, gid=1000), b"elf"),
    ))
    assert stat.S_IMODE((site.dest / "shared").lstat().st_mode) == 0o2775
    assert (site.dest / "shared").lstat().st_gid == 1000
    assert stat.S_IMODE((site.dest / "usr" / "bin" / "wall").lstat().st_mode) == 0o2755


def test_sticky_directory_keeps_mode_1777(site: Site) -> None:
    """A world-writable sticky directory such as /tmp keeps mode 0o1777."""
    b = LayerBuilder()
    b.dir("tmp", mode=0o1777)
    b.file("tmp/.keep")
    site.unpack(b.tar_bytes())
    assert stat.S_IMODE((site.dest / "tmp").lstat().st_mode) == 0o1777


def test_all_special_bits_together_are_kept(site: Site) -> None:
    """Mode 0o7755 (setuid, setgid and sticky at once) is kept on a regular file."""
    site.unpack(layer((info("weird", mode=0o7755, uid=1000, gid=1000), b"x")))
    assert stat.S_IMODE((site.dest / "weird").lstat().st_mode) == 0o7755


# ---- symlinks -------------------------------------------------------------------


@pytest.mark.parametrize("target", ["busybox", "../lib/libc.so", "/etc/passwd", "/nonexistent/x",
                                    "..", "."])
def test_symlink_target_text_is_kept_verbatim(site: Site, target: str) -> None:
    """A symlink is created with exactly its target text, whether relative, absolute or dangling."""
    b = LayerBuilder()
    b.symlink("bin/link", target)
    site.unpack(b.tar_bytes())
    link = site.dest / "bin" / "link"
    assert link.is_symlink()
    assert os.readlink(link) == target


def test_symlink_owner_and_mtime_are_kept_on_the_link_itself(site: Site) -> None:
    """A symlink's uid:gid and mtime are set on the link (lchown/lutimes), not its target."""
    site.unpack(layer(
        (info("target", mode=0o644, mtime=1_000_000_001), b"t"),
        info("link", tarfile.SYMTYPE, mode=0o777, uid=1000, gid=1000, mtime=1_222_222_222,
             link="target"),
    ))
    lst = (site.dest / "link").lstat()
    assert stat.S_ISLNK(lst.st_mode)
    assert (lst.st_uid, lst.st_gid) == (1000, 1000)
    assert lst.st_mtime == 1_222_222_222
    target = (site.dest / "target").lstat()
    assert (target.st_uid, target.st_gid) == (0, 0)
    assert target.st_mtime == 1_000_000_001


def test_symlink_pointing_outside_is_not_followed(site: Site) -> None:
    """A symlink to an outside path is created as a link and nothing is done to what it names."""
    before = site.snapshot()
    b = LayerBuilder()
    b.symlink("escape", str(site.sentinel / "secret"))
    b.symlink("escape-dir", str(site.sentinel))
    site.unpack(b.tar_bytes())
    assert os.readlink(site.dest / "escape") == str(site.sentinel / "secret")
    assert site.snapshot() == before


# ---- hardlinks ------------------------------------------------------------------


def test_hardlink_shares_the_inode_of_its_target(site: Site) -> None:
    """A hardlink is the same inode as the file it names, with two links."""
    b = LayerBuilder()
    b.file("usr/bin/busybox", b"elf", mode=0o755, uid=1000, gid=1000)
    b.hardlink("bin/sh", "usr/bin/busybox")
    site.unpack(b.tar_bytes())
    target, link = (site.dest / "usr/bin/busybox").lstat(), (site.dest / "bin/sh").lstat()
    assert link.st_ino == target.st_ino
    assert link.st_dev == target.st_dev
    assert target.st_nlink == 2
    assert (site.dest / "bin" / "sh").read_bytes() == b"elf"


def test_hardlink_target_name_may_start_with_dot_slash(site: Site) -> None:
    """A hardlink target written as ./path is resolved inside the layer."""
    site.unpack(layer(
        (info("./a"), b"a"),
        info("./b", tarfile.LNKTYPE, link="./a"),
    ))
    assert (site.dest / "b").lstat().st_ino == (site.dest / "a").lstat().st_ino


def test_several_hardlinks_to_one_file(site: Site) -> None:
    """Three names for one file all share its inode (nlink 3)."""
    b = LayerBuilder()
    b.file("x", b"data")
    b.hardlink("y", "x")
    b.hardlink("z", "y")
    site.unpack(b.tar_bytes())
    inodes = {(site.dest / n).lstat().st_ino for n in ("x", "y", "z")}
    assert len(inodes) == 1
    assert (site.dest / "x").lstat().st_nlink == 3


def test_hardlink_to_a_symlink_links_the_symlink_not_its_target(site: Site) -> None:
    """A hardlink to a symlink pointing outside links the symlink itself, not the outside file."""
    before = site.snapshot()
    b = LayerBuilder()
    b.symlink("pw", "/etc/passwd")
    b.symlink("out", str(site.outside))
    b.hardlink("pw2", "pw")
    b.hardlink("out2", "out")
    site.unpack(b.tar_bytes())
    assert (site.dest / "pw2").is_symlink()
    assert (site.dest / "pw2").lstat().st_ino == (site.dest / "pw").lstat().st_ino
    assert os.readlink(site.dest / "out2") == str(site.outside)
    assert site.snapshot() == before


def test_hardlink_to_a_device_node(site: Site) -> None:
    """A hardlink may name a device node of the layer, sharing its inode."""
    site.unpack(layer(
        info("dev/null", tarfile.CHRTYPE, mode=0o666, major=1, minor=3),
        info("dev/null2", tarfile.LNKTYPE, link="dev/null"),
    ))
    assert (site.dest / "dev/null2").lstat().st_ino == (site.dest / "dev/null").lstat().st_ino


# ---- devices and fifos ----------------------------------------------------------


def test_character_device_keeps_major_minor_mode_and_owner(site: Site) -> None:
    """A character device node is made with its major/minor, mode, owner and mtime."""
    site.unpack(layer(info("dev/null", tarfile.CHRTYPE, mode=0o666, uid=1000, gid=5,
                           major=1, minor=3, mtime=1_333_333_333)))
    st = (site.dest / "dev" / "null").lstat()
    assert stat.S_ISCHR(st.st_mode)
    assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
    assert stat.S_IMODE(st.st_mode) == 0o666
    assert (st.st_uid, st.st_gid) == (1000, 5)
    assert st.st_mtime == 1_333_333_333


def test_block_device_keeps_major_minor_and_mode(site: Site) -> None:
    """A block device node is made with its major/minor and mode."""
    b = LayerBuilder()
    b.device("dev/sda1", 8, 1, mode=0o660, block=True)
    site.unpack(b.tar_bytes())
    st = (site.dest / "dev" / "sda1").lstat()
    assert stat.S_ISBLK(st.st_mode)
    assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (8, 1)
    assert stat.S_IMODE(st.st_mode) == 0o660


def test_device_with_large_major_and_minor(site: Site) -> None:
    """Major/minor numbers above 255 (e.g. 259:65536) are kept."""
    site.unpack(layer(info("dev/nvme", tarfile.BLKTYPE, mode=0o600, major=259, minor=65536)))
    st = (site.dest / "dev" / "nvme").lstat()
    assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (259, 65536)


def test_fifo_is_created_with_its_mode_and_owner(site: Site) -> None:
    """A fifo entry becomes a named pipe with its mode and owner."""
    site.unpack(layer(info("run/pipe", tarfile.FIFOTYPE, mode=0o620, uid=1000, gid=1000)))
    st = (site.dest / "run" / "pipe").lstat()
    assert stat.S_ISFIFO(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o620
    assert (st.st_uid, st.st_gid) == (1000, 1000)


def test_fifo_from_layer_builder(site: Site) -> None:
    """LayerBuilder.fifo writes a fifo the unpacker creates."""
    b = LayerBuilder()
    b.fifo("p", mode=0o600)
    site.unpack(b.tar_bytes())
    assert stat.S_ISFIFO((site.dest / "p").lstat().st_mode)


# ---- xattrs ---------------------------------------------------------------------


def test_pax_xattrs_are_kept_on_files(site: Site) -> None:
    """SCHILY.xattr.user.foo and a trusted.* xattr in PAX headers are set on the file."""
    b = LayerBuilder()
    b.file("f", b"x", xattrs={"user.foo": "bar", "trusted.skiff": "t", "user.utf8": "héllo"})
    site.unpack(b.tar_bytes())
    path = site.dest / "f"
    assert os.getxattr(path, "user.foo") == b"bar"
    assert os.getxattr(path, "trusted.skiff") == b"t"
    assert os.getxattr(path, "user.utf8") == "héllo".encode()


def test_binary_xattr_values_round_trip(site: Site) -> None:
    """An xattr value that is not UTF-8 (NUL, 0xff) is set byte for byte."""
    raw = b"\x00\xff\x80abc\x01"
    site.unpack(layer((info("bin/ping", mode=0o755,
                            xattrs={"user.raw": raw.decode("utf-8", "surrogateescape")}), b"elf")))
    assert os.getxattr(site.dest / "bin" / "ping", "user.raw") == raw


def test_xattrs_on_directories_and_devices(site: Site) -> None:
    """PAX xattrs are also applied to directories and device nodes."""
    site.unpack(layer(
        info("d", tarfile.DIRTYPE, mode=0o755, xattrs={"user.dir": "1"}),
        info("null", tarfile.CHRTYPE, mode=0o666, major=1, minor=3,
             xattrs={"trusted.dev": "2"}),
    ))
    assert os.getxattr(site.dest / "d", "user.dir") == b"1"
    assert os.getxattr(site.dest / "null", "trusted.dev", follow_symlinks=False) == b"2"


def test_file_without_xattrs_has_none_of_ours(site: Site) -> None:
    """A file without PAX xattrs gets no user.* or trusted.* xattrs."""
    b = LayerBuilder()
    b.file("plain", b"x")
    site.unpack(b.tar_bytes())
    assert [n for n in os.listxattr(site.dest / "plain")
            if n.startswith(("user.", "trusted."))] == []


# ---- OCI whiteouts --------------------------------------------------------------


def _assert_whiteout(path: Path) -> None:
    st = path.lstat()
    assert stat.S_ISCHR(st.st_mode)
    assert st.st_rdev == os.makedev(0, 0)


def test_whiteout_becomes_a_0_0_character_device(site: Site) -> None:
    """dir/.wh.name becomes the overlayfs whiteout dir/name (a 0/0 char device); no .wh. file."""
    b = LayerBuilder()
    b.dir("etc")
    b.whiteout("etc/motd")
    site.unpack(b.tar_bytes())
    _assert_whiteout(site.dest / "etc" / "motd")
    st = (site.dest / "etc" / "motd").lstat()
    assert (st.st_uid, st.st_gid) == (0, 0)
    assert not os.path.lexists(site.dest / "etc" / ".wh.motd")
    assert os.listdir(site.dest / "etc") == ["motd"]


def test_whiteout_at_the_top_and_in_an_implicit_directory(site: Site) -> None:
    """.wh.x at the root and a/b/.wh.y (parents not in the archive) both become whiteouts."""
    b = LayerBuilder()
    b.whiteout("x")
    b.whiteout("a/b/y")
    site.unpack(b.tar_bytes())
    _assert_whiteout(site.dest / "x")
    _assert_whiteout(site.dest / "a" / "b" / "y")
    assert (site.dest / "a" / "b").is_dir()
    assert sorted(os.listdir(site.dest)) == ["a", "x"]


def test_whiteout_of_a_name_with_dots(site: Site) -> None:
    """.wh..hidden hides the dotfile .hidden (only '', '.' and '..' are malformed)."""
    b = LayerBuilder()
    b.whiteout("home/.bashrc")
    site.unpack(b.tar_bytes())
    _assert_whiteout(site.dest / "home" / ".bashrc")


def test_whiteout_replaces_an_earlier_file_of_the_layer(site: Site) -> None:
    """A whiteout after a file of the same name in this layer replaces the file."""
    b = LayerBuilder()
    b.file("f", b"x")
    b.whiteout("f")
    site.unpack(b.tar_bytes())
    _assert_whiteout(site.dest / "f")


def test_opaque_marker_sets_the_overlay_xattr_and_is_not_written(site: Site) -> None:
    """dir/.wh..wh..opq sets trusted.overlay.opaque=y on dir; the marker file is not created."""
    b = LayerBuilder()
    b.dir("var")
    b.dir("var/cache")
    b.opaque("var/cache")
    b.file("var/cache/new", b"n")
    site.unpack(b.tar_bytes())
    cache = site.dest / "var" / "cache"
    assert os.getxattr(cache, OPAQUE) == b"y"
    assert os.listdir(cache) == ["new"]
    assert OPAQUE not in os.listxattr(site.dest / "var")


def test_opaque_marker_creates_its_directory_when_missing(site: Site) -> None:
    """An opaque marker for a directory absent from the archive creates it, opaque and empty."""
    b = LayerBuilder()
    b.opaque("a/b")
    site.unpack(b.tar_bytes())
    assert os.getxattr(site.dest / "a" / "b", OPAQUE) == b"y"
    assert os.listdir(site.dest / "a" / "b") == []


def test_opaque_marker_survives_a_later_directory_entry(site: Site) -> None:
    """The opaque xattr stays when the directory's own entry comes after the marker."""
    site.unpack(layer(
        (info("d/.wh..wh..opq"), b""),
        info("d", tarfile.DIRTYPE, mode=0o700, uid=1000, gid=1000),
    ))
    assert os.getxattr(site.dest / "d", OPAQUE) == b"y"
    assert stat.S_IMODE((site.dest / "d").lstat().st_mode) == 0o700


def test_opaque_marker_at_the_layer_root(site: Site) -> None:
    """A root-level .wh..wh..opq marks the layer directory itself opaque."""
    site.unpack(layer((info(".wh..wh..opq"), b"")))
    assert os.getxattr(site.dest, OPAQUE) == b"y"
    assert os.listdir(site.dest) == []


# ---- later entries replace earlier ones -----------------------------------------


def test_file_over_file_keeps_the_later_one(site: Site) -> None:
    """A second regular file of the same name replaces the first: its content and mode win."""
    site.unpack(layer(
        (info("f", mode=0o644, uid=1000), b"old content, longer"),
        (info("f", mode=0o600, uid=0), b"new"),
    ))
    st = (site.dest / "f").lstat()
    assert (site.dest / "f").read_bytes() == b"new"
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o600, 0)
    assert os.listdir(site.dest) == ["f"]


def test_symlink_over_file(site: Site) -> None:
    """A symlink replaces an earlier regular file of the same name."""
    b = LayerBuilder()
    b.file("f", b"x")
    b.symlink("f", "elsewhere")
    site.unpack(b.tar_bytes())
    assert os.readlink(site.dest / "f") == "elsewhere"


def test_file_over_symlink_replaces_the_link_and_writes_nothing_through_it(site: Site) -> None:
    """A file named like an earlier symlink to the outside replaces the link, not its target."""
    before = site.snapshot()
    b = LayerBuilder()
    b.symlink("secret", str(site.sentinel / "secret"))
    b.symlink("fresh", str(site.sentinel / "fresh"))
    b.file("secret", b"mine")
    b.file("fresh", b"mine too")
    site.unpack(b.tar_bytes())
    assert not (site.dest / "secret").is_symlink()
    assert (site.dest / "secret").read_bytes() == b"mine"
    assert (site.dest / "fresh").read_bytes() == b"mine too"
    assert site.snapshot() == before


def test_file_over_directory_removes_the_directory_and_its_children(site: Site) -> None:
    """A file replacing an earlier directory of the layer removes the directory's contents."""
    b = LayerBuilder()
    b.dir("a")
    b.file("a/child", b"c")
    b.file("a", b"now a file")
    site.unpack(b.tar_bytes())
    assert (site.dest / "a").read_bytes() == b"now a file"


def test_hardlink_to_a_child_of_a_replaced_directory_is_rejected(site: Site) -> None:
    """Once a directory is replaced, the layer cannot hardlink to what used to be in it."""
    b = LayerBuilder()
    b.dir("a")
    b.file("a/child", b"c")
    b.file("a", b"file")
    b.hardlink("h", "a/child")
    site.assert_rejected(b.tar_bytes())


def test_file_over_directory_keeps_the_file_mtime(site: Site) -> None:
    """A file that replaced a directory keeps its own mtime, not the directory's."""
    site.unpack(layer(
        info("a", tarfile.DIRTYPE, mtime=1_111_111_111),
        (info("a", mtime=1_222_222_222), b"file"),
    ))
    assert (site.dest / "a").lstat().st_mtime == 1_222_222_222


@pytest.mark.parametrize("replacement", [
    info("a", mtime=2),
    info("a", tarfile.SYMTYPE, link="nowhere", mtime=2),
    info("a", tarfile.FIFOTYPE, mtime=2),
    info(".wh.a", mtime=2),
], ids=["file", "symlink", "fifo", "whiteout"])
def test_replacing_a_directory_that_has_subdirectories(site: Site,
                                                       replacement: tarfile.TarInfo) -> None:
    """A directory with a subdirectory can be replaced by a non-directory later in the layer."""
    site.unpack(layer(
        info("a", tarfile.DIRTYPE, mtime=1),
        info("a/sub", tarfile.DIRTYPE, mtime=1),
        replacement,
    ))
    assert not stat.S_ISDIR((site.dest / "a").lstat().st_mode)


def test_directory_replaced_by_outside_symlink_touches_nothing_outside(site: Site) -> None:
    """Replacing a directory (with a subdirectory) by an outside symlink changes nothing outside."""
    data = layer(
        info("a", tarfile.DIRTYPE, mtime=1),
        info("a/sub", tarfile.DIRTYPE, mtime=12345),
        info("a", tarfile.SYMTYPE, link=str(site.sentinel)),
    )
    blob = site.blob(data)
    before = site.snapshot()
    unpack_layer(blob, site.dest, None)
    assert os.readlink(site.dest / "a") == str(site.sentinel)
    assert site.snapshot() == before


def test_directory_over_file(site: Site) -> None:
    """A directory replaces an earlier regular file of the same name."""
    b = LayerBuilder()
    b.file("a", b"x")
    b.dir("a", mode=0o711)
    b.file("a/inner", b"i")
    site.unpack(b.tar_bytes())
    assert (site.dest / "a").is_dir()
    assert stat.S_IMODE((site.dest / "a").lstat().st_mode) == 0o711
    assert (site.dest / "a" / "inner").read_bytes() == b"i"


def test_directory_over_symlink_replaces_the_link(site: Site) -> None:
    """A directory replaces an earlier outside symlink of its name; its entries stay in dest."""
    before = site.snapshot()
    b = LayerBuilder()
    b.symlink("link", str(site.sentinel))
    b.dir("link")
    b.file("link/evil", b"x")
    site.unpack(b.tar_bytes())
    assert not (site.dest / "link").is_symlink()
    assert (site.dest / "link" / "evil").read_bytes() == b"x"
    assert site.snapshot() == before


def test_directory_over_directory_merges_and_takes_the_later_metadata(site: Site) -> None:
    """A repeated directory entry keeps the children and applies the later mode and owner."""
    site.unpack(layer(
        info("d", tarfile.DIRTYPE, mode=0o755),
        (info("d/keep"), b"k"),
        info("d", tarfile.DIRTYPE, mode=0o700, uid=1000, gid=1000),
    ))
    st = (site.dest / "d").lstat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o700, 1000, 1000)
    assert (site.dest / "d" / "keep").read_bytes() == b"k"


def test_hardlink_over_file(site: Site) -> None:
    """A hardlink replaces an earlier file of the same name."""
    b = LayerBuilder()
    b.file("a", b"a")
    b.file("b", b"b")
    b.hardlink("b", "a")
    site.unpack(b.tar_bytes())
    assert (site.dest / "b").lstat().st_ino == (site.dest / "a").lstat().st_ino
    assert (site.dest / "b").read_bytes() == b"a"


def test_file_over_whiteout(site: Site) -> None:
    """A regular file replaces an earlier whiteout of the same name."""
    b = LayerBuilder()
    b.whiteout("f")
    b.file("f", b"back")
    site.unpack(b.tar_bytes())
    assert (site.dest / "f").read_bytes() == b"back"


# ---- compression and the diff-id ------------------------------------------------


def _sample() -> bytes:
    b = LayerBuilder()
    b.dir("etc")
    b.file("etc/hostname", b"box\n")
    b.symlink("etc/localtime", "/usr/share/zoneinfo/UTC")
    b.device("dev/null", 1, 3)
    return b.tar_bytes()


COMPRESSIONS: dict[str, Callable[[bytes], bytes]] = {
    "plain": lambda data: data,
    "gzip": gzip.compress,
    "gzip-mtime0": lambda data: gzip.compress(data, mtime=0),
    "zstd": zstd,
}


@pytest.mark.parametrize("compress", ["plain", "gzip", "gzip-mtime0", "zstd"])
def test_compressions_unpack_and_return_the_uncompressed_diff_id(site: Site,
                                                                  compress: str) -> None:
    """Plain, gzip and zstd blobs unpack the same and return sha256 of the uncompressed tar."""
    tar = _sample()
    blob = COMPRESSIONS[compress](tar)
    assert site.unpack(blob) == sha(tar)
    assert (site.dest / "etc" / "hostname").read_bytes() == b"box\n"
    assert os.readlink(site.dest / "etc" / "localtime") == "/usr/share/zoneinfo/UTC"
    assert stat.S_ISCHR((site.dest / "dev" / "null").lstat().st_mode)


def test_zstd_without_content_size_is_read(site: Site) -> None:
    """A streamed zstd frame (no content size in its header) is read."""
    tar = _sample()
    cobj = zstandard.ZstdCompressor(write_content_size=False).compressobj()
    blob = cobj.compress(tar) + cobj.flush()
    assert site.unpack(blob) == sha(tar)
    assert (site.dest / "etc" / "hostname").read_bytes() == b"box\n"


@pytest.mark.parametrize("compress", ["gzip", "zstd"])
def test_multi_frame_compressed_layers_are_read_to_the_end(site: Site, compress: str) -> None:
    """A layer compressed as several gzip members or zstd frames (pigz, zstd:chunked) is read."""
    b = LayerBuilder()
    b.file("first", os.urandom(4000))
    b.file("second", b"second")
    b.file("third", b"third")
    tar = b.tar_bytes()
    squeeze = COMPRESSIONS[compress]
    blob = squeeze(tar[:1536]) + squeeze(tar[1536:5120]) + squeeze(tar[5120:])
    assert site.unpack(blob) == sha(tar)
    assert (site.dest / "third").read_bytes() == b"third"


def test_diff_id_covers_the_whole_tar_including_trailing_padding(site: Site) -> None:
    """The diff-id hashes every byte, also the zero padding after the end-of-archive blocks."""
    tar = _sample() + bytes(4096)
    assert site.unpack(gzip.compress(tar)) == sha(tar)


@pytest.mark.parametrize("compress", ["plain", "gzip", "zstd"])
def test_matching_diff_id_is_accepted(site: Site, compress: str) -> None:
    """Passing the right diff-id returns it unchanged."""
    tar = _sample()
    assert site.unpack(COMPRESSIONS[compress](tar), sha(tar)) == sha(tar)


@pytest.mark.parametrize("compress", ["plain", "gzip", "zstd"])
def test_wrong_diff_id_raises_digest_mismatch(site: Site, compress: str) -> None:
    """A diff-id that is not the tar's sha256 raises DigestMismatch."""
    tar = _sample()
    with pytest.raises(DigestMismatch):
        site.unpack(COMPRESSIONS[compress](tar), "sha256:" + "0" * 64)


def test_compressed_blob_digest_is_not_the_diff_id(site: Site) -> None:
    """Giving the gzip blob's own digest as diff-id is a mismatch: the diff-id is of the tar."""
    blob = gzip.compress(_sample())
    with pytest.raises(DigestMismatch):
        site.unpack(blob, sha(blob))


def test_empty_layer_has_the_well_known_diff_id(site: Site) -> None:
    """Docker's empty layer (1024 zero bytes, gzipped) unpacks to nothing with its known diff-id."""
    assert site.unpack(gzip.compress(bytes(1024)), EMPTY_TAR_DIFF_ID) == EMPTY_TAR_DIFF_ID
    assert os.listdir(site.dest) == []


def test_empty_layer_builder_archive(site: Site) -> None:
    """A LayerBuilder archive with no entries is a valid empty layer."""
    tar = LayerBuilder().tar_bytes()
    assert site.unpack(tar) == sha(tar)
    assert os.listdir(site.dest) == []


# ---- archives that are not tar files --------------------------------------------


def _truncated_in_file_data() -> bytes:
    b = LayerBuilder()
    b.file("big", os.urandom(20000))
    return b.tar_bytes()[:5000]


@pytest.mark.parametrize("blob", [
    pytest.param(b"this is not a tar archive at all\n" * 64, id="text"),
    pytest.param(os.urandom(8192), id="random"),
    pytest.param(b"", id="empty"),
    pytest.param(b"short", id="short"),
    pytest.param(b"\x1f\x8b" + os.urandom(4000), id="gzip-magic-garbage"),
    pytest.param(gzip.compress(_sample())[:-40], id="truncated-gzip"),
    pytest.param(b"\x28\xb5\x2f\xfd" + os.urandom(4000), id="zstd-magic-garbage"),
    pytest.param(gzip.compress(b"plain text, compressed, still not a tar\n" * 50),
                 id="gzipped-text"),
    pytest.param(zstd(os.urandom(4096)), id="zstd-random"),
    pytest.param(_truncated_in_file_data(), id="truncated-tar"),
])
def test_garbage_raises_unsupported_image(site: Site, blob: bytes) -> None:
    """Blobs that are not (compressed) tar archives raise UnsupportedImage."""
    with pytest.raises(UnsupportedImage):
        site.unpack(blob)


def test_missing_blob_file_is_a_local_error_not_a_broken_layer(site: Site) -> None:
    """A blob path that does not exist raises FileNotFoundError, not UnsupportedImage."""
    with pytest.raises(FileNotFoundError):
        unpack_layer(site.root / "no-such-blob", site.dest, None)


# ---- hostile layers -------------------------------------------------------------


def _through_link(link_target: str, *entries: tarfile.TarInfo) -> bytes:
    """A symlink ``link`` to ``link_target``, then ``entries``."""
    return layer(info("link", tarfile.SYMTYPE, link=link_target), *entries)


ESCAPES: dict[str, Callable[[Site], bytes]] = {
    "dotdot": lambda s: layer((info("../evil"), b"x")),
    "dotdot-dir": lambda s: layer(info("../evil", tarfile.DIRTYPE)),
    "dotdot-only": lambda s: layer(info("..", tarfile.DIRTYPE)),
    "dotdot-after-dot": lambda s: layer((info("./../evil"), b"x")),
    "inner-dotdot": lambda s: layer((info("a/../../evil"), b"x")),
    "any-dotdot-even-staying-inside": lambda s: layer((info("a/../b"), b"x")),
    "dotdot-into-sentinel": lambda s: layer((info("../sentinel/secret"), b"x")),
    "dotdot-symlink-entry": lambda s: layer(info("../evil", tarfile.SYMTYPE, link="/")),
    "dotdot-device": lambda s: layer(info("../evil", tarfile.CHRTYPE, major=1, minor=3)),
    "dotdot-whiteout": lambda s: layer((info("../sentinel/.wh.secret"), b"")),
    "dotdot-opaque": lambda s: layer((info("../sentinel/.wh..wh..opq"), b"")),
    "absolute": lambda s: layer((info("/evil"), b"x")),
    "absolute-tmp": lambda s: layer((info("/tmp/evil"), b"x")),
    "absolute-into-sentinel": lambda s: layer((info(f"{s.sentinel}/evil"), b"x")),
    "absolute-dir": lambda s: layer(info("/evil", tarfile.DIRTYPE)),
    "pax-path-dotdot": lambda s: _pax_path_layer("../evil"),
    "pax-path-absolute": lambda s: _pax_path_layer(f"{s.sentinel}/evil"),
    "long-name-dotdot": lambda s: layer((info("a/" * 60 + "../" * 61 + "evil"), b"x")),
    "symlink-then-write": lambda s: _through_link(str(s.sentinel), info("link/evil")),
    "symlink-then-overwrite": lambda s: _through_link(str(s.sentinel), info("link/secret")),
    "symlink-then-deep-write": lambda s: _through_link(str(s.sentinel), info("link/x/y/evil")),
    "symlink-then-mkdir": lambda s: _through_link(str(s.sentinel),
                                                  info("link/evil", tarfile.DIRTYPE)),
    "symlink-then-chmod-dir": lambda s: _through_link(str(s.sentinel),
                                                      info("link/sub", tarfile.DIRTYPE,
                                                           mode=0o777, uid=1000)),
    "symlink-then-symlink": lambda s: _through_link(str(s.sentinel),
                                                    info("link/evil", tarfile.SYMTYPE, link="/")),
    "symlink-then-device": lambda s: _through_link(str(s.sentinel),
                                                   info("link/evil", tarfile.CHRTYPE,
                                                        major=1, minor=3)),
    "symlink-then-fifo": lambda s: _through_link(str(s.sentinel),
                                                 info("link/evil", tarfile.FIFOTYPE)),
    "symlink-then-whiteout": lambda s: _through_link(str(s.sentinel), info("link/.wh.secret")),
    "symlink-then-opaque": lambda s: _through_link(str(s.sentinel),
                                                   info("link/.wh..wh..opq")),
    "symlink-dotdot-then-write": lambda s: _through_link("..", info("link/evil")),
    "symlink-dotdot-then-sentinel": lambda s: _through_link("..",
                                                            info("link/sentinel/evil")),
    "symlink-dot-then-write": lambda s: _through_link(".", info("link/link/evil")),
    "relative-symlink-escape": lambda s: _through_link("../sentinel", info("link/evil")),
    "nested-symlink": lambda s: layer(info("d", tarfile.DIRTYPE),
                                      info("d/link", tarfile.SYMTYPE, link=str(s.sentinel)),
                                      (info("d/link/evil"), b"x")),
    "symlink-replacing-dir": lambda s: layer(info("d", tarfile.DIRTYPE),
                                             info("d", tarfile.SYMTYPE, link=str(s.sentinel)),
                                             (info("d/evil"), b"x")),
    "hardlink-then-write-below": lambda s: layer(
        info("link", tarfile.SYMTYPE, link=str(s.sentinel)),
        info("link2", tarfile.LNKTYPE, link="link"),
        (info("link2/evil"), b"x")),
    "hardlink-dotdot": lambda s: layer(info("h", tarfile.LNKTYPE, link="../outside")),
    "hardlink-inner-dotdot": lambda s: layer(info("h", tarfile.LNKTYPE, link="a/../../outside")),
    "hardlink-etc-passwd": lambda s: layer(info("h", tarfile.LNKTYPE, link="/etc/passwd")),
    "hardlink-absolute-outside": lambda s: layer(info("h", tarfile.LNKTYPE, link=str(s.outside))),
    "hardlink-missing": lambda s: layer(info("h", tarfile.LNKTYPE, link="missing")),
    "hardlink-missing-in-dir": lambda s: layer(info("etc", tarfile.DIRTYPE),
                                               info("h", tarfile.LNKTYPE, link="etc/passwd")),
    "hardlink-later-entry": lambda s: layer(info("h", tarfile.LNKTYPE, link="f"),
                                            (info("f"), b"x")),
    "hardlink-to-itself": lambda s: layer((info("h"), b"x"), info("h", tarfile.LNKTYPE, link="h")),
    "hardlink-through-symlink": lambda s: _through_link(str(s.sentinel),
                                                        info("h", tarfile.LNKTYPE,
                                                             link="link/secret")),
    "hardlink-into-replaced-dir": lambda s: layer(
        info("d", tarfile.DIRTYPE), (info("d/secret"), b"mine"),
        info("d", tarfile.SYMTYPE, link=str(s.sentinel)),
        info("h", tarfile.LNKTYPE, link="d/secret")),
    "hardlink-to-directory": lambda s: layer(info("d", tarfile.DIRTYPE),
                                             info("h", tarfile.LNKTYPE, link="d")),
    "hardlink-to-root": lambda s: layer(info("h", tarfile.LNKTYPE, link=".")),
    "hardlink-to-opaque-marker": lambda s: layer((info("d/.wh..wh..opq"), b""),
                                                 info("h", tarfile.LNKTYPE,
                                                      link="d/.wh..wh..opq")),
    "whiteout-dotdot": lambda s: layer((info(".wh.."), b"")),
    "whiteout-empty": lambda s: layer((info(".wh."), b"")),
    "whiteout-dotdotdot": lambda s: layer((info(".wh..."), b"")),
    "nested-whiteout-dotdot": lambda s: layer((info("d/.wh.."), b"")),
    "nested-whiteout-empty": lambda s: layer((info("d/.wh."), b"")),
    "below-a-file": lambda s: layer((info("f"), b"x"), (info("f/evil"), b"y")),
    "below-a-device": lambda s: layer(info("n", tarfile.CHRTYPE, major=1, minor=3),
                                      (info("n/evil"), b"y")),
    "unsupported-type": lambda s: layer(info("odd", b"Z")),
}


def _pax_path_layer(path: str) -> bytes:
    """An entry whose ustar name is harmless but whose PAX path header says ``path``."""
    entry = info("harmless")
    entry.pax_headers = {"path": path}
    return layer((entry, b"x"))


@pytest.mark.parametrize("attack", sorted(ESCAPES))
def test_hostile_layer_is_rejected_and_writes_nothing_outside(site: Site, attack: str) -> None:
    """Each hostile layer raises LayerRejected and leaves everything outside dest as it was."""
    site.assert_rejected(ESCAPES[attack](site))


def test_entries_before_a_hostile_one_stay_inside_dest(site: Site) -> None:
    """Entries written before the refused one are inside dest only (the caller removes it)."""
    site.assert_rejected(layer(
        (info("ok/file"), b"fine"),
        info("link", tarfile.SYMTYPE, link=str(site.sentinel)),
        (info("link/secret"), b"pwned"),
    ))
    assert (site.dest / "ok" / "file").read_bytes() == b"fine"
    assert (site.sentinel / "secret").read_bytes() == b"secret"


def test_rejected_etc_passwd_hardlink_leaves_it_unlinked(site: Site) -> None:
    """A refused hardlink to /etc/passwd does not add a link to the host's file."""
    nlink = os.lstat("/etc/passwd").st_nlink
    with pytest.raises(LayerRejected):
        site.unpack(layer(info("etc/passwd", tarfile.LNKTYPE, link="/etc/passwd")))
    assert os.lstat("/etc/passwd").st_nlink == nlink
    assert not os.path.lexists(site.dest / "etc" / "passwd")


@pytest.mark.parametrize(("data", "diff_id", "error"), [
    pytest.param(gzip.compress(_sample()), None, None, id="ok"),
    pytest.param(gzip.compress(_sample()), "sha256:" + "0" * 64, DigestMismatch, id="mismatch"),
    pytest.param(zstd(layer((info("../evil"), b"x"))), None, LayerRejected, id="rejected"),
    pytest.param(b"\x1f\x8b" + bytes(3000), None, UnsupportedImage, id="garbage"),
])
def test_unpacking_leaves_no_thread_behind(site: Site, data: bytes, diff_id: str | None,
                                           error: type[Exception] | None) -> None:
    """Whether it succeeds or fails, unpack_layer leaves no helper thread running."""
    before = set(threading.enumerate())
    if error is None:
        site.unpack(data, diff_id)
    else:
        with pytest.raises(error):
            site.unpack(data, diff_id)
    assert set(threading.enumerate()) == before


def test_overlay_xattrs_in_an_archive_are_not_applied(site: Site) -> None:
    """A layer cannot forge overlayfs metadata through xattrs; only whiteouts make it."""
    b = LayerBuilder()
    b.dir("d")
    b.file("d/f", b"x", xattrs={"trusted.overlay.redirect": "/etc", "user.kept": "yes"})
    site.unpack(b.tar_bytes())
    f = site.dest / "d" / "f"
    assert os.getxattr(f, "user.kept") == b"yes"
    assert "trusted.overlay.redirect" not in os.listxattr(f)
