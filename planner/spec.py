"""The typed, frozen spec model. Pure data: loading lives in `planner.loader`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

EMPTY: Mapping[str, str] = MappingProxyType({})


# The spec's closed vocabularies: the values are the YAML (and JSON Schema) form; a
# StrEnum compares equal to its string, so `ds.strategy == "local-cache"` keeps working.
class Strategy(StrEnum):
    PREWARMED_EBS = "prewarmed-ebs"
    EXISTING_EBS = "existing-ebs"
    LOCAL_CACHE = "local-cache"
    DIRECT_S3 = "direct-s3"


class Market(StrEnum):
    ON_DEMAND = "on-demand"
    SPOT = "spot"


class OnDelete(StrEnum):
    DELETE = "delete"
    SNAPSHOT = "snapshot"


class IdleAction(StrEnum):
    STOP = "stop"
    TERMINATE = "terminate"


class VolumeType(StrEnum):
    GP3 = "gp3"
    GP2 = "gp2"
    IO1 = "io1"
    IO2 = "io2"
    ST1 = "st1"
    SC1 = "sc1"


class Filesystem(StrEnum):
    XFS = "xfs"
    EXT4 = "ext4"


VOLUME_TYPES = tuple(VolumeType)
FILESYSTEMS = tuple(Filesystem)
STRATEGIES = tuple(Strategy)
MARKETS = tuple(Market)
ON_DELETE = tuple(OnDelete)
IDLE_ACTIONS = tuple(IdleAction)
ON_VOLUME = (Strategy.PREWARMED_EBS, Strategy.EXISTING_EBS)     # the data is on a volume


@dataclass(frozen=True)
class Mount:
    volume: str
    device: str
    path: str
    read_only: bool = False


@dataclass(frozen=True)
class Checkpoints:
    path: str
    sync_to: str | None = None


DEFAULT_GRACE_SECONDS = 120


@dataclass(frozen=True)
class Training:
    pid_file: str | None = None
    process_patterns: tuple[str, ...] = ()
    log: str | None = None          # what `trainctl logs` shows
    grace_seconds: int = DEFAULT_GRACE_SECONDS   # --stop-training: SIGTERM, this long, SIGKILL


@dataclass(frozen=True)
class Dataset:
    name: str
    source: str                 # s3://bucket/prefix/ or a local directory
    strategy: Strategy
    stage: str | None = None    # s3:// prefix a local source is uploaded to
    volume: str | None = None   # prewarmed-ebs / existing-ebs
    path: str | None = None     # default applied by the loader (see DESIGN section 1)

    @property
    def is_local(self) -> bool:
        return not self.source.startswith("s3://")

    @property
    def s3_uri(self) -> str:
        """Where instances read the dataset from: the source, or its stage when local."""
        return self.source if not self.is_local else str(self.stage)


@dataclass(frozen=True)
class Volume:
    name: str
    size_gib: int
    availability_zone: str
    type: VolumeType = VolumeType.GP3
    iops: int | None = None
    throughput_mibps: int | None = None
    persistent: bool = False
    protect: bool = False
    filesystem: Filesystem = Filesystem.EXT4
    snapshot_id: str | None = None
    import_id: str | None = None   # `import:` in YAML
    encrypted: bool = False
    on_delete: OnDelete = OnDelete.DELETE
    tags: Mapping[str, str] = field(default_factory=lambda: EMPTY)


@dataclass(frozen=True)
class Instance:
    name: str
    instance_type: str
    ami: str
    availability_zone: str
    market: Market = Market.ON_DEMAND
    subnet_id: str | None = None
    iam_instance_profile: str | None = None
    protect: bool = False
    encrypted: bool = False        # the root volume
    import_id: str | None = None   # `import:` in YAML
    mounts: tuple[Mount, ...] = ()
    datasets: tuple[str, ...] = ()
    checkpoints: Checkpoints | None = None
    training: Training | None = None
    tags: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    max_lifetime: str | None = None        # "12h": stopped/terminated on the instance itself
    idle_stop_minutes: int | None = None   # no training job and GPUs under 5 % this long
    idle_action: IdleAction = IdleAction.STOP   # what both limits do

    @property
    def lifetime_seconds(self) -> int | None:
        return duration_seconds(self.max_lifetime) if self.max_lifetime else None


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(text: str) -> int:
    """`90m`, `12h`, `2d`, `30s` as seconds (the schema allows nothing else)."""
    return int(text[:-1]) * _UNITS[text[-1]]


@dataclass(frozen=True)
class Defaults:
    availability_zone: str | None = None
    min_age_minutes: int = 5
    tags: Mapping[str, str] = field(default_factory=lambda: EMPTY)


@dataclass(frozen=True)
class CostLimits:
    max_hourly_usd: float | None = None
    max_daily_usd: float | None = None
    max_accumulated_usd: float | None = None
    enforce: bool = False


@dataclass(frozen=True)
class Spec:
    """A validated spec with defaults applied. Mappings keep YAML order."""

    version: int
    project: str
    region: str
    defaults: Defaults = field(default_factory=Defaults)
    cost: CostLimits = field(default_factory=CostLimits)
    state: str | None = None
    transfer: str | None = None     # s3:// prefix trainctl owns for `trainctl cp`
    datasets: Mapping[str, Dataset] = field(default_factory=lambda: MappingProxyType({}))
    volumes: Mapping[str, Volume] = field(default_factory=lambda: MappingProxyType({}))
    instances: Mapping[str, Instance] = field(default_factory=lambda: MappingProxyType({}))
    source_file: str = "trainctl.yaml"

    def mounts_of_volume(self, volume: str) -> list[tuple[Instance, Mount]]:
        return [(i, m) for i in self.instances.values() for m in i.mounts if m.volume == volume]

    def datasets_on_volume(self, volume: str) -> list[Dataset]:
        return [d for d in self.datasets.values() if d.volume == volume]
