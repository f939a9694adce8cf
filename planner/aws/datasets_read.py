"""Dataset manifests read from S3 (and local sources) at plan time.

One ListObjectsV2 page per 1,000 objects of each dataset; a local source is listed on
disk, and its stage's record read, so the plan knows what the upload will do.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planner.aws.session import ACCESS_DENIED_CODES, AwsContext, aws_errors
from planner.errors import TrainctlError
from planner.live import DatasetManifest, StageState
from planner.manifest import (
    RECORD_NAME,
    Entry,
    local_entries,
    manifest_from_entries,
    split_s3_uri,
)
from planner.spec import Dataset, Spec
from planner.stage import StageRecord, record_from_bytes, stage_work

LIST_PAGE = 1000           # ListObjectsV2 MaxKeys cap


def list_prefix(s3: Any, uri: str) -> tuple[list[Entry], list[str], int]:
    """(entries, folder markers, pages) under URI, keys relative to its prefix; the
    record's key is not an entry. Raises botocore's ClientError (NoSuchBucket...)."""
    bucket, prefix = split_s3_uri(uri)
    entries: list[Entry] = []
    markers: list[str] = []
    pages = 0
    for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": LIST_PAGE}):
        pages += 1
        for obj in page.get("Contents", ()):
            key = obj["Key"][len(prefix):]
            if key.endswith("/"):
                markers.append(key)
            elif key and key != RECORD_NAME:
                entries.append((key, int(obj["Size"]), str(obj.get("ETag", "")).strip('"')))
    return entries, markers, max(pages, 1)


def read_record(s3: Any, stage_uri: str) -> tuple[StageRecord | None, str | None]:
    """(the stage record or None, why it could not be read or None). No record, or no
    bucket, is (None, None): nothing under the stage is trainctl's yet. A record that
    cannot be read owns nothing: nothing is deleted (the plan warns)."""
    from botocore.exceptions import ClientError

    bucket, prefix = split_s3_uri(stage_uri)
    try:
        raw = s3.get_object(Bucket=bucket, Key=prefix + RECORD_NAME)["Body"].read()
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code")
        if code in ("NoSuchKey", "NoSuchBucket", "404"):
            return None, None
        if code in ACCESS_DENIED_CODES or code == "403":
            return None, (f"s3://{bucket}/{prefix}{RECORD_NAME} cannot be read ({code}; "
                          "iam-policy grants s3:GetObject there)")
        raise
    try:
        return record_from_bytes(raw), None
    except ValueError as e:
        return None, f"s3://{bucket}/{prefix}{RECORD_NAME} cannot be read: {e}"



def s3_manifest(aws: AwsContext, uri: str, *, missing_ok: bool = False) -> DatasetManifest:
    """One ListObjectsV2 page per 1,000 objects under `uri`, reduced to a manifest.

    Folder markers (keys ending in `/`) and trainctl's stage record are skipped (markers
    still count for unsafe keys). A missing bucket raises TrainctlError, or gives an
    empty manifest when `missing_ok`.
    """
    return _s3_listing(aws, uri, missing_ok=missing_ok)[0]


def _s3_listing(aws: AwsContext, uri: str, *, missing_ok: bool
                ) -> tuple[DatasetManifest, list[Entry]]:
    from botocore.exceptions import ClientError

    try:
        entries, markers, pages = list_prefix(aws.s3, uri)
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") != "NoSuchBucket":
            raise
        if not missing_ok:
            bucket, _ = split_s3_uri(uri)
            raise TrainctlError(f"bucket {bucket!r} of {uri} does not exist") from None
        entries, markers, pages = [], [], 1
    return manifest_from_entries(uri, entries, pages, markers), entries


def _local_source(spec: Spec, ds: Dataset) -> str:
    if os.path.isabs(ds.source):
        return ds.source
    base = os.path.dirname(os.path.abspath(spec.source_file))
    return os.path.join(base, ds.source)


@dataclass(frozen=True)
class _Read:
    """One dataset read: its manifest, and for a local dataset what the stage needs."""

    manifest: DatasetManifest
    entries: list[Entry] | None = None
    record: tuple[StageRecord | None, str | None] | None = None


def _read_local(path: str) -> _Read:
    entries = local_entries(path)
    return _Read(manifest_from_entries(Path(path).resolve().as_uri(), entries), entries)


def dataset_tasks(spec: Spec, aws: AwsContext) -> list[tuple[str, Callable[[], _Read]]]:
    """(key, task) per manifest: the S3 side under NAME, a local source under NAME:local."""
    tasks: list[tuple[str, Callable[[], _Read]]] = []
    for name, ds in spec.datasets.items():
        if ds.is_local:
            tasks.append((f"{name}:local",
                          functools.partial(_read_local, _local_source(spec, ds))))
        if not ds.is_local or ds.stage:
            tasks.append((name, functools.partial(_dataset_manifest, aws, name, ds)))
    return tasks


def _dataset_manifest(aws: AwsContext, name: str, ds: Dataset) -> _Read:
    try:
        manifest, entries = _s3_listing(aws, ds.s3_uri, missing_ok=ds.is_local)
        if not ds.is_local:
            return _Read(manifest)
        return _Read(manifest, entries, read_record(aws.s3, ds.s3_uri))
    except TrainctlError as e:
        raise TrainctlError(f"dataset {name}: {e}") from None


def combine_datasets(spec: Spec, reads: Mapping[str, _Read]
             ) -> tuple[dict[str, DatasetManifest], dict[str, StageState]]:
    """Manifests by key, and each local dataset's stage work (planner.stage)."""
    stages: dict[str, StageState] = {}
    for name, ds in spec.datasets.items():
        local, staged = reads.get(f"{name}:local"), reads.get(name)
        if not ds.is_local or local is None or staged is None or staged.record is None:
            continue
        record, problem = staged.record
        work = stage_work(local.entries or [], staged.entries or [], record, spec.project)
        stages[name] = work.state(owner=record.project if record else None, problem=problem)
    return {k: r.manifest for k, r in reads.items()}, stages


def read_datasets(spec: Spec, aws: AwsContext) -> dict[str, DatasetManifest]:
    """Manifests by dataset name (the S3 side), plus `NAME:local` for local sources."""
    with aws_errors():
        return combine_datasets(spec, {key: task() for key, task in dataset_tasks(spec, aws)})[0]
