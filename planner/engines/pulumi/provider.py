"""The explicit `aws.Provider` of each program, as plain data (pure).

`provider_args` gives the keyword arguments of `pulumi_aws.Provider` (nested values as
plain mappings, which pulumi_aws accepts as its `...ArgsDict`s): the region, the default
tags, and for an emulator (an endpoint URL) only the endpoints trainctl uses plus the
settings that skip what an emulator cannot answer. Nothing else: never a profile or a
credential from the spec (the provider reads the standard AWS configuration, as boto3
does), except the emulator's fixed test credentials.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# the services trainctl calls, under the provider's `endpoints` block names
SERVICES = ("ec2", "s3", "sts", "iam", "ssm")
EMULATOR_SKIPS = ("skip_credentials_validation", "skip_metadata_api_check",
                  "skip_region_validation", "skip_requesting_account_id",
                  "s3_use_path_style")
# moto's fixed credentials (planner.aws.session.EMULATOR_CREDENTIALS), for a loopback
# emulator only: never sent anywhere else
EMULATOR_KEYS = {"access_key": "testing", "secret_key": "testing", "token": "testing"}


def provider_args(region: str, default_tags: Mapping[str, str],
                  endpoint_url: str | None = None, *,
                  emulator: bool = False) -> dict[str, Any]:
    """`aws.Provider` keyword arguments. `emulator` (a loopback endpoint) also passes the
    emulator's fixed test credentials."""
    if not region:
        raise ValueError("the provider needs a region")
    args: dict[str, Any] = {"region": region,
                            "default_tags": {"tags": dict(sorted(default_tags.items()))}}
    if endpoint_url:
        url = endpoint_url.rstrip("/")
        args["endpoints"] = [{service: url for service in SERVICES}]
        args.update(dict.fromkeys(EMULATOR_SKIPS, True))
        if emulator:
            args.update(EMULATOR_KEYS)
    return args


def default_tags(project: str, spec_tags: Mapping[str, str]) -> dict[str, str]:
    """Every resource of a trainctl stack carries the spec's default tags and the
    project tag (which wins), so the live read stays engine-neutral."""
    from planner.live import TAG_PROJECT

    return {**spec_tags, TAG_PROJECT: project}
