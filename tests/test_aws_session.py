"""planner.aws.session: lazy clients, the call counter, endpoint resolution, error messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.stub import Stubber

from planner.aws.session import (
    NO_CREDENTIALS_MESSAGE,
    USER_AGENT_EXTRA,
    aws_errors,
    connect,
    resolve_endpoint,
    resolve_target,
)
from planner.errors import AwsAccessError, TrainctlError


def test_clients_are_lazy_shared_and_configured(moto_endpoint: str) -> None:
    aws = connect("us-east-1", moto_endpoint, retry_mode="adaptive")
    assert aws._clients == {}                      # nothing built by connect()
    ec2 = aws.ec2
    assert aws.ec2 is ec2                          # built once
    assert set(aws._clients) == {"ec2"}
    cfg = ec2.meta.config
    assert cfg.retries["mode"] == "adaptive"
    assert cfg.retries["total_max_attempts"] == 5   # as against AWS (issue 12)
    assert USER_AGENT_EXTRA in cfg.user_agent_extra
    assert ec2.meta.endpoint_url == moto_endpoint
    assert ec2.meta.region_name == "us-east-1"
    assert aws.s3.meta.config.s3["addressing_style"] == "path"
    assert aws.ssm.meta.service_model.service_name == "ssm"
    assert aws.iam.meta.service_model.service_name == "iam"


def test_aws_default_has_a_larger_retry_budget_and_virtual_hosted_s3() -> None:
    aws = connect("eu-west-1", None)
    assert aws.ec2.meta.config.retries["total_max_attempts"] == 5
    assert aws.ec2.meta.config.retries["mode"] == "standard"
    assert aws.ec2.meta.endpoint_url == "https://ec2.eu-west-1.amazonaws.com"
    assert (aws.s3.meta.config.s3 or {}).get("addressing_style") != "path"


def test_calls_counts_operations_by_name(moto_endpoint: str) -> None:
    aws = connect("us-east-1", moto_endpoint)
    aws.ec2.describe_volumes()
    aws.ec2.describe_volumes()
    aws.s3.list_buckets()
    assert aws.calls["DescribeVolumes"] == 2
    assert aws.calls["ListBuckets"] == 1
    assert aws.total_calls() == 3


def test_on_registers_hooks_on_present_and_future_clients(moto_endpoint: str) -> None:
    aws = connect("us-east-1", moto_endpoint)
    seen: list[str] = []
    assert aws.ec2 is not None                     # built before the hook
    aws.on("before-call", lambda model, **_: seen.append(model.name))
    aws.ec2.describe_instances()
    aws.s3.list_buckets()                          # built after the hook
    assert seen == ["DescribeInstances", "ListBuckets"]


# --- resolve_endpoint -------------------------------------------------------------------


def _write_local(state: Path, endpoint: str, pid: int) -> None:
    state.mkdir(parents=True, exist_ok=True)
    (state / "local.json").write_text(json.dumps({"endpoint": endpoint, "pid": pid}))


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_resolve_endpoint_cli_flag_wins(tmp_path: Path) -> None:
    import os

    _write_local(tmp_path, "http://127.0.0.1:5555", os.getpid())
    assert resolve_endpoint("http://x:1", str(tmp_path)) == ("http://x:1", "--endpoint-url")


def test_resolve_endpoint_live_emulator(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from planner import emulator

    _write_local(tmp_path, "http://127.0.0.1:5555", os.getpid())
    monkeypatch.setattr(emulator, "_is_moto", lambda pid: True)
    monkeypatch.setattr(emulator, "answers", lambda url, timeout=1.0: True)
    endpoint, how = resolve_endpoint(None, str(tmp_path))
    assert endpoint == "http://127.0.0.1:5555"
    assert "local emulator" in how and "local.json" in how


@pytest.mark.parametrize("why", ["dead pid", "no answer", "corrupt"])
def test_a_recorded_emulator_that_does_not_answer_is_an_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, why: str) -> None:
    """Never a silent switch to the default credentials (or to AWS_ENDPOINT_URL)."""
    import os

    from planner import emulator

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    if why == "corrupt":
        tmp_path.mkdir(exist_ok=True)
        (tmp_path / "local.json").write_text("{not json")
    elif why == "dead pid":
        _write_local(tmp_path, "http://127.0.0.1:5555", _dead_pid())
    else:      # the pid is a moto server, but nothing answers on its port
        _write_local(tmp_path, "http://127.0.0.1:1", os.getpid())
        monkeypatch.setattr(emulator, "_is_moto", lambda pid: True)
    with pytest.raises(emulator.EmulatorError) as e:
        resolve_endpoint(None, str(tmp_path))
    assert "trainctl local up" in str(e.value) and "trainctl local down" in str(e.value)
    # the flag is explicit: it still works
    assert resolve_endpoint("http://x:1", str(tmp_path)) == ("http://x:1", "--endpoint-url")


def test_resolve_endpoint_refuses_a_corrupt_record(tmp_path: Path) -> None:
    """A corrupt local.json is an error naming it, never a silent switch to AWS."""
    from planner.errors import TrainctlError

    (tmp_path / "local.json").write_text("{not json")
    with pytest.raises(TrainctlError, match=r"local.json: not a emulator record"):
        resolve_endpoint(None, str(tmp_path))


def test_no_record_means_aws_itself(tmp_path: Path) -> None:
    assert resolve_endpoint(None, str(tmp_path / "missing")) == (None, "AWS default")


def test_aws_endpoint_url_is_used_as_the_flag_is(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    assert resolve_endpoint(None, str(tmp_path)) == ("http://127.0.0.1:4566",
                                                     "AWS_ENDPOINT_URL")


# --- aws_errors ---------------------------------------------------------------------------


def test_no_credentials(moto_endpoint: str, tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    empty = tmp_path / "empty-credentials"
    empty.write_text("")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    aws = connect("us-east-1", moto_endpoint)
    with pytest.raises(AwsAccessError) as e, aws_errors():
        aws.ec2.describe_volumes()
    assert str(e.value) == NO_CREDENTIALS_MESSAGE
    assert "trainctl local up" in str(e.value)
    assert "\n" not in str(e.value)


def test_unreachable_endpoint() -> None:
    aws = connect("us-east-1", "http://127.0.0.1:1", max_attempts=1)
    with pytest.raises(AwsAccessError) as e, aws_errors():
        aws.ec2.describe_volumes()
    assert str(e.value).startswith("cannot reach AWS endpoint URL: http://127.0.0.1:1")
    assert "trainctl local up" in str(e.value)


def test_access_denied_names_the_operation() -> None:
    aws = connect("us-east-1", None)
    with Stubber(aws.ec2) as stub:
        stub.add_client_error("describe_volumes", service_error_code="UnauthorizedOperation",
                              service_message="You are not authorized to perform this "
                                              "operation.", http_status_code=403)
        with pytest.raises(AwsAccessError) as e, aws_errors():
            aws.ec2.describe_volumes()
    assert str(e.value) == (
        "access denied: DescribeVolumes: You are not authorized to perform this operation."
    )


def test_s3_access_denied() -> None:
    aws = connect("us-east-1", None)
    with Stubber(aws.s3) as stub:
        stub.add_client_error("list_objects_v2", service_error_code="AccessDenied",
                              service_message="Access Denied", http_status_code=403)
        with pytest.raises(AwsAccessError, match=r"^access denied: ListObjectsV2: Access "
                                                 r"Denied$"), aws_errors():
            aws.s3.list_objects_v2(Bucket="b")


def test_other_client_errors_keep_code_and_message(moto_endpoint: str) -> None:
    aws = connect("us-east-1", moto_endpoint)
    with pytest.raises(AwsAccessError) as e, aws_errors():
        aws.ec2.describe_volumes(VolumeIds=["vol-0123456789abcdef0"])
    msg = str(e.value)
    assert msg.startswith("AWS error: InvalidVolume.NotFound: ")
    assert "vol-0123456789abcdef0" in msg and "(DescribeVolumes)" in msg


def test_other_exceptions_pass_through() -> None:
    with pytest.raises(TrainctlError, match="mine") as e, aws_errors():
        raise TrainctlError("mine")
    assert not isinstance(e.value, AwsAccessError)
    with pytest.raises(KeyError), aws_errors():
        raise KeyError("x")


def test_importing_the_package_does_not_import_boto3() -> None:
    code = ("import sys; import planner.aws, planner.aws.read, planner.cost; "
            "sys.exit(1 if 'boto3' in sys.modules or 'botocore' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("how", ["env", "profile"])
def test_aws_itself_means_aws_for_every_service(tmp_path: Path, how: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Target AWS (no endpoint chosen): botocore must not send one service elsewhere
    (AWS_ENDPOINT_URL_EC2, a profile's endpoint_url) while trainctl says "AWS account"."""

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    if how == "env":
        for svc in ("EC2", "S3", "SSM", "IAM", "STS"):
            monkeypatch.setenv(f"AWS_ENDPOINT_URL_{svc}", "http://127.0.0.1:9")
    else:
        cfg = tmp_path / "config"
        cfg.write_text("[default]\nendpoint_url = http://127.0.0.1:9\n")
        monkeypatch.setenv("AWS_CONFIG_FILE", str(cfg))
        monkeypatch.delenv("AWS_PROFILE", raising=False)
    aws = connect("us-east-1", None)
    for c in (aws.ec2, aws.s3, aws.ssm, aws.iam, aws.client("sts")):
        assert "127.0.0.1" not in c.meta.endpoint_url, c.meta.endpoint_url
        assert c.meta.endpoint_url.endswith("amazonaws.com")


@pytest.mark.parametrize("value", [" ", "\t", ""])
def test_a_blank_aws_endpoint_url_is_an_error_as_the_flag_is(
        tmp_path: Path, value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: whitespace was read as unset by trainctl and as an endpoint by botocore
    (a traceback, `Invalid endpoint`)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", value)
    with pytest.raises(TrainctlError, match="AWS_ENDPOINT_URL: invalid endpoint URL: empty"):
        resolve_target(None, str(tmp_path))
