"""The direct engine tells mount.sh which volumes it may format (issue 10, item 3) and
records the filesystem size each mount made or grew (item 7). Moto's server, a recording
SSM transport."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest
from test_engine_direct import (
    SCRATCH,
    TRAINER,
    FakeSsm,
    change,
    create_instance,
    create_volume,
    make_engine,
    make_spec,
    tags_of,
)

from planner.dataplane.status import ScriptResult
from planner.engines import StepFailed
from planner.live import TAG_CREATED_EMPTY, TAG_MOUNTED, TAG_PROJECT
from planner.plan import Action
from planner.tags import GIB

MOUNT_AFTER = {"device": "/dev/sdg", "path": "/scratch", "read_only": False,
               "filesystem": "ext4"}


class RecordingSsm(FakeSsm):
    def __init__(self, answers: dict[str, ScriptResult] | None = None) -> None:
        super().__init__(answers)
        self.scripts: list[str] = []

    def run(self, instance_id: str, script: str, *, timeout: float) -> ScriptResult:
        self.scripts.append(script)
        return super().run(instance_id, script, timeout=timeout)

    def param(self, name: str) -> str:
        mount = [s for s in self.scripts if "MAY_FORMAT=" in s][-1]
        m = re.search(rf"^{name}=(.*)$", mount, re.M)
        assert m is not None
        return m.group(1)


def _mount(engine: Any, vid: str, iid: str) -> dict[str, str]:
    return engine.apply(change("mount.trainer.scratch", Action.CREATE, after={
        **MOUNT_AFTER, "instance_id": iid, "volume_id": vid}), Action.CREATE)


def _volume(aws: Any, vid: str) -> dict[str, Any]:
    return aws.ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]


def test_a_volume_created_empty_is_tagged_and_may_be_formatted(moto_endpoint: str) -> None:
    ssm = RecordingSsm({"mount": ScriptResult("ok", {"fs_bytes": 10 * GIB,
                                                     "formatted": True})})
    engine, aws = make_engine(make_spec(volumes=(SCRATCH,), instances=(TRAINER,)),
                              moto_endpoint, ssm)
    vid = create_volume(engine, "scratch")
    assert tags_of(_volume(aws, vid))[TAG_CREATED_EMPTY] == "true"
    iid = create_instance(engine)
    facts = _mount(engine, vid, iid)
    assert ssm.param("MAY_FORMAT") == "true"
    assert ssm.param("VOLUME_BYTES") == str(10 * GIB)
    assert facts["fs_bytes"] == str(10 * GIB) and facts["formatted"] == "true"
    assert tags_of(_volume(aws, vid))[TAG_MOUNTED] == f"{iid}:/scratch fs={10 * GIB}"


def test_a_volume_from_a_snapshot_is_never_formatted(moto_endpoint: str) -> None:
    ssm = RecordingSsm()
    _, aws = make_engine(make_spec(), moto_endpoint)
    src = aws.ec2.create_volume(AvailabilityZone="us-east-1a", Size=10)["VolumeId"]
    snap = aws.ec2.create_snapshot(VolumeId=src)["SnapshotId"]
    restored = replace(SCRATCH, snapshot_id=snap)
    engine, aws = make_engine(make_spec(volumes=(restored,), instances=(TRAINER,)),
                              moto_endpoint, ssm)
    vid = create_volume(engine, "scratch")
    assert TAG_CREATED_EMPTY not in tags_of(_volume(aws, vid))
    _mount(engine, vid, create_instance(engine))
    assert ssm.param("MAY_FORMAT") == "false"


@pytest.mark.parametrize("why", ["import", "other project", "tag absent",
                                 "spec adds a snapshot"])
def test_only_this_projects_empty_creations_may_be_formatted(moto_endpoint: str,
                                                            why: str) -> None:
    ssm = RecordingSsm()
    _, aws = make_engine(make_spec(), moto_endpoint)
    tags = [{"Key": TAG_PROJECT, "Value": "other" if why == "other project" else "proj"}]
    if why != "tag absent":
        tags.append({"Key": TAG_CREATED_EMPTY, "Value": "true"})   # e.g. copied by hand
    vid = aws.ec2.create_volume(AvailabilityZone="us-east-1a", Size=10, TagSpecifications=[
        {"ResourceType": "volume", "Tags": tags}])["VolumeId"]
    vs = SCRATCH
    if why == "import":
        vs = replace(SCRATCH, import_id=vid)
    elif why == "spec adds a snapshot":
        vs = replace(SCRATCH, snapshot_id="snap-0123456789abcdef0")
    engine, _ = make_engine(make_spec(volumes=(vs,), instances=(TRAINER,)), moto_endpoint,
                            ssm)
    _mount(engine, vid, create_instance(engine))
    assert ssm.param("MAY_FORMAT") == "false"


def test_a_refused_mount_is_a_failed_step_and_records_nothing(moto_endpoint: str) -> None:
    refused = ScriptResult("refused", {"error": "device holds data but no known filesystem",
                                       "detail": "non-zero bytes at offset 0"})
    engine, aws = make_engine(make_spec(volumes=(SCRATCH,), instances=(TRAINER,)),
                              moto_endpoint, RecordingSsm({"mount": refused}))
    vid = create_volume(engine, "scratch")
    iid = create_instance(engine)
    with pytest.raises(StepFailed, match="refused: device holds data but no known filesystem"):
        _mount(engine, vid, iid)
    assert TAG_MOUNTED not in tags_of(_volume(aws, vid))


def test_a_mount_that_reports_no_size_records_the_old_form(moto_endpoint: str) -> None:
    engine, aws = make_engine(make_spec(volumes=(SCRATCH,), instances=(TRAINER,)),
                              moto_endpoint, RecordingSsm({"mount": ScriptResult(
                                  "ok", {"fs_bytes": "junk"})}))
    vid = create_volume(engine, "scratch")
    iid = create_instance(engine)
    _mount(engine, vid, iid)
    assert tags_of(_volume(aws, vid))[TAG_MOUNTED] == f"{iid}:/scratch"
