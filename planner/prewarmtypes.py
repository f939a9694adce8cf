"""The temporary prewarm instance: which AMI and instance type fill a volume (pure).

One rule for the plan's instance-type check (planner.aws.checks) and the data plane
(planner.engines.prewarm): the spec's first instance in the volume's AZ, else its first
instance, lends its AMI; an ARM (Graviton) lender means an ARM type.
"""

from __future__ import annotations

import re

from planner.spec import Spec

PREWARM_INSTANCE_TYPE = "t3.small"
PREWARM_INSTANCE_TYPE_ARM = "t4g.small"
ARM_FAMILY = re.compile(r"^[a-z]+\d+[a-z]*g[a-z]*\.")   # c7g, m6gd, g5g: Graviton


def prewarm_image(spec: Spec, availability_zone: str) -> tuple[str | None, str]:
    """(AMI or None when the spec has no instance to borrow one from, instance type)."""
    lenders = sorted(spec.instances.values(),
                     key=lambda i: i.availability_zone != availability_zone)
    if not lenders:
        return None, PREWARM_INSTANCE_TYPE
    arm = bool(ARM_FAMILY.match(lenders[0].instance_type))
    return lenders[0].ami, PREWARM_INSTANCE_TYPE_ARM if arm else PREWARM_INSTANCE_TYPE
