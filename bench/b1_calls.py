"""B1: API calls to read live state, trainctl's batched reader vs one describe per resource."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from types import MappingProxyType

from bench.emulator import moto_endpoint
from planner.spec import Spec

PROJECT = "bench-b1"


def _seed(ec2, n: int) -> tuple[list[str], list[str]]:
    tags = [{"Key": "trainctl:project", "Value": PROJECT}]
    vols = []
    for i in range(n // 2):
        spec = [{"ResourceType": "volume",
                 "Tags": [*tags, {"Key": "trainctl:address", "Value": f"volume.v{i}"}]}]
        vols.append(ec2.create_volume(AvailabilityZone="us-east-1a", Size=10, VolumeType="gp3",
                                      TagSpecifications=spec)["VolumeId"])
    res = ec2.run_instances(
        ImageId="ami-12c6146b", InstanceType="t3.micro", MinCount=n - n // 2,
        MaxCount=n - n // 2, Placement={"AvailabilityZone": "us-east-1a"},
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
    )
    return vols, [i["InstanceId"] for i in res["Instances"]]


def run(sizes: tuple[int, ...] = (100, 1000)) -> list[dict]:
    from planner.aws.read import read_live
    from planner.aws.session import connect

    spec = Spec(version=1, project=PROJECT, region="us-east-1",
                volumes=MappingProxyType({}), instances=MappingProxyType({}))
    rows = []
    with moto_endpoint() as endpoint:
        for n in sizes:
            aws = connect("us-east-1", endpoint)
            import urllib.request

            urllib.request.urlopen(urllib.request.Request(endpoint + "/moto-api/reset",
                                                          method="POST")).read()
            vols, insts = _seed(aws.ec2, n)
            aws = connect("us-east-1", endpoint)          # fresh call counter
            t0 = time.perf_counter()
            live = read_live(spec, aws, now=datetime.now(UTC), with_datasets=False)
            batched_s = time.perf_counter() - t0
            calls = sum(aws.calls.values())
            assert len(live.volumes) == len(vols) and len(live.instances) == len(insts)
            base = connect("us-east-1", endpoint)
            t0 = time.perf_counter()
            for vid in vols:
                base.ec2.describe_volumes(VolumeIds=[vid])
            for iid in insts:
                base.ec2.describe_instances(InstanceIds=[iid])
            baseline_s = time.perf_counter() - t0
            baseline = sum(base.calls.values())
            rows.append({
                "n": n, "trainctl_calls": calls, "baseline_calls": baseline,
                "ratio": round(baseline / calls, 1), "trainctl_seconds": round(batched_s, 3),
                "baseline_seconds": round(baseline_s, 3), "calls_by_operation": dict(aws.calls),
                "target_met": calls <= 10 and baseline / calls >= 100 if n >= 1000 else None,
            })
    return rows
