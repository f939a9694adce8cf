"""Where the Pulumi stacks live and how a workspace is set up (pure: data in, data out).

- Backend: a local file backend under the state folder (`.trainctl/pulumi/`) by default;
  under the spec's `state:` S3 prefix (`s3://BUCKET/PREFIX/pulumi`) when it is set, so a
  team shares the stacks as it shares the lock and the plans.
- Names: one Pulumi project per program (`trainctl-storage`, `trainctl-compute`) and in
  each one stack per trainctl project, named after it. Under the file backend the CLI
  keeps `.pulumi/stacks/PROJECT/STACK.json` and `.pulumi/locks/organization/PROJECT/STACK/`.
- Secrets: the passphrase provider. trainctl stores no secrets in a stack, so the
  passphrase is empty unless the user set `PULUMI_CONFIG_PASSPHRASE` or
  `PULUMI_CONFIG_PASSPHRASE_FILE` (then theirs is used, never overwritten).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urlencode

PULUMI_FOLDER = "pulumi"            # under the state folder (statedir.FOLDERS has it)
WORK_FOLDER = "work"                # under it: one workspace folder per program
PROGRAMS = ("storage", "compute")
PROJECT_PREFIX = "trainctl-"
ORGANIZATION = "organization"       # the only organization a DIY backend knows
SECRETS_PROVIDER = "passphrase"
PASSPHRASE_ENV = "PULUMI_CONFIG_PASSPHRASE"
PASSPHRASE_FILE_ENV = "PULUMI_CONFIG_PASSPHRASE_FILE"
# Pulumi stack names: letters, digits, '-', '_', '.'; trainctl projects are [a-z0-9-]{1,40}
_STACK_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


class BackendError(ValueError):
    """A `state:` value or project name Pulumi cannot use."""


def pulumi_project(program: str) -> str:
    """The Pulumi project of a program: `trainctl-storage` / `trainctl-compute`."""
    if program not in PROGRAMS:
        raise BackendError(f"unknown stack program {program!r} (one of {PROGRAMS})")
    return PROJECT_PREFIX + program


def stack_name(project: str) -> str:
    """The stack of a trainctl project in each Pulumi project: the project's name."""
    if not _STACK_NAME.match(project):
        raise BackendError(f"project {project!r} is not a valid Pulumi stack name")
    return project


def qualified_stack(program: str, project: str) -> str:
    """`organization/trainctl-storage/PROJECT`, as a DIY backend names it."""
    return f"{ORGANIZATION}/{pulumi_project(program)}/{stack_name(project)}"


def local_backend_dir(state_dir: str) -> str:
    return os.path.join(os.path.abspath(state_dir), PULUMI_FOLDER)


def s3_backend_url(state: str, region: str, endpoint_url: str | None = None) -> str:
    """`s3://BUCKET/PREFIX/pulumi?region=R`, plus the emulator's endpoint when set."""
    if not state.startswith("s3://") or not state[5:].split("/", 1)[0]:
        raise BackendError(f"state: {state!r} is not an s3://BUCKET/PREFIX/ URI")
    base = state.rstrip("/") + "/" + PULUMI_FOLDER
    query: dict[str, str] = {"region": region}
    if endpoint_url:
        query |= {"awssdk": "v2", "endpoint": endpoint_url.rstrip("/"),
                  "use_path_style": "true"}
    return f"{base}?{urlencode(query)}"


def backend_url(state_dir: str, state: str | None, region: str,
                endpoint_url: str | None = None) -> str:
    """The backend URL: `state:` when it is an S3 prefix, else the local file backend."""
    if state and state.startswith("s3://"):
        return s3_backend_url(state, region, endpoint_url)
    return "file://" + local_backend_dir(state_dir)


def passphrase_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The passphrase variables to set: none when the user chose a passphrase, else an
    empty one (no secret is ever stored in a trainctl stack)."""
    if PASSPHRASE_ENV in environ or PASSPHRASE_FILE_ENV in environ:
        return {}
    return {PASSPHRASE_ENV: ""}


@dataclass(frozen=True)
class WorkspaceSettings:
    """Everything a LocalWorkspace needs for one program's stack (plain data)."""

    program: str
    project_name: str            # the Pulumi project
    stack: str                   # the stack (the trainctl project)
    backend_url: str
    work_dir: str                # Pulumi.yaml / Pulumi.STACK.yaml (the salt) between runs
    secrets_provider: str = SECRETS_PROVIDER
    env_vars: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def qualified_stack(self) -> str:
        return f"{ORGANIZATION}/{self.project_name}/{self.stack}"

    @property
    def local(self) -> bool:
        return self.backend_url.startswith("file://")

    @property
    def backend_dir(self) -> str | None:
        """The file backend's folder, or None for S3."""
        return self.backend_url[len("file://"):] if self.local else None


def workspace_settings(program: str, project: str, state_dir: str, state: str | None,
                       region: str, environ: Mapping[str, str],
                       endpoint_url: str | None = None) -> WorkspaceSettings:
    """The workspace settings of `program`'s stack for trainctl project `project`."""
    url = backend_url(state_dir, state, region, endpoint_url)
    name = pulumi_project(program)
    # update plans (`preview --save-plan`, `up --plan`) sat behind PULUMI_EXPERIMENTAL
    # in the CLIs that introduced them; every pass depends on them
    env = {"PULUMI_BACKEND_URL": url, "PULUMI_SKIP_UPDATE_CHECK": "true",
           "PULUMI_EXPERIMENTAL": "true", **passphrase_env(environ)}
    work_dir = os.path.join(local_backend_dir(state_dir), WORK_FOLDER, name)
    return WorkspaceSettings(program, name, stack_name(project), url, work_dir,
                             env_vars=MappingProxyType(env))


def workspace_options(settings: WorkspaceSettings, pulumi_command: Any = None) -> Any:
    """The SDK's LocalWorkspaceOptions for `settings` (imports pulumi)."""
    from pulumi import automation as auto

    project = auto.ProjectSettings(name=settings.project_name, runtime="python",
                                   backend=auto.ProjectBackend(url=settings.backend_url))
    return auto.LocalWorkspaceOptions(
        work_dir=settings.work_dir,
        project_settings=project,
        secrets_provider=settings.secrets_provider,
        env_vars=dict(settings.env_vars),
        pulumi_command=pulumi_command,
    )
