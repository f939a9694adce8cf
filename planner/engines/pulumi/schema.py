"""The stack programs' inputs: plain frozen data with a JSON form (`to_json`).

`stacks/storage.py` and `stacks/compute.py` read the JSON form and nothing else. Props use
the plan's field names (`size_gib`, `availability_zone`, `tags` ...); a prop that is absent
is left unset in the program (AWS or the live resource decides, never a default).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

# resource kinds, as the programs know them
VOLUME, INSTANCE, ATTACHMENT = "volume", "instance", "attachment"
ROLE, ROLE_POLICY, PROFILE = "iam-role", "iam-role-policy", "iam-instance-profile"

STORAGE, COMPUTE = "storage", "compute"


def _frozen(d: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(d or {}))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Options:
    """Pulumi resource options, by their Python names (`import_id` is `import_`).
    `replace_on_changes` / `ignore_changes` hold the programs' property names."""

    protect: bool = False
    retain_on_delete: bool = False
    import_id: str | None = None
    replace_on_changes: tuple[str, ...] = ()
    delete_before_replace: bool = False
    ignore_changes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"protect": self.protect, "retain_on_delete": self.retain_on_delete,
                "import_id": self.import_id,
                "replace_on_changes": list(self.replace_on_changes),
                "delete_before_replace": self.delete_before_replace,
                "ignore_changes": list(self.ignore_changes)}

    @staticmethod
    def from_json(doc: Mapping[str, Any]) -> Options:
        return Options(protect=bool(doc.get("protect")),
                       retain_on_delete=bool(doc.get("retain_on_delete")),
                       import_id=doc.get("import_id"),
                       replace_on_changes=tuple(doc.get("replace_on_changes", ())),
                       delete_before_replace=bool(doc.get("delete_before_replace")),
                       ignore_changes=tuple(doc.get("ignore_changes", ())))


@dataclass(frozen=True)
class Resource:
    """One declared resource: its Pulumi name is its trainctl address."""

    address: str
    kind: str
    props: Mapping[str, Any] = field(default_factory=lambda: _frozen(None))
    options: Options = field(default_factory=Options)

    def to_json(self) -> dict[str, Any]:
        return {"address": self.address, "kind": self.kind, "props": _plain(self.props),
                "options": self.options.to_json()}

    @staticmethod
    def from_json(doc: Mapping[str, Any]) -> Resource:
        return Resource(str(doc["address"]), str(doc["kind"]), _frozen(doc.get("props")),
                        Options.from_json(doc.get("options") or {}))


@dataclass(frozen=True)
class StackInputs:
    """Everything one program declares. `provider` holds `aws.Provider` arguments as plain
    data (`endpoints` and `default_tags` as mappings); at least the region."""

    stack: str
    project: str
    resources: tuple[Resource, ...] = ()
    provider: Mapping[str, Any] = field(default_factory=lambda: _frozen(None))

    def addresses(self) -> tuple[str, ...]:
        return tuple(r.address for r in self.resources)

    def get(self, address: str) -> Resource | None:
        return next((r for r in self.resources if r.address == address), None)

    def with_provider(self, provider: Mapping[str, Any]) -> StackInputs:
        return replace(self, provider=_frozen(provider))

    def to_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "project": self.project,
                "provider": _plain(self.provider),
                "resources": [r.to_json() for r in self.resources]}

    @staticmethod
    def from_json(doc: Mapping[str, Any]) -> StackInputs:
        return StackInputs(str(doc["stack"]), str(doc["project"]),
                           tuple(Resource.from_json(r) for r in doc.get("resources", ())),
                           _frozen(doc.get("provider")))


@dataclass(frozen=True)
class Deployed:
    """What the stacks hold before this apply: the addresses in their state, and the props
    each program declared last (the stacks' outputs: `from_outputs`)."""

    addresses: frozenset[str] = frozenset()
    props: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: _frozen(None))
    ids: Mapping[str, str] = field(default_factory=lambda: _frozen(None))

    @staticmethod
    def from_outputs(*outputs: Mapping[str, Any]) -> Deployed:
        """From stack outputs as the Automation API returns them (`OutputValue`s, or plain
        values): every program exports `ADDRESS -> {"id": ..., "props": {...}}`."""
        addresses: set[str] = set()
        props: dict[str, Mapping[str, Any]] = {}
        ids: dict[str, str] = {}
        for out in outputs:
            for name, value in out.items():
                value = getattr(value, "value", value)
                if isinstance(value, Mapping) and isinstance(value.get("props"), Mapping):
                    addresses.add(name)
                    props[name] = _frozen(value["props"])
                    if isinstance(value.get("id"), str):
                        ids[name] = value["id"]
        return Deployed(frozenset(addresses), _frozen(props), _frozen(ids))

    def volume_ids(self) -> dict[str, str]:
        """`volume.NAME -> vol-...`: what `with_volume_ids` fills into attachments."""
        return {a: i for a, i in self.ids.items() if a.startswith("volume.")}


@dataclass(frozen=True)
class Inputs:
    """The inputs of both stacks for one apply, pass by pass.

    - `storage_prepare` / `compute_prepare` (None when not needed): a first pass that
      declares every live resource as it is now, only with protect dropped for the
      addresses in `unprotect` (an allowed delete of a protected resource) and `import_`
      for the live resources in `imports` that the plan changes (Pulumi imports only
      what matches its inputs, so the change waits for the next pass);
    - `compute_teardown`: the compute stack without what this plan deletes or replaces
      (replaces are delete-then-create: the new one comes in the build pass);
    - `storage`, `compute`: the stacks as the plan leaves them (the build pass);
    - `unmanaged`: live resources the plan leaves alone and does not describe fully, which
      are not in the stacks (made by `--engine direct`): not declared, so Pulumi leaves
      them as they are;
    - `outside`: changes no stack carries (duplicates, temporary prewarm instances).
    """

    storage: StackInputs
    compute: StackInputs
    compute_teardown: StackInputs
    storage_prepare: StackInputs | None = None
    compute_prepare: StackInputs | None = None
    unprotect: tuple[str, ...] = ()
    imports: tuple[str, ...] = ()
    unmanaged: tuple[str, ...] = ()
    outside: tuple[str, ...] = ()

    def passes(self) -> list[tuple[str, StackInputs]]:
        """(pass name, inputs) in the order the engine runs them, around its SSM steps:
        `prepare-*` first (they change only protect flags and imports), then
        `compute-teardown` (after the SSM teardown), `storage`, and `compute` (before the
        SSM mounts and syncs)."""
        named = [("prepare-storage", self.storage_prepare),
                 ("prepare-compute", self.compute_prepare),
                 ("compute-teardown", self.compute_teardown),
                 ("storage", self.storage), ("compute", self.compute)]
        return [(name, stack) for name, stack in named if stack is not None]
