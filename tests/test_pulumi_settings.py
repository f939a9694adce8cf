"""The Pulumi engine's settings as pure functions: backend URL, stack and project names,
the passphrase secrets provider, the workspace, and the explicit aws.Provider."""

from __future__ import annotations

import os

import pytest

from planner.engines.pulumi.backend import (
    BackendError,
    backend_url,
    local_backend_dir,
    passphrase_env,
    pulumi_project,
    qualified_stack,
    stack_name,
    workspace_settings,
)
from planner.engines.pulumi.provider import (
    EMULATOR_SKIPS,
    SERVICES,
    default_tags,
    provider_args,
)
from planner.statedir import FOLDERS


def test_local_file_backend_under_the_state_folder_by_default(tmp_path):
    state_dir = str(tmp_path / ".trainctl")
    url = backend_url(state_dir, None, "us-east-1")
    assert url == "file://" + os.path.join(state_dir, "pulumi")
    assert url.startswith("file:///")           # absolute, whatever the cwd
    # the folder is one statedir checks before use
    assert os.path.basename(local_backend_dir(state_dir)) in FOLDERS


def test_relative_state_folder_becomes_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert backend_url(".trainctl", None, "eu-west-1") == \
        "file://" + str(tmp_path / ".trainctl" / "pulumi")


def test_state_s3_prefix_is_the_backend_when_set(tmp_path):
    url = backend_url(str(tmp_path), "s3://acme-trainctl/llm-finetune/", "us-east-1")
    assert url == "s3://acme-trainctl/llm-finetune/pulumi?region=us-east-1"


def test_state_s3_prefix_without_trailing_slash(tmp_path):
    url = backend_url(str(tmp_path), "s3://acme-trainctl/team", "eu-west-1")
    assert url == "s3://acme-trainctl/team/pulumi?region=eu-west-1"


def test_state_s3_prefix_on_an_emulator_names_its_endpoint(tmp_path):
    url = backend_url(str(tmp_path), "s3://b/p/", "us-east-1", "http://127.0.0.1:5000/")
    assert url.startswith("s3://b/p/pulumi?region=us-east-1&")
    assert "endpoint=http%3A%2F%2F127.0.0.1%3A5000" in url
    assert "use_path_style=true" in url


def test_state_that_is_not_s3_falls_back_to_the_local_backend(tmp_path):
    assert backend_url(str(tmp_path), None, "us-east-1").startswith("file://")


def test_a_bucketless_s3_state_is_refused():
    from planner.engines.pulumi.backend import s3_backend_url

    with pytest.raises(BackendError):
        s3_backend_url("s3:///prefix", "us-east-1")


def test_one_pulumi_project_per_program_one_stack_per_trainctl_project():
    assert pulumi_project("storage") == "trainctl-storage"
    assert pulumi_project("compute") == "trainctl-compute"
    assert stack_name("llm-finetune") == "llm-finetune"
    assert qualified_stack("storage", "llm-finetune") == \
        "organization/trainctl-storage/llm-finetune"
    with pytest.raises(BackendError):
        pulumi_project("network")
    with pytest.raises(BackendError):
        stack_name("no spaces/allowed")


def test_two_projects_in_one_state_folder_get_two_stacks(tmp_path):
    a = workspace_settings("storage", "proj-a", str(tmp_path), None, "us-east-1", {})
    b = workspace_settings("storage", "proj-b", str(tmp_path), None, "us-east-1", {})
    assert a.backend_url == b.backend_url and a.qualified_stack != b.qualified_stack


def test_passphrase_is_empty_when_the_user_set_none():
    assert passphrase_env({}) == {"PULUMI_CONFIG_PASSPHRASE": ""}


@pytest.mark.parametrize("var", ["PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE"])
def test_the_users_passphrase_is_never_overwritten(var):
    assert passphrase_env({var: "secret"}) == {}
    assert passphrase_env({var: ""}) == {}


def test_workspace_settings(tmp_path):
    ws = workspace_settings("compute", "llm-finetune", str(tmp_path), None, "us-east-1",
                            {"HOME": "/root"})
    assert ws.project_name == "trainctl-compute" and ws.stack == "llm-finetune"
    assert ws.secrets_provider == "passphrase"
    assert ws.env_vars["PULUMI_BACKEND_URL"] == ws.backend_url
    assert ws.env_vars["PULUMI_CONFIG_PASSPHRASE"] == ""
    assert ws.env_vars["PULUMI_SKIP_UPDATE_CHECK"] == "true"
    assert ws.env_vars["PULUMI_EXPERIMENTAL"] == "true"      # --save-plan / --plan
    assert "HOME" not in ws.env_vars              # only what trainctl sets
    assert ws.local and ws.backend_dir == str(tmp_path / "pulumi")
    # the workspace folder (stack settings, the passphrase salt) stays between runs
    assert ws.work_dir == str(tmp_path / "pulumi" / "work" / "trainctl-compute")
    assert not any(k.startswith("AWS_") for k in ws.env_vars)


def test_workspace_settings_on_s3_state(tmp_path):
    ws = workspace_settings("storage", "p", str(tmp_path), "s3://b/p/", "us-east-1",
                            {"PULUMI_CONFIG_PASSPHRASE": "x"})
    assert not ws.local and ws.backend_dir is None
    assert "PULUMI_CONFIG_PASSPHRASE" not in ws.env_vars


def test_workspace_options_are_the_sdks(tmp_path):
    pytest.importorskip("pulumi")
    from pulumi import automation as auto

    from planner.engines.pulumi.backend import workspace_options

    ws = workspace_settings("storage", "p", str(tmp_path), None, "us-east-1", {})
    opts = workspace_options(ws)
    assert isinstance(opts, auto.LocalWorkspaceOptions)
    assert opts.project_settings.name == "trainctl-storage"
    assert opts.project_settings.backend.url == ws.backend_url
    assert opts.secrets_provider == "passphrase"
    assert opts.work_dir == ws.work_dir
    assert opts.env_vars["PULUMI_CONFIG_PASSPHRASE"] == ""


def test_provider_on_aws_has_region_and_default_tags_only():
    args = provider_args("eu-west-1", {"team": "ml", "trainctl:project": "p"})
    assert args == {"region": "eu-west-1",
                    "default_tags": {"tags": {"team": "ml", "trainctl:project": "p"}}}


def test_provider_on_an_emulator_names_only_the_services_trainctl_uses():
    args = provider_args("us-east-1", {}, "http://127.0.0.1:5000/", emulator=True)
    [endpoints] = args["endpoints"]
    assert endpoints == dict.fromkeys(("ec2", "s3", "sts", "iam", "ssm"),
                                      "http://127.0.0.1:5000")
    assert set(SERVICES) == {"ec2", "s3", "sts", "iam", "ssm"}
    for skip in ("skip_credentials_validation", "skip_metadata_api_check",
                 "skip_region_validation", "skip_requesting_account_id",
                 "s3_use_path_style"):
        assert args[skip] is True
    assert set(EMULATOR_SKIPS) <= set(args)
    assert args["access_key"] == "testing" and args["secret_key"] == "testing"


def test_a_non_loopback_endpoint_gets_no_test_credentials():
    args = provider_args("us-east-1", {}, "https://ec2.internal.example:443")
    assert "access_key" not in args and "secret_key" not in args
    assert args["endpoints"] == [dict.fromkeys(SERVICES, "https://ec2.internal.example:443")]


def test_provider_needs_a_region():
    with pytest.raises(ValueError):
        provider_args("", {})


def test_default_tags_carry_the_project_tag_which_wins():
    assert default_tags("p", {"team": "ml", "trainctl:project": "other"}) == \
        {"team": "ml", "trainctl:project": "p"}


def test_provider_args_are_what_pulumi_aws_accepts():
    pytest.importorskip("pulumi_aws")
    import inspect

    from pulumi_aws import Provider

    params = inspect.signature(Provider._internal_init).parameters
    args = provider_args("us-east-1", {"a": "b"}, "http://127.0.0.1:5000", emulator=True)
    assert set(args) <= set(params), set(args) - set(params)
    from pulumi_aws import ProviderEndpointArgs

    endpoint_params = inspect.signature(ProviderEndpointArgs.__init__).parameters
    assert set(args["endpoints"][0]) <= set(endpoint_params)
