"""mount.sh formats only a device that certainly holds nothing (issue 10, item 3).

Real loop devices as root. Every device that may hold data is refused (status
"refused") and left byte for byte as it was; only a blank device of a volume trainctl
created empty is formatted.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_dataplane_support import BashTransport, LoopDevice, loop_unavailable

from planner.dataplane import steps
from planner.dataplane.status import ScriptResult

VOL = "vol-0123456789abcdef0"
MIB = 2**20
HOLDS_DATA = "device holds data but no known filesystem"

pytestmark = pytest.mark.root


@pytest.fixture
def make_loop(tmp_path: Path) -> Iterator[Callable[[str], LoopDevice]]:
    reason = loop_unavailable()
    if reason:
        pytest.skip(reason)
    made: list[LoopDevice] = []

    def make(size: str = "64M") -> LoopDevice:
        try:
            dev = LoopDevice(tmp_path / f"disk{len(made)}.img", size)
        except OSError as e:
            pytest.skip(str(e))
        made.append(dev)
        return dev

    try:
        yield make
    finally:
        for dev in made:
            dev.close()


@pytest.fixture
def fstab(tmp_path: Path) -> Path:
    f = tmp_path / "fstab"
    f.write_text("tmpfs /mnt/tmp tmpfs defaults 0 0\n")
    return f


def _mount(loop: LoopDevice, fstab: Path, target: Path, *, may_format: bool = True,
           fs: str = "ext4", read_only: bool = False) -> ScriptResult:
    t = BashTransport(None, {"TRAINCTL_DEVICE": loop.path, "TRAINCTL_FSTAB": str(fstab),
                             "TRAINCTL_DEVICE_WAIT": "2"})
    return steps.mount(t, "i-1", volume_id=VOL, device="/dev/sdf", path=str(target),
                       read_only=read_only, filesystem=fs, may_format=may_format, timeout=300)


def _sha(loop: LoopDevice) -> str:
    h = hashlib.sha256()
    with open(loop.path, "rb") as f:
        while chunk := f.read(4 * MIB):
            h.update(chunk)
    return h.hexdigest()


def _write(loop: LoopDevice, offset: int, data: bytes) -> None:
    with open(loop.path, "r+b") as f:
        f.seek(offset)
        f.write(data)
    subprocess.run(["blockdev", "--flushbufs", loop.path], check=True)


def _fill(loop: LoopDevice, tmp_path: Path, files: dict[str, bytes]) -> None:
    staging = tmp_path / "staging"
    staging.mkdir(exist_ok=True)
    subprocess.run(["mount", loop.path, str(staging)], check=True)
    try:
        for name, data in files.items():
            (staging / name).write_bytes(data)
    finally:
        subprocess.run(["umount", str(staging)], check=True)


def _blkid(dev: str, tag: str) -> str:
    return subprocess.run(["blkid", "-p", "-s", tag, "-o", "value", dev],
                          capture_output=True, text=True).stdout.strip()


def _blkid_type(dev: str) -> str:
    return _blkid(dev, "TYPE")


def _assert_refused(r: ScriptResult, loop: LoopDevice, before: str, fstab: Path,
                    target: Path) -> None:
    assert r.state == "refused" and not r.ok, r.output
    assert r.data["error"] == HOLDS_DATA
    assert r.message().startswith(f"refused: {HOLDS_DATA}")
    assert _sha(loop) == before                        # not one byte written
    assert loop.mountpoints() == []
    assert str(target) not in fstab.read_text()


# --- the one case that formats -----------------------------------------------------------

def test_a_blank_device_of_a_volume_created_empty_is_formatted(make_loop, fstab,
                                                               tmp_path) -> None:
    loop = make_loop("256M")
    r = _mount(loop, fstab, tmp_path / "data")
    assert r.ok and r.data["formatted"] is True, r.output
    assert r.data["probed_regions"] > 20             # start, end, spare-superblock places
    assert _blkid_type(loop.path) == "ext4"


# --- filesystems holding files: mounted as they are, never formatted ------------------------

def test_ext4_holding_files_is_mounted_never_formatted(make_loop, fstab, tmp_path) -> None:
    loop = make_loop("64M")
    subprocess.run(["mkfs.ext4", "-q", loop.path], check=True)
    _fill(loop, tmp_path, {"weights.bin": b"\x01" * 5000})
    before = _sha(loop)
    target = tmp_path / "data"
    r = _mount(loop, fstab, target, fs="xfs", read_only=True)  # spec asks xfs: ignored
    assert r.ok and r.data["formatted"] is False and r.data["fstype"] == "ext4", r.output
    assert (target / "weights.bin").read_bytes() == b"\x01" * 5000
    subprocess.run(["umount", str(target)], check=True)
    assert _sha(loop) == before                        # a read-only mount writes nothing


def test_xfs_holding_files_is_mounted_never_formatted(make_loop, fstab, tmp_path) -> None:
    if shutil.which("mkfs.xfs") is None:
        pytest.skip("mkfs.xfs is not installed (xfsprogs; `make sysdeps`)")
    loop = make_loop("320M")
    subprocess.run(["mkfs.xfs", "-q", loop.path], check=True)
    _fill(loop, tmp_path, {"weights.bin": b"\x02" * 5000})
    uuid = _blkid(loop.path, "UUID")
    target = tmp_path / "data"
    r = _mount(loop, fstab, target, fs="ext4", read_only=True)
    assert r.ok and r.data["formatted"] is False and r.data["fstype"] == "xfs", r.output
    assert r.data["uuid"] == uuid and _blkid(loop.path, "UUID") == uuid
    assert (target / "weights.bin").read_bytes() == b"\x02" * 5000


# --- refused: the device may hold data -------------------------------------------------------

def test_ext4_with_a_damaged_primary_superblock_is_refused_and_recoverable(
        make_loop, fstab, tmp_path) -> None:
    loop = make_loop("256M")                           # two block groups: one backup
    subprocess.run(["mkfs.ext4", "-q", "-b", "4096", loop.path], check=True)
    _fill(loop, tmp_path, {"precious.txt": b"the only copy"})
    _write(loop, 1024, bytes(1024))                    # the primary superblock
    assert _blkid_type(loop.path) == ""                # blkid sees nothing at all
    before = _sha(loop)
    target = tmp_path / "data"
    r = _mount(loop, fstab, target)
    _assert_refused(r, loop, before, fstab, target)
    assert "not zeros" in r.data["detail"], r.data
    # what mkfs would have destroyed is still there
    fsck = subprocess.run(["e2fsck", "-fy", "-b", "32768", "-B", "4096", loop.path],
                          capture_output=True, text=True)
    assert fsck.returncode in (0, 1), fsck.stdout + fsck.stderr
    staging = tmp_path / "check"
    staging.mkdir()
    subprocess.run(["mount", "-o", "ro", loop.path, str(staging)], check=True)
    try:
        assert (staging / "precious.txt").read_bytes() == b"the only copy"
    finally:
        subprocess.run(["umount", str(staging)], check=True)


def test_xfs_with_a_damaged_primary_superblock_is_refused(make_loop, fstab,
                                                          tmp_path) -> None:
    if shutil.which("mkfs.xfs") is None:
        pytest.skip("mkfs.xfs is not installed (xfsprogs; `make sysdeps`)")
    loop = make_loop("320M")
    subprocess.run(["mkfs.xfs", "-q", loop.path], check=True)
    _fill(loop, tmp_path, {"precious.txt": b"xfs data"})
    _write(loop, 0, bytes(4096))                       # the primary superblock sector(s)
    assert _blkid_type(loop.path) == ""
    before = _sha(loop)
    target = tmp_path / "data"
    r = _mount(loop, fstab, target, fs="xfs")
    _assert_refused(r, loop, before, fstab, target)


def test_random_bytes_with_no_signature_are_refused(make_loop, fstab, tmp_path) -> None:
    loop = make_loop("64M")
    _write(loop, 0, random.Random(10).randbytes(64 * MIB))
    assert _blkid_type(loop.path) == ""
    before = _sha(loop)
    target = tmp_path / "data"
    _assert_refused(_mount(loop, fstab, target), loop, before, fstab, target)


# Each place the script must look at, alone: one non-zero block on an otherwise blank device.
SIZE = 640 * MIB
PLACES = {
    "middle of the first MiB": (300 * 1024, "the first MiB"),
    "last MiB": (SIZE - 4096, "the last MiB"),
    "ext4 4K blocks, group 1": (32768 * 4096, "ext4 backup superblock (4096-byte blocks, group 1)"),
    "ext4 4K blocks, group 3": (3 * 32768 * 4096, "(4096-byte blocks, group 3)"),
    "ext4 1K blocks, group 1": (8193 * 1024, "(1024-byte blocks, group 1)"),
    "ext4 1K blocks, group 49": (49 * 8192 * 1024 + 1024, "(1024-byte blocks, group 49)"),
    "ext4 2K blocks, group 3": (3 * 16384 * 2048, "(2048-byte blocks, group 3)"),
    "ext4 8K blocks, group 1": (65536 * 8192, "(8192-byte blocks, group 1)"),
    "xfs AG 1 of 4": (SIZE // 4, "xfs secondary superblock (AG 1 of 4)"),
    "xfs AG 3 of 4": (3 * SIZE // 4, "xfs secondary superblock (AG 3 of 4)"),
    "xfs AG 5 of 16": (5 * SIZE // 16, "xfs secondary superblock (AG 5 of 16)"),
    "btrfs mirror": (64 * MIB, "64 MiB"),
}


@pytest.mark.parametrize(("offset", "words"), PLACES.values(), ids=PLACES.keys())
def test_one_block_of_data_where_a_superblock_may_be_is_refused(make_loop, fstab, tmp_path,
                                                                offset: int,
                                                                words: str) -> None:
    loop = make_loop(f"{SIZE // MIB}M")               # sparse: little is really written
    _write(loop, offset, b"XFSB" + b"\x07" * 508)
    before = _sha(loop)
    target = tmp_path / "data"
    r = _mount(loop, fstab, target)
    _assert_refused(r, loop, before, fstab, target)
    assert words in r.data["detail"], r.data["detail"]


def test_a_partition_table_is_refused(make_loop, fstab, tmp_path) -> None:
    loop = make_loop("64M")
    if shutil.which("sfdisk"):
        subprocess.run(["sfdisk", "-q", loop.path], input="type=83\n", text=True,
                       check=True, capture_output=True)
    else:       # sfdisk missing (util-linux's fdisk package): an MBR written by hand
        entry = bytes([0, 0, 2, 0, 0x83, 0, 0, 0]) + (2048).to_bytes(4, "little") + (
            (64 * MIB // 512 - 2048).to_bytes(4, "little"))
        _write(loop, 446, entry + bytes(48) + b"\x55\xaa")
    pttype = subprocess.run(["blkid", "-p", "-s", "PTTYPE", "-o", "value", loop.path],
                            capture_output=True, text=True).stdout.strip()
    assert pttype == "dos"
    before = _sha(loop)
    target = tmp_path / "data"
    r = _mount(loop, fstab, target)
    _assert_refused(r, loop, before, fstab, target)
    assert "partition table" in r.data["detail"]


def test_swap_is_refused(make_loop, fstab, tmp_path) -> None:
    if shutil.which("mkswap") is None:
        pytest.skip("mkswap is not installed")
    loop = make_loop("64M")
    subprocess.run(["mkswap", loop.path], check=True, capture_output=True)
    before = _sha(loop)
    target = tmp_path / "data"
    r = _mount(loop, fstab, target)
    _assert_refused(r, loop, before, fstab, target)
    assert "swap" in r.data["detail"]


def test_a_luks_header_is_refused(make_loop, fstab, tmp_path) -> None:
    loop = make_loop("64M")
    made = None
    if shutil.which("cryptsetup"):
        key = tmp_path / "key"
        key.write_text("secret")
        made = subprocess.run(["cryptsetup", "luksFormat", "--batch-mode", "--type", "luks2",
                               "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000",
                               loop.path, str(key)], capture_output=True, text=True)
    if made is None or made.returncode != 0:
        # no cryptsetup here: a LUKS1 header by hand (magic, version 1, cipher names, uuid)
        hdr = (b"LUKS\xba\xbe" + (1).to_bytes(2, "big") + b"aes".ljust(32, b"\0")
               + b"xts-plain64".ljust(32, b"\0") + b"sha256".ljust(32, b"\0")
               + (4096).to_bytes(4, "big") + (64).to_bytes(4, "big") + bytes(20 + 32 + 4)
               + b"6c1fbf2a-0dd2-4a8a-9a4e-6f7f6f3a1b22".ljust(40, b"\0"))
        _write(loop, 0, hdr)
    assert _blkid_type(loop.path) == "crypto_LUKS"
    before = _sha(loop)
    target = tmp_path / "data"
    r = _mount(loop, fstab, target)
    _assert_refused(r, loop, before, fstab, target)
    assert "crypto_LUKS" in r.data["detail"]


def test_a_blank_volume_from_a_snapshot_or_import_is_never_formatted(make_loop, fstab,
                                                                     tmp_path) -> None:
    loop = make_loop("64M")
    before = _sha(loop)
    target = tmp_path / "data"
    r = _mount(loop, fstab, target, may_format=False)
    _assert_refused(r, loop, before, fstab, target)
    assert "not created empty by trainctl" in r.data["detail"]
