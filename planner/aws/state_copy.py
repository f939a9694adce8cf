"""Copies of local state files under an s3:// `state:` prefix (the applied plan and its
journal, shared by a team)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def copy_to_state(s3: Any, state: str, files: Mapping[str, str]) -> None:
    """Put each local file `files[key]` at `key` under the `state` prefix."""
    from planner.manifest import split_s3_uri

    bucket, prefix = split_s3_uri(state)
    prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    for key, path in files.items():
        with open(path, "rb") as f:
            s3.put_object(Bucket=bucket, Key=prefix + key, Body=f.read())
