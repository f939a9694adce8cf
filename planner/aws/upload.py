"""Upload a local dataset folder to its S3 stage with boto3's managed transfer.

Only files whose (key, size, ETag) differ from the stage are sent; the transfer settings
are exactly those the manifest digest assumes (planner.manifest: multipart above 8 MiB in
8 MiB parts), so the stage's digest equals the local folder's. The stage prefix belongs
to trainctl: stage objects that are no longer in the folder are deleted (folder markers,
keys ending in `/`, are left alone), so removing a local file converges too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from planner.errors import TrainctlError, first_few
from planner.live import DatasetManifest
from planner.manifest import CHUNK, Entry, local_entries, manifest_from_entries, split_s3_uri

MAX_CONCURRENCY = 10
DELETE_BATCH = 1000        # DeleteObjects takes at most 1,000 keys per call


def transfer_config() -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=CHUNK, multipart_chunksize=CHUNK,
                          max_concurrency=MAX_CONCURRENCY, use_threads=True)


def list_stage(s3: Any, stage_uri: str) -> tuple[dict[str, tuple[int, str]], int]:
    """{relative key: (size, ETag)} under the stage prefix, and the ListObjectsV2 pages used."""
    bucket, prefix = split_s3_uri(_as_prefix(stage_uri))
    found: dict[str, tuple[int, str]] = {}
    pages = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        pages += 1
        for obj in page.get("Contents", []):
            key = obj["Key"][len(prefix):]
            if key and not key.endswith("/"):
                found[key] = (int(obj["Size"]), str(obj["ETag"]).strip('"'))
    return found, pages


def stage_manifest(s3: Any, stage_uri: str) -> DatasetManifest:
    listing, pages = list_stage(s3, stage_uri)
    entries = [(k, size, etag) for k, (size, etag) in listing.items()]
    return manifest_from_entries(stage_uri, entries, pages)


def upload_dataset(aws: Any, local_dir: str | os.PathLike[str], stage_uri: str, *,
                   progress: bool = True) -> DatasetManifest:
    """Upload what changed in LOCAL_DIR to STAGE_URI, delete stage objects the folder no
    longer has; return the stage's manifest as listed after both.

    `aws` is an AwsContext (only `aws.s3` is used).
    """
    root = os.fspath(local_dir)
    if not os.path.isdir(root):
        raise TrainctlError(f"local dataset source {root} is not a directory")
    stage_uri = _as_prefix(stage_uri)
    bucket, prefix = split_s3_uri(stage_uri)
    s3 = aws.s3
    with _aws_errors():
        local = local_entries(root)
        remote, _ = list_stage(s3, stage_uri)
        todo = [e for e in local if remote.get(e[0]) != (e[1], e[2])]
        if todo:
            _transfer(s3, root, bucket, prefix, todo, progress=progress)
        local_keys = {key for key, _, _ in local}
        _delete(s3, bucket, [prefix + key for key in sorted(remote) if key not in local_keys])
        return stage_manifest(s3, stage_uri)


def _delete(s3: Any, bucket: str, keys: list[str]) -> None:
    """DeleteObjects in batches of 1,000 keys; any key it could not delete is an error."""
    failed: list[str] = []
    for i in range(0, len(keys), DELETE_BATCH):
        batch = keys[i:i + DELETE_BATCH]
        resp = s3.delete_objects(Bucket=bucket, Delete={
            "Objects": [{"Key": k} for k in batch], "Quiet": True})
        failed += [f"{e.get('Key')} ({e.get('Code')})" for e in resp.get("Errors", ())]
    if failed:
        raise TrainctlError(f"could not delete {len(failed)} stale stage object(s) in "
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

    columns = (TextColumn(f"uploading {files} files"), BarColumn(), DownloadColumn(),
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
