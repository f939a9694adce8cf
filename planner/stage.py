"""A local dataset's stage: the S3 prefix trainctl uploads the folder to, and deletes from.

Pure. Deletions under a stage are limited to what trainctl itself uploaded there: the
uploader keeps a record object, `STAGE/.trainctl-stage.json`, listing the key, size and
ETag of every object it wrote. An object is trainctl's while its (size, ETag) still
match the record; anything else under the stage is kept, and the plan warns about it.
The plan and the uploader compute the work with the same function, `stage_work`.

Prefix arithmetic for the validation that a stage overlaps nothing else is here too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from planner.keys import EXAMPLES
from planner.live import StageState
from planner.manifest import RECORD_NAME, Entry

RECORD_FORMAT = "1"
RECORD_KIND = "trainctl-stage-record"


@dataclass(frozen=True)
class StageRecord:
    """What trainctl wrote under a stage: relative key -> (size, ETag)."""

    project: str
    dataset: str
    objects: Mapping[str, tuple[int, str]] = field(default_factory=dict)


def record_to_bytes(record: StageRecord) -> bytes:
    doc = {"kind": RECORD_KIND, "format": RECORD_FORMAT, "project": record.project,
           "dataset": record.dataset,
           "objects": {k: [s, e] for k, (s, e) in sorted(record.objects.items())}}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def record_from_bytes(raw: bytes) -> StageRecord:
    """Parse and validate a record; ValueError says what is wrong with it."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"not JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("kind") != RECORD_KIND:
        raise ValueError("not a trainctl stage record")
    if doc.get("format") != RECORD_FORMAT:
        raise ValueError(f"record format {doc.get('format')!r} is not {RECORD_FORMAT!r}")
    project, dataset, objects = doc.get("project"), doc.get("dataset"), doc.get("objects")
    if not isinstance(project, str) or not isinstance(dataset, str) or not isinstance(
            objects, dict):
        raise ValueError("project, dataset or objects missing")
    out: dict[str, tuple[int, str]] = {}
    for key, value in objects.items():
        if not (isinstance(value, list) and len(value) == 2 and type(value[0]) is int
                and value[0] >= 0 and isinstance(value[1], str)):
            raise ValueError(f"bad entry for {key!r}")
        out[key] = (value[0], value[1])
    return StageRecord(project, dataset, out)


@dataclass(frozen=True)
class StageWork:
    """What an upload does: entries are (relative key, size, ETag)."""

    upload: tuple[Entry, ...]        # local files to send
    replace: tuple[Entry, ...]       # stage objects those uploads overwrite
    replace_foreign: int             # ...of which trainctl did not record writing
    delete: tuple[Entry, ...]        # trainctl's objects the folder no longer has
    kept: tuple[Entry, ...]          # objects trainctl did not write, not in the folder
    owned: Mapping[str, tuple[int, str]]   # the record's entries that still hold

    def state(self, owner: str | None = None, problem: str | None = None) -> StageState:
        return StageState(
            upload_objects=len(self.upload), upload_bytes=_bytes(self.upload),
            replace_objects=len(self.replace), replace_bytes=_bytes(self.replace),
            replace_foreign=self.replace_foreign,
            delete_objects=len(self.delete), delete_bytes=_bytes(self.delete),
            delete_examples=tuple(k for k, _, _ in self.delete[:EXAMPLES]),
            kept_objects=len(self.kept), kept_bytes=_bytes(self.kept),
            kept_examples=tuple(k for k, _, _ in self.kept[:EXAMPLES]),
            owner=owner, problem=problem,
        )


def _bytes(entries: Iterable[Entry]) -> int:
    return sum(int(s) for _, s, _ in entries)


def _etag(e: str) -> str:
    return e.strip('"')


def stage_work(local: Iterable[Entry], stage: Iterable[Entry], record: StageRecord | None,
               project: str) -> StageWork:
    """Compare the folder with the stage listing (the record object excluded). A record
    of another project owns nothing here (the plan refuses such a stage)."""
    mine = record.objects if record is not None and record.project == project else {}
    remote = {k: (int(s), _etag(e)) for k, s, e in stage}
    have = {k: (int(s), _etag(e)) for k, s, e in local}
    owned = {k: v for k, v in mine.items() if remote.get(k) == (v[0], _etag(v[1]))}
    upload = tuple(sorted((k, s, e) for k, (s, e) in have.items() if remote.get(k) != (s, e)))
    replace = tuple((k, *remote[k]) for k, _, _ in upload if k in remote)
    gone = sorted((k, s, e) for k, (s, e) in remote.items() if k not in have)
    return StageWork(
        upload=upload, replace=replace,
        replace_foreign=sum(1 for k, _, _ in replace if k not in owned),
        delete=tuple(e for e in gone if e[0] in owned),
        kept=tuple(e for e in gone if e[0] not in owned),
        owned=owned,
    )


def pending_record(work: StageWork, project: str, dataset: str) -> StageRecord:
    """The record written before uploading: what trainctl owns, plus what it is about to
    write. A crash mid-upload then leaves only recorded objects or foreign ones (kept)."""
    objects = dict(work.owned)
    objects.update({k: (s, e) for k, s, e in work.upload})
    return StageRecord(project, dataset, objects)


def final_record(local: Iterable[Entry], stage: Iterable[Entry], project: str,
                 dataset: str) -> StageRecord:
    """After the upload: the stage objects at the folder's keys are trainctl's."""
    keys = {k for k, _, _ in local}
    return StageRecord(project, dataset,
                       {k: (int(s), _etag(e)) for k, s, e in stage if k in keys})


# --- prefixes (validation) -----------------------------------------------------------


def s3_location(uri: str) -> tuple[str, str]:
    """`s3://b/a/b` -> ("b", "a/b/"), `s3://b` and `s3://b/` -> ("b", "")."""
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


def relation(a: str, b: str) -> str | None:
    """How s3:// location A stands to B: "equals", "contains", "lies inside", or None.
    `s3://b/a` and `s3://b/a/` are equal; `s3://b/ab/` does not lie inside `s3://b/a/`."""
    (ba, pa), (bb, pb) = s3_location(a), s3_location(b)
    if ba != bb:
        return None
    if pa == pb:
        return "equals"
    if pa.startswith(pb):
        return "lies inside"
    if pb.startswith(pa):
        return "contains"
    return None


def prefix_problem(uri: str) -> str | None:
    """Why URI cannot be a stage by itself: a bucket root, or a prefix with `.`, `..`
    or empty segments."""
    bucket, prefix = s3_location(uri)
    if not prefix:
        return (f"{uri} is a bucket root; a stage is a prefix trainctl owns alone, "
                f"e.g. s3://{bucket}/trainctl/NAME/")
    parts = prefix[:-1].split("/")
    if "" in parts or "." in parts or ".." in parts:
        return f"{uri} has an empty, '.' or '..' segment; write the plain prefix"
    return None


def owner_problem(state: StageState | None, project: str) -> str | None:
    if state is None or state.owner is None or state.owner == project:
        return None
    return f"its record ({RECORD_NAME}) names trainctl project {state.owner!r}"


def as_json(state: StageState) -> dict[str, Any]:
    """The plan's view of an upload's effect on the stage."""
    return {
        "upload_objects": state.upload_objects, "upload_bytes": state.upload_bytes,
        "replace_objects": state.replace_objects, "replace_bytes": state.replace_bytes,
        "delete_objects": state.delete_objects, "delete_bytes": state.delete_bytes,
        "delete_examples": list(state.delete_examples),
        "kept_objects": state.kept_objects, "kept_bytes": state.kept_bytes,
    }
