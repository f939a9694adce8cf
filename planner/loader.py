"""`load_spec`: YAML -> schema -> semantic checks -> the frozen Spec with defaults applied."""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from planner import schema, semantic, speclimits
from planner.errors import SpecError
from planner.gcpause import gc_paused
from planner.spec import (
    DEFAULT_GRACE_SECONDS,
    ON_VOLUME,
    Checkpoints,
    CostLimits,
    Dataset,
    Defaults,
    Filesystem,
    IdleAction,
    Instance,
    Market,
    Mount,
    OnDelete,
    Spec,
    Strategy,
    Training,
    Volume,
    VolumeType,
)
from planner.specdict import spec_to_dict as spec_to_dict  # re-exported
from planner.yamlsafe import YamlDoc, load_yaml, parse_yaml


@gc_paused()
def load_spec(path: str) -> Spec:
    """Load and validate a spec file. Raises SpecError carrying every issue found.

    The cyclic GC is paused: a big spec is hundreds of thousands of acyclic nodes, dicts
    and dataclasses, and the collector's passes over them cost more than the loading."""
    return spec_from_doc(load_yaml(path))


@gc_paused()
def loads_spec(text: str, file: str = "trainctl.yaml") -> Spec:
    """Like load_spec, from text; relative local sources resolve against `file`'s folder."""
    return spec_from_doc(parse_yaml(text, file))


def spec_from_doc(doc: YamlDoc) -> Spec:
    issues, rejected = schema.check(doc)
    issues += semantic.check(doc, rejected)
    issues += speclimits.check(doc, rejected)
    if issues:
        raise SpecError(issues)
    return _build(doc.data, doc.file)


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


# value -> member, for the checked document (a dict lookup: 100,000 volumes load fast)
_STRATEGY = {e.value: e for e in Strategy}
_MARKET = {e.value: e for e in Market}
_ON_DELETE = {e.value: e for e in OnDelete}
_IDLE_ACTION = {e.value: e for e in IdleAction}
_VOLUME_TYPE = {e.value: e for e in VolumeType}
_FILESYSTEM = {e.value: e for e in Filesystem}


def _dataset_path(name: str, strategy: Strategy, path: str | None) -> str | None:
    if path is not None:
        return path
    if strategy in ON_VOLUME:
        return "/"
    if strategy is Strategy.LOCAL_CACHE:
        return f"/data/{name}"
    return None


def _build(d: dict[str, Any], file: str) -> Spec:
    base_dir = os.path.dirname(os.path.abspath(file))
    raw_defaults = d.get("defaults", {})
    default_tags = raw_defaults.get("tags", {})
    default_az = raw_defaults.get("availability_zone")
    defaults = Defaults(
        availability_zone=default_az,
        min_age_minutes=raw_defaults.get("min_age_minutes", 5),
        tags=_frozen(default_tags),
    )
    raw_cost = d.get("cost", {})
    cost = CostLimits(
        **{k: float(raw_cost[k]) for k in ("max_hourly_usd", "max_daily_usd",
                                            "max_accumulated_usd") if k in raw_cost},
        enforce=raw_cost.get("enforce", False),
    )

    datasets = {}
    for name, ds in d.get("datasets", {}).items():
        source = ds["source"]
        if not source.startswith("s3://"):
            source = os.path.normpath(os.path.join(base_dir, source))
        strategy = _STRATEGY[ds["strategy"]]
        datasets[name] = Dataset(
            name=name, source=source, strategy=strategy, stage=ds.get("stage"),
            volume=ds.get("volume"), path=_dataset_path(name, strategy, ds.get("path")),
        )

    volumes = {}
    for name, v in d.get("volumes", {}).items():
        volumes[name] = Volume(
            name=name, size_gib=v["size_gib"],
            availability_zone=v.get("availability_zone", default_az),
            type=_VOLUME_TYPE[v.get("type", "gp3")], iops=v.get("iops"),
            throughput_mibps=v.get("throughput_mibps"),
            persistent=v.get("persistent", False), protect=v.get("protect", False),
            filesystem=_FILESYSTEM[v.get("filesystem", "ext4")], snapshot_id=v.get("snapshot_id"),
            import_id=v.get("import"), encrypted=v.get("encrypted", False),
            on_delete=_ON_DELETE[v.get("on_delete", "delete")],
            tags=_frozen({**default_tags, **v.get("tags", {})}),
        )

    instances = {}
    for name, i in d.get("instances", {}).items():
        ck = i.get("checkpoints")
        tr = i.get("training")
        instances[name] = Instance(
            name=name, instance_type=i["instance_type"], ami=i["ami"],
            availability_zone=i.get("availability_zone", default_az),
            market=_MARKET[i.get("market", "on-demand")], subnet_id=i.get("subnet_id"),
            iam_instance_profile=i.get("iam_instance_profile"),
            protect=i.get("protect", False), encrypted=i.get("encrypted", False),
            import_id=i.get("import"),
            mounts=tuple(Mount(volume=m["volume"], device=m["device"], path=m["path"],
                               read_only=m.get("read_only", False))
                         for m in i.get("mounts", [])),
            datasets=tuple(i.get("datasets", [])),
            checkpoints=Checkpoints(path=ck["path"], sync_to=ck.get("sync_to")) if ck else None,
            training=Training(pid_file=tr.get("pid_file"),
                              process_patterns=tuple(tr.get("process_patterns", [])),
                              log=tr.get("log"),
                              grace_seconds=int(tr.get("grace_seconds",
                                                       DEFAULT_GRACE_SECONDS)))
            if tr is not None else None,
            tags=_frozen({**default_tags, **i.get("tags", {})}),
            max_lifetime=i.get("max_lifetime"), idle_stop_minutes=i.get("idle_stop_minutes"),
            idle_action=_IDLE_ACTION[i.get("idle_action", "stop")],
        )

    return Spec(
        version=d["version"], project=d["project"], region=d["region"],
        defaults=defaults, cost=cost, state=d.get("state"), transfer=d.get("transfer"),
        datasets=MappingProxyType(datasets), volumes=MappingProxyType(volumes),
        instances=MappingProxyType(instances), source_file=file,
    )
