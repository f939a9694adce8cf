"""Everything that talks to AWS for planning: the session, errors, the live-state reader.

Importing this package never imports boto3; the modules import it lazily.
"""

from __future__ import annotations

from planner.aws.session import AwsContext, aws_errors, connect, resolve_endpoint

__all__ = ["AwsContext", "aws_errors", "connect", "resolve_endpoint"]
