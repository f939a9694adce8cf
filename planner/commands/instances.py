"""What `exec`, `logs` and `cp` share: the spec's instance by name, reached over SSM."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from planner.cli import Options
from planner.errors import TrainctlError

if TYPE_CHECKING:
    from planner.aws.session import AwsContext
    from planner.dataplane.steps import Transport
    from planner.spec import Instance, Spec


@dataclass(frozen=True)
class Remote:
    spec: Spec
    instance: Instance
    instance_id: str
    aws: AwsContext
    ssm: Transport


def instance_name(spec: Spec, name: str) -> str:
    """`trainer` or `instance.trainer`: the spec's instance name, or a clear error."""
    bare = name.removeprefix("instance.")
    if bare not in spec.instances:
        known = ", ".join(sorted(spec.instances)) or "none"
        raise TrainctlError(f"{spec.source_file}: no instance {bare!r} in the spec "
                            f"(instances: {known})")
    return bare


def connect_aws(opts: Options, spec: Spec) -> AwsContext:
    """The AWS target for the spec, said on stderr in one line."""
    from planner.aws.session import open_aws

    aws, _how = open_aws(opts.endpoint_url, opts.state_dir, spec.region)  # says its target
    return aws


def open_remote(opts: Options, name: str) -> Remote:
    from planner.aws.find import find_instance
    from planner.aws.session import aws_errors
    from planner.aws.ssm import make_transport
    from planner.loader import load_spec

    spec = load_spec(opts.file)
    bare = instance_name(spec, name)
    aws = connect_aws(opts, spec)
    with aws_errors():
        live = find_instance(aws.ec2, spec.project, f"instance.{bare}")
    return Remote(spec, spec.instances[bare], live.id, aws,
                  make_transport(aws, opts.state_dir))
