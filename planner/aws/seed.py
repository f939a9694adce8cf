"""Seed the embedded emulator (planner.emulator): the `trainctl-ssm` role and instance
profile, and the S3 buckets the spec names."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from planner.aws.session import AwsContext, aws_errors
from planner.aws.session import connect as aws_connect
from planner.emulator import PROFILE_NAME


def connect(endpoint: str, region: str) -> AwsContext:
    """An AwsContext for the emulator, with its fake credentials (none are needed)."""
    return aws_connect(region, endpoint, emulator=True)


def seed(endpoint: str, region: str, *, buckets: Iterable[str] = ()) -> list[str]:
    """Create the `trainctl-ssm` role + instance profile and the buckets (idempotent).

    Returns one line per thing created, for the command's output.
    """
    from planner.aws.iam import ensure_instance_profile

    done: list[str] = []
    aws = connect(endpoint, region)
    with aws_errors():
        done += ensure_instance_profile(aws.iam, role=PROFILE_NAME, profile=PROFILE_NAME,
                                        emulator=True)
        existing = {b["Name"] for b in aws.s3.list_buckets().get("Buckets", [])}
        for bucket in buckets:
            if bucket in existing:
                continue
            kwargs: dict[str, Any] = {"Bucket": bucket}
            if region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
            aws.s3.create_bucket(**kwargs)
            done.append(f"bucket s3://{bucket}/")
    return done
