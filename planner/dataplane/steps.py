"""Data-plane steps: build a script, run it on an instance through an SSM transport.

Each step returns the transport's ScriptResult; anything but state "ok" is a failure for
the caller (for `training_running`, "cannot tell", which blocks a terminate).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from planner.dataplane import scripts
from planner.dataplane.status import ScriptResult

HOUR = 3600.0


class Transport(Protocol):
    """What the steps need from planner.ssm's SsmTransport."""

    def run(self, instance_id: str, script: str, *, timeout: float) -> ScriptResult: ...


def mount(ssm: Transport, instance_id: str, *, volume_id: str, device: str, path: str,
          read_only: bool, filesystem: str, may_format: bool = False,
          volume_bytes: int | None = None, timeout: float = 600) -> ScriptResult:
    """Mount, fstab by UUID (nofail), grow. A filesystem is made only when `may_format`
    (trainctl created the volume empty) and the device has no signature and reads as zeros
    where filesystems keep their superblocks; otherwise state "refused".

    data: device, uuid, fstype, formatted, grown, mounted, changed, fs_bytes, ...
    """
    script = scripts.mount_script(volume_id=volume_id, device=device, path=path,
                                  read_only=read_only, filesystem=filesystem,
                                  may_format=may_format, volume_bytes=volume_bytes)
    return ssm.run(instance_id, script, timeout=timeout)


def unmount(ssm: Transport, instance_id: str, *, path: str, volume_id: str,
            timeout: float = 300) -> ScriptResult:
    """Unmount PATH if mounted (refusing when another device is there), drop its fstab line."""
    script = scripts.unmount_script(path=path, volume_id=volume_id)
    return ssm.run(instance_id, script, timeout=timeout)


def sync_dataset(ssm: Transport, instance_id: str, *, uri: str, path: str,
                 expect_objects: int | None, expect_bytes: int | None,
                 timeout: float = 12 * HOUR) -> ScriptResult:
    """Copy changed objects of URI into PATH (nothing deleted), then check count and bytes.

    data: tool, copied, objects, bytes, extra_objects.
    """
    script = scripts.sync_script(uri=uri, path=path, expect_objects=expect_objects,
                                 expect_bytes=expect_bytes)
    return ssm.run(instance_id, script, timeout=timeout)


def verify_dataset(ssm: Transport, instance_id: str, *, path: str,
                   timeout: float = 600) -> ScriptResult:
    """existing-ebs: PATH exists and is not empty. data: objects, bytes."""
    return ssm.run(instance_id, scripts.verify_script(path=path), timeout=timeout)


def training_running(ssm: Transport, instance_id: str, *, pid_file: str | None,
                     patterns: Sequence[str], timeout: float = 120) -> ScriptResult:
    """data: {"running": bool, "evidence": str, "pids": [...]}; not ok means cannot tell."""
    script = scripts.training_check_script(pid_file=pid_file, patterns=patterns)
    return ssm.run(instance_id, script, timeout=timeout)


def stop_training(ssm: Transport, instance_id: str, *, pid_file: str | None,
                  patterns: Sequence[str], grace_seconds: int) -> ScriptResult:
    """SIGTERM the job, wait up to GRACE_SECONDS, SIGKILL what is left. data: stopped,
    signalled, killed, result; not ok means the job may still run."""
    script = scripts.stop_training_script(pid_file=pid_file, patterns=patterns,
                                          grace_seconds=grace_seconds)
    return ssm.run(instance_id, script, timeout=grace_seconds + 120)


def sync_checkpoints(ssm: Transport, instance_id: str, *, path: str, sync_to: str,
                     timeout: float = 2 * HOUR) -> ScriptResult:
    """Copy the checkpoint directory to SYNC_TO. data: present, copied, objects, bytes.

    An ok result with `present: false` or no files synced nothing: read it with
    `checkpoint_outcome`, never as "synced"."""
    script = scripts.checkpoint_sync_script(path=path, sync_to=sync_to)
    return ssm.run(instance_id, script, timeout=timeout)


CheckpointOutcome = Literal["synced", "empty", "absent", "unknown"]


def checkpoint_outcome(result: ScriptResult) -> CheckpointOutcome:
    """What a checkpoint sync really did: "synced" (files were there and are in S3 now),
    "empty" or "absent" (nothing to sync: never report these as synced), or "unknown"
    (failed, or an answer that does not say; never a success)."""
    if not result.ok:
        return "unknown"
    present, objects = result.data.get("present"), result.data.get("objects")
    if present is False:
        return "absent"
    if present is not True or not isinstance(objects, int) or isinstance(objects, bool):
        return "unknown"
    return "synced" if objects > 0 else "empty"


def install_spot_watcher(ssm: Transport, instance_id: str, *, path: str, sync_to: str,
                         timeout: float = 300) -> ScriptResult:
    """Install and start the spot-notice watcher. data: mode (systemd|nohup), changed, ..."""
    script = scripts.install_spot_watcher_script(path=path, sync_to=sync_to)
    return ssm.run(instance_id, script, timeout=timeout)


def install_lifetime_watcher(ssm: Transport, instance_id: str, *, deadline: int | None,
                             idle_seconds: int | None, action: str, ckpt_path: str | None,
                             sync_to: str | None, pid_file: str | None,
                             patterns: Sequence[str], interval: int = 60,
                             timeout: float = 300) -> ScriptResult:
    """Start the watcher that stops or terminates the instance at DEADLINE (epoch seconds)
    or after IDLE_SECONDS without a training job or GPU use. data: mode, pid, ..."""
    script = scripts.install_lifetime_watcher_script(
        instance_id=instance_id, deadline=deadline, idle_seconds=idle_seconds, action=action,
        ckpt_path=ckpt_path, sync_to=sync_to, pid_file=pid_file, patterns=patterns,
        interval=interval)
    return ssm.run(instance_id, script, timeout=timeout)
