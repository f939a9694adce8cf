"""SSM Run Command as a data-plane transport (planner.ssm.SsmTransport), and the choice
between it and planner.ssm.LocalRunner for emulated instances.

botocore is imported lazily (only the calls need it).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from planner.aws.session import AwsContext, is_loopback
from planner.dataplane.status import ScriptResult, parse_status
from planner.emulator import SANDBOX_DIR, read_state
from planner.ssm import LocalRunner, SsmTransport, unknown

DOCUMENT = "AWS-RunShellScript"
MIN_SSM_TIMEOUT = 30            # SendCommand's TimeoutSeconds minimum
ONLINE_TIMEOUT = 600.0          # seconds to wait for a new instance's SSM agent
FINAL_STATUSES = ("Success", "Failed", "Cancelled", "TimedOut", "Cancelling")


def _online_waiter(ssm: Any) -> Any:
    """A botocore waiter: the instance's SSM agent reports PingStatus Online."""
    from botocore.waiter import WaiterModel, create_waiter_with_client

    model = WaiterModel({
        "version": 2,
        "waiters": {"InstanceOnline": {
            "operation": "DescribeInstanceInformation",
            "delay": 5, "maxAttempts": 120,
            "acceptors": [
                {"state": "success", "matcher": "pathAny", "expected": "Online",
                 "argument": "InstanceInformationList[].PingStatus"},
                {"state": "retry", "matcher": "path", "expected": True,
                 "argument": "length(InstanceInformationList[]) == `0`"},
            ],
        }},
    })
    return create_waiter_with_client("InstanceOnline", model, ssm)


class AwsSsm:
    """SendCommand (AWS-RunShellScript), the `command_executed` waiter, then
    GetCommandInvocation; the stdout's status line decides.

    `poll_delay` is the waiter's delay in seconds (small against an emulator).
    """

    def __init__(self, aws: AwsContext, *, poll_delay: float = 2,
                 online_timeout: float = ONLINE_TIMEOUT):
        self.aws = aws
        self.poll_delay = max(1, int(poll_delay))
        self.online_timeout = online_timeout

    def wait_online(self, instance_id: str) -> bool:
        """Wait until the instance's SSM agent is registered; False when it never is."""
        from botocore.exceptions import WaiterError

        attempts = max(1, math.ceil(self.online_timeout / self.poll_delay))
        try:
            _online_waiter(self.aws.ssm).wait(
                Filters=[{"Key": "InstanceIds", "Values": [instance_id]}],
                WaiterConfig={"Delay": self.poll_delay, "MaxAttempts": attempts},
            )
        except WaiterError:
            return False
        return True

    def _send(self, instance_id: str, script: str, timeout: float) -> str:
        from botocore.exceptions import ClientError

        kwargs = {
            "InstanceIds": [instance_id], "DocumentName": DOCUMENT,
            "Parameters": {"commands": [script],
                           "executionTimeout": [str(max(1, int(timeout)))]},
            "TimeoutSeconds": max(MIN_SSM_TIMEOUT, int(timeout)),
            "Comment": "trainctl",
        }
        try:
            resp = self.aws.ssm.send_command(**kwargs)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") != "InvalidInstanceId":
                raise
            # A new instance's agent registers a minute or so after boot.
            if not self.wait_online(instance_id):
                raise
            resp = self.aws.ssm.send_command(**kwargs)
        return str(resp["Command"]["CommandId"])

    def run(self, instance_id: str, script: str, *, timeout: float) -> ScriptResult:
        from botocore.exceptions import BotoCoreError, ClientError, WaiterError

        try:
            command_id = self._send(instance_id, script, timeout)
        except (ClientError, BotoCoreError) as e:
            return unknown(f"SSM SendCommand failed: {e}")
        attempts = max(1, math.ceil((timeout + MIN_SSM_TIMEOUT) / self.poll_delay))
        with contextlib.suppress(WaiterError):   # read the invocation in any case
            self.aws.ssm.get_waiter("command_executed").wait(
                CommandId=command_id, InstanceId=instance_id,
                WaiterConfig={"Delay": self.poll_delay, "MaxAttempts": attempts},
            )
        try:
            inv = self.aws.ssm.get_command_invocation(CommandId=command_id,
                                                      InstanceId=instance_id)
        except (ClientError, BotoCoreError) as e:
            return unknown(f"SSM GetCommandInvocation failed: {e}")
        return self._result(inv)

    @staticmethod
    def _result(inv: Mapping[str, Any]) -> ScriptResult:
        status = str(inv.get("Status", ""))
        stdout = str(inv.get("StandardOutputContent") or "")
        stderr = str(inv.get("StandardErrorContent") or "")
        code = inv.get("ResponseCode")
        exit_code = int(code) if isinstance(code, int) and code >= 0 else None
        result = parse_status(stdout, exit_code)
        output = stdout + (f"\n--- stderr ---\n{stderr}" if stderr.strip() else "")
        if result.ok and status != "Success":
            # A status line but the command did not finish well: never a success.
            return unknown(f"SSM command status {status or 'missing'} after an ok line",
                           output)
        if status and status not in FINAL_STATUSES and result.state == "unknown":
            return unknown(f"SSM command still {status}", output)
        return replace(result, output=output)


def make_transport(aws: AwsContext, state_dir: str, *, mode: str = "auto") -> SsmTransport:
    """AwsSsm against AWS; LocalRunner when the endpoint is an emulator on this machine.

    `mode`: "auto" (the rule above), "aws" or "local". The sandbox is the one recorded in
    STATE_DIR/local.json by `trainctl local up`, else STATE_DIR/sandbox.
    """
    local = mode == "local" or (mode == "auto" and is_loopback(aws.endpoint_url))
    if not local:
        return AwsSsm(aws, poll_delay=1 if aws.endpoint_url else 2)
    doc = read_state(state_dir) or {}
    sandbox = doc.get("sandbox") or os.path.join(os.path.abspath(state_dir), SANDBOX_DIR)
    endpoint = aws.endpoint_url or str(doc.get("endpoint") or "")
    return LocalRunner.for_endpoint(str(sandbox), endpoint, aws.region)
