"""`trainctl iam-policy` is scoped (issue 10, item 8): ARNs in the spec's region, tag
writes that cannot move a resource into another project, restores only from the
project's snapshots and the spec's, the spot service-linked role only, and the project
role whenever prewarm's temporary instances need it."""

from __future__ import annotations

import json
from typing import Any

from conftest import EXAMPLES

from planner.commands.iam_policy import build_policy
from planner.loader import load_spec, loads_spec

SPEC = """\
version: 1
project: scope
region: eu-west-1
defaults: {availability_zone: eu-west-1a}
volumes:
  old: {size_gib: 8, snapshot_id: snap-0123456789abcdef0}
  adopted: {size_gib: 8, import: vol-0123456789abcdef0}
instances:
  t: {instance_type: g5.xlarge, ami: ami-0123456789abcdef0, market: spot}
"""


def statements(policy: dict[str, Any], action: str) -> list[dict[str, Any]]:
    def acts(s: dict[str, Any]) -> list[str]:
        a = s["Action"]
        return [a] if isinstance(a, str) else a
    return [s for s in policy["Statement"] if action in acts(s)]


def test_arns_are_in_the_spec_region() -> None:
    policy = build_policy("scope", loads_spec(SPEC))
    text = json.dumps(policy)
    assert "arn:aws:ec2:*" not in text and "arn:aws:ssm:*" not in text
    assert "arn:aws:ec2:eu-west-1:" in text


def test_every_tag_write_names_this_project() -> None:
    policy = build_policy("scope", loads_spec(SPEC))
    creates = statements(policy, "ec2:CreateTags")
    assert len(creates) == 3          # at creation, on owned resources, adopting imports
    for s in creates:
        flat = json.dumps(s["Condition"])
        assert '"aws:RequestTag/trainctl:project": "scope"' in flat, s
    [adopt] = [s for s in creates if s["Sid"] == "AdoptImportedResources"]
    assert adopt["Resource"] == ["arn:aws:ec2:eu-west-1:*:volume/vol-0123456789abcdef0"]
    [untag] = statements(policy, "ec2:DeleteTags")
    assert untag["Condition"]["ForAllValues:StringNotEquals"]["aws:TagKeys"] == [
        "trainctl:project", "trainctl:address"]


def test_restores_only_from_project_or_spec_snapshots() -> None:
    policy = build_policy("scope", loads_spec(SPEC))
    for s in statements(policy, "ec2:CreateVolume"):
        res = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        if any("snapshot/*" in r for r in res):
            assert "aws:ResourceTag/trainctl:project" in json.dumps(s.get("Condition")) or \
                "aws:RequestTag/trainctl:project" in json.dumps(s.get("Condition")), s
    assert any(s["Resource"] == ["arn:aws:ec2:eu-west-1::snapshot/snap-0123456789abcdef0"]
               for s in statements(policy, "ec2:CreateVolume"))


def test_only_the_spot_service_linked_role() -> None:
    [slr] = statements(build_policy("scope", loads_spec(SPEC)), "iam:CreateServiceLinkedRole")
    assert slr["Resource"].endswith("/spot.amazonaws.com/AWSServiceRoleForEC2Spot")
    assert slr["Condition"] == {"StringEquals": {"iam:AWSServiceName": "spot.amazonaws.com"}}
    no_spot = SPEC.replace(", market: spot", "")
    assert statements(build_policy("scope", loads_spec(no_spot)),
                      "iam:CreateServiceLinkedRole") == []


def test_prewarm_needs_the_project_role_even_when_instances_name_profiles() -> None:
    spec = load_spec(str(EXAMPLES / "quickstart" / "trainctl.yaml"))
    policy = build_policy(spec.project, spec)
    [role] = statements(policy, "iam:CreateRole")
    assert role["Resource"][0] == "arn:aws:iam::*:role/trainctl-quickstart-ssm"
    assert any(s["Resource"] == "arn:aws:iam::*:role/trainctl-quickstart-ssm"
               for s in statements(policy, "iam:PassRole"))


# Statements that split one action over its resource types on purpose: RunInstances,
# CreateVolume and CreateSnapshot touch the created resource (conditioned on the request
# tag) and their sources (image, subnet, snapshot, volume: other conditions, or none);
# SendCommand needs the instance (by tag) and the document (by name). parliament wants
# every resource type of an action in one statement and reports RESOURCE_MISMATCH.
SPLIT_ON_PURPOSE = {"ec2:RunInstances", "ec2:CreateVolume", "ec2:CreateSnapshot",
                    "ssm:SendCommand"}


def _lint(policy: dict[str, Any]) -> list[str]:
    from parliament import analyze_policy_string

    out = []
    for f in analyze_policy_string(json.dumps(policy)).findings:
        detail = f.detail if isinstance(f.detail, list) else [f.detail]
        if f.issue == "RESOURCE_MISMATCH" and all(
                isinstance(d, dict) and d.get("action") in SPLIT_ON_PURPOSE for d in detail):
            continue
        out.append(f"{f.issue}: {f.detail}")
    return out


def test_parliament_finds_nothing_else() -> None:
    specs = [load_spec(str(EXAMPLES / name / "trainctl.yaml"))
             for name in ("quickstart", "multi-node")] + [loads_spec(SPEC)]
    for spec in specs:
        assert _lint(build_policy(spec.project, spec)) == [], spec.project
    assert _lint(build_policy(None, None)) == []


def test_parliament_lint_is_live() -> None:
    bad = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ec2:CreateVolumez", "Resource": "*"}]}
    assert _lint(bad)
