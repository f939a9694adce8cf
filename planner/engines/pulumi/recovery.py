"""A stack a crash left behind: a Pulumi lock or pending operations, found and explained.

Under the file backend the CLI keeps, per stack (`organization/PROJECT/STACK`):
- `.pulumi/locks/organization/PROJECT/STACK/LOCK_ID.json` while an update runs
  (`{"pid", "username", "hostname", "timestamp"}`), removed when it ends; a killed CLI
  leaves it and every later update refuses ("the stack is currently locked");
- `.pulumi/stacks/PROJECT/STACK.json` (or `.json.gz`): the checkpoint; its
  `checkpoint.latest.pending_operations` lists what an interrupted update had started
  (`creating`, `updating`, `deleting`, ...), which the CLI refuses to go past.
`stack export` gives the same deployment (`deployment.pending_operations`).
Nothing here imports pulumi; the lock removal is only for a holder that is gone.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from planner.engines.pulumi.backend import ORGANIZATION, WorkspaceSettings
from planner.procs import pid_alive
from planner.words import plural

BOOKKEEPING = ".pulumi"


@dataclass(frozen=True)
class PulumiLock:
    path: str                 # a file, or s3://BUCKET/KEY under an S3 backend
    pid: int
    username: str
    hostname: str
    timestamp: str
    readable: bool = True
    remover: Callable[[], None] | None = field(default=None, compare=False, repr=False)

    def remove(self) -> None:
        if self.remover is not None:
            self.remover()
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def holder_gone(self, host: str | None = None) -> bool:
        """Its CLI ran on this host and that process no longer exists."""
        return (self.readable and self.hostname == (host or socket.gethostname())
                and not pid_alive(self.pid))

    def describe(self) -> str:
        if not self.readable:
            return f"{self.path} (unreadable)"
        return (f"{self.path}: created by {self.username}@{self.hostname} (pid {self.pid}) "
                f"at {self.timestamp}")


@dataclass(frozen=True)
class PendingOperation:
    urn: str
    type: str                 # creating | updating | deleting | reading | importing

    @property
    def address(self) -> str:
        return self.urn.rsplit("::", 1)[-1]


def lock_dir(backend_dir: str, project_name: str, stack: str) -> str:
    return os.path.join(backend_dir, BOOKKEEPING, "locks", ORGANIZATION, project_name, stack)


def checkpoint_paths(backend_dir: str, project_name: str, stack: str) -> tuple[str, ...]:
    base = os.path.join(backend_dir, BOOKKEEPING, "stacks", project_name, stack)
    return (base + ".json", base + ".json.gz")


def _parse_lock(path: str, raw: bytes) -> PulumiLock:
    try:
        doc = json.loads(raw)
        return PulumiLock(path, int(doc["pid"]), str(doc.get("username", "?")),
                          str(doc.get("hostname", "?")), str(doc.get("timestamp", "?")))
    except (ValueError, KeyError, TypeError):
        return PulumiLock(path, 0, "?", "?", "?", readable=False)


def _read_lock(path: str) -> PulumiLock:
    try:
        with open(path, "rb") as f:
            return _parse_lock(path, f.read(64 * 1024))
    except OSError:
        return PulumiLock(path, 0, "?", "?", "?", readable=False)


def stack_locks(backend_dir: str, project_name: str, stack: str) -> list[PulumiLock]:
    """Every lock file of the stack (normally none between updates)."""
    folder = lock_dir(backend_dir, project_name, stack)
    try:
        names = sorted(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [_read_lock(os.path.join(folder, n)) for n in names
            if n.endswith(".json") and os.path.isfile(os.path.join(folder, n))]


def pending_of(doc: Mapping[str, Any]) -> list[PendingOperation]:
    """Pending operations of a checkpoint file, a `stack export`, or its `deployment`."""
    deployment: Any = doc
    if isinstance(doc.get("checkpoint"), Mapping):
        deployment = doc["checkpoint"].get("latest") or {}
    elif isinstance(doc.get("deployment"), Mapping):
        deployment = doc["deployment"]
    out = []
    for op in deployment.get("pending_operations") or ():
        if not isinstance(op, Mapping):
            out.append(PendingOperation("?", "?"))
            continue
        raw = op.get("resource")
        resource: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        out.append(PendingOperation(str(resource.get("urn", "?")), str(op.get("type", "?"))))
    return out


def read_checkpoint(backend_dir: str, project_name: str, stack: str) -> dict[str, Any] | None:
    for path in checkpoint_paths(backend_dir, project_name, stack):
        try:
            opener: Any = gzip.open if path.endswith(".gz") else open
            with opener(path, "rb") as f:
                doc = json.loads(f.read())
        except FileNotFoundError:
            continue
        return doc if isinstance(doc, dict) else None
    return None


@dataclass(frozen=True)
class StackTrouble:
    """What a crash left on one stack; `message` says what to run."""

    stack: str                # organization/PROJECT/STACK
    locks: tuple[PulumiLock, ...]
    pending: tuple[PendingOperation, ...]

    @property
    def found(self) -> bool:
        return bool(self.locks or self.pending)


def find_trouble(settings: WorkspaceSettings) -> StackTrouble:
    """The stack's locks and pending operations (file backend; nothing for S3 here: the
    CLI reports an S3 lock itself, and `explain` tells the same remedies)."""
    if settings.backend_dir is None:
        return StackTrouble(settings.qualified_stack, (), ())
    locks = stack_locks(settings.backend_dir, settings.project_name, settings.stack)
    doc = read_checkpoint(settings.backend_dir, settings.project_name, settings.stack)
    pending = pending_of(doc) if doc else []
    return StackTrouble(settings.qualified_stack, tuple(locks), tuple(pending))


def local_troubles(backend_dir: str, project: str | None = None) -> list[StackTrouble]:
    """The troubles of every trainctl stack in a file backend folder (of `project`'s
    stacks only, when given)."""
    from planner.engines.pulumi.backend import PROGRAMS, pulumi_project

    out = []
    for program in PROGRAMS:
        name = pulumi_project(program)
        stacks: set[str] = set()
        with contextlib.suppress(OSError):
            stacks |= set(os.listdir(os.path.join(backend_dir, BOOKKEEPING, "locks",
                                                  ORGANIZATION, name)))
        with contextlib.suppress(OSError):
            stacks |= {n.split(".json")[0] for n in os.listdir(
                os.path.join(backend_dir, BOOKKEEPING, "stacks", name)) if ".json" in n}
        for stack in sorted(stacks):
            if project is not None and stack != project:
                continue
            doc = read_checkpoint(backend_dir, name, stack)
            trouble = StackTrouble(f"{ORGANIZATION}/{name}/{stack}",
                                   tuple(stack_locks(backend_dir, name, stack)),
                                   tuple(pending_of(doc) if doc else ()))
            if trouble.found:
                out.append(trouble)
    return out


def explain(trouble: StackTrouble, backend_url: str) -> str:
    """What was found and what to run, for the user (nothing is changed)."""
    env = f"PULUMI_BACKEND_URL={backend_url!s}"
    lines = []
    if trouble.locks:
        lines.append(f"the Pulumi stack {trouble.stack} is locked (an update was "
                     "interrupted, or one is still running):")
        lines += [f"  {lock.describe()}" for lock in trouble.locks]
        gone = all(lock.holder_gone() for lock in trouble.locks)
        lines.append(("  its pulumi process is gone; " if gone else
                      "  if no trainctl or pulumi process runs for it: ")
                     + f"`{env} pulumi cancel --yes --stack {trouble.stack}`, or, when "
                     "trainctl's own lock was left too (`trainctl lock status`), "
                     "`trainctl lock release LOCK_ID`, which removes both")
    if trouble.pending:
        n = len(trouble.pending)
        lines.append(f"the Pulumi stack {trouble.stack} has {n} pending "
                     f"{plural(n, 'operation')} from an interrupted update:")
        lines += [f"  {op.type} {op.address}" for op in trouble.pending]
        lines.append("  check in AWS what each one did, then either "
                     f"`{env} pulumi refresh --clear-pending-creates --stack {trouble.stack}` "
                     "(creates only), or `pulumi stack export --stack "
                     f"{trouble.stack} --file state.json`, remove the entries under "
                     "`pending_operations`, `pulumi stack import --stack "
                     f"{trouble.stack} --file state.json`; then plan again "
                     "(see docs/pulumi.md, Recovery)")
    return "\n".join(lines)


def remove_dead_locks(troubles: Iterable[StackTrouble], host: str | None = None) -> list[str]:
    """Remove the Pulumi lock files whose CLI ran on this host and is gone; their paths.
    A live holder's lock, another host's and an unreadable one stay."""
    removed = []
    for trouble in troubles:
        for lock in trouble.locks:
            if lock.holder_gone(host):
                lock.remove()
                removed.append(lock.path)
    return removed


def s3_troubles(s3: Any, state: str, project: str | None = None) -> list[StackTrouble]:
    """The locks and pending operations of the trainctl stacks under an S3 backend
    (`state:` S3 prefix + `pulumi/`), read with an S3 client (the same layout)."""
    from planner.engines.pulumi.backend import PROGRAMS, PULUMI_FOLDER, pulumi_project

    bucket, _, prefix = state[len("s3://"):].partition("/")
    root = "/".join(p for p in (prefix.strip("/"), PULUMI_FOLDER, BOOKKEEPING) if p)
    out = []
    for program in PROGRAMS:
        name = pulumi_project(program)
        locks: dict[str, list[PulumiLock]] = {}
        base = f"{root}/locks/{ORGANIZATION}/{name}/"
        for key in _keys(s3, bucket, base):
            stack, _, file = key[len(base):].partition("/")
            if not file.endswith(".json") or (project is not None and stack != project):
                continue
            raw = s3.get_object(Bucket=bucket, Key=key)["Body"].read(64 * 1024)
            lock = _parse_lock(f"s3://{bucket}/{key}", raw)
            locks.setdefault(stack, []).append(
                replace(lock, remover=_s3_remover(s3, bucket, key)))
        stacks = set(locks) | ({project} if project else set())
        for stack in sorted(stacks):
            pending = _s3_pending(s3, bucket, f"{root}/stacks/{name}/{stack}.json")
            trouble = StackTrouble(f"{ORGANIZATION}/{name}/{stack}",
                                   tuple(locks.get(stack, ())), tuple(pending))
            if trouble.found:
                out.append(trouble)
    return out


def _s3_remover(s3: Any, bucket: str, key: str) -> Callable[[], None]:
    def remove() -> None:
        s3.delete_object(Bucket=bucket, Key=key)
    return remove


def _keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", ())]
    return keys


def _s3_pending(s3: Any, bucket: str, key: str) -> list[PendingOperation]:
    try:
        raw = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as e:
        if "NoSuchKey" in str(e) or "Not Found" in str(e) or "404" in str(e):
            return []
        raise
    try:
        doc = json.loads(raw)
    except ValueError:
        return []
    return pending_of(doc) if isinstance(doc, dict) else []
