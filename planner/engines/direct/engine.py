"""The `direct` engine: boto3 calls for EC2/EBS, SSM scripts for the data plane.

One unit per step (StepEngine); `apply(change, action)` carries out one step (from any
number of threads). Built by the registry (`DirectEngine.from_context`) or as

    DirectEngine(spec, aws, ssm, plan_id=plan.plan_id, overrides=overrides,
                 clock=lambda: datetime.now(UTC), endpoint_url=None)

with the arguments of planner.engines.awsops.AwsOps, whose helpers it has. It
dispatches on change.type and the phase's action to the EC2 steps (`ec2`), the data
plane (planner.engines.dataplane, planner.engines.prewarm) and reads change.id,
change.before and change.after (data the diff decided), never change.reason. It does
not guard: the executor runs planner.guards before every step, whatever the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from planner.engines import dataplane, prewarm
from planner.engines.awsops import AwsOps
from planner.engines.base import StepEngine, StepFailed
from planner.engines.direct import ec2
from planner.errors import TrainctlError
from planner.plan import Action, Change, ResourceType

Handler = Callable[[AwsOps, Change], dict[str, str]]


class DirectEngine(AwsOps, StepEngine):
    """The direct engine (see the module's docstring)."""

    name = "direct"

    @classmethod
    def from_context(cls, ctx: Any) -> DirectEngine:
        """The registry's factory (planner.engines.ENGINES)."""
        return cls(ctx.spec, ctx.aws, ctx.ssm, plan_id=ctx.plan_id, overrides=ctx.overrides,
                   clock=ctx.clock, endpoint_url=ctx.endpoint_url)

    def apply(self, change: Change, action: Action) -> dict[str, str]:
        handler = HANDLERS.get((change.type, action))
        if handler is None:
            raise StepFailed(f"{change.address}: the direct engine cannot {action.value} "
                             f"a {change.type.value}")
        from planner.aws.session import aws_errors

        try:
            with aws_errors():
                return handler(self, change)
        except StepFailed:
            raise
        except TrainctlError as e:
            raise StepFailed(f"{change.address}: {e}") from e


R = ResourceType
HANDLERS: dict[tuple[ResourceType, Action], Handler] = {
    (R.VOLUME, Action.CREATE): ec2.volume_create,
    (R.VOLUME, Action.UPDATE): ec2.volume_update,
    (R.VOLUME, Action.DELETE): ec2.volume_delete,
    (R.INSTANCE, Action.CREATE): ec2.instance_create,
    (R.INSTANCE, Action.UPDATE): ec2.instance_update,
    (R.INSTANCE, Action.DELETE): ec2.instance_delete,
    (R.ATTACHMENT, Action.CREATE): ec2.attachment_create,
    (R.ATTACHMENT, Action.DELETE): ec2.attachment_delete,
    (R.MOUNT, Action.CREATE): dataplane.mount_create,
    (R.MOUNT, Action.UPDATE): dataplane.mount_create,
    (R.MOUNT, Action.DELETE): dataplane.mount_delete,
    (R.SYNC, Action.CREATE): dataplane.sync_create,
    (R.SYNC, Action.UPDATE): dataplane.sync_create,
    (R.SYNC, Action.DELETE): AwsOps.delete_nothing,
    (R.DATASET, Action.CREATE): dataplane.dataset_upload,
    (R.DATASET, Action.UPDATE): dataplane.dataset_upload,
    (R.DATASET, Action.DELETE): AwsOps.delete_nothing,
    (R.PREWARM, Action.CREATE): prewarm.prewarm_create,
    (R.PREWARM, Action.UPDATE): prewarm.prewarm_create,
    (R.PREWARM, Action.DELETE): prewarm.prewarm_delete,
}
