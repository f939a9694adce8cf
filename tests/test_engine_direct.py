"""The direct engine against a real moto server; SSM through a fake transport that answers
with chosen ScriptResults (and, for one end-to-end prewarm, the real local runner)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from planner.aws.fresh import AwsFreshRead
from planner.aws.iam import ensure_instance_profile
from planner.aws.session import AwsContext, connect
from planner.dataplane import scripts
from planner.dataplane.status import ScriptResult
from planner.engines import Engine, StepBlocked, StepFailed, engine_class
from planner.engines.direct import DirectEngine
from planner.guards import Guarded, Guards
from planner.live import (
    TAG_ADDRESS,
    TAG_CLIENT_TOKEN,
    TAG_DATASET_DIGEST,
    TAG_MOUNTED,
    TAG_PERSISTENT,
    TAG_PROJECT,
    TAG_PROTECTED,
)
from planner.plan import Action, Block, Change, Reason, ResourceType, Rule
from planner.rules import Overrides
from planner.spec import Checkpoints, Dataset, Defaults, Instance, Mount, Spec, Training, Volume

AMI = "ami-0123456789abcdef0"
LATER = timedelta(hours=1)      # past min_age_minutes, so only the rule under test applies
KINDS = ("mount", "unmount", "sync", "verify", "training_check", "checkpoint_sync",
         "install_spot_watcher", "stop_training")


def script_kind(script: str) -> str:
    """Which data-plane template a rendered script came from (by its header comment)."""
    for kind in KINDS:
        if scripts.template(kind).splitlines()[1] in script:
            return kind
    raise AssertionError("not a data-plane script")


class FakeSsm:
    """An SsmTransport answering each script kind with a chosen ScriptResult."""

    def __init__(self, answers: Mapping[str, ScriptResult] | None = None):
        self.answers = {k: ScriptResult("ok") for k in KINDS}
        self.answers["training_check"] = ScriptResult("ok", {"running": False})
        self.answers["stop_training"] = ScriptResult(
            "ok", {"stopped": True, "signalled": [42], "killed": [],
                   "result": "the training job exited on SIGTERM"})
        self.answers["checkpoint_sync"] = ScriptResult(
            "ok", {"present": True, "objects": 2, "bytes": 10, "copied": 2})
        self.answers.update(answers or {})
        self.calls: list[tuple[str, str]] = []       # (kind, instance id)
        self.hook: Callable[[str, str], None] | None = None

    def run(self, instance_id: str, script: str, *, timeout: float) -> ScriptResult:
        kind = script_kind(script)
        self.calls.append((kind, instance_id))
        if self.hook:
            self.hook(kind, instance_id)
        return self.answers[kind]

    def kinds(self) -> list[str]:
        return [k for k, _ in self.calls]


def make_spec(*, volumes: tuple[Volume, ...] = (), instances: tuple[Instance, ...] = (),
              datasets: tuple[Dataset, ...] = ()) -> Spec:
    return Spec(
        version=1, project="proj", region="us-east-1",
        defaults=Defaults(availability_zone="us-east-1a", min_age_minutes=5,
                          tags=MappingProxyType({"team": "ml"})),
        volumes=MappingProxyType({v.name: v for v in volumes}),
        instances=MappingProxyType({i.name: i for i in instances}),
        datasets=MappingProxyType({d.name: d for d in datasets}),
    )


def make_engine(spec: Spec, endpoint: str, ssm: Any = None, *, plan_id: str = "plan0001",
                overrides: Overrides | None = None,
                later: timedelta = LATER) -> tuple[Any, AwsContext]:
    """The direct engine behind the guards, as the executor runs a one-step unit."""
    seed = connect("us-east-1", endpoint)     # what `trainctl local up` seeds
    ensure_instance_profile(seed.iam, role="trainctl-ssm", profile="trainctl-ssm",
                            emulator=True)
    aws = connect("us-east-1", endpoint)
    ssm = ssm or FakeSsm()
    overrides = overrides or Overrides()

    def clock() -> datetime:
        return datetime.now(UTC) + later

    engine = DirectEngine(spec, aws, ssm, plan_id=plan_id, overrides=overrides, clock=clock)
    return Guarded(engine, Guards(spec, overrides, AwsFreshRead(aws), ssm, clock=clock)), aws


def change(address: str, *actions: Action, id: str | None = None,
           before: Mapping[str, Any] | None = None,
           after: Mapping[str, Any] | None = None) -> Change:
    return Change(address=address, type=ResourceType(address.split(".")[0]),
                  actions=tuple(actions), reason=Reason.REPLACE_BECAUSE_CANNOT_UPDATE
                  if len(actions) == 2 else Reason.CREATE_BECAUSE_MISSING, id=id,
                  before=before, after=after)


def tags_of(resource: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", ())}


def volumes(aws: AwsContext) -> list[dict[str, Any]]:
    return list(aws.ec2.describe_volumes(
        Filters=[{"Name": f"tag:{TAG_ADDRESS}", "Values": ["*"]}])["Volumes"])


def instances(aws: AwsContext, state: str | None = None) -> list[dict[str, Any]]:
    res = aws.ec2.describe_instances()["Reservations"]
    found = [i for r in res for i in r["Instances"]]
    return [i for i in found if state is None or i["State"]["Name"] == state]


CACHE = Volume(name="cache", size_gib=50, availability_zone="us-east-1a", type="gp3",
               iops=4000, throughput_mibps=250, persistent=True, protect=True,
               tags=MappingProxyType({"owner": "alice"}))
SCRATCH = Volume(name="scratch", size_gib=10, availability_zone="us-east-1a")
TRAINER = Instance(
    name="trainer", instance_type="g5.xlarge", ami=AMI, availability_zone="us-east-1a",
    iam_instance_profile="trainctl-ssm",
    mounts=(Mount(volume="scratch", device="/dev/sdg", path="/scratch"),),
    checkpoints=Checkpoints(path="/scratch/ckpt", sync_to="s3://ckpt/run/"),
    training=Training(pid_file="/run/train.pid", process_patterns=("python.*train",)),
    tags=MappingProxyType({"job": "ft"}),
)


def attach_scratch() -> Change:
    """attachment.trainer.scratch as the diff writes it."""
    return change("attachment.trainer.scratch", Action.CREATE, after={
        "instance": "trainer", "volume": "scratch", "device": "/dev/sdg"})


def create_volume(engine: DirectEngine, name: str) -> str:
    return engine.apply(change(f"volume.{name}", Action.CREATE), Action.CREATE)["id"]


def create_instance(engine: DirectEngine, name: str = "trainer") -> str:
    return engine.apply(change(f"instance.{name}", Action.CREATE), Action.CREATE)["id"]


# --- the boundary -----------------------------------------------------------------------


def test_engine_is_registered_and_fits_the_protocol(moto_endpoint: str) -> None:
    assert engine_class("direct") is DirectEngine
    engine, _ = make_engine(make_spec(), moto_endpoint)
    assert isinstance(engine, Engine)
    assert engine.name == "direct"


def test_unknown_phase_is_a_failed_step(moto_endpoint: str) -> None:
    engine, _ = make_engine(make_spec(), moto_endpoint)
    with pytest.raises(StepFailed, match="cannot update a attachment"):
        engine.apply(change("attachment.a.b", Action.UPDATE), Action.UPDATE)


# --- volumes ----------------------------------------------------------------------------


def test_volume_create_tags_everything_and_is_idempotent(moto_endpoint: str) -> None:
    engine, aws = make_engine(make_spec(volumes=(CACHE,)), moto_endpoint)
    first = engine.apply(change("volume.cache", Action.CREATE), Action.CREATE)
    again = engine.apply(change("volume.cache", Action.CREATE), Action.CREATE)
    assert again["id"] == first["id"] and again.get("reused") == "true"
    found = volumes(aws)
    assert len(found) == 1                       # same ClientToken twice: one volume
    v = found[0]
    assert (v["Size"], v["VolumeType"], v["Iops"], v["Throughput"]) == (50, "gp3", 4000, 250)
    assert v["AvailabilityZone"] == "us-east-1a" and v["State"] == "available"
    tags = tags_of(v)
    assert tags["Name"] == "proj/volume.cache"
    assert tags[TAG_PROJECT] == "proj" and tags[TAG_ADDRESS] == "volume.cache"
    assert tags[TAG_PERSISTENT] == "true" and tags[TAG_PROTECTED] == "true"
    assert tags["team"] == "ml" and tags["owner"] == "alice"
    token = tags[TAG_CLIENT_TOKEN]
    assert token == engine.client_token(change("volume.cache", Action.CREATE))
    assert len(token) <= 64 and token.startswith("plan0001")
    # another plan is another token: a volume really missing again is created again
    other, _ = make_engine(make_spec(volumes=(CACHE,)), moto_endpoint, plan_id="plan0002")
    assert other.client_token(change("volume.cache", Action.CREATE)) != token
    replace_token = engine.client_token(change("volume.cache", Action.DELETE, Action.CREATE))
    assert replace_token != token and len(replace_token) <= 64


def test_volume_update_uses_modify_volume_and_tags(moto_endpoint: str) -> None:
    engine, aws = make_engine(make_spec(volumes=(SCRATCH,)), moto_endpoint)
    vid = create_volume(engine, "scratch")
    facts = engine.apply(change("volume.scratch", Action.UPDATE, id=vid, after={
        "id": vid, "size_gib": 20, "tags": {"team": "infra", TAG_PROTECTED: "false"}}),
        Action.UPDATE)
    assert facts["modified"] == "Size"
    v = aws.ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]
    assert v["Size"] == 20
    assert tags_of(v)["team"] == "infra" and tags_of(v)[TAG_PROTECTED] == "false"
    mods = aws.ec2.describe_volumes_modifications(VolumeIds=[vid])["VolumesModifications"]
    assert [m["TargetSize"] for m in mods] == [20]
    assert aws.calls["ModifyVolume"] == 1
    # nothing to modify: no ModifyVolume call
    engine.apply(change("volume.scratch", Action.UPDATE, id=vid,
                        after={"id": vid, "size_gib": 20}), Action.UPDATE)
    assert aws.calls["ModifyVolume"] == 1


def test_modifications_are_recorded_for_the_24_hour_limit(moto_endpoint: str) -> None:
    """AWS reports only a volume's latest modification: trainctl records the start of
    each one it makes, so the fifth within 24 h is blocked before AWS refuses it."""
    engine, aws = make_engine(make_spec(volumes=(SCRATCH,)), moto_endpoint)
    vid = create_volume(engine, "scratch")
    for size in (20, 30, 40, 50):
        engine.apply(change("volume.scratch", Action.UPDATE, id=vid,
                            after={"id": vid, "size_gib": size}), Action.UPDATE)
    raw = aws.ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]
    recorded = tags_of(raw)["trainctl:modified"].split(",")
    assert len(recorded) == 4 and recorded == sorted(recorded)
    seen: list[int] = []

    def latest_only(parsed: Any = None, **_: Any) -> None:
        """Answer as AWS does (moto lists every modification): only the latest."""
        mods = parsed["VolumesModifications"]
        parsed["VolumesModifications"] = [max(mods, key=lambda m: m["StartTime"])]
        seen.append(len(parsed["VolumesModifications"]))

    aws.on("after-call.ec2.DescribeVolumesModifications", latest_only)
    with pytest.raises(StepBlocked) as err:
        engine.apply(change("volume.scratch", Action.UPDATE, id=vid,
                            after={"id": vid, "size_gib": 60}), Action.UPDATE)
    assert seen == [1]
    assert [b.rule for b in err.value.blocks] == [Rule.MODIFY_PENDING]
    assert "4 modifications" in err.value.blocks[0].message
    assert aws.ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]["Size"] == 50


def test_volume_update_refuses_a_shrink(moto_endpoint: str) -> None:
    engine, _ = make_engine(make_spec(volumes=(SCRATCH,)), moto_endpoint)
    vid = create_volume(engine, "scratch")
    with pytest.raises(StepFailed, match="cannot shrink"):
        engine.apply(change("volume.scratch", Action.UPDATE, id=vid,
                            after={"id": vid, "size_gib": 5}), Action.UPDATE)


def test_volume_delete_takes_a_final_snapshot_first(moto_endpoint: str) -> None:
    vol = replace(SCRATCH, on_delete="snapshot")
    engine, aws = make_engine(make_spec(volumes=(vol,)), moto_endpoint)
    vid = create_volume(engine, "scratch")
    facts = engine.apply(change("volume.scratch", Action.DELETE, id=vid), Action.DELETE)
    snaps = aws.ec2.describe_snapshots(SnapshotIds=[facts["snapshot_id"]])["Snapshots"]
    assert snaps[0]["VolumeId"] == vid and snaps[0]["State"] == "completed"
    assert tags_of(snaps[0])[TAG_ADDRESS] == "volume.scratch"
    assert tags_of(snaps[0])[TAG_PROJECT] == "proj"
    assert volumes(aws) == []
    calls = list(aws.calls)
    assert calls.index("CreateSnapshot") < calls.index("DeleteVolume")
    # deleting again is a no-op, not an error
    again = engine.apply(change("volume.scratch", Action.DELETE, id=vid), Action.DELETE)
    assert again["result"] == "already gone"


def test_a_volume_dropped_from_the_spec_still_gets_its_final_snapshot(
        moto_endpoint: str) -> None:
    """on_delete is recorded as a tag at creation: once the spec no longer names the
    volume (and the plan carries no on_delete), the delete still snapshots first."""
    vol = replace(SCRATCH, on_delete="snapshot")
    engine, aws = make_engine(make_spec(volumes=(vol,)), moto_endpoint)
    vid = create_volume(engine, "scratch")
    assert tags_of(aws.ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0])[
        "trainctl:on-delete"] == "snapshot"
    orphan_engine, _ = make_engine(make_spec(), moto_endpoint)
    facts = orphan_engine.apply(change("volume.scratch", Action.DELETE, id=vid), Action.DELETE)
    assert "snapshot_id" in facts
    assert volumes(aws) == []


def test_volume_delete_without_snapshot(moto_endpoint: str) -> None:
    engine, aws = make_engine(make_spec(volumes=(SCRATCH,)), moto_endpoint)
    vid = create_volume(engine, "scratch")
    facts = engine.apply(change("volume.scratch", Action.DELETE, id=vid), Action.DELETE)
    assert "snapshot_id" not in facts
    assert aws.calls["CreateSnapshot"] == 0
    assert volumes(aws) == []


def test_hand_edited_plan_cannot_delete_a_persistent_volume(moto_endpoint: str) -> None:
    engine, aws = make_engine(make_spec(volumes=(CACHE,)), moto_endpoint)
    vid = create_volume(engine, "cache")
    # The spec no longer names the volume, and the plan's blocked_by was removed by hand.
    orphan_engine, _ = make_engine(make_spec(), moto_endpoint)
    edited = change("volume.cache", Action.DELETE, id=vid)
    assert edited.blocked_by == ()
    with pytest.raises(StepBlocked) as err:
        orphan_engine.apply(edited, Action.DELETE)
    assert {b.rule for b in err.value.blocks} == {Rule.PERSISTENT, Rule.PROTECTED}
    assert "persistent" in str(err.value)
    with pytest.raises(StepBlocked):     # --force never lifts persistent/protected
        make_engine(make_spec(), moto_endpoint, overrides=Overrides(force=True))[0].apply(
            edited, Action.DELETE)
    assert [v["VolumeId"] for v in volumes(aws)] == [vid]
    assert aws.calls["DeleteVolume"] == 0
    allowed, _ = make_engine(make_spec(), moto_endpoint, overrides=Overrides(
        allow_delete=frozenset({"volume.cache"})))
    allowed.apply(edited, Action.DELETE)
    assert volumes(aws) == []


def test_young_volume_is_not_deleted_without_force(moto_endpoint: str) -> None:
    engine, aws = make_engine(make_spec(volumes=(SCRATCH,)), moto_endpoint, later=timedelta())
    vid = create_volume(engine, "scratch")
    with pytest.raises(StepBlocked) as err:
        engine.apply(change("volume.scratch", Action.DELETE, id=vid), Action.DELETE)
    assert [b.rule for b in err.value.blocks] == [Rule.MIN_AGE]
    forced, _ = make_engine(make_spec(volumes=(SCRATCH,)), moto_endpoint, later=timedelta(),
                            overrides=Overrides(force=True))
    forced.apply(change("volume.scratch", Action.DELETE, id=vid,
                        after=None), Action.DELETE)
    assert volumes(aws) == []


def test_attached_volume_is_not_deleted(moto_endpoint: str) -> None:
    spec = make_spec(volumes=(SCRATCH,), instances=(TRAINER,))
    engine, aws = make_engine(spec, moto_endpoint)
    vid = create_volume(engine, "scratch")
    create_instance(engine)
    engine.apply(attach_scratch(), Action.CREATE)
    with pytest.raises(StepBlocked) as err:
        engine.apply(change("volume.scratch", Action.DELETE, id=vid), Action.DELETE)
    assert [b.rule for b in err.value.blocks] == [Rule.ATTACHED]
    assert len(volumes(aws)) == 1


# --- attachments -------------------------------------------------------------------------


def test_cross_az_attach_is_refused(moto_endpoint: str) -> None:
    far = replace(SCRATCH, availability_zone="us-east-1b")
    engine, aws = make_engine(make_spec(volumes=(far,), instances=(TRAINER,)), moto_endpoint)
    vid = create_volume(engine, "scratch")
    create_instance(engine)
    with pytest.raises(StepFailed, match=r"^az-mismatch: .*us-east-1b.*us-east-1a"):
        engine.apply(attach_scratch(), Action.CREATE)
    v = aws.ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]
    assert v["State"] == "available" and v["Attachments"] == []
    assert aws.calls["AttachVolume"] == 0


def test_attach_then_detach(moto_endpoint: str) -> None:
    engine, aws = make_engine(make_spec(volumes=(SCRATCH,), instances=(TRAINER,)),
                              moto_endpoint)
    vid = create_volume(engine, "scratch")
    iid = create_instance(engine)
    facts = engine.apply(change("attachment.trainer.scratch", Action.CREATE,
                                after={"device": "/dev/sdg", "instance_id": None,
                                       "volume_id": vid}), Action.CREATE)
    assert facts == {"instance_id": iid, "volume_id": vid, "device": "/dev/sdg"}
    v = aws.ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]
    assert v["State"] == "in-use"
    assert (v["Attachments"][0]["InstanceId"], v["Attachments"][0]["Device"]) == (
        iid, "/dev/sdg")
    again = engine.apply(attach_scratch(), Action.CREATE)
    assert again["result"] == "already attached"
    engine.apply(change("attachment.trainer.scratch", Action.DELETE,
                        before={"instance_id": iid, "volume_id": vid}), Action.DELETE)
    v = aws.ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]
    assert v["State"] == "available"


def test_steps_after_a_create_describe_what_it_made_by_id(moto_endpoint: str) -> None:
    """The plan cannot know the ids of what the same apply creates; the engine does, so
    the attachment describes both by id (no tag-filtered search, which AWS may answer
    before a new resource's tags are visible)."""
    engine, aws = make_engine(make_spec(volumes=(SCRATCH,), instances=(TRAINER,)),
                              moto_endpoint)
    vid = create_volume(engine, "scratch")
    iid = create_instance(engine)
    seen: list[tuple[str, dict[str, Any]]] = []

    def record(model: Any = None, params: Any = None, **_: Any) -> None:
        if model is not None and model.name.startswith("Describe"):
            seen.append((model.name, dict(params or {})))

    aws.on("before-parameter-build.ec2", record)      # the call's own parameters
    facts = engine.apply(attach_scratch(), Action.CREATE)
    assert facts == {"instance_id": iid, "volume_id": vid, "device": "/dev/sdg"}
    assert not [p for _, p in seen if "Filters" in p]
    assert ("DescribeInstances", {"InstanceIds": [iid]}) in seen
    assert ("DescribeVolumes", {"VolumeIds": [vid]}) in seen
    # A fresh engine (a later apply) knows nothing of them: it finds them by tag.
    later, aws2 = make_engine(make_spec(volumes=(SCRATCH,), instances=(TRAINER,)),
                              moto_endpoint)
    assert later.volume_id_of("scratch") == vid and later.instance_id_of("trainer") == iid
    assert aws2.calls["DescribeVolumes"] == aws2.calls["DescribeInstances"] == 1


# --- instances -----------------------------------------------------------------------------


def test_spot_instance_create_with_tags_profile_and_watcher(moto_endpoint: str) -> None:
    spot = replace(TRAINER, market="spot", protect=True)
    ssm = FakeSsm()
    engine, aws = make_engine(make_spec(instances=(spot,)), moto_endpoint, ssm)
    facts = engine.apply(change("instance.trainer", Action.CREATE), Action.CREATE)
    iid = facts["id"]
    inst = aws.ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    assert inst["State"]["Name"] == "running"
    assert inst["InstanceLifecycle"] == "spot"
    assert inst["InstanceType"] == "g5.xlarge" and inst["ImageId"] == AMI
    assert inst["Placement"]["AvailabilityZone"] == "us-east-1a"
    assert inst["IamInstanceProfile"]["Arn"].endswith("/trainctl-ssm")
    assert inst["MetadataOptions"]["HttpTokens"] == "required"
    assert inst["ClientToken"] == engine.client_token(change("instance.trainer", Action.CREATE))
    tags = tags_of(inst)
    assert tags["Name"] == "proj/instance.trainer"
    assert tags[TAG_PROJECT] == "proj" and tags[TAG_ADDRESS] == "instance.trainer"
    assert tags[TAG_PROTECTED] == "true" and tags["job"] == "ft" and tags["team"] == "ml"
    root = aws.ec2.describe_volumes(
        Filters=[{"Name": "attachment.instance-id", "Values": [iid]}])["Volumes"]
    assert tags_of(root[0])[TAG_PROJECT] == "proj"
    assert TAG_ADDRESS not in tags_of(root[0])     # not mistaken for a managed volume
    assert ssm.calls == [("install_spot_watcher", iid)]
    assert facts["spot_watcher"].startswith("installed")
    # the same step again: the same instance (ClientToken), not a second one
    assert engine.apply(change("instance.trainer", Action.CREATE), Action.CREATE)["id"] == iid
    assert len(instances(aws)) == 1


def test_spot_watcher_failure_fails_the_step_but_keeps_the_id(moto_endpoint: str) -> None:
    spot = replace(TRAINER, market="spot")
    ssm = FakeSsm({"install_spot_watcher": ScriptResult("unknown", {"reason": "no output"})})
    engine, _ = make_engine(make_spec(instances=(spot,)), moto_endpoint, ssm)
    with pytest.raises(StepFailed, match="spot watcher") as err:
        engine.apply(change("instance.trainer", Action.CREATE), Action.CREATE)
    assert err.value.facts["id"].startswith("i-")


def test_instance_without_profile_gets_the_project_ssm_profile(moto_endpoint: str) -> None:
    plain = replace(TRAINER, iam_instance_profile=None, checkpoints=None)
    engine, aws = make_engine(make_spec(instances=(plain,)), moto_endpoint)
    iid = create_instance(engine)
    inst = aws.ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    assert inst["IamInstanceProfile"]["Arn"].endswith("/trainctl-proj-ssm")
    profile = aws.iam.get_instance_profile(InstanceProfileName="trainctl-proj-ssm")
    assert [r["RoleName"] for r in profile["InstanceProfile"]["Roles"]] == ["trainctl-proj-ssm"]
    trust = aws.iam.get_role(RoleName="trainctl-proj-ssm")["Role"]["AssumeRolePolicyDocument"]
    assert "ec2.amazonaws.com" in str(trust)
    # managed policies only (issue 10 item 8): the data policy, created on the emulator
    attached = aws.iam.list_attached_role_policies(RoleName="trainctl-proj-ssm")
    assert [p["PolicyArn"] for p in attached["AttachedPolicies"]] == [
        "arn:aws:iam::123456789012:policy/trainctl-proj-data"]
    assert aws.calls["PutRolePolicy"] == 0
    assert aws.iam.list_role_policies(RoleName="trainctl-proj-ssm")["PolicyNames"] == []
    # a second engine finds it and creates nothing
    again, aws2 = make_engine(make_spec(instances=(plain,)), moto_endpoint, plan_id="p2")
    assert again.project_profile() == "trainctl-proj-ssm"
    assert aws2.calls["CreateRole"] == 0 and aws2.calls["CreateInstanceProfile"] == 0
    assert aws2.calls["CreatePolicy"] == 0    # (the SSM policy, absent in moto, is retried)


def _terminate(engine: DirectEngine, iid: str) -> dict[str, str]:
    return engine.apply(change("instance.trainer", Action.DELETE, id=iid), Action.DELETE)


@pytest.mark.parametrize("answer", [
    ScriptResult("ok", {"running": True, "evidence": "pid 42: python train.py"}),
    ScriptResult("unknown", {"reason": "no output"}),
    ScriptResult("failed", {"error": "pgrep is not installed"}),
    ScriptResult("ok", {}),                     # ok without an answer: cannot tell
])
def test_terminate_refused_while_training_runs_or_unknown(moto_endpoint: str,
                                                          answer: ScriptResult) -> None:
    ssm = FakeSsm({"training_check": answer})
    engine, aws = make_engine(make_spec(instances=(TRAINER,)), moto_endpoint, ssm)
    iid = create_instance(engine)
    with pytest.raises(StepFailed, match=r"^training-running: ") as err:
        _terminate(engine, iid)
    assert "--stop-training instance.trainer" in str(err.value)
    assert aws.calls["TerminateInstances"] == 0
    assert instances(aws, "running")[0]["InstanceId"] == iid
    assert "checkpoint_sync" not in ssm.kinds()
    # --force no longer lifts it (min-age only)
    forced, _ = make_engine(make_spec(instances=(TRAINER,)), moto_endpoint, ssm,
                            overrides=Overrides(force=True))
    with pytest.raises(StepFailed, match=r"^training-running: "):
        _terminate(forced, iid)
    assert instances(aws, "running")[0]["InstanceId"] == iid
    # --stop-training another instance does not either
    other, _ = make_engine(make_spec(instances=(TRAINER,)), moto_endpoint, ssm,
                           overrides=Overrides(stop_training=frozenset({"instance.other"})))
    with pytest.raises(StepFailed, match=r"^training-running: "):
        _terminate(other, iid)
    assert "stop_training" not in ssm.kinds()
    # --stop-training instance.trainer stops the job, then syncs the checkpoints
    stopping, _ = make_engine(
        make_spec(instances=(TRAINER,)), moto_endpoint, ssm,
        overrides=Overrides(stop_training=frozenset({"instance.trainer"})))
    facts = _terminate(stopping, iid)
    assert facts["training"].startswith("stopped by --stop-training: the training job exited")
    assert ssm.kinds()[-3:] == ["training_check", "stop_training", "checkpoint_sync"]
    assert instances(aws, "terminated")[0]["InstanceId"] == iid


def test_a_stop_that_cannot_be_confirmed_still_blocks(moto_endpoint: str) -> None:
    ssm = FakeSsm({"training_check": ScriptResult("ok", {"running": True, "pids": [42]}),
                   "stop_training": ScriptResult("failed", {"error": "did not end"})})
    engine, aws = make_engine(
        make_spec(instances=(TRAINER,)), moto_endpoint, ssm,
        overrides=Overrides(stop_training=frozenset({"instance.trainer"})))
    iid = create_instance(engine)
    with pytest.raises(StepFailed, match=r"^training-running: .*could not stop it"):
        _terminate(engine, iid)
    assert "checkpoint_sync" not in ssm.kinds()
    assert instances(aws, "running")[0]["InstanceId"] == iid


def test_terminate_syncs_checkpoints_before_terminating(moto_endpoint: str) -> None:
    ssm = FakeSsm()
    engine, aws = make_engine(make_spec(instances=(TRAINER,)), moto_endpoint, ssm)
    iid = create_instance(engine)
    seen_state: list[str] = []
    ssm.hook = lambda kind, i: seen_state.append(
        aws.ec2.describe_instances(InstanceIds=[i])["Reservations"][0]["Instances"][0][
            "State"]["Name"])
    facts = _terminate(engine, iid)
    assert ssm.calls == [("training_check", iid), ("checkpoint_sync", iid)]
    assert seen_state == ["running", "running"]
    assert facts["checkpoints"] == ("synced /scratch/ckpt to s3://ckpt/run/ (2 files, "
                                    "2 copied now)")
    assert instances(aws, "terminated")[0]["InstanceId"] == iid
    assert _terminate(engine, iid)["result"] == "already gone"


def test_terminate_refused_when_checkpoint_sync_fails(moto_endpoint: str) -> None:
    ssm = FakeSsm({"checkpoint_sync": ScriptResult("failed", {"error": "AccessDenied"},
                                                   "x" * 50_000)})
    engine, aws = make_engine(make_spec(instances=(TRAINER,)), moto_endpoint, ssm)
    iid = create_instance(engine)
    with pytest.raises(StepFailed, match=r"^checkpoint-sync: ") as err:
        _terminate(engine, iid)
    assert "AccessDenied" in str(err.value)
    assert len(str(err.value)) < 3000            # the output is cut to a readable size
    assert instances(aws, "running")[0]["InstanceId"] == iid


def test_protected_instance_is_not_terminated(moto_endpoint: str) -> None:
    guarded = replace(TRAINER, protect=True)
    ssm = FakeSsm()
    engine, aws = make_engine(make_spec(instances=(guarded,)), moto_endpoint, ssm)
    iid = create_instance(engine)
    with pytest.raises(StepBlocked, match="protected"):
        _terminate(engine, iid)
    assert ssm.calls == [] and instances(aws, "running")


# --- mounts and syncs ----------------------------------------------------------------------


def _attached(engine: DirectEngine) -> tuple[str, str]:
    vid = create_volume(engine, "scratch")
    iid = create_instance(engine)
    engine.apply(attach_scratch(), Action.CREATE)
    return vid, iid


def test_mount_sets_and_unmount_clears_the_mounted_tag(moto_endpoint: str) -> None:
    ssm = FakeSsm()
    engine, aws = make_engine(make_spec(volumes=(SCRATCH,), instances=(TRAINER,)),
                              moto_endpoint, ssm)
    vid, iid = _attached(engine)
    engine.apply(change("mount.trainer.scratch", Action.CREATE, after={
        "device": "/dev/sdg", "path": "/scratch", "read_only": False, "filesystem": "xfs",
        "instance_id": iid, "volume_id": vid}), Action.CREATE)
    v = aws.ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]
    assert tags_of(v)[TAG_MOUNTED] == f"{iid}:/scratch"
    engine.apply(change("mount.trainer.scratch", Action.DELETE, before={
        "path": "/scratch", "instance_id": iid, "volume_id": vid}), Action.DELETE)
    v = aws.ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]
    assert TAG_MOUNTED not in tags_of(v)
    # the checkpoints (/scratch/ckpt) live on this volume: checked and synced first
    assert ssm.kinds() == ["mount", "training_check", "checkpoint_sync", "unmount"]


def test_mount_failure_is_a_failed_step_without_the_tag(moto_endpoint: str) -> None:
    ssm = FakeSsm({"mount": ScriptResult("unknown", {"reason": "no output"}, "")})
    engine, aws = make_engine(make_spec(volumes=(SCRATCH,), instances=(TRAINER,)),
                              moto_endpoint, ssm)
    vid, _ = _attached(engine)
    with pytest.raises(StepFailed, match=r"mount of .* failed: no output"):
        engine.apply(change("mount.trainer.scratch", Action.CREATE, after={
            "device": "/dev/sdg", "path": "/scratch", "read_only": False,
            "filesystem": "ext4"}), Action.CREATE)
    assert TAG_MOUNTED not in tags_of(aws.ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0])


def test_sync_records_the_dataset_digest_entry(moto_endpoint: str) -> None:
    ds = Dataset(name="imgs", source="s3://data/imgs/", strategy="local-cache",
                 path="/scratch/imgs")
    other = "sha256:" + "b" * 64
    engine, aws = make_engine(make_spec(volumes=(SCRATCH,), instances=(TRAINER,),
                                        datasets=(ds,)), moto_endpoint)
    vid, iid = _attached(engine)
    aws.ec2.create_tags(Resources=[vid], Tags=[{"Key": TAG_DATASET_DIGEST,
                                                "Value": f"zz={other}"}])
    digest = "sha256:" + "a" * 64
    facts = engine.apply(change("sync.trainer.imgs", Action.CREATE, after={
        "strategy": "local-cache", "uri": "s3://data/imgs/", "path": "/scratch/imgs",
        "objects": 3, "bytes": 30, "digest": digest, "record_on": "volume.scratch",
        "instance_id": iid, "volume_id": vid}), Action.CREATE)
    tag = tags_of(aws.ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0])[TAG_DATASET_DIGEST]
    # the entry records the counts (DESIGN: NAME=sha256:<32 hex>:<objects>:<bytes>);
    # another dataset's older entry (no counts) is kept as it was
    assert tag == f"imgs=sha256:{'a' * 32}:3:30,zz=sha256:{'b' * 32}"
    assert facts["recorded_on"] == vid


def test_existing_ebs_is_verified_not_synced(moto_endpoint: str) -> None:
    ds = Dataset(name="old", source="s3://data/old/", strategy="existing-ebs",
                 volume="scratch", path="/")
    ssm = FakeSsm()
    engine, aws = make_engine(make_spec(volumes=(SCRATCH,), instances=(TRAINER,),
                                        datasets=(ds,)), moto_endpoint, ssm)
    vid, _ = _attached(engine)
    engine.apply(change("sync.trainer.old", Action.CREATE, after={
        "strategy": "existing-ebs", "uri": "s3://data/old/", "path": "/scratch",
        "digest": "sha256:" + "c" * 64, "record_on": "volume.scratch"}), Action.CREATE)
    assert ssm.kinds() == ["verify"]
    tag = tags_of(aws.ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0])[TAG_DATASET_DIGEST]
    assert tag == f"old=sha256:{'c' * 32}"


# --- prewarm -------------------------------------------------------------------------------


PREWARM_DS = Dataset(name="imgs", source="s3://demo-data/imgs/", strategy="prewarmed-ebs",
                     volume="cache", path="/")
PREWARM_AFTER = {"volume": "cache", "dataset": "imgs", "uri": "s3://demo-data/imgs/",
                 "path": "/", "via": "temporary-instance", "filesystem": "ext4"}


def test_prewarm_temporary_instance_is_terminated_when_sync_fails(moto_endpoint: str) -> None:
    ssm = FakeSsm({"sync": ScriptResult("failed", {"error": "s5cmd: NoSuchBucket"})})
    spec = make_spec(volumes=(CACHE,), instances=(TRAINER,), datasets=(PREWARM_DS,))
    engine, aws = make_engine(spec, moto_endpoint, ssm)
    vid = create_volume(engine, "cache")
    with pytest.raises(StepFailed, match="NoSuchBucket"):
        engine.apply(change("prewarm.imgs", Action.CREATE, after={
            **PREWARM_AFTER, "objects": 1, "bytes": 1, "digest": "sha256:" + "d" * 64}),
            Action.CREATE)
    temps = [i for i in instances(aws) if tags_of(i).get(TAG_ADDRESS) == "prewarm.imgs"]
    assert len(temps) == 1
    temp = temps[0]
    assert temp["State"]["Name"] == "terminated"
    assert temp["InstanceType"] == "t3.small" and temp["ImageId"] == AMI
    assert temp["Placement"]["AvailabilityZone"] == "us-east-1a"
    assert tags_of(temp)["trainctl:temporary"] == "true"
    assert tags_of(temp)[TAG_PROJECT] == "proj"
    assert ssm.kinds() == ["mount", "sync"]
    v = aws.ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]
    assert v["State"] == "available"
    assert TAG_DATASET_DIGEST not in tags_of(v)


def test_prewarm_via_the_attached_instance(moto_endpoint: str) -> None:
    ssm = FakeSsm()
    spec = make_spec(volumes=(SCRATCH,), instances=(TRAINER,), datasets=(
        replace(PREWARM_DS, volume="scratch", path="/imgs"),))
    engine, aws = make_engine(spec, moto_endpoint, ssm)
    vid, iid = _attached(engine)
    facts = engine.apply(change("prewarm.imgs", Action.CREATE, after={
        **PREWARM_AFTER, "volume": "scratch", "path": "/imgs", "via": "instance.trainer",
        "instance_id": iid, "mount_path": "/scratch", "read_only": True,
        "objects": 1, "bytes": 1, "digest": "sha256:" + "e" * 64}), Action.CREATE)
    assert facts["path"] == "/scratch/imgs" and facts["training"] == "not running"
    # read-write for the sync, then ro; first, no training job may be reading the files
    assert ssm.kinds() == ["training_check", "mount", "sync", "mount"]
    assert len(instances(aws)) == 1
    tag = tags_of(aws.ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0])[TAG_DATASET_DIGEST]
    assert tag == f"imgs=sha256:{'e' * 32}:1:1"


@pytest.mark.parametrize("force", [False, True])
def test_prewarm_via_the_attached_instance_waits_for_training(moto_endpoint: str,
                                                              force: bool) -> None:
    """The files would change under a running job: refused unless --stop-training
    names the instance (force: the job is stopped first)."""
    ssm = FakeSsm({"training_check": ScriptResult("ok", {"running": True, "pids": [42]})})
    spec = make_spec(volumes=(SCRATCH,), instances=(TRAINER,), datasets=(
        replace(PREWARM_DS, volume="scratch", path="/imgs"),))
    stops = frozenset({"instance.trainer"}) if force else frozenset()
    engine, _aws = make_engine(spec, moto_endpoint, ssm,
                               overrides=Overrides(force=True, stop_training=stops))
    _vid, iid = _attached(engine)
    step = change("prewarm.imgs", Action.CREATE, after={
        **PREWARM_AFTER, "volume": "scratch", "path": "/imgs", "via": "instance.trainer",
        "instance_id": iid, "mount_path": "/scratch", "read_only": True,
        "objects": 1, "bytes": 1, "digest": "sha256:" + "e" * 64})
    if not force:
        with pytest.raises(StepFailed, match=r"^training-running: a training job runs on "
                                             r"instance\.trainer .*then rewrites"):
            engine.apply(step, Action.CREATE)
        assert ssm.kinds() == ["training_check"]
        return
    facts = engine.apply(step, Action.CREATE)
    assert facts["training"].startswith("stopped by --stop-training")
    assert ssm.kinds() == ["training_check", "stop_training", "mount", "sync", "mount"]


@pytest.mark.slow
def test_prewarm_end_to_end_on_the_emulator(moto_endpoint: str, tmp_path: Path) -> None:
    """Real scripts through the local runner: bytes from moto's S3 land on the volume's
    folder, the digest is recorded, and the temporary instance is gone."""
    from planner.aws.datasets_read import s3_manifest
    from planner.ssm import LocalRunner

    aws = connect("us-east-1", moto_endpoint)
    aws.s3.create_bucket(Bucket="demo-data")
    for key, body in {"imgs/a.txt": b"alpha", "imgs/sub/b.txt": b"beta!"}.items():
        aws.s3.put_object(Bucket="demo-data", Key=key, Body=body)
    manifest = s3_manifest(aws, "s3://demo-data/imgs/")
    runner = LocalRunner.for_endpoint(str(tmp_path / "sandbox"), moto_endpoint, "us-east-1")
    spec = make_spec(volumes=(CACHE,), instances=(TRAINER,), datasets=(PREWARM_DS,))
    engine, aws = make_engine(spec, moto_endpoint, runner)
    vid = create_volume(engine, "cache")
    facts = engine.apply(change("prewarm.imgs", Action.CREATE, after={
        **PREWARM_AFTER, "objects": manifest.objects, "bytes": manifest.bytes,
        "digest": manifest.digest}), Action.CREATE)
    temp = facts["temporary_instance"]
    assert instances(aws, "terminated")[0]["InstanceId"] == temp
    files = sorted(p.relative_to(tmp_path / "sandbox")
                   for p in (tmp_path / "sandbox").rglob("*.txt"))
    assert any(str(f).endswith("a.txt") for f in files), files
    assert any(str(f).endswith("sub/b.txt") for f in files), files
    v = aws.ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]
    assert v["State"] == "available"
    short = manifest.digest[:len("sha256:") + 32]
    assert tags_of(v)[TAG_DATASET_DIGEST] == (
        f"imgs={short}:{manifest.objects}:{manifest.bytes}")
    assert (manifest.objects, manifest.bytes) == (2, 10)


def test_step_blocked_is_a_step_failed() -> None:
    err = StepBlocked("volume.x", (Block(Rule.PERSISTENT, "volume.x is persistent"),))
    assert isinstance(err, StepFailed)
    assert "volume.x is persistent" in str(err)


def test_local_dataset_is_uploaded_to_its_stage(moto_endpoint: str, tmp_path: Path) -> None:
    from planner.manifest import local_manifest

    src = tmp_path / "data"
    (src / "sub").mkdir(parents=True)
    (src / "a.bin").write_bytes(b"a" * 100)
    (src / "sub" / "b.bin").write_bytes(b"b" * 10)
    ds = Dataset(name="local", source=str(src), stage="s3://stage-bucket/local/",
                 strategy="local-cache", path="/data/local")
    engine, aws = make_engine(make_spec(datasets=(ds,)), moto_endpoint)
    aws.s3.create_bucket(Bucket="stage-bucket")
    facts = engine.apply(change("dataset.local", Action.CREATE), Action.CREATE)
    keys = sorted(o["Key"] for o in aws.s3.list_objects_v2(
        Bucket="stage-bucket", Prefix="local/")["Contents"])
    assert keys == ["local/.trainctl-stage.json", "local/a.bin", "local/sub/b.bin"]
    assert (facts["objects"], facts["bytes"]) == ("2", "110")     # the record is not data
    assert facts["digest"] == local_manifest(src).digest


# --- an instance dropped from the spec keeps its safety settings -----------------------


class ScriptRecorder(FakeSsm):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []

    def run(self, instance_id: str, script: str, *, timeout: float) -> ScriptResult:
        self.scripts.append(script)
        return super().run(instance_id, script, timeout=timeout)


def test_an_instance_dropped_from_the_spec_is_still_checked_and_saved(
        moto_endpoint: str) -> None:
    """Training and checkpoint settings are tags from launch on, so removing the instance
    from the YAML still checks for the job (with its patterns) and syncs its checkpoints."""
    engine, aws = make_engine(make_spec(instances=(TRAINER,)), moto_endpoint)
    iid = create_instance(engine)
    raw = aws.ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    assert "python.*train" in tags_of(raw)["trainctl:training"]
    ssm = ScriptRecorder()
    orphan, _ = make_engine(make_spec(), moto_endpoint, ssm)      # the spec dropped it
    facts = _terminate(orphan, iid)
    assert [k for k, _ in ssm.calls] == ["training_check", "checkpoint_sync"]
    assert "python.*train" in ssm.scripts[0] and "/run/train.pid" in ssm.scripts[0]
    assert "s3://ckpt/run/" in ssm.scripts[1]
    assert facts["checkpoints"].startswith("synced /scratch/ckpt to s3://ckpt/run/")


def test_an_unrecorded_instance_dropped_from_the_spec_cannot_be_told(
        moto_endpoint: str) -> None:
    engine, aws = make_engine(make_spec(instances=(TRAINER,)), moto_endpoint)
    iid = create_instance(engine)
    aws.ec2.delete_tags(Resources=[iid], Tags=[{"Key": "trainctl:training"}])  # older launch
    orphan, _ = make_engine(make_spec(), moto_endpoint)
    with pytest.raises(StepFailed, match="training settings were not recorded at launch"):
        _terminate(orphan, iid)
    assert instances(aws, "running")[0]["InstanceId"] == iid
    forced, _ = make_engine(make_spec(), moto_endpoint, overrides=Overrides(force=True))
    with pytest.raises(StepFailed, match="training settings were not recorded at launch"):
        _terminate(forced, iid)
    # "cannot tell" blocks unless --stop-training names the instance
    stopping, _ = make_engine(make_spec(), moto_endpoint, overrides=Overrides(
        stop_training=frozenset({"instance.trainer"})))
    assert _terminate(stopping, iid)["training"].startswith("stopped by --stop-training")
