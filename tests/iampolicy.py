"""Test helpers: which IAM actions an AWS API call needs, and whether a policy allows one.

`ACTIONS` maps the calls whose IAM actions are not simply `service:Operation` (or not
only); an empty tuple means no permission is needed. Matching honours `*` and `?` in actions (IAM's
wildcards, case-insensitive); conditions and resources are not evaluated here.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Any

ACTIONS: dict[str, tuple[str, ...]] = {
    "s3:ListObjectsV2": ("s3:ListBucket",),
    "s3:ListObjects": ("s3:ListBucket",),
    "s3:HeadBucket": ("s3:ListBucket",),
    "s3:HeadObject": ("s3:GetObject",),
    "s3:CreateMultipartUpload": ("s3:PutObject",),
    "s3:UploadPart": ("s3:PutObject",),
    "s3:CompleteMultipartUpload": ("s3:PutObject",),
    "s3:DeleteObjects": ("s3:DeleteObject",),
    "s3:CopyObject": ("s3:GetObject", "s3:PutObject"),
    "sts:GetCallerIdentity": (),           # needs no permission
    # tags given at creation need ec2:CreateTags too; trainctl launches every instance
    # with an instance profile, which needs iam:PassRole on its role
    "ec2:CreateVolume": ("ec2:CreateVolume", "ec2:CreateTags"),
    "ec2:CreateSnapshot": ("ec2:CreateSnapshot", "ec2:CreateTags"),
    "ec2:RunInstances": ("ec2:RunInstances", "ec2:CreateTags", "iam:PassRole"),
}


def needed(call: str) -> tuple[str, ...]:
    """The IAM actions the recorded call `service:Operation` needs."""
    return ACTIONS.get(call, (call,))


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or ())


def allowed_actions(policy: dict[str, Any]) -> list[str]:
    return [a for s in policy["Statement"] if s.get("Effect") == "Allow"
            for a in _as_list(s.get("Action"))]


def allows(policy: dict[str, Any], action: str) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), pattern.lower())
               for pattern in allowed_actions(policy))


def missing(policy: dict[str, Any], calls: Iterable[str]) -> list[str]:
    """`call -> action` for every recorded call the policy does not allow."""
    return sorted({f"{c} -> {a}" for c in calls for a in needed(c) if not allows(policy, a)})
