"""Dataset manifests: a listing reduced to a digest of (relative key, size, ETag).

The S3 reader and the local-folder scanner share `manifest_digest`, and local files get
S3-style ETags as boto3's default TransferConfig produces them (multipart above 8 MiB in
8 MiB parts), so a local source and its uploaded stage have the same digest.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from planner.digest import digest
from planner.live import DatasetManifest

CHUNK = 8 * 1024 * 1024          # boto3 TransferConfig default multipart_threshold/chunksize

Entry = tuple[str, int, str]     # (key relative to the prefix, size, ETag without quotes)


def manifest_digest(entries: Iterable[Entry]) -> str:
    return digest(sorted([k, int(s), e.strip('"')] for k, s, e in entries))


def s3_etag(path: str | os.PathLike[str], chunk: int = CHUNK) -> str:
    """The ETag S3 gives this file when boto3 uploads it with default settings."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        if size <= chunk:
            return hashlib.md5(f.read(), usedforsecurity=False).hexdigest()
        parts = []
        while block := f.read(chunk):
            parts.append(hashlib.md5(block, usedforsecurity=False).digest())
    joined = hashlib.md5(b"".join(parts), usedforsecurity=False).hexdigest()
    return f"{joined}-{len(parts)}"


def local_entries(root: str | os.PathLike[str]) -> list[Entry]:
    base = Path(root)
    out: list[Entry] = []
    for p in sorted(base.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out.append((p.relative_to(base).as_posix(), p.stat().st_size, s3_etag(p)))
    return out


def local_manifest(root: str | os.PathLike[str]) -> DatasetManifest:
    entries = local_entries(root)
    return DatasetManifest(
        uri=Path(root).resolve().as_uri(),
        objects=len(entries),
        bytes=sum(s for _, s, _ in entries),
        digest=manifest_digest(entries),
    )


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/a/b/` -> ("bucket", "a/b/")."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix
