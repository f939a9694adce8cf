"""Live AWS state as an immutable snapshot. Pure data; `planner.aws.read` fills it.

Times are timezone-aware UTC datetimes, serialised as ISO 8601 with a `Z`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TypeVar

from planner.spec import Market

SNAPSHOT_FORMAT = "1"

TAG_PROJECT = "trainctl:project"
TAG_ADDRESS = "trainctl:address"
TAG_PERSISTENT = "trainctl:persistent"
TAG_PROTECTED = "trainctl:protected"
TAG_DATASET_DIGEST = "trainctl:dataset-digest"
TAG_MOUNTED = "trainctl:mounted"
TAG_ON_DELETE = "trainctl:on-delete"
TAG_CLIENT_TOKEN = "trainctl:client-token"   # moto ignores ClientToken: retries find it
TAG_TRAINING = "trainctl:training"
TAG_CHECKPOINTS = "trainctl:checkpoints"
TAG_MODIFIED = "trainctl:modified"     # start times of trainctl's modifications (24 h)
TAG_TEMPORARY = "trainctl:temporary"   # prewarm's temporary instances
TAG_CREATED_EMPTY = "trainctl:created-empty"   # made with no snapshot: may be formatted


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(UTC)


V = TypeVar("V")


def _frozen(d: Mapping[str, V] | None) -> Mapping[str, V]:
    return MappingProxyType(dict(d or {}))


@dataclass(frozen=True)
class LiveAttachment:
    instance_id: str
    device: str
    state: str                    # attaching | attached | detaching | detached


@dataclass(frozen=True)
class LiveVolume:
    id: str
    availability_zone: str
    size_gib: int
    type: str
    state: str                    # creating | available | in-use | deleting | ...
    create_time: datetime
    iops: int | None = None
    throughput_mibps: int | None = None
    encrypted: bool = False
    snapshot_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=lambda: _frozen(None))
    attachments: tuple[LiveAttachment, ...] = ()

    @property
    def address(self) -> str | None:
        return self.tags.get(TAG_ADDRESS)

    @property
    def persistent(self) -> bool:
        return self.tags.get(TAG_PERSISTENT) == "true"

    @property
    def protected(self) -> bool:
        return self.tags.get(TAG_PROTECTED) == "true"


@dataclass(frozen=True)
class LiveInstance:
    id: str
    instance_type: str
    availability_zone: str
    state: str                    # pending | running | stopping | stopped | ...
    launch_time: datetime
    ami: str | None = None
    market: Market = Market.ON_DEMAND
    subnet_id: str | None = None
    iam_instance_profile: str | None = None   # the profile's ARN as EC2 reports it
    tags: Mapping[str, str] = field(default_factory=lambda: _frozen(None))

    @property
    def address(self) -> str | None:
        return self.tags.get(TAG_ADDRESS)

    @property
    def protected(self) -> bool:
        return self.tags.get(TAG_PROTECTED) == "true"


@dataclass(frozen=True)
class LiveModification:
    volume_id: str
    state: str                    # modifying | optimizing | completed | failed
    start_time: datetime
    end_time: datetime | None = None


@dataclass(frozen=True)
class LiveEbsSnapshot:
    id: str
    volume_id: str | None
    state: str
    start_time: datetime
    tags: Mapping[str, str] = field(default_factory=lambda: _frozen(None))


@dataclass(frozen=True)
class DatasetManifest:
    """An S3 listing reduced to a digest of (key, size, ETag)."""

    uri: str
    objects: int
    bytes: int
    digest: str                   # "sha256:..."
    list_calls: int = 0           # ListObjectsV2 pages it took
    unsafe_objects: int = 0       # keys that are not safe relative paths (planner.keys)
    unsafe_keys: tuple[str, ...] = ()   # the first few of them, relative to the prefix


@dataclass(frozen=True)
class StageState:
    """What uploading a local dataset to its stage does, from the folder, the stage's
    listing and trainctl's record of what it uploaded there (planner.stage)."""

    upload_objects: int = 0       # files sent (new or changed)
    upload_bytes: int = 0
    replace_objects: int = 0      # stage objects those uploads overwrite
    replace_bytes: int = 0
    replace_foreign: int = 0      # ...of which trainctl did not record writing
    delete_objects: int = 0       # written by trainctl, no longer in the folder: deleted
    delete_bytes: int = 0
    delete_examples: tuple[str, ...] = ()
    kept_objects: int = 0         # not in the folder, not written by trainctl: kept
    kept_bytes: int = 0
    kept_examples: tuple[str, ...] = ()
    owner: str | None = None      # the project named by the stage record, if any
    problem: str | None = None    # why the stage record could not be read, if so


@dataclass(frozen=True)
class LiveState:
    project: str
    region: str
    read_at: datetime
    volumes: tuple[LiveVolume, ...] = ()
    instances: tuple[LiveInstance, ...] = ()
    modifications: tuple[LiveModification, ...] = ()
    snapshots: tuple[LiveEbsSnapshot, ...] = ()
    datasets: Mapping[str, DatasetManifest] = field(default_factory=lambda: _frozen(None))
    stages: Mapping[str, StageState] = field(default_factory=lambda: _frozen(None))
    spot_prices: Mapping[str, float] = field(default_factory=lambda: _frozen(None))
    # AMI id -> its root volume {"size_gib": N, "type": "gp3"}: prices an instance's root
    # volume at plan time, before it exists
    image_roots: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: _frozen(None))
    api_calls: int = 0

    def volume_by_id(self, vid: str) -> LiveVolume | None:
        return next((v for v in self.volumes if v.id == vid), None)

    def instance_by_id(self, iid: str) -> LiveInstance | None:
        return next((i for i in self.instances if i.id == iid), None)

    def modifications_of(self, vid: str) -> list[LiveModification]:
        return [m for m in self.modifications if m.volume_id == vid]


# --- JSON (for `plan --live-snapshot FILE` and for digests) -------------------------


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _jsonable(value: Any) -> Any:
    if type(value) in _SCALARS:      # most values: skip the isinstance chain (100k-scale plans)
        return value
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in sorted(value.items())}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {k: _jsonable(getattr(value, k)) for k in value.__dataclass_fields__}
    return value


def live_to_json(state: LiveState) -> dict[str, Any]:
    doc = _jsonable(state)
    doc["format"] = SNAPSHOT_FORMAT
    return doc


def _manifest(d: Mapping[str, Any]) -> DatasetManifest:
    return DatasetManifest(**{**d, "unsafe_keys": tuple(d.get("unsafe_keys", ()))})


def _stage(d: Mapping[str, Any]) -> StageState:
    return StageState(**{**d, "delete_examples": tuple(d.get("delete_examples", ())),
                         "kept_examples": tuple(d.get("kept_examples", ()))})


def live_from_json(doc: Mapping[str, Any]) -> LiveState:
    """Inverse of live_to_json. Raises KeyError/ValueError/TypeError on bad input."""
    if doc.get("format") != SNAPSHOT_FORMAT:
        raise ValueError(f"unsupported live snapshot format {doc.get('format')!r}")
    t = parse_iso

    def vol(d: Mapping[str, Any]) -> LiveVolume:
        return LiveVolume(
            id=d["id"], availability_zone=d["availability_zone"], size_gib=int(d["size_gib"]),
            type=d["type"], state=d["state"], create_time=t(d["create_time"]),
            iops=d.get("iops"), throughput_mibps=d.get("throughput_mibps"),
            encrypted=bool(d.get("encrypted", False)), snapshot_id=d.get("snapshot_id"),
            tags=_frozen(d.get("tags")),
            attachments=tuple(LiveAttachment(**a) for a in d.get("attachments", ())),
        )

    def inst(d: Mapping[str, Any]) -> LiveInstance:
        return LiveInstance(
            id=d["id"], instance_type=d["instance_type"],
            availability_zone=d["availability_zone"], state=d["state"],
            launch_time=t(d["launch_time"]), ami=d.get("ami"),
            market=Market(d.get("market", "on-demand")), subnet_id=d.get("subnet_id"),
            iam_instance_profile=d.get("iam_instance_profile"), tags=_frozen(d.get("tags")),
        )

    return LiveState(
        project=doc["project"],
        region=doc["region"],
        read_at=t(doc["read_at"]),
        volumes=tuple(vol(v) for v in doc.get("volumes", ())),
        instances=tuple(inst(i) for i in doc.get("instances", ())),
        modifications=tuple(
            LiveModification(
                volume_id=m["volume_id"], state=m["state"], start_time=t(m["start_time"]),
                end_time=t(m["end_time"]) if m.get("end_time") else None,
            )
            for m in doc.get("modifications", ())
        ),
        snapshots=tuple(
            LiveEbsSnapshot(
                id=s["id"], volume_id=s.get("volume_id"), state=s["state"],
                start_time=t(s["start_time"]), tags=_frozen(s.get("tags")),
            )
            for s in doc.get("snapshots", ())
        ),
        datasets=_frozen({k: _manifest(v) for k, v in doc.get("datasets", {}).items()}),
        stages=_frozen({k: _stage(v) for k, v in doc.get("stages", {}).items()}),
        spot_prices=_frozen({k: float(v) for k, v in doc.get("spot_prices", {}).items()}),
        image_roots=_frozen({k: _frozen(v) for k, v in doc.get("image_roots", {}).items()}),
        api_calls=int(doc.get("api_calls", 0)),
    )
