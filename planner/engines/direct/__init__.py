"""The `direct` engine (planner.engines.direct.engine): boto3 for EC2/EBS (`ec2`), the
shared data plane for SSM steps; the project's IAM profile via planner.aws.iam."""

from planner.engines.direct.engine import DirectEngine

__all__ = ["DirectEngine"]
