"""Upload a local dataset folder to its S3 stage with boto3's managed transfer.

Only files whose (key, size, ETag) differ from the stage are sent; the transfer settings
are exactly those the manifest digest assumes (planner.manifest: multipart above 8 MiB in
8 MiB parts), so the stage's digest equals the local folder's. Stage objects the folder
no longer has are deleted only when trainctl wrote them (its record under the stage,
planner.stage), and never more than the plan said: anything else there is kept.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from planner.aws.datasets_read import list_prefix, read_record
from planner.errors import TrainctlError, first_few
from planner.live import DatasetManifest
from planner.manifest import (
    CHUNK,
    RECORD_NAME,
    Entry,
    local_entries,
    manifest_from_entries,
    split_s3_uri,
)
from planner.stage import (
    StageRecord,
    StageWork,
    final_record,
    pending_record,
    record_to_bytes,
    stage_work,
)
from planner.words import counted

MAX_CONCURRENCY = 10
DELETE_BATCH = 1000        # DeleteObjects takes at most 1,000 keys per call


def transfer_config() -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=CHUNK, multipart_chunksize=CHUNK,
                          max_concurrency=MAX_CONCURRENCY, use_threads=True)


def list_stage(s3: Any, stage_uri: str) -> tuple[dict[str, tuple[int, str]], int]:
    """{relative key: (size, ETag)} under the stage prefix (folder markers and trainctl's
    record left out), and the ListObjectsV2 pages used."""
    found, _markers, pages = list_prefix(s3, stage_uri)
    return {k: (s, e) for k, s, e in found}, pages


def write_record(s3: Any, stage_uri: str, record: StageRecord) -> None:
    bucket, prefix = split_s3_uri(_as_prefix(stage_uri))
    s3.put_object(Bucket=bucket, Key=prefix + RECORD_NAME, Body=record_to_bytes(record),
                  ContentType="application/json")


def stage_manifest(s3: Any, stage_uri: str) -> DatasetManifest:
    entries, markers, pages = list_prefix(s3, stage_uri)
    return manifest_from_entries(stage_uri, entries, pages, markers)


@dataclass(frozen=True)
class Uploaded:
    manifest: DatasetManifest     # the stage as listed after the upload
    work: StageWork               # what was sent, deleted and kept


def upload_dataset(aws: Any, local_dir: str | os.PathLike[str], stage_uri: str, *,
                   project: str, dataset: str, max_delete: tuple[int, int] | None = None,
                   progress: bool = True) -> Uploaded:
    """Upload what changed in LOCAL_DIR to STAGE_URI; delete the stage objects trainctl
    wrote that the folder no longer has; keep everything else there.

    MAX_DELETE (objects, bytes): what the plan said; finding more to delete fails before
    anything is written (the stage changed since the plan). `aws` is an AwsContext (only
    `aws.s3` is used).
    """
    root = os.fspath(local_dir)
    if not os.path.isdir(root):
        raise TrainctlError(f"local dataset source {root} is not a directory")
    stage_uri = _as_prefix(stage_uri)
    bucket, prefix = split_s3_uri(stage_uri)
    if not prefix:
        raise TrainctlError(f"stage {stage_uri} is a bucket root: a stage is a prefix "
                            "trainctl owns alone")
    s3 = aws.s3
    with _aws_errors():
        local = local_entries(root)
        remote, _markers, _ = _list_or_empty(s3, stage_uri)
        record, _problem = read_record(s3, stage_uri)
        if record is not None and record.project != project:
            raise TrainctlError(f"stage {stage_uri}: its record ({RECORD_NAME}) names trainctl "
                                f"project {record.project!r}; give dataset {dataset} a stage "
                                "of its own")
        work = stage_work(local, remote, record, project)
        n_del, b_del = len(work.delete), sum(s for _, s, _ in work.delete)
        if max_delete is not None and (n_del > max_delete[0] or b_del > max_delete[1]):
            raise TrainctlError(
                f"stage {stage_uri} changed since the plan: the upload would delete "
                f"{counted(n_del, 'object')} ({counted(b_del, 'byte')}), the plan said "
                f"{max_delete[0]} ({counted(max_delete[1], 'byte')}); nothing was changed, "
                "plan again")
        written = dict(record.objects) if record is not None else None
        if work.upload:
            pending = pending_record(work, project, dataset)
            write_record(s3, stage_uri, pending)
            written = dict(pending.objects)
            _transfer(s3, root, bucket, prefix, list(work.upload), progress=progress)
        _delete(s3, bucket, [prefix + key for key, _, _ in work.delete])
        after, markers, pages = list_prefix(s3, stage_uri)
        final = final_record(local, after, project, dataset)
        if written != dict(final.objects):
            write_record(s3, stage_uri, final)
        return Uploaded(manifest_from_entries(stage_uri, after, pages, markers), work)


def _list_or_empty(s3: Any, uri: str) -> tuple[list[Entry], list[str], int]:
    from botocore.exceptions import ClientError

    try:
        return list_prefix(s3, uri)
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") != "NoSuchBucket":
            raise
        bucket, _ = split_s3_uri(uri)
        raise TrainctlError(f"stage bucket {bucket!r} of {uri} does not exist") from None


def _delete(s3: Any, bucket: str, keys: list[str]) -> None:
    """DeleteObjects in batches of 1,000 keys; any key it could not delete is an error."""
    failed: list[str] = []
    for i in range(0, len(keys), DELETE_BATCH):
        batch = keys[i:i + DELETE_BATCH]
        resp = s3.delete_objects(Bucket=bucket, Delete={
            "Objects": [{"Key": k} for k in batch], "Quiet": True})
        failed += [f"{e.get('Key')} ({e.get('Code')})" for e in resp.get("Errors", ())]
    if failed:
        raise TrainctlError(f"could not delete {counted(len(failed), 'stale stage object')} in "
                            f"s3://{bucket}/: {first_few(failed)}")


def _transfer(s3: Any, root: str, bucket: str, prefix: str, todo: list[Entry], *,
              progress: bool) -> None:
    from boto3.s3.transfer import create_transfer_manager
    from s3transfer.subscribers import BaseSubscriber

    total = sum(size for _, size, _ in todo)
    with _progress_bar(progress, total, len(todo)) as advance:

        class _Progress(BaseSubscriber):
            def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
                advance(bytes_transferred)

        with create_transfer_manager(s3, transfer_config()) as manager:
            futures = [
                manager.upload(os.path.join(root, *key.split("/")), bucket, prefix + key,
                               subscribers=[_Progress()])
                for key, _, _ in todo
            ]
            for f in futures:
                f.result()


@contextmanager
def _progress_bar(enabled: bool, total: int, files: int) -> Iterator[Any]:
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (TextColumn(f"uploading {counted(files, 'file')}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("upload", total=total)
        yield lambda n: bar.advance(task, n)


def _aws_errors() -> Any:
    try:
        from planner.aws.session import aws_errors
    except ImportError:  # pragma: no cover - session.py is H3's
        return nullcontext()
    return aws_errors()


def _as_prefix(uri: str) -> str:
    return uri if uri.endswith("/") else uri + "/"
