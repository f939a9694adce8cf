"""Dataset manifests: a listing reduced to a digest of (relative key, size, ETag).

The S3 reader, the uploader and the local-folder scanner share `manifest_digest`, and
local files get S3-style ETags as boto3's default TransferConfig produces them
(multipart from 8 MiB on, in 8 MiB parts), so a local source and its uploaded stage
have the same digest.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from planner.digest import digest
from planner.errors import TrainctlError
from planner.keys import unsafe_keys
from planner.live import DatasetManifest

CHUNK = 8 * 1024 * 1024    # boto3 TransferConfig default multipart_threshold and chunksize
MAX_PARTS = 10_000         # S3's multipart limit; boto3 doubles the part size to stay under
_READ = 1 << 20

Entry = tuple[str, int, str]     # (key relative to the prefix, size, ETag without quotes)


def manifest_digest(entries: Iterable[Entry]) -> str:
    return digest(sorted([k, int(s), e.strip('"')] for k, s, e in entries))


RECORD_NAME = ".trainctl-stage.json"   # trainctl's record under a stage (planner.stage)


def manifest_from_entries(uri: str, entries: Iterable[Entry], list_calls: int = 0,
                          markers: Iterable[str] = ()) -> DatasetManifest:
    """The manifest of ENTRIES; its unsafe keys are counted among the entries and the
    folder MARKERS (relative keys ending in `/`, which are not entries)."""
    rows = list(entries)
    n_unsafe, examples = unsafe_keys([*(k for k, _, _ in rows), *markers])
    return DatasetManifest(uri=uri, objects=len(rows), bytes=sum(int(s) for _, s, _ in rows),
                           digest=manifest_digest(rows), list_calls=list_calls,
                           unsafe_objects=n_unsafe, unsafe_keys=examples)


def s3_etag(path: str | os.PathLike[str], part_size: int | None = CHUNK) -> str:
    """The ETag S3 gives `path` once boto3 uploads it: the MD5 below the multipart
    threshold (taken equal to `part_size`), else MD5(part MD5s)-N. None: always one part."""
    size = os.path.getsize(path)
    if part_size is None or size < part_size:
        whole = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as f:
            while block := f.read(_READ):
                whole.update(block)
        return whole.hexdigest()
    while -(-size // part_size) > MAX_PARTS:
        part_size *= 2
    parts: list[bytes] = []
    with open(path, "rb") as f:
        for _ in range(-(-size // part_size)):
            h, left = hashlib.md5(usedforsecurity=False), part_size
            while left and (block := f.read(min(_READ, left))):
                h.update(block)
                left -= len(block)
            parts.append(h.digest())
    return f"{hashlib.md5(b''.join(parts), usedforsecurity=False).hexdigest()}-{len(parts)}"


def local_entries(root: str | os.PathLike[str], part_size: int | None = CHUNK) -> list[Entry]:
    """Every regular file below `root` (hidden ones too; symlinked folders not followed)."""
    base = Path(root).resolve()
    if not base.is_dir():
        raise TrainctlError(f"local dataset source {root} is not a directory")
    if os.path.lexists(base / RECORD_NAME):
        raise TrainctlError(f"local dataset source {root} holds {RECORD_NAME}, the name of "
                            "trainctl's record in a stage: rename that file")
    out: list[Entry] = []
    for dirpath, _dirs, files in os.walk(base):
        for name in files:
            p = Path(dirpath) / name
            if p.is_file():
                out.append((p.relative_to(base).as_posix(), p.stat().st_size,
                            s3_etag(p, part_size)))
    return out


def local_manifest(root: str | os.PathLike[str],
                   part_size: int | None = CHUNK) -> DatasetManifest:
    return manifest_from_entries(Path(root).resolve().as_uri(), local_entries(root, part_size))


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/a/b` -> ("bucket", "a/b/"); a non-empty prefix always ends in `/`."""
    if not uri.startswith("s3://"):
        raise TrainctlError(f"not an s3:// URI: {uri}")
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix
