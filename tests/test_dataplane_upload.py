"""upload_dataset: boto3 managed transfer to the moto server; the stage's digest equals the
local folder's (multipart ETags included); only changed files are sent; stage objects the
folder no longer has are deleted only when trainctl wrote them (its record under the
stage), never more than the plan said; anything else there is kept."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from test_dataplane_support import s3_client

from planner.aws.datasets_read import read_record
from planner.aws.upload import Uploaded, list_stage, transfer_config, upload_dataset
from planner.errors import TrainctlError
from planner.live import DatasetManifest
from planner.manifest import CHUNK, RECORD_NAME, local_manifest

BUCKET = "h7-stage"
STAGE = f"s3://{BUCKET}/datasets/local-set/"
PROJECT = "demo"


class Aws:
    """A stand-in for AwsContext: an `s3` client and a count of its API calls."""

    def __init__(self, endpoint: str):
        self.s3 = s3_client(endpoint)
        self.calls: Counter[str] = Counter()
        self.s3.meta.events.register("before-call", self._count)

    def _count(self, model: Any = None, **_: Any) -> None:
        self.calls[model.name] += 1


def up(aws: Aws, local: Path | str, stage: str = STAGE, **kw: Any) -> DatasetManifest:
    return upload(aws, local, stage, **kw).manifest


def upload(aws: Aws, local: Path | str, stage: str = STAGE, **kw: Any) -> Uploaded:
    kw.setdefault("progress", False)
    return upload_dataset(aws, local, stage, project=kw.pop("project", PROJECT),
                          dataset="local-set", **kw)


def keys(aws: Aws) -> set[str]:
    return {o["Key"] for o in aws.s3.list_objects_v2(Bucket=BUCKET).get("Contents", ())}


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
    m = up(aws, local)
    lm = local_manifest(local)
    assert m.uri == STAGE
    assert (m.objects, m.bytes) == (lm.objects, lm.bytes) == (5, lm.bytes)
    listing, _ = list_stage(aws.s3, STAGE)
    assert listing["shards/big.bin"][1].endswith("-2")      # really a multipart upload
    assert m.digest == lm.digest
    assert aws.calls["CreateMultipartUpload"] >= 1


def test_second_upload_sends_nothing_and_a_change_sends_one_file(aws: Aws,
                                                                 local: Path) -> None:
    up(aws, local)
    aws.calls.clear()
    m = up(aws, local)
    assert aws.calls["PutObject"] == 0 and aws.calls["UploadPart"] == 0
    assert aws.calls["ListObjectsV2"] == 2                   # before and after (1 page each)
    assert aws.calls["GetObject"] == 1                       # trainctl's record
    assert m.digest == local_manifest(local).digest

    (local / "README").write_text("a small dataset, edited\n")
    aws.calls.clear()
    m = up(aws, local)
    assert aws.calls["PutObject"] == 2 and aws.calls["UploadPart"] == 0   # record + file
    assert m.digest == local_manifest(local).digest


def test_the_record_lists_what_trainctl_wrote(aws: Aws, local: Path) -> None:
    m = up(aws, local)
    record, problem = read_record(aws.s3, STAGE)
    assert problem is None and record is not None
    assert (record.project, record.dataset) == (PROJECT, "local-set")
    listing, _ = list_stage(aws.s3, STAGE)
    assert dict(record.objects) == listing and len(listing) == m.objects == 5
    assert f"datasets/local-set/{RECORD_NAME}" in keys(aws)
    assert RECORD_NAME not in listing                        # never part of the dataset


def test_removing_a_local_file_converges(aws: Aws, local: Path) -> None:
    first = up(aws, local)
    assert first.objects == 5
    (local / "shards" / "exact.bin").unlink()
    aws.calls.clear()
    done = upload(aws, local, max_delete=(1, CHUNK))
    m, lm = done.manifest, local_manifest(local)
    assert [k for k, _, _ in done.work.delete] == ["shards/exact.bin"]
    listing, _ = list_stage(aws.s3, STAGE)
    assert "shards/exact.bin" not in listing and len(listing) == 4
    assert m.digest == lm.digest                              # the figures after the delete
    assert (m.objects, m.bytes) == (lm.objects, lm.bytes) == (4, lm.bytes)
    assert aws.calls["DeleteObjects"] == 1
    assert aws.calls["PutObject"] == 1                        # the record, without it
    record, _ = read_record(aws.s3, STAGE)
    assert record is not None and "shards/exact.bin" not in record.objects

    aws.calls.clear()
    up(aws, local)                                            # converged: nothing to do
    assert aws.calls["DeleteObjects"] == 0 and aws.calls["PutObject"] == 0


def test_stale_objects_trainctl_wrote_are_deleted_in_batches(
        aws: Aws, local: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import planner.aws.upload as upload_module

    monkeypatch.setattr(upload_module, "DELETE_BATCH", 2)
    (local / "old").mkdir()
    for k in range(5):
        (local / "old" / f"{k}.txt").write_text("old")
    up(aws, local)
    for k in range(5):
        (local / "old" / f"{k}.txt").unlink()
    aws.s3.put_object(Bucket=BUCKET, Key="datasets/local-set/marker/", Body=b"")
    aws.s3.put_object(Bucket=BUCKET, Key="datasets/local-set-2/other.txt", Body=b"not ours")
    aws.s3.put_object(Bucket=BUCKET, Key="datasets/keep.txt", Body=b"outside the prefix")
    aws.calls.clear()
    m = up(aws, local, STAGE.rstrip("/"))
    assert m.digest == local_manifest(local).digest
    assert m.objects == 5
    assert aws.calls["DeleteObjects"] == 3                    # 5 keys, 2 per call
    after = keys(aws)
    assert not any(k.startswith("datasets/local-set/old/") for k in after)
    assert {"datasets/local-set/marker/", "datasets/local-set-2/other.txt",
            "datasets/keep.txt"} <= after


def test_objects_trainctl_did_not_write_are_kept(aws: Aws, local: Path) -> None:
    """Another team's file and checkpoints that sit under the stage survive every upload,
    also when the stage had no record yet (an upload by an older trainctl)."""
    theirs = {"datasets/local-set/other-team/model-final.bin": b"weights",
              "datasets/local-set/checkpoints/step-100/model.pt": b"ckpt"}
    for k, body in theirs.items():
        aws.s3.put_object(Bucket=BUCKET, Key=k, Body=body)
    done = upload(aws, local, max_delete=(0, 0))
    assert done.work.delete == ()
    assert sorted(k for k, _, _ in done.work.kept) == [
        "checkpoints/step-100/model.pt", "other-team/model-final.bin"]
    (local / "README").unlink()                              # one of ours goes stale
    done = upload(aws, local, max_delete=(1, 100))
    assert [k for k, _, _ in done.work.delete] == ["README"]
    after = keys(aws)
    assert set(theirs) <= after and "datasets/local-set/README" not in after
    for k, body in theirs.items():
        assert aws.s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() == body
    record, _ = read_record(aws.s3, STAGE)
    assert record is not None and not set(record.objects) & {
        "other-team/model-final.bin", "checkpoints/step-100/model.pt"}


def test_an_object_rewritten_by_someone_else_is_no_longer_trainctls(aws: Aws,
                                                                     local: Path) -> None:
    up(aws, local)
    aws.s3.put_object(Bucket=BUCKET, Key="datasets/local-set/README", Body=b"their version")
    (local / "README").unlink()
    done = upload(aws, local, max_delete=(0, 0))
    assert done.work.delete == () and [k for k, _, _ in done.work.kept] == ["README"]
    assert aws.s3.get_object(Bucket=BUCKET, Key="datasets/local-set/README")[
        "Body"].read() == b"their version"


def test_more_to_delete_than_the_plan_said_changes_nothing(aws: Aws, local: Path) -> None:
    up(aws, local)
    before = keys(aws)
    (local / "README").unlink()
    (local / "empty").unlink()
    (local / "new.txt").write_text("new")
    aws.calls.clear()
    with pytest.raises(TrainctlError, match=r"changed since the plan.*delete 2 object"):
        upload(aws, local, max_delete=(1, 10**6))
    with pytest.raises(TrainctlError, match="changed since the plan"):
        upload(aws, local, max_delete=(2, 1))                # the bytes count too
    assert keys(aws) == before
    assert aws.calls["PutObject"] == aws.calls["DeleteObjects"] == 0


def test_a_stage_recorded_by_another_project_is_refused(aws: Aws, local: Path) -> None:
    up(aws, local, project="other-project")
    before = keys(aws)
    (local / "README").unlink()
    with pytest.raises(TrainctlError, match="names trainctl project 'other-project'"):
        up(aws, local)
    assert keys(aws) == before


def test_a_bucket_root_stage_is_refused(aws: Aws, local: Path) -> None:
    aws.s3.put_object(Bucket=BUCKET, Key="other-team/model-final.bin", Body=b"w")
    for stage in (f"s3://{BUCKET}/", f"s3://{BUCKET}"):
        with pytest.raises(TrainctlError, match="bucket root"):
            up(aws, local, stage)
    assert keys(aws) == {"other-team/model-final.bin"}


def test_a_local_file_named_like_the_record_is_refused(aws: Aws, local: Path) -> None:
    (local / RECORD_NAME).write_text("{}")
    with pytest.raises(TrainctlError, match="rename that file"):
        up(aws, local)
    assert keys(aws) == set()


def test_an_unreadable_record_owns_nothing(aws: Aws, local: Path) -> None:
    up(aws, local)
    aws.s3.put_object(Bucket=BUCKET, Key=f"datasets/local-set/{RECORD_NAME}", Body=b"{oops")
    record, problem = read_record(aws.s3, STAGE)
    assert record is None and problem is not None and "not JSON" in problem
    (local / "README").unlink()
    done = upload(aws, local, max_delete=(0, 0))
    assert done.work.delete == () and "datasets/local-set/README" in keys(aws)
    record, problem = read_record(aws.s3, STAGE)          # rewritten: the folder's keys
    assert problem is None and record is not None and "README" not in record.objects


def test_progress_bar_runs(aws: Aws, local: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = up(aws, local, progress=True)
    assert m.digest == local_manifest(local).digest


def test_missing_folder_is_a_clear_error(aws: Aws, tmp_path: Path) -> None:
    with pytest.raises(TrainctlError, match="not a directory"):
        up(aws, tmp_path / "nope")


def test_a_record_trainctl_may_not_read_owns_nothing() -> None:
    from botocore.exceptions import ClientError

    class Denied:
        def get_object(self, **_: Any) -> Any:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetObject")

    record, problem = read_record(Denied(), STAGE)
    assert record is None and problem is not None and "AccessDenied" in problem
