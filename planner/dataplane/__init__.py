"""The data plane: bash scripts run on instances over SSM (mount, sync, checks, watcher)."""

from planner.dataplane.status import ScriptResult, parse_status, truncate_output

__all__ = ["ScriptResult", "parse_status", "truncate_output"]
