"""upload_dataset: boto3 managed transfer to the moto server; the stage's digest equals the
local folder's (multipart ETags included); only changed files are sent; stage objects the
folder no longer has are deleted."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from test_dataplane_support import s3_client

from planner.aws.upload import list_stage, transfer_config, upload_dataset
from planner.errors import TrainctlError
from planner.manifest import CHUNK, local_manifest

BUCKET = "h7-stage"
STAGE = f"s3://{BUCKET}/datasets/local-set/"


class Aws:
    """A stand-in for AwsContext: an `s3` client and a count of its API calls."""

    def __init__(self, endpoint: str):
        self.s3 = s3_client(endpoint)
        self.calls: Counter[str] = Counter()
        self.s3.meta.events.register("before-call", self._count)

    def _count(self, model: Any = None, **_: Any) -> None:
        self.calls[model.name] += 1


@pytest.fixture
def aws(moto_endpoint: str) -> Aws:
    a = Aws(moto_endpoint)
    a.s3.create_bucket(Bucket=BUCKET)
    return a


@pytest.fixture
def local(tmp_path: Path) -> Path:
    d = tmp_path / "local-set"
    (d / "shards").mkdir(parents=True)
    (d / "README").write_text("a small dataset\n")
    (d / "empty").write_bytes(b"")
    (d / "shards" / "big.bin").write_bytes(os.urandom(CHUNK + 1_234_567))    # 2 parts
    (d / "shards" / "exact.bin").write_bytes(os.urandom(CHUNK))               # the threshold
    (d / "shards" / "name with spaces.txt").write_text("x")
    return d


def test_transfer_settings_match_the_manifest_digest() -> None:
    c = transfer_config()
    assert c.multipart_threshold == CHUNK == 8 * 1024 * 1024
    assert c.multipart_chunksize == CHUNK
    assert c.max_concurrency == 10 and c.use_threads is True


def test_upload_then_digests_agree(aws: Aws, local: Path) -> None:
    m = upload_dataset(aws, local, STAGE, progress=False)
    lm = local_manifest(local)
    assert m.uri == STAGE
    assert (m.objects, m.bytes) == (lm.objects, lm.bytes) == (5, lm.bytes)
    listing, _ = list_stage(aws.s3, STAGE)
    assert listing["shards/big.bin"][1].endswith("-2")      # really a multipart upload
    assert m.digest == lm.digest
    assert aws.calls["CreateMultipartUpload"] >= 1


def test_second_upload_sends_nothing_and_a_change_sends_one_file(aws: Aws,
                                                                 local: Path) -> None:
    upload_dataset(aws, local, STAGE, progress=False)
    aws.calls.clear()
    m = upload_dataset(aws, local, STAGE, progress=False)
    assert aws.calls["PutObject"] == 0 and aws.calls["UploadPart"] == 0
    assert aws.calls["ListObjectsV2"] == 2                   # before and after (1 page each)
    assert m.digest == local_manifest(local).digest

    (local / "README").write_text("a small dataset, edited\n")
    aws.calls.clear()
    m = upload_dataset(aws, local, STAGE, progress=False)
    assert aws.calls["PutObject"] == 1 and aws.calls["UploadPart"] == 0
    assert m.digest == local_manifest(local).digest


def test_removing_a_local_file_converges(aws: Aws, local: Path) -> None:
    first = upload_dataset(aws, local, STAGE, progress=False)
    assert first.objects == 5
    (local / "shards" / "exact.bin").unlink()
    aws.calls.clear()
    m = upload_dataset(aws, local, STAGE, progress=False)
    lm = local_manifest(local)
    listing, _ = list_stage(aws.s3, STAGE)
    assert "shards/exact.bin" not in listing and len(listing) == 4
    assert m.digest == lm.digest                              # the figures after the delete
    assert (m.objects, m.bytes) == (lm.objects, lm.bytes) == (4, lm.bytes)
    assert aws.calls["DeleteObjects"] == 1 and aws.calls["PutObject"] == 0

    aws.calls.clear()
    upload_dataset(aws, local, STAGE, progress=False)        # converged: nothing to do
    assert aws.calls["DeleteObjects"] == 0 and aws.calls["PutObject"] == 0


def test_stale_stage_objects_are_deleted_in_batches(aws: Aws, local: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import planner.aws.upload as upload

    monkeypatch.setattr(upload, "DELETE_BATCH", 2)
    for k in range(5):
        aws.s3.put_object(Bucket=BUCKET, Key=f"datasets/local-set/old/{k}.txt", Body=b"old")
    aws.s3.put_object(Bucket=BUCKET, Key="datasets/local-set/marker/", Body=b"")
    aws.s3.put_object(Bucket=BUCKET, Key="datasets/local-set-2/other.txt", Body=b"not ours")
    aws.s3.put_object(Bucket=BUCKET, Key="datasets/keep.txt", Body=b"outside the prefix")
    m = upload_dataset(aws, local, STAGE.rstrip("/"), progress=False)
    assert m.digest == local_manifest(local).digest
    assert m.objects == 5
    assert aws.calls["DeleteObjects"] == 3                    # 5 keys, 2 per call
    keys = {o["Key"] for o in aws.s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert not any(k.startswith("datasets/local-set/old/") for k in keys)
    assert {"datasets/local-set/marker/", "datasets/local-set-2/other.txt",
            "datasets/keep.txt"} <= keys


def test_progress_bar_runs(aws: Aws, local: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = upload_dataset(aws, local, STAGE, progress=True)
    assert m.digest == local_manifest(local).digest


def test_missing_folder_is_a_clear_error(aws: Aws, tmp_path: Path) -> None:
    with pytest.raises(TrainctlError, match="not a directory"):
        upload_dataset(aws, tmp_path / "nope", STAGE, progress=False)
