"""Checks JSON Schema cannot express: references, AZs, devices, ratios, regexes.

They run on the raw document (so they are located like schema errors) and skip any
value the schema already rejected, so one mistake is reported once.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable
from typing import Any

from planner.errors import SpecIssue
from planner.spec import ON_VOLUME, STRATEGIES, Strategy
from planner.stage import prefix_problem, relation
from planner.yamlsafe import Path, YamlDoc, format_path

OFF_VOLUME = (Strategy.LOCAL_CACHE, Strategy.DIRECT_S3)


def az_in_region(az: str, region: str) -> bool:
    """`us-east-1a` (and Local Zones like `us-west-2-lax-1a`) belong to their region."""
    rest = az[len(region):]
    return az.startswith(region) and re.fullmatch(r"[a-z]|-[a-z0-9-]+", rest) is not None


def _map(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _did_you_mean(word: str, names: Iterable[str], kind: str) -> str:
    names = list(names)
    if not names:
        return f"unknown {kind} {word!r} (no {kind}s are defined)"
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f" (defined: {', '.join(names)})"
    return f"unknown {kind} {word!r}{hint}"


def _device_key(device: str) -> str:
    """/dev/xvdf and /dev/sdf name the same attachment point."""
    return device.replace("/dev/xvd", "/dev/sd", 1)


class _Checker:
    def __init__(self, doc: YamlDoc, rejected: set[str]):
        self.doc = doc
        # every rejected path and each of its parents: `ok` is one set lookup
        self.rejected = {r[:i] for r in rejected
                         for i in [*(m.start() for m in re.finditer(r"[.\[]", r)), len(r)]}
        self.issues: list[SpecIssue] = []

    def ok(self, path: Path) -> bool:
        """True when the schema reported nothing at or under `path`."""
        return not self.rejected or format_path(path) not in self.rejected

    def get_str(self, container: dict[str, Any], key: str, path: Path) -> str | None:
        value = container.get(key)
        return value if isinstance(value, str) and self.ok((*path, key)) else None

    def add(self, path: Path, message: str, *, key: bool = False) -> None:
        self.issues.append(self.doc.issue(path, message, key=key))

    def run(self) -> list[SpecIssue]:
        data = self.doc.data
        self.datasets = _map(data.get("datasets"))
        self.volumes = _map(data.get("volumes"))
        self.instances = _map(data.get("instances"))
        self.region = self.get_str(data, "region", ())
        defaults = _map(data.get("defaults"))
        self.default_az = self.get_str(defaults, "availability_zone", ("defaults",))
        self.default_az_given = "availability_zone" in defaults
        self.check_az(self.default_az, ("defaults", "availability_zone"))
        self.vol_az = {name: self.resolve_az("volumes", name, _map(v))
                       for name, v in self.volumes.items()}
        self.inst_az = {name: self.resolve_az("instances", name, _map(i))
                        for name, i in self.instances.items()}
        for name, vol in self.volumes.items():
            self.check_volume(name, _map(vol))
        for name, ds in self.datasets.items():
            self.check_dataset(name, _map(ds))
        users: dict[str, list[tuple[str, int, bool]]] = {}
        for name, inst in self.instances.items():
            self.check_instance(name, _map(inst), users)
        self.check_shared_volumes(users)
        self.check_stages()
        return self.issues

    def s3_locations(self) -> list[tuple[Path, str, str]]:
        """(path, what, uri) of every S3 prefix the spec names: dataset sources and
        stages, checkpoint destinations, the state prefix."""
        out: list[tuple[Path, str, str]] = []
        for name, ds in self.datasets.items():
            ds = _map(ds)
            for key in ("source", "stage"):
                uri = self.get_str(ds, key, ("datasets", name))
                if uri is not None and uri.startswith("s3://"):
                    out.append((("datasets", name, key), f"the {key} of dataset {name!r}", uri))
        for name, inst in self.instances.items():
            ckpt = _map(_map(inst).get("checkpoints"))
            uri = self.get_str(ckpt, "sync_to", ("instances", name, "checkpoints"))
            if uri is not None:
                out.append((("instances", name, "checkpoints", "sync_to"),
                            f"checkpoints.sync_to of instance {name!r}", uri))
        state = self.get_str(self.doc.data, "state", ())
        if state is not None and state.startswith("s3://"):
            out.append((("state",), "the state prefix", state))
        transfer = self.get_str(self.doc.data, "transfer", ())
        if transfer is not None and transfer.startswith("s3://"):
            out.append((("transfer",), "the transfer prefix", transfer))
        return out

    def check_stages(self) -> None:
        """A stage is a prefix trainctl owns alone (its upload deletes stale objects
        there): not a bucket root, overlapping no other S3 prefix of the spec."""
        locations = self.s3_locations()
        self.check_transfer(locations)
        for path, _what, uri in locations:
            if path[-1] != "stage" or path[0] != "datasets":
                continue
            problem = prefix_problem(uri)
            if problem is not None:
                self.add(path, f"stage {problem}")
                continue
            for other_path, what, other in locations:
                rel = relation(uri, other) if other_path != path else None
                if rel is not None:
                    self.add(path, f"stage {uri} {rel} {what} ({other}); a stage is a "
                                   "prefix trainctl owns alone: give it its own prefix")

    def check_transfer(self, locations: list[tuple[Path, str, str]]) -> None:
        """`transfer:` is trainctl's too (`trainctl cp` writes and prunes there): it
        overlaps no dataset source, stage or checkpoint destination. Inside `state:` is
        the default layout; a stage overlapping it is reported at the stage."""
        found = [uri for path, _w, uri in locations if path == ("transfer",)]
        if not found:
            return
        for other_path, what, other in locations:
            if other_path[0] in ("transfer", "state") or other_path[-1] == "stage":
                continue
            rel = relation(found[0], other)
            if rel is not None:
                self.add(("transfer",), f"transfer {found[0]} {rel} {what} ({other}); "
                                        "the transfer prefix is one trainctl owns alone: "
                                        "give it its own prefix")

    def check_az(self, az: str | None, path: Path) -> None:
        if az is not None and self.region is not None and not az_in_region(az, self.region):
            self.add(path, f"availability zone {az!r} is not in region {self.region!r}")

    def resolve_az(self, section: str, name: str, entry: dict[str, Any]) -> str | None:
        path: Path = (section, name)
        if "availability_zone" in entry:
            az = self.get_str(entry, "availability_zone", path)
            self.check_az(az, (*path, "availability_zone"))
            return az
        if not self.default_az_given:
            self.add(path, "no availability_zone here and no defaults.availability_zone",
                     key=True)
        return self.default_az

    def check_volume(self, name: str, vol: dict[str, Any]) -> None:
        path: Path = ("volumes", name)
        nums = {k: vol.get(k) for k in ("size_gib", "iops", "throughput_mibps")}
        if not all(self.ok((*path, k)) for k in (*nums, "type")):
            return
        vtype = vol.get("type", "gp3")
        size, iops, tput = nums["size_gib"], nums["iops"], nums["throughput_mibps"]
        per_gib = {"gp3": 500, "io1": 50, "io2": 1000}.get(vtype)
        baseline = 3000 if vtype == "gp3" else 0
        if isinstance(size, int) and isinstance(iops, int) and per_gib is not None \
                and iops > max(baseline, per_gib * size):
            self.add((*path, "iops"), f"{vtype} allows at most {per_gib} iops per GiB: "
                                      f"{max(baseline, per_gib * size)} for {size} GiB")
        if vtype == "gp3" and isinstance(tput, int):
            limit = (iops if isinstance(iops, int) else 3000) // 4
            if tput > limit:
                self.add((*path, "throughput_mibps"),
                         f"gp3 throughput may be at most iops/4 = {limit} MiB/s; raise iops")

    def check_dataset(self, name: str, ds: dict[str, Any]) -> None:
        path: Path = ("datasets", name)
        strategy = self.get_str(ds, "strategy", path)
        if strategy not in STRATEGIES:
            strategy = None
        source = self.get_str(ds, "source", path)
        local = source is not None and not source.startswith("s3://")
        volume = self.get_str(ds, "volume", path)
        if volume is not None and strategy not in OFF_VOLUME and volume not in self.volumes:
            self.add((*path, "volume"), _did_you_mean(volume, self.volumes, "volume"))
        # needs/takes no volume, a local source's stage, direct-s3's path: in the schema
        if local and source is not None:
            self.check_local_source(source, (*path, "source"))

    def check_local_source(self, source: str, path: Path) -> None:
        """A local source, relative to the spec file's folder, must be an existing folder."""
        base = os.path.dirname(os.path.abspath(self.doc.file))
        full = os.path.normpath(os.path.join(base, source))
        if not os.path.exists(full):
            self.add(path, f"local source {source} does not exist (looked for {full})")
        elif not os.path.isdir(full):
            self.add(path, f"local source {source} is not a directory ({full}); "
                           "a dataset source is a folder")

    def check_instance(self, name: str, inst: dict[str, Any],
                       users: dict[str, list[tuple[str, int, bool]]]) -> None:
        path: Path = ("instances", name)
        devices: dict[str, int] = {}
        mounted: dict[str, int] = {}
        for k, mount in enumerate(_list(inst.get("mounts"))):
            mount = _map(mount)
            mpath: Path = (*path, "mounts", k)
            vol = self.get_str(mount, "volume", mpath)
            if vol is not None:
                if vol not in self.volumes:
                    self.add((*mpath, "volume"), _did_you_mean(vol, self.volumes, "volume"))
                elif vol in mounted:
                    self.add((*mpath, "volume"),
                             f"volume {vol!r} is already mounted by mounts[{mounted[vol]}]")
                else:
                    mounted[vol] = k
                    users.setdefault(vol, []).append((name, k, mount.get("read_only") is True))
                    vaz, iaz = self.vol_az.get(vol), self.inst_az.get(name)
                    if vaz and iaz and vaz != iaz:
                        self.add((*mpath, "volume"),
                                 f"volume {vol!r} is in {vaz} but instance {name!r} is in "
                                 f"{iaz} (rule az-mismatch)")
            device = self.get_str(mount, "device", mpath)
            if device is not None:
                dkey = _device_key(device)
                if dkey in devices:
                    self.add((*mpath, "device"),
                             f"device {device} is already used by mounts[{devices[dkey]}]")
                devices.setdefault(dkey, k)
            # mount paths: planner.speclimits
        for k, ds_name in enumerate(_list(inst.get("datasets"))):
            dpath: Path = (*path, "datasets", k)
            if not isinstance(ds_name, str) or not self.ok(dpath):
                continue
            if ds_name not in self.datasets:
                self.add(dpath, _did_you_mean(ds_name, self.datasets, "dataset"))
                continue
            ds = _map(self.datasets[ds_name])
            vol = self.get_str(ds, "volume", ("datasets", ds_name))
            if ds.get("strategy") in ON_VOLUME and vol in self.volumes and vol not in mounted:
                self.add(dpath, f"dataset {ds_name!r} is on volume {vol!r}, which instance "
                                f"{name!r} does not mount")
        training = _map(inst.get("training"))
        for k, pattern in enumerate(_list(training.get("process_patterns"))):
            ppath: Path = (*path, "training", "process_patterns", k)
            if isinstance(pattern, str) and self.ok(ppath):
                try:
                    re.compile(pattern)
                except re.error as e:
                    self.add(ppath, f"not a valid regular expression: {e}")

    def check_shared_volumes(self, users: dict[str, list[tuple[str, int, bool]]]) -> None:
        for vol, mounts in users.items():
            if len(mounts) < 2:
                continue
            first = mounts[0][0]
            writable = [inst for inst, _k, ro in mounts if not ro]
            for inst, k, _ro in mounts[1:]:
                where: Path = ("instances", inst, "mounts", k, "volume")
                if writable:
                    self.add(where, f"volume {vol!r} is also mounted by instance {first!r} and "
                                    f"mounted writable by {writable[0]!r}; a writable volume "
                                    "belongs to one instance")
                else:
                    self.add(where, f"volume {vol!r} is also mounted by instance {first!r}; an "
                                    "EBS volume attaches to one instance (no Multi-Attach)")


def check(doc: YamlDoc, rejected: set[str]) -> list[SpecIssue]:
    """Semantic issues of a document; `rejected` holds paths the schema already reported."""
    return _Checker(doc, rejected).run()
