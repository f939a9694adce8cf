"""Valid inputs the fuzz and file-check tests mutate: the quickstart spec, a live snapshot
of it with every kind of record, and the golden plan file."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SPEC_TEXT = (ROOT / "examples" / "quickstart" / "trainctl.yaml").read_text()
PLAN_DOC: dict[str, Any] = json.loads((ROOT / "tests" / "golden" / "plan.json").read_text())


def _tags(address: str, **extra: str) -> dict[str, str]:
    return {"trainctl:project": "quickstart", "trainctl:address": address,
            "Name": f"quickstart/{address}", **extra}


def live_doc() -> dict[str, Any]:
    """A live snapshot (planner.live's JSON) of the quickstart project, half applied."""
    from planner.live import (
        DatasetManifest,
        LiveAttachment,
        LiveEbsSnapshot,
        LiveInstance,
        LiveModification,
        LiveState,
        LiveVolume,
        StageState,
        live_to_json,
    )

    t = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    state = LiveState(
        project="quickstart", region="us-east-1", read_at=t,
        volumes=(
            LiveVolume(id="vol-0000000000000000a", availability_zone="us-east-1a",
                       size_gib=50, type="gp3", state="in-use", create_time=t, iops=3000,
                       throughput_mibps=125,
                       tags=_tags("volume.datasets", **{"trainctl:persistent": "true"}),
                       attachments=(LiveAttachment("i-0000000000000000b", "/dev/sdf",
                                                   "attached"),)),
            LiveVolume(id="vol-0000000000000000c", availability_zone="us-east-1a",
                       size_gib=80, type="gp3", state="available", create_time=t,
                       tags=_tags("volume.scratch")),
        ),
        instances=(LiveInstance(id="i-0000000000000000b", instance_type="g5.xlarge",
                                availability_zone="us-east-1a", state="running",
                                launch_time=t, ami="ami-0123456789abcdef0",
                                tags=_tags("instance.trainer")),),
        modifications=(LiveModification("vol-0000000000000000c", "completed", t, t),),
        snapshots=(LiveEbsSnapshot("snap-0000000000000000d", "vol-0000000000000000a",
                                   "completed", t, _tags("volume.datasets")),),
        datasets={"tiny-imagenet": DatasetManifest(
            "s3://trainctl-demo-datasets/tiny-imagenet/", 3, 300, "sha256:" + "ab" * 32, 1)},
        stages={"tiny-imagenet": StageState(upload_objects=1, upload_bytes=10,
                                            delete_examples=("old.bin",))},
        spot_prices={"g5.xlarge/us-east-1a": 0.4},
        api_calls=7,
    )
    return live_to_json(state)
