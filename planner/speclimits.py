"""What AWS and the instance would refuse mid-apply, checked when the spec is loaded.

EC2's tag limits on the tags trainctl will write (the spec's merged with trainctl's own),
mount paths that name one directory or hide each other, and local dataset files whose
names cannot be S3 keys. Like `planner.semantic`, the checks read the raw document (so
issues carry FILE:LINE:COL) and skip values the schema already rejected.
"""

from __future__ import annotations

import os
import unicodedata
from typing import Any

from planner.errors import SpecIssue, first_few
from planner.live import (
    TAG_ADDRESS,
    TAG_CHECKPOINTS,
    TAG_CLIENT_TOKEN,
    TAG_CREATED_EMPTY,
    TAG_DATASET_DIGEST,
    TAG_MODIFIED,
    TAG_MOUNTED,
    TAG_ON_DELETE,
    TAG_PERSISTENT,
    TAG_PROJECT,
    TAG_PROTECTED,
    TAG_TRAINING,
)
from planner.spec import ON_VOLUME, OnDelete, Strategy
from planner.words import counted
from planner.yamlsafe import Path, YamlDoc, format_path

EC2_TAGS_MAX = 50          # tags per EC2 resource
TAG_KEY_MAX = 128          # characters
TAG_VALUE_MAX = 256
# trainctl:mounted holds `INSTANCE_ID:PATH` (and the filesystem size): a mount path
# longer than this could not be recorded after the mount.
MOUNT_PATH_MAX = 200
S3_KEY_MAX = 1024          # bytes of UTF-8


def _map(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def normalise_mount_path(path: str) -> str:
    """`//data`, `/data/`, `/data/.` -> `/data` (what the kernel mounts on)."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    return "/" + "/".join(parts)


def _inside(inner: str, outer: str) -> bool:
    return outer == "/" or inner.startswith(outer + "/")


def volume_trainctl_tags(vol: dict[str, Any], *, mounted: bool, holds_digest: bool
                         ) -> list[str]:
    """Every tag key trainctl may write on this volume over its life (DESIGN section 3)."""
    keys = ["Name", TAG_PROJECT, TAG_ADDRESS, TAG_CLIENT_TOKEN, TAG_MODIFIED]
    if not vol.get("snapshot_id") and not vol.get("import"):
        keys.append(TAG_CREATED_EMPTY)         # set at CreateVolume: it may be formatted
    if vol.get("persistent") is True:
        keys.append(TAG_PERSISTENT)
    if vol.get("protect") is True:
        keys.append(TAG_PROTECTED)
    if vol.get("on_delete") == OnDelete.SNAPSHOT:
        keys.append(TAG_ON_DELETE)
    if mounted:
        keys.append(TAG_MOUNTED)
    if holds_digest:
        keys.append(TAG_DATASET_DIGEST)
    return keys


def instance_trainctl_tags(inst: dict[str, Any], *, holds_digest: bool) -> list[str]:
    """Every tag key trainctl may write on this instance."""
    keys = ["Name", TAG_PROJECT, TAG_ADDRESS, TAG_TRAINING, TAG_CHECKPOINTS]
    if inst.get("protect") is True:
        keys.append(TAG_PROTECTED)
    if holds_digest:
        keys.append(TAG_DATASET_DIGEST)
    return keys


def s3_key_problem(rel: bytes, prefix: str) -> str | None:
    """Why `prefix + rel` (a file's path below its source folder) cannot be an S3 key."""
    try:
        text = rel.decode("utf-8")
    except UnicodeDecodeError:
        return "its name is not UTF-8"
    size = len(prefix.encode("utf-8")) + len(rel)
    if size > S3_KEY_MAX:
        return f"its key would be {size} bytes of UTF-8 (S3 allows {S3_KEY_MAX})"
    bad = sorted({c for c in text if unicodedata.category(c) in ("Cc", "Cs")})
    if bad:
        return "its name holds control characters (" + ", ".join(
            f"U+{ord(c):04X}" for c in bad) + ")"
    if "\\" in text:
        return "its name holds a backslash (not a safe relative key)"
    return None


class _Checker:
    def __init__(self, doc: YamlDoc, rejected: set[str]):
        self.doc = doc
        self.rejected = rejected
        self.issues: list[SpecIssue] = []

    def ok(self, path: Path) -> bool:
        p = format_path(path)
        return not any(r == p or r.startswith((p + ".", p + "[")) for r in self.rejected)

    def add(self, path: Path, message: str, *, key: bool = False) -> None:
        self.issues.append(self.doc.issue(path, message, key=key))

    def run(self) -> list[SpecIssue]:
        data = self.doc.data
        self.datasets = _map(data.get("datasets"))
        self.volumes = _map(data.get("volumes"))
        self.instances = _map(data.get("instances"))
        self.defaults_tags = _map(_map(data.get("defaults")).get("tags"))
        self.check_tag_entries(("defaults", "tags"), self.defaults_tags)
        mounted, digest_volumes, digest_instances = self.data_placement()
        for name, vol in self.volumes.items():
            vol = _map(vol)
            own = self.check_tag_entries(("volumes", name, "tags"), _map(vol.get("tags")))
            self.check_tag_count(("volumes", name), "EBS volume", own, volume_trainctl_tags(
                vol, mounted=name in mounted, holds_digest=name in digest_volumes))
        for name, inst in self.instances.items():
            inst = _map(inst)
            own = self.check_tag_entries(("instances", name, "tags"), _map(inst.get("tags")))
            self.check_tag_count(("instances", name), "EC2 instance", own,
                                 instance_trainctl_tags(
                                     inst, holds_digest=name in digest_instances))
            self.check_mount_paths(name, inst)
        for name, ds in self.datasets.items():
            self.check_local_files(name, _map(ds))
        return self.issues

    # --- tags ----------------------------------------------------------------------------

    def data_placement(self) -> tuple[set[str], set[str], set[str]]:
        """(mounted volumes, volumes and instances that may hold a dataset-digest tag)."""
        mounted: set[str] = set()
        digest_instances: set[str] = set()
        digest_volumes = {str(_map(ds).get("volume")) for ds in self.datasets.values()
                          if _map(ds).get("strategy") in ON_VOLUME}
        for name, inst in self.instances.items():
            inst = _map(inst)
            vols = {str(_map(m).get("volume")) for m in _list(inst.get("mounts"))}
            mounted |= vols
            if any(_map(self.datasets.get(d)).get("strategy") == Strategy.LOCAL_CACHE
                   for d in _list(inst.get("datasets")) if isinstance(d, str)):
                digest_instances.add(name)     # a local-cache sync records on the
                digest_volumes |= vols         # instance or on the volume it lands on
        return mounted, digest_volumes, digest_instances

    def check_tag_entries(self, path: Path, tags: dict[str, Any]) -> dict[str, Any]:
        """Key and value limits of one `tags:` map; returns the map."""
        for key, value in tags.items():
            kpath: Path = (*path, key)
            if not self.ok(kpath):
                continue
            if key.lower().startswith("aws:"):
                self.add(kpath, f"tag key {key!r}: the aws: prefix (in any case) is "
                                "reserved by AWS", key=True)
            elif len(key) > TAG_KEY_MAX:
                self.add(kpath, f"tag key is {len(key)} characters; EC2 allows "
                                f"{TAG_KEY_MAX}", key=True)
            if isinstance(value, str) and len(value) > TAG_VALUE_MAX:
                self.add(kpath, f"tag value is {len(value)} characters; EC2 allows "
                                f"{TAG_VALUE_MAX}")
        return tags

    def check_tag_count(self, path: Path, kind: str, own: dict[str, Any],
                        trainctl: list[str]) -> None:
        merged = {**self.defaults_tags, **own}
        keys = set(merged) | set(trainctl)
        if len(keys) <= EC2_TAGS_MAX:
            return
        where: Path = (*path, "tags") if own else (
            ("defaults", "tags") if self.defaults_tags else path)
        self.add(where, f"{len(keys)} tags on this {kind}: {len(merged)} from "
                        f"defaults.tags and its tags, {len(set(trainctl) - set(merged))} "
                        f"trainctl's own ({', '.join(trainctl)}); EC2 allows "
                        f"{EC2_TAGS_MAX} per resource: remove {len(keys) - EC2_TAGS_MAX}",
                 key=where != path)

    # --- mount paths ---------------------------------------------------------------------

    def check_mount_paths(self, name: str, inst: dict[str, Any]) -> None:
        """One directory per mount, none over /, none inside another of this instance
        (the mount steps run in no fixed order, so one would hide the other)."""
        seen: list[tuple[str, int]] = []
        for k, mount in enumerate(_list(inst.get("mounts"))):
            mpath: Path = ("instances", name, "mounts", k, "path")
            raw = _map(mount).get("path")
            if not isinstance(raw, str) or not self.ok(mpath):
                continue
            norm = normalise_mount_path(raw)
            same = next((j for p, j in seen if p == norm), None)
            nested = [("inside", p, j) for p, j in seen if _inside(norm, p)]
            nested += [("around", p, j) for p, j in seen if _inside(p, norm)]
            if norm == "/":
                self.add(mpath, f"mount path {raw} is / (cannot mount a volume over /)")
            elif same is not None:
                self.add(mpath, f"mount path {raw} is already used by mounts[{same}]"
                                + ("" if raw == norm else f" (both are {norm})"))
            elif nested:
                how, p, j = nested[0]
                self.add(mpath, f"mount path {raw} lies {how} mounts[{j}]'s {p}: one "
                                "mount would hide the other's files; use separate "
                                "directories")
            elif len(norm) > MOUNT_PATH_MAX:
                self.add(mpath, f"mount path is {len(norm)} characters; trainctl records "
                                f"it in a tag and allows {MOUNT_PATH_MAX}")
            seen.append((norm, k))

    # --- local dataset files -------------------------------------------------------------

    def check_local_files(self, name: str, ds: dict[str, Any]) -> None:
        """Every file of a local source must make a valid S3 key below its stage."""
        source, stage = ds.get("source"), ds.get("stage")
        spath: Path = ("datasets", name, "source")
        if not isinstance(source, str) or source.startswith("s3://") or not self.ok(spath):
            return
        base = os.path.dirname(os.path.abspath(self.doc.file))
        root = os.fsencode(os.path.normpath(os.path.join(base, source)))
        if not os.path.isdir(root):
            return       # planner.semantic reports it
        prefix = ""
        if isinstance(stage, str) and stage.startswith("s3://"):
            prefix = stage[5:].partition("/")[2]
            prefix += "/" if prefix and not prefix.endswith("/") else ""
        bad: list[str] = []
        for dirpath, _dirs, files in os.walk(root):
            for f in files:
                full = os.path.join(dirpath, f)
                if not os.path.isfile(full):
                    continue
                rel = os.path.relpath(full, root)
                why = s3_key_problem(rel, prefix)
                if why:
                    shown = rel.decode("utf-8", "backslashreplace").encode(
                        "unicode_escape").decode("ascii")
                    bad.append(f"{_short(shown)} ({why})")
        if bad:
            self.add(spath, f"{counted(len(bad), 'file')} cannot be uploaded as S3 keys: "
                            f"{first_few(sorted(bad), 3)}; rename "
                            f"{'it' if len(bad) == 1 else 'them'}")


def _short(text: str, most: int = 80) -> str:
    return text if len(text) <= most else text[:most - 3] + "..."



def check(doc: YamlDoc, rejected: set[str]) -> list[SpecIssue]:
    """Issues of a document that AWS or the instance would raise mid-apply."""
    return _Checker(doc, rejected).run()
