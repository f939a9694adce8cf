"""`trainctl cp`'s S3 side: a local tree up to a prefix, a prefix down into a folder.

Changed files only (size and S3-style ETag, as the dataset uploader compares them); every
key is checked to be a safe relative path, and every write lands inside the destination.
Nothing at a destination is ever deleted, except under trainctl's own transfer prefix.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from typing import Any

from planner.aws.upload import _delete, _progress_bar, _transfer, list_stage
from planner.errors import TrainctlError, first_few
from planner.keys import unsafe_reason
from planner.manifest import s3_etag, split_s3_uri


@dataclass(frozen=True)
class Counts:
    copied: int
    objects: int
    bytes: int


def local_files(src: str) -> list[tuple[str, str]]:
    """(relative key, path) of a file (its own name) or of every file below a folder."""
    if os.path.isfile(src):
        return [(os.path.basename(os.path.abspath(src)), src)]
    if not os.path.isdir(src):
        raise TrainctlError(f"{src}: no such file or folder")
    out = []
    for dirpath, _dirs, files in os.walk(src):
        for name in files:
            p = os.path.join(dirpath, name)
            if os.path.isfile(p):
                out.append((os.path.relpath(p, src).replace(os.sep, "/"), p))
    return sorted(out)


def upload_files(s3: Any, files: list[tuple[str, str]], uri: str, *, delete_stale: bool,
                 progress: bool) -> Counts:
    """FILES to the prefix URI; with DELETE_STALE (trainctl's transfer prefix only) the
    prefix's other objects are removed, so it mirrors the files."""
    bucket, prefix = split_s3_uri(uri)
    remote, _ = list_stage(s3, uri)
    entries = [(rel, os.path.getsize(p), s3_etag(p)) for rel, p in files]
    todo = [e for e in entries if remote.get(e[0]) != (e[1], e[2])]
    if todo:
        paths = dict(files)
        with tempfile.TemporaryDirectory(prefix="trainctl-cp-") as root:
            for rel, _size, _etag in todo:       # _transfer reads ROOT/REL: link them there
                link = os.path.join(root, *rel.split("/"))
                os.makedirs(os.path.dirname(link), exist_ok=True)
                os.symlink(os.path.abspath(paths[rel]), link)
            _transfer(s3, root, bucket, prefix, todo, progress=progress)
    if delete_stale:
        keep = {rel for rel, _ in files}
        _delete(s3, bucket, [prefix + k for k in sorted(remote) if k not in keep])
    return Counts(len(todo), len(entries), sum(size for _, size, _ in entries))


def _inside(root: str, rel: str) -> str:
    target = os.path.join(root, *rel.split("/"))
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_root, os.path.realpath(target)]) != real_root:
        raise TrainctlError(f"refusing {rel!r}: it would be written outside {root}")
    return target


def _same(path: str, size: int, etag: str) -> bool:
    return (os.path.isfile(path) and os.path.getsize(path) == size
            and s3_etag(path) == etag)


def download_prefix(s3: Any, uri: str, dest: str, *, progress: bool) -> Counts:
    """Every object under URI into the folder DEST (created), changed ones only."""
    bucket, prefix = split_s3_uri(uri)
    listing, _ = list_stage(s3, uri)
    bad = [f"{k!r} ({why})" for k in listing if (why := unsafe_reason(k))]
    if bad:
        raise TrainctlError(f"{uri} holds keys that are not safe relative paths, nothing "
                            f"copied: {first_few(bad)}")
    os.makedirs(dest, exist_ok=True)
    todo = [(k, _inside(dest, k)) for k, (size, etag) in sorted(listing.items())
            if not _same(_inside(dest, k), size, etag)]
    total = sum(listing[k][0] for k, _ in todo)
    with _progress_bar(progress and bool(todo), total, len(todo)) as advance:
        for key, target in todo:
            download_object(s3, bucket, prefix + key, target)
            advance(listing[key][0])
    return Counts(len(todo), len(listing), sum(s for s, _ in listing.values()))


def download_object(s3: Any, bucket: str, key: str, target: str) -> None:
    """One object to TARGET, through a temporary file beside it (never half a file)."""
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".trainctl-", dir=os.path.dirname(os.path.abspath(target)))
    os.close(fd)
    try:
        s3.download_file(bucket, key, tmp)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def object_info(s3: Any, uri: str) -> tuple[int, str] | None:
    """(size, ETag) of the object at URI, or None when there is none."""
    from botocore.exceptions import ClientError

    bucket, _, key = uri[len("s3://"):].partition("/")
    if not key or key.endswith("/"):
        return None
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return int(head["ContentLength"]), str(head["ETag"]).strip('"')


def ensure_bucket(s3: Any, uri: str, region: str) -> None:
    """Create the bucket of URI when it does not exist (the emulator's transfer bucket)."""
    from botocore.exceptions import ClientError

    bucket, _ = split_s3_uri(uri)
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        where = ({} if region == "us-east-1"
                 else {"CreateBucketConfiguration": {"LocationConstraint": region}})
        s3.create_bucket(Bucket=bucket, **where)


def prune_mirror(s3: Any, uri: str, manifest_uri: str) -> None:
    """Delete the objects under trainctl's mirror prefix URI that are not in the
    NUL-separated file list at MANIFEST_URI (what the instance's folder holds now)."""
    bucket, prefix = split_s3_uri(uri)
    m_bucket, _, m_key = manifest_uri[len("s3://"):].partition("/")
    body = s3.get_object(Bucket=m_bucket, Key=m_key)["Body"].read()
    keep = {k for k in body.decode("utf-8", "surrogateescape").split("\0") if k}
    listing, _ = list_stage(s3, uri)
    _delete(s3, bucket, [prefix + k for k in sorted(listing) if k not in keep])
