"""B1: API calls to read live state, trainctl's batched reader vs one describe per resource.

N managed resources (N/2 volumes, N/2 instances, all tagged `trainctl:project`) are
created on the emulator; trainctl's reader (`read_live`, what `plan` calls) reads them,
then the Terraform-style baseline reads the same resources with one DescribeVolumes /
DescribeInstances per resource id, as a Terraform refresh does (one Read per resource
in the state). Calls are counted by the AwsContext's botocore hook.

moto answers a describe in one page whatever its size; AWS caps pages (DescribeVolumes
500, DescribeInstances 1,000 results). Each row also gives the calls AWS would need by
those caps ("aws_calls"), and the target is checked on the larger of the two.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from bench.emulator import connect, emulator, reset
from planner.spec import Spec

PROJECT = "bench-b1"
SIZES = (100, 1000)


def _seed(ec2: Any, n: int) -> tuple[list[str], list[str]]:
    tags = [{"Key": "trainctl:project", "Value": PROJECT}]
    vols = []
    for i in range(n // 2):
        spec = [{"ResourceType": "volume",
                 "Tags": [*tags, {"Key": "trainctl:address", "Value": f"volume.v{i}"}]}]
        vols.append(ec2.create_volume(AvailabilityZone="us-east-1a", Size=10, VolumeType="gp3",
                                      TagSpecifications=spec)["VolumeId"])
    count = n - n // 2
    res = ec2.run_instances(
        ImageId="ami-0123456789abcdef0", InstanceType="t3.micro", MinCount=count,
        MaxCount=count, Placement={"AvailabilityZone": "us-east-1a"},
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
    )
    return vols, [i["InstanceId"] for i in res["Instances"]]


def aws_calls(measured: int, volumes: int, instances: int) -> int:
    """The calls read_live would make on AWS: what it made on the emulator (one page per
    paginated describe), plus the further pages AWS's caps would need. Modifications are
    already asked by chunks of ids on the client side, so they are counted as made."""
    from planner.aws.read import INSTANCE_PAGE, VOLUME_PAGE

    return (measured + max(0, math.ceil(volumes / VOLUME_PAGE) - 1)
            + max(0, math.ceil(instances / INSTANCE_PAGE) - 1))


def run(sizes: tuple[int, ...] = SIZES) -> list[dict[str, Any]]:
    from planner.aws.read import read_live

    spec = Spec(version=1, project=PROJECT, region="us-east-1",
                volumes=MappingProxyType({}), instances=MappingProxyType({}))
    rows = []
    with emulator() as (endpoint, _state_dir):
        for n in sizes:
            reset(endpoint)
            vols, insts = _seed(connect(endpoint).ec2, n)
            aws = connect(endpoint)                       # a fresh call counter
            t0 = time.perf_counter()
            live = read_live(spec, aws, now=datetime.now(UTC), with_datasets=False)
            batched_s = time.perf_counter() - t0
            calls = aws.total_calls()
            if (len(live.volumes), len(live.instances)) != (len(vols), len(insts)):
                raise RuntimeError(f"B1: read {len(live.volumes)} volumes and "
                                   f"{len(live.instances)} instances, seeded "
                                   f"{len(vols)} and {len(insts)}")
            base = connect(endpoint)
            t0 = time.perf_counter()
            for vid in vols:
                base.ec2.describe_volumes(VolumeIds=[vid])
            for iid in insts:
                base.ec2.describe_instances(InstanceIds=[iid])
            baseline_s = time.perf_counter() - t0
            baseline = base.total_calls()
            on_aws = aws_calls(calls, len(vols), len(insts))
            worst = max(calls, on_aws)
            rows.append({
                "n": n, "volumes": len(vols), "instances": len(insts),
                "trainctl_calls": calls, "aws_calls": on_aws, "baseline_calls": baseline,
                "ratio": round(baseline / worst, 1),
                "trainctl_seconds": round(batched_s, 3),
                "baseline_seconds": round(baseline_s, 3),
                "calls_by_operation": dict(sorted(aws.calls.items())),
                "target_met": (worst <= 10 and baseline / worst >= 100) if n >= 1000 else None,
            })
    return rows
