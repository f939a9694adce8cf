"""mount.sh / unmount.sh on real loop devices (root), and in the sandbox (emulated instances)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_dataplane_support import BashTransport, LoopDevice, loop_unavailable

from planner.dataplane import steps
from planner.dataplane.status import ScriptResult

VOL = "vol-0123456789abcdef0"


def _has_cap_sys_resource() -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> 24 & 1)
    return False


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[LoopDevice]:
    reason = loop_unavailable()
    if reason:
        pytest.skip(reason)
    try:
        dev = LoopDevice(tmp_path / "disk.img")
    except OSError as e:
        pytest.skip(str(e))
    try:
        yield dev
    finally:
        dev.close()


@pytest.fixture
def fstab(tmp_path: Path) -> Path:
    f = tmp_path / "fstab"
    f.write_text("# /etc/fstab: static file system information.\n"
                 "LABEL=cloudimg-rootfs\t/\text4\tdefaults,discard\t0 1\n"
                 "tmpfs /mnt/tmp tmpfs defaults 0 0\n")
    return f


def _device_transport(loop: LoopDevice, fstab: Path) -> BashTransport:
    return BashTransport(None, {"TRAINCTL_DEVICE": loop.path, "TRAINCTL_FSTAB": str(fstab),
                                "TRAINCTL_DEVICE_WAIT": "2"})


def _mount(t: BashTransport, path: Path | str, *, read_only: bool = False,
           fs: str = "ext4", iid: str = "i-1", may_format: bool = True,
           volume_bytes: int | None = None) -> ScriptResult:
    """The mount step as the engine runs it for a volume trainctl created empty."""
    return steps.mount(t, iid, volume_id=VOL, device="/dev/sdf", path=str(path),
                       read_only=read_only, filesystem=fs, may_format=may_format,
                       volume_bytes=volume_bytes, timeout=120)


def _findmnt(target: Path, col: str) -> str:
    p = subprocess.run(["findmnt", "-rn", "-M", str(target), "-o", col], capture_output=True,
                       text=True)
    return p.stdout.strip()


def _blkid(dev: str, tag: str) -> str:
    return subprocess.run(["blkid", "-p", "-s", tag, "-o", "value", dev], capture_output=True,
                          text=True).stdout.strip()


def _entries(fstab: Path, target: Path) -> list[str]:
    enc = str(target).replace(" ", "\\040")
    return [ln for ln in fstab.read_text().splitlines() if ln.split()[1:2] == [enc]]


@pytest.mark.root
def test_first_run_formats_and_mounts(loop: LoopDevice, fstab: Path, tmp_path: Path) -> None:
    target = tmp_path / "data dir"
    before = fstab.read_text()
    r = _mount(_device_transport(loop, fstab), target)
    assert r.ok, r.output
    assert r.data["formatted"] is True and r.data["mounted"] is True
    assert r.data["fstype"] == "ext4" and r.data["device"] == loop.path
    assert _findmnt(target, "SOURCE") == loop.path
    uuid = _blkid(loop.path, "UUID")
    assert r.data["uuid"] == uuid
    lines = _entries(fstab, target)
    assert lines == [f"UUID={uuid} {str(target).replace(' ', chr(92) + '040')} ext4 "
                     f"defaults,nofail 0 2"]
    assert fstab.read_text().startswith(before)             # other entries untouched
    (target / "hello").write_text("written after mount")


@pytest.mark.root
def test_existing_filesystem_is_mounted_not_formatted(loop: LoopDevice, fstab: Path,
                                                      tmp_path: Path) -> None:
    subprocess.run(["mkfs.ext4", "-q", loop.path], check=True)
    uuid = _blkid(loop.path, "UUID")
    staging = tmp_path / "staging"
    staging.mkdir()
    subprocess.run(["mount", loop.path, str(staging)], check=True)
    (staging / "precious.bin").write_bytes(b"\x00data\xff" * 1000)
    subprocess.run(["umount", str(staging)], check=True)

    target = tmp_path / "data"
    # the spec asks for xfs: an existing filesystem is used as it is, never reformatted
    r = _mount(_device_transport(loop, fstab), target, fs="xfs")
    assert r.ok, r.output
    assert r.data["formatted"] is False and r.data["fstype"] == "ext4"
    assert _blkid(loop.path, "UUID") == uuid
    assert (target / "precious.bin").read_bytes() == b"\x00data\xff" * 1000


@pytest.mark.root
def test_second_run_changes_nothing(loop: LoopDevice, fstab: Path, tmp_path: Path) -> None:
    t = _device_transport(loop, fstab)
    target = tmp_path / "data"
    assert _mount(t, target).ok
    (target / "keep").write_text("keep me")
    snapshot = fstab.read_bytes()
    r = _mount(t, target)
    assert r.ok, r.output
    assert r.data["formatted"] is False and r.data["mounted"] is False
    assert r.data["grown"] is False and r.data["fstab_changed"] is False
    assert r.data["changed"] is False
    assert fstab.read_bytes() == snapshot
    assert len(_entries(fstab, target)) == 1
    assert (target / "keep").read_text() == "keep me"


@pytest.mark.root
def test_filesystem_grows_with_the_device(loop: LoopDevice, fstab: Path,
                                          tmp_path: Path) -> None:
    t = _device_transport(loop, fstab)
    target = tmp_path / "data"
    r = _mount(t, target)
    assert r.ok and r.data["fs_bytes"] == 64 * 2**20
    (target / "keep").write_text("keep me")
    # the volume is detached / unmounted, grows (EBS modify-volume), then mounts again
    r = steps.unmount(t, "i-1", path=str(target), volume_id=VOL)
    assert r.ok and r.data["unmounted"] is True, r.output
    loop.grow("128M")
    r = _mount(t, target)
    assert r.ok, r.output
    assert r.data["grown"] is True and r.data["formatted"] is False
    assert r.data["fs_bytes"] == r.data["device_bytes"] == 128 * 2**20
    assert (target / "keep").read_text() == "keep me"
    r = _mount(t, target)
    assert r.ok and r.data["grown"] is False and r.data["changed"] is False


@pytest.mark.root
def test_mounted_filesystem_grows_online(loop: LoopDevice, fstab: Path,
                                         tmp_path: Path) -> None:
    if not _has_cap_sys_resource():
        pytest.skip("online ext4 resize needs CAP_SYS_RESOURCE, which this container lacks")
    t = _device_transport(loop, fstab)
    target = tmp_path / "data"
    assert _mount(t, target).ok
    loop.grow("128M")
    r = _mount(t, target)
    assert r.ok, r.output
    assert r.data["grown"] is True and r.data["fs_bytes"] == 128 * 2**20


@pytest.mark.root
def test_read_only_mount_and_remount(loop: LoopDevice, fstab: Path, tmp_path: Path) -> None:
    t = _device_transport(loop, fstab)
    target = tmp_path / "data"
    assert _mount(t, target).ok
    (target / "f").write_text("x")
    r = _mount(t, target, read_only=True)
    assert r.ok and r.data["remounted"] is True, r.output
    assert "ro" in _findmnt(target, "OPTIONS").split(",")
    with pytest.raises(OSError):
        (target / "g").write_text("y")
    assert _entries(fstab, target)[0].split()[3] == "defaults,nofail,ro"
    r = _mount(t, target, read_only=False)
    assert r.ok and r.data["remounted"] is True
    (target / "g").write_text("y")


@pytest.mark.root
def test_unknown_signature_is_never_formatted(loop: LoopDevice, fstab: Path,
                                              tmp_path: Path) -> None:
    if shutil.which("mkswap") is None:
        pytest.skip("mkswap is not installed")
    subprocess.run(["mkswap", loop.path], check=True, capture_output=True)
    r = _mount(_device_transport(loop, fstab), tmp_path / "data")
    assert r.state == "refused" and not r.ok
    assert "swap" in r.data["detail"]
    assert _blkid(loop.path, "TYPE") == "swap"           # untouched
    assert _entries(fstab, tmp_path / "data") == []


@pytest.mark.root
def test_unmount_is_idempotent(loop: LoopDevice, fstab: Path, tmp_path: Path) -> None:
    t = _device_transport(loop, fstab)
    target = tmp_path / "data"
    assert _mount(t, target).ok
    r = steps.unmount(t, "i-1", path=str(target), volume_id=VOL)
    assert r.ok and r.data["unmounted"] is True and r.data["fstab_changed"] is True
    assert _findmnt(target, "SOURCE") == ""
    assert _entries(fstab, target) == []
    assert "tmpfs /mnt/tmp" in fstab.read_text()
    r = steps.unmount(t, "i-1", path=str(target), volume_id=VOL)
    assert r.ok and r.data["changed"] is False


@pytest.mark.root
def test_xfs_variant(loop: LoopDevice, fstab: Path, tmp_path: Path) -> None:
    for tool in ("mkfs.xfs", "xfs_growfs", "xfs_info"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (xfsprogs)")
    loop.grow("320M")                                     # xfs needs 300 MB
    t = _device_transport(loop, fstab)
    target = tmp_path / "data"
    r = _mount(t, target, fs="xfs")
    assert r.ok and r.data["formatted"] is True and r.data["fstype"] == "xfs", r.output
    loop.grow("640M")
    r = _mount(t, target, fs="xfs")
    assert r.ok and r.data["grown"] is True, r.output


@pytest.mark.root
def test_missing_device_fails_without_touching_anything(fstab: Path, tmp_path: Path) -> None:
    t = BashTransport(None, {"TRAINCTL_FSTAB": str(fstab), "TRAINCTL_DEVICE_WAIT": "1"})
    r = steps.mount(t, "i-1", volume_id="vol-0ffffffffffffffff", device="/dev/sdz",
                    path=str(tmp_path / "data"), read_only=False, filesystem="ext4",
                    timeout=60)
    assert r.state == "failed" and "not visible" in r.data["error"]
    assert not (tmp_path / "data").exists()


# --- sandbox (emulated instances): no devices, a shared folder per volume ------------------

def test_sandbox_mount_is_idempotent_and_shared_between_instances(tmp_path: Path) -> None:
    t = BashTransport(tmp_path / "sandbox")
    r = _mount(t, "/data", iid="i-a")
    assert r.ok and r.data["sandbox"] is True and r.data["formatted"] is True, r.output
    mp = t.sandbox("i-a") / "data"
    assert mp.is_symlink() and mp.is_dir()
    (mp / "file").write_text("from i-a")
    fstab = t.sandbox("i-a") / "etc" / "fstab"
    assert fstab.read_text().count("/data ") == 1 and "nofail" in fstab.read_text()
    r = _mount(t, "/data", iid="i-a")
    assert r.ok and r.data["changed"] is False and r.data["formatted"] is False

    r = steps.unmount(t, "i-a", path="/data", volume_id=VOL)
    assert r.ok and r.data["unmounted"] is True
    assert mp.is_dir() and not mp.is_symlink() and not any(mp.iterdir())
    assert "/data " not in fstab.read_text()

    r = _mount(t, "/mnt/other", iid="i-b")
    assert r.ok and r.data["formatted"] is False
    assert (t.sandbox("i-b") / "mnt" / "other" / "file").read_text() == "from i-a"


def test_sandbox_refuses_a_non_empty_mount_point(tmp_path: Path) -> None:
    t = BashTransport(tmp_path / "sandbox")
    busy = t.sandbox("i-a") / "data"
    busy.mkdir(parents=True)
    (busy / "user-file").write_text("mine")
    r = _mount(t, "/data", iid="i-a")
    assert r.state == "failed" and "not empty" in r.data["error"]
    assert (busy / "user-file").read_text() == "mine"


@pytest.mark.parametrize("bad", ["data", "/data/../etc", "/", "/a/./b"])
def test_bad_mount_paths_are_refused(tmp_path: Path, bad: str) -> None:
    r = _mount(BashTransport(tmp_path / "sandbox"), bad)
    assert r.state == "failed"


@pytest.mark.root
def test_a_read_only_mount_still_grows_its_filesystem(loop: LoopDevice, fstab: Path,
                                                      tmp_path: Path) -> None:
    """No grow is left pending behind read_only: an ext4 that is not mounted grows offline,
    then mounts read-only (issue 10, item 7: the recorded size must reach the volume's)."""
    t = _device_transport(loop, fstab)
    target = tmp_path / "data"
    assert _mount(t, target).ok
    (target / "keep").write_text("keep me")
    assert steps.unmount(t, "i-1", path=str(target), volume_id=VOL).ok
    loop.grow("128M")
    r = _mount(t, target, read_only=True)
    assert r.ok and r.data["grown"] is True and r.data["grow_pending"] is False, r.output
    assert r.data["fs_bytes"] == r.data["device_bytes"] == 128 * 2**20
    assert "ro" in _findmnt(target, "OPTIONS").split(",")
    assert (target / "keep").read_text() == "keep me"


@pytest.mark.root
def test_a_mounted_read_only_xfs_grows_and_stays_read_only(loop: LoopDevice, fstab: Path,
                                                           tmp_path: Path) -> None:
    for tool in ("mkfs.xfs", "xfs_growfs", "xfs_info"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (xfsprogs)")
    loop.grow("320M")
    t = _device_transport(loop, fstab)
    target = tmp_path / "data"
    assert _mount(t, target, fs="xfs", read_only=True).ok
    loop.grow("640M")
    r = _mount(t, target, fs="xfs", read_only=True)
    assert r.ok and r.data["grown"] is True, r.output
    assert r.data["fs_bytes"] == 640 * 2**20
    assert "ro" in _findmnt(target, "OPTIONS").split(",")
    with pytest.raises(OSError):
        (target / "g").write_text("y")


def test_sandbox_filesystem_size_follows_the_volume(tmp_path: Path) -> None:
    t = BashTransport(tmp_path / "sandbox")
    gib = 2**30
    r = _mount(t, "/data", volume_bytes=10 * gib)
    assert r.ok and r.data["formatted"] is True and r.data["fs_bytes"] == 10 * gib, r.output
    assert (tmp_path / "sandbox" / "volumes" / VOL).is_dir()
    r = _mount(t, "/data", volume_bytes=10 * gib)
    assert r.ok and r.data["changed"] is False and r.data["grown"] is False
    r = _mount(t, "/data", volume_bytes=25 * gib, read_only=True)
    assert r.ok and r.data["grown"] is True and r.data["fs_bytes"] == 25 * gib
    assert r.data["changed"] is True
    r = _mount(t, "/data")                     # size unknown: the recorded one is reported
    assert r.ok and r.data["fs_bytes"] == 25 * gib and r.data["grown"] is False


def test_sandbox_never_makes_a_volume_it_may_not_format(tmp_path: Path) -> None:
    t = BashTransport(tmp_path / "sandbox")
    r = _mount(t, "/data", may_format=False)
    assert r.state == "refused" and "not created empty" in r.data["detail"]
    assert not (tmp_path / "sandbox" / "volumes" / VOL).exists()
