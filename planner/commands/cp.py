"""`trainctl cp SRC... DST`: copy files between this machine, S3 and the spec's instances.

Each side is a local path, an `s3://` URI, or `INSTANCE:PATH` (an instance of the spec).
Instance transfers go through a prefix trainctl owns (`transfer:`, else `transfer/` under
an s3:// `state:`, else on the emulator a bucket of its own) and SSM with s5cmd (the aws
CLI as fallback). Folders are copied recursively, changed files only; nothing at a
destination is deleted; keys that are not safe relative paths are refused.

Destinations: a folder source fills the folder DST; a file source lands at DST, or inside
it when DST ends with `/` (or is an existing local folder); several sources need a folder.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import click

from planner.cli import Options
from planner.errors import TrainctlError
from planner.words import counted

if TYPE_CHECKING:
    from planner.aws.session import AwsContext
    from planner.dataplane.steps import Transport
    from planner.spec import Spec

Kind = Literal["local", "s3", "instance"]


@dataclass(frozen=True)
class Side:
    kind: Kind
    path: str                   # local path, s3:// URI, or the path on the instance
    instance: str | None = None

    def __str__(self) -> str:
        return f"{self.instance}:{self.path}" if self.instance else self.path

    @property
    def folder_like(self) -> bool:
        return self.path.endswith("/") or (self.kind == "local" and os.path.isdir(self.path))


def parse_side(arg: str, instances: set[str]) -> Side:
    if arg.startswith("s3://"):
        if len(arg) <= len("s3://") or arg[len("s3://")] == "/":
            raise TrainctlError(f"{arg}: not an s3:// URI with a bucket")
        return Side("s3", arg)
    name, sep, path = arg.partition(":")
    if sep and "/" not in name and name:
        bare = name.removeprefix("instance.")
        if bare in instances:
            if not path.startswith("/"):
                raise TrainctlError(f"{arg}: the path on {bare} must be absolute")
            norm = posixpath.normpath(path) + ("/" if path.endswith("/") and path != "/" else "")
            if ".." in path.split("/"):
                raise TrainctlError(f"{arg}: '..' is not allowed in an instance path")
            return Side("instance", norm, bare)
        if not os.path.exists(arg):
            known = ", ".join(sorted(instances)) or "none"
            raise TrainctlError(f"{arg}: no instance {bare!r} in the spec (instances: {known})")
    return Side("local", arg)


def transfer_prefix(spec: Spec, aws: AwsContext) -> str:
    from planner.aws.session import is_loopback
    from planner.aws.transfer import ensure_bucket

    if spec.transfer:
        return spec.transfer.rstrip("/") + "/"
    if spec.state and spec.state.startswith("s3://"):
        return spec.state.rstrip("/") + "/transfer/"
    if is_loopback(aws.endpoint_url):
        uri = f"s3://trainctl-{spec.project}-transfer/"
        ensure_bucket(aws.s3, uri, aws.region)
        return uri
    raise TrainctlError(f"{spec.source_file}: copying to or from an instance goes through S3: "
                        "set `transfer:` to an s3:// prefix trainctl may own, or an s3:// "
                        "`state:`")


class Copier:
    def __init__(self, opts: Options, spec: Spec, aws: AwsContext, *, progress: bool):
        self.opts, self.spec, self.aws, self.progress = opts, spec, aws, progress
        self._ssm: Transport | None = None
        self._ids: dict[str, str] = {}

    @property
    def ssm(self) -> Transport:
        from planner.aws.ssm import make_transport

        if self._ssm is None:
            self._ssm = make_transport(self.aws, self.opts.state_dir)
        return self._ssm

    def instance_id(self, name: str) -> str:
        from planner.aws.find import find_instance

        if name not in self._ids:
            self._ids[name] = find_instance(self.aws.ec2, self.spec.project,
                                            f"instance.{name}").id
        return self._ids[name]

    def mirror(self, src: Side, dst: Side) -> str:
        h = hashlib.sha256(f"{src}\0{dst}".encode()).hexdigest()[:20]
        return f"{transfer_prefix(self.spec, self.aws)}cp/{h}/"

    def _ok(self, result: object, what: str) -> dict[str, object]:
        from planner.dataplane.status import ScriptResult

        assert isinstance(result, ScriptResult)
        if not result.ok:
            raise TrainctlError(f"{what}: {result.message()}")
        return result.data

    def push(self, src: Side, uri: str, *, mirror: bool) -> str:
        """The instance's file or folder to URI; "file" or "dir". MIRROR (trainctl's own
        transfer prefix): objects there that the source no longer has are then deleted,
        from the list of files the instance wrote beside the prefix."""
        from planner.aws.transfer import prune_mirror
        from planner.dataplane import scripts

        assert src.instance
        manifest = uri.rstrip("/") + ".files" if mirror else None
        data = self._ok(self.ssm.run(self.instance_id(src.instance), scripts.cp_push_script(
            path=src.path.rstrip("/") or "/", uri=uri, manifest_uri=manifest),
            timeout=12 * 3600), f"copying {src} to S3")
        if manifest:
            prune_mirror(self.aws.s3, uri, manifest)
        return str(data.get("kind"))

    def pull(self, uri: str, dst_dir: str, instance: str) -> dict[str, object]:
        from planner.dataplane import steps

        return self._ok(steps.sync_dataset(self.ssm, self.instance_id(instance), uri=uri,
                                           path=dst_dir, expect_objects=None,
                                           expect_bytes=None),
                        f"copying into {instance}:{dst_dir}")

    def copy(self, src: Side, dst: Side, *, into: bool) -> str:
        """One source to DST (INTO: DST is a folder the source lands inside)."""
        from planner.aws import transfer

        s3 = self.aws.s3
        name = posixpath.basename(src.path.rstrip("/")) or "root"
        if src.kind == "local":
            files = transfer.local_files(src.path)
            single = os.path.isfile(src.path)
            if dst.kind == "local":
                raise TrainctlError("both sides are local: use cp")
            if single:
                target = _join(dst.path, name) if into or dst.folder_like else dst.path
                files = [(posixpath.basename(target.rstrip("/")), files[0][1])]
                dest_dir = posixpath.dirname(target) if dst.kind == "instance" else None
            if dst.kind == "s3":
                base = (posixpath.dirname(target) + "/" if single else
                        _join(dst.path, name) + "/" if into else dst.path.rstrip("/") + "/")
                c = transfer.upload_files(s3, files, base, delete_stale=False,
                                          progress=self.progress)
                return f"{c.copied} of {counted(c.objects, 'file')} uploaded to {base}"
            mirror = self.mirror(src, dst)
            transfer.upload_files(s3, files, mirror, delete_stale=True, progress=self.progress)
            folder = dest_dir if single else (_join(dst.path, name) if into else dst.path)
            assert dst.instance and folder
            d = self.pull(mirror, folder.rstrip("/") or "/", dst.instance)
            return (f"{d.get('copied')} of {counted(len(files), 'file')} copied to "
                    f"{dst.instance}:{folder}")
        if src.kind == "instance":
            assert src.instance
            if dst.kind == "s3":
                if not dst.path.endswith("/"):
                    raise TrainctlError(f"{dst}: copying from an instance to S3 needs a "
                                        "prefix ending in /")
                uri = _join(dst.path, name) + "/" if into else dst.path
                kind = self.push(src, uri, mirror=False)
                return f"{src} copied to {uri} ({kind})"
            mirror = self.mirror(src, dst)
            kind = self.push(src, mirror, mirror=True)
            if dst.kind == "local":
                if kind == "file":
                    target = _local_target(dst.path, name, into)
                    transfer.download_object(s3, *_bucket_key(mirror + name), target)
                    return f"{src} copied to {target}"
                folder = os.path.join(dst.path, name) if into else dst.path
                c = transfer.download_prefix(s3, mirror, folder, progress=self.progress)
                return f"{c.copied} of {counted(c.objects, 'file')} copied to {folder}"
            assert dst.instance
            folder = (dst.path if into or dst.folder_like else posixpath.dirname(dst.path)) \
                if kind == "file" else (_join(dst.path, name) if into else dst.path)
            d = self.pull(mirror, folder.rstrip("/") or "/", dst.instance)
            return f"{_files(d.get('copied'))} copied to {dst}"
        # an s3 source
        info = transfer.object_info(s3, src.path)
        if dst.kind == "local":
            if info is not None:
                target = _local_target(dst.path, name, into)
                transfer.download_object(s3, *_bucket_key(src.path), target)
                return f"{src} copied to {target}"
            folder = os.path.join(dst.path, name) if into else dst.path
            c = transfer.download_prefix(s3, src.path.rstrip("/") + "/", folder,
                                         progress=self.progress)
            return f"{c.copied} of {counted(c.objects, 'file')} copied to {folder}"
        if dst.kind == "s3":
            raise TrainctlError("both sides are in S3: use `aws s3 cp` or `s5cmd cp`")
        assert dst.instance
        if info is None:
            folder = _join(dst.path, name) if into else dst.path
            d = self.pull(src.path.rstrip("/") + "/", folder.rstrip("/") or "/", dst.instance)
            return f"{_files(d.get('copied'))} copied to {dst.instance}:{folder}"
        mirror = self.mirror(src, dst)
        target = _join(dst.path, name) if into or dst.folder_like else dst.path
        bucket, key = _bucket_key(mirror + posixpath.basename(target))
        s3.copy({"Bucket": _bucket_key(src.path)[0], "Key": _bucket_key(src.path)[1]},
                bucket, key)
        d = self.pull(mirror, posixpath.dirname(target) or "/", dst.instance)
        return f"{src} copied to {dst.instance}:{target}"


def _files(copied: object) -> str:
    """`1 file`, `3 files`: the count the instance answered (as it said it, if not one)."""
    try:
        return counted(int(str(copied)), "file")
    except ValueError:
        return f"{copied} files"


def _join(a: str, b: str) -> str:
    return a.rstrip("/") + "/" + b


def _bucket_key(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def _local_target(dst: str, name: str, into: bool) -> str:
    return os.path.join(dst, name) if into or dst.endswith(("/", os.sep)) \
        or os.path.isdir(dst) else dst


@click.command("cp")
@click.argument("args", nargs=-1, required=True)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.pass_obj
def command(opts: Options, args: tuple[str, ...], no_progress: bool) -> None:
    """Copy SRC... to DST: local paths, s3:// URIs, or INSTANCE:PATH.

    \b
    Examples:
      trainctl cp ./configs trainer:/scratch/configs     a folder onto the trainer
      trainctl cp trainer:/scratch/checkpoints ./ckpt    fetch checkpoints
      trainctl cp s3://acme-ckpt/run-7/ trainer:/scratch/resume
      trainctl cp train.py eval.py trainer:/scratch/code/

    Changed files only; nothing at the destination is deleted. Instance transfers go
    through S3 (`transfer:` in the spec, or `transfer/` under an s3:// `state:`).
    """
    import sys

    from planner.aws.session import aws_errors
    from planner.commands.instances import connect_aws
    from planner.loader import load_spec

    if len(args) < 2:
        raise TrainctlError("usage: trainctl cp SRC... DST")
    spec = load_spec(opts.file)
    names = set(spec.instances)
    srcs = [parse_side(a, names) for a in args[:-1]]
    dst = parse_side(args[-1], names)
    into = len(srcs) > 1
    if into and not dst.folder_like and dst.kind != "local":
        raise TrainctlError(f"{dst}: several sources need a folder destination ending in /")
    if all(s.kind == "local" for s in [*srcs, dst]):
        raise TrainctlError("nothing remote: one side must be s3:// or INSTANCE:PATH")
    aws = connect_aws(opts, spec)
    copier = Copier(opts, spec, aws, progress=not no_progress and sys.stderr.isatty())
    with aws_errors():
        for src in srcs:
            click.echo(copier.copy(src, dst, into=into))
