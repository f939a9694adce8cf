"""The stack programs under Pulumi's mocks: a MockMonitor subclass records every
RegisterResource request (tests/pulumi_mockrun.py), run in a subprocess per program so
the SDK's global runtime settings and event loop never leak into other tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pulumi")
pytest.importorskip("pulumi_aws")

from diffworld import AZ, inst, linst, live, lvol, make_spec, mounted_tag, plan_of, vol
from test_pulumi_inputs import ACCOUNT, MOUNT, first_apply

from planner.engines.pulumi import inputs_for, with_volume_ids
from planner.engines.pulumi.props import IGNORED
from planner.engines.pulumi.schema import Options, Resource, StackInputs
from planner.live import TAG_PERSISTENT
from planner.rules import Overrides

ROOT = Path(__file__).resolve().parent.parent
RUNNER = Path(__file__).resolve().parent / "pulumi_mockrun.py"
VOLUME, INSTANCE = "aws:ebs/volume:Volume", "aws:ec2/instance:Instance"
ATTACHMENT = "aws:ec2/volumeAttachment:VolumeAttachment"
PROVIDER = "pulumi:providers:aws"


def run(module: str, stack: StackInputs) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run([sys.executable, str(RUNNER), module],
                          input=json.dumps(stack.to_json()), capture_output=True,
                          text=True, env=env, timeout=120, check=False)


def requests(module: str, stack: StackInputs) -> dict[str, dict[str, Any]]:
    """name -> the RegisterResource request the program sent for it."""
    done = run(module, stack)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout)["requests"]
    by_name = {r["name"]: r for r in got if r["type"] != "pulumi:pulumi:Stack"}
    assert len(by_name) == len(got) - 1, "one request per resource name"
    return by_name


def urn(kind: str, name: str) -> str:
    return f"urn:pulumi:llm::trainctl-test::pulumi:pulumi:Stack${kind}::{name}"


def assert_explicit_provider(reqs: dict[str, dict[str, Any]]) -> None:
    provider = reqs["aws"]
    assert provider["type"] == PROVIDER
    for name, r in reqs.items():
        if name != "aws":
            assert r["provider"].startswith(urn(PROVIDER, "aws") + "::"), name


def moved_world() -> tuple[Any, Any, Any]:
    """An applied project (a persistent volume with a final snapshot, a scratch volume on
    an instance without a profile), then a spec that moves scratch and trainer to
    another AZ: a replace of both and of their attachment."""
    spec = make_spec([vol("keep", persistent=True, on_delete="snapshot"), vol("scratch", 200)],
                     [inst(iam_instance_profile=None, mounts=(MOUNT,))])
    deployed = first_apply(spec)
    state = live(
        volumes=(lvol("vol-1", "volume.keep", extra_tags={TAG_PERSISTENT: "true"}),
                 lvol("vol-2", "volume.scratch", 200, attached_to=(("i-1", "/dev/sdg"),),
                      extra_tags=mounted_tag("i-1", "/scratch"))),
        instances=(linst("i-1", "instance.trainer"),))
    moved = make_spec([vol("keep", persistent=True, on_delete="snapshot"),
                       vol("scratch", 200, availability_zone="us-east-1b")],
                      [inst(iam_instance_profile=None, availability_zone="us-east-1b",
                            mounts=(MOUNT,))])
    plan = plan_of(moved, state, overrides=Overrides(force=True))
    return plan, deployed, inputs_for(plan, deployed, account=ACCOUNT)


@pytest.fixture(scope="module")
def moved() -> Any:
    return moved_world()


@pytest.fixture(scope="module")
def storage_requests(moved: Any) -> dict[str, dict[str, Any]]:
    return requests("stacks.storage", moved[2].storage)


@pytest.fixture(scope="module")
def compute_requests(moved: Any) -> dict[str, dict[str, Any]]:
    compute = with_volume_ids(moved[2].compute, {"volume.scratch": "vol-new"})
    return requests("stacks.compute", compute)


def test_storage_volumes_carry_their_options_and_tags(storage_requests):
    reqs = storage_requests
    assert_explicit_provider(reqs)
    assert reqs["aws"]["inputs"]["region"] == "us-east-1"
    keep = reqs["volume.keep"]
    assert keep["type"] == VOLUME
    assert keep["protect"] is True and keep["retainOnDelete"] is True     # persistent
    assert keep["importId"] == ""                                         # in the stack
    assert keep["inputs"]["finalSnapshot"] is True                        # on_delete: snapshot
    assert keep["inputs"]["tags"]["trainctl:address"] == "volume.keep"
    assert keep["inputs"]["tags"][TAG_PERSISTENT] == "true"
    assert sorted(keep["ignoreChanges"]) == sorted(IGNORED)
    assert keep["replaceOnChanges"] == [] and keep["deleteBeforeReplace"] is False
    scratch = reqs["volume.scratch"]
    assert scratch["protect"] is False and scratch["retainOnDelete"] is False
    assert scratch["inputs"]["availabilityZone"] == "us-east-1b"
    assert scratch["inputs"]["size"] == 200
    # the SDK sends the provider's property names
    assert scratch["replaceOnChanges"] == ["availabilityZone"]
    assert scratch["deleteBeforeReplace"] is True
    assert scratch["inputs"]["tags"]["trainctl:created-empty"] == "true"


def test_storage_holds_the_project_role_and_profile_in_order(storage_requests):
    reqs = storage_requests
    role = reqs["iam.role"]
    assert role["type"] == "aws:iam/role:Role"
    assert role["inputs"]["name"] == "trainctl-llm-ssm"
    assert role["inputs"]["tags"] == {"trainctl:project": "llm"}
    assert role["retainOnDelete"] is True and role["protect"] is False
    role_urn = urn("aws:iam/role:Role", "iam.role")
    for name in ("iam.role-policy.ssm-core", "iam.role-policy.data", "iam.instance-profile"):
        assert role_urn in reqs[name]["dependencies"], name      # after the role
        assert reqs[name]["retainOnDelete"] is True
    assert (reqs["iam.role-policy.data"]["inputs"]["policyArn"]
            == f"arn:aws:iam::{ACCOUNT}:policy/trainctl-llm-data")
    assert reqs["iam.instance-profile"]["inputs"]["role"] == "trainctl-llm-ssm"


def test_compute_instances_and_attachments_reference_each_other(compute_requests):
    reqs = compute_requests
    assert_explicit_provider(reqs)
    trainer = reqs["instance.trainer"]
    assert trainer["type"] == INSTANCE
    assert trainer["inputs"]["availabilityZone"] == "us-east-1b"
    assert trainer["inputs"]["iamInstanceProfile"] == "trainctl-llm-ssm"
    assert trainer["inputs"]["metadataOptions"]["httpTokens"] == "required"
    assert trainer["inputs"]["tags"]["trainctl:address"] == "instance.trainer"
    assert trainer["inputs"]["rootBlockDevice"]["tags"]["Name"] == "llm/instance.trainer/root"
    assert "availabilityZone" in trainer["replaceOnChanges"]
    assert trainer["deleteBeforeReplace"] is True and trainer["protect"] is False
    att = reqs["attachment.trainer.scratch"]
    assert att["type"] == ATTACHMENT
    assert urn(INSTANCE, "instance.trainer") in att["dependencies"]
    assert att["inputs"]["deviceName"] == "/dev/sdg"
    assert att["inputs"]["volumeId"] == "vol-new"
    assert att["inputs"]["instanceId"] == "instance.trainer-id"      # the new instance's
    assert att["deleteBeforeReplace"] is True
    assert set(att["replaceOnChanges"]) <= {"instanceId", "volumeId"}
    assert att["ignoreChanges"] == []


def test_imports_protection_and_spot_from_hand_written_inputs():
    tags = {"Name": "llm/instance.t", "trainctl:project": "llm",
            "trainctl:address": "instance.t", "trainctl:protected": "true"}
    stack = StackInputs("compute", "llm", (
        Resource("instance.t", "instance", {"ami": "ami-1", "instance_type": "g5.xlarge",
                                            "availability_zone": AZ, "market": "spot",
                                            "tags": tags},
                 Options(protect=True, import_id="i-0abc", ignore_changes=IGNORED)),
        Resource("attachment.t.data", "attachment",
                 {"instance": "t", "volume": "data", "device": "/dev/sdf",
                  "volume_id": "vol-1", "instance_id": "i-0abc"},
                 Options(import_id="/dev/sdf:vol-1:i-0abc")),
        Resource("attachment.other.data", "attachment",
                 {"instance": "other", "volume": "data", "device": "/dev/sdh",
                  "volume_id": "vol-1", "instance_id": "i-0def"}),
    ), {"region": "eu-west-1", "endpoints": [{"ec2": "http://127.0.0.1:5000"}],
        "skip_credentials_validation": True})
    reqs = requests("stacks.compute", stack)
    assert reqs["aws"]["inputs"]["region"] == "eu-west-1"
    assert "127.0.0.1:5000" in json.dumps(reqs["aws"]["inputs"]["endpoints"])
    t = reqs["instance.t"]
    assert t["importId"] == "i-0abc" and t["protect"] is True and t["retainOnDelete"] is False
    assert t["inputs"]["instanceMarketOptions"]["marketType"] == "spot"
    assert "encrypted" not in json.dumps(t["inputs"])     # unset stays unset
    assert "subnetId" not in t["inputs"]
    a = reqs["attachment.t.data"]
    assert a["importId"] == "/dev/sdf:vol-1:i-0abc"
    assert urn(INSTANCE, "instance.t") in a["dependencies"]
    # an instance the stack does not declare: named by its id, no dependency
    other = reqs["attachment.other.data"]
    assert other["inputs"]["instanceId"] == "i-0def" and other["dependencies"] == []


def test_the_first_pass_drops_protect_and_imports_with_live_inputs():
    spec = make_spec([vol("old", persistent=True)])
    deployed = first_apply(spec)
    state = live(volumes=(lvol("vol-1", "volume.old", extra_tags={TAG_PERSISTENT: "true"}),
                          lvol("vol-2", "volume.direct")))
    plan = plan_of(make_spec(), state,
                   overrides=Overrides(allow_delete=frozenset({"volume.old"})))
    inputs = inputs_for(plan, deployed)
    assert inputs.storage_prepare is not None
    reqs = requests("stacks.storage", inputs.storage_prepare)
    old = reqs["volume.old"]
    assert old["protect"] is False and old["retainOnDelete"] is False and old["importId"] == ""
    direct = reqs["volume.direct"]
    assert direct["importId"] == "vol-2"
    assert direct["inputs"]["availabilityZone"] == AZ and direct["inputs"]["size"] == 100
    assert "tags" in direct["ignoreChanges"]
    final = requests("stacks.storage", inputs.storage)
    assert set(final) == {"aws"}          # then Pulumi removes both


def test_an_attachment_without_a_volume_id_is_refused(moved):
    done = run("stacks.compute", moved[2].compute)      # volume ids not filled in
    assert done.returncode != 0
    assert "attachment.trainer.scratch: no volume id" in done.stderr


def test_inputs_of_another_stack_are_refused(moved):
    done = run("stacks.compute", moved[2].storage)
    assert done.returncode != 0 and "do not belong in this stack" in done.stderr


def deployment_of(*runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A state (`export_stack().deployment`) as Pulumi would record these registrations."""
    return {"resources": [
        {"urn": urn(r["type"], name), "type": r["type"], "id": f"{name}-id",
         "custom": True, "inputs": r["inputs"]}
        for reqs in runs for name, r in reqs.items()]}


def test_the_state_reads_back_as_the_props_the_programs_declared(moved, storage_requests,
                                                                   compute_requests):
    from planner.engines.pulumi import from_deployment

    deployed = from_deployment(deployment_of(storage_requests, compute_requests))
    declared = {r.address: dict(r.props) for s in (moved[2].storage, moved[2].compute)
                for r in s.resources}
    assert deployed.addresses == set(declared)
    for address, props in declared.items():
        want = {k: v for k, v in props.items()
                if v is not None and (k, v) != ("on_delete", "delete")}
        got = dict(deployed.props[address])
        if address.startswith("attachment."):
            want["volume_id"] = "vol-new"                  # filled after the storage pass
            want["instance_id"] = "instance.trainer-id"    # the new instance's, by reference
        assert got == want, address
    assert deployed.volume_ids() == {"volume.keep": "volume.keep-id",
                                     "volume.scratch": "volume.scratch-id"}
    # a replaced resource still waiting for its delete is not what the stack holds
    stale = deployment_of(storage_requests)
    stale["resources"] = [{**r, "delete": r["urn"].endswith("::volume.keep")}
                          for r in stale["resources"]]
    assert "volume.keep" not in from_deployment(stale).addresses
    assert "volume.scratch" in from_deployment(stale).addresses
