"""What both programs share: the inputs' JSON form, the explicit provider, resource
options and the exports the engine reads back (`Deployed.from_outputs`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

PROVIDER_NAME = "aws"


def as_doc(inputs: Any) -> Mapping[str, Any]:
    """The JSON form of a stack's inputs (a StackInputs answers `to_json`)."""
    doc = inputs.to_json() if hasattr(inputs, "to_json") else inputs
    if not isinstance(doc, Mapping) or not isinstance(doc.get("resources"), list):
        raise ValueError("stack inputs: a mapping with a `resources` list")
    return doc


def provider(doc: Mapping[str, Any]) -> aws.Provider:
    """One explicit provider per program, from the inputs' `provider` arguments."""
    args = dict(doc.get("provider") or {})
    if not args.get("region"):
        raise ValueError("stack inputs: the provider needs a region")
    return aws.Provider(PROVIDER_NAME, **args)


def options(res: Mapping[str, Any], prov: aws.Provider,
            depends_on: Sequence[pulumi.Resource] = ()) -> pulumi.ResourceOptions:
    o = res.get("options") or {}
    return pulumi.ResourceOptions(
        provider=prov,
        protect=bool(o.get("protect")),
        retain_on_delete=bool(o.get("retain_on_delete")),
        import_=o.get("import_id") or None,
        replace_on_changes=list(o.get("replace_on_changes") or ()) or None,
        delete_before_replace=bool(o.get("delete_before_replace")),
        ignore_changes=list(o.get("ignore_changes") or ()) or None,
        depends_on=list(depends_on) or None,
    )


def set_args(props: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """Resource arguments from the props the inputs set (`names`: prop -> argument);
    a prop that is absent stays unset."""
    return {arg: props[key] for key, arg in names.items() if props.get(key) is not None}


def export(address: str, res: pulumi.CustomResource, props: Mapping[str, Any]) -> None:
    """`ADDRESS -> {"id", "props"}`: what the next apply reads as the stack's state."""
    pulumi.export(address, {"id": res.id, "props": dict(props)})


def by_kind(doc: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    return [r for r in doc["resources"] if r.get("kind") == kind]


def check_kinds(doc: Mapping[str, Any], known: Sequence[str]) -> None:
    other = sorted({str(r.get("kind")) for r in doc["resources"]} - set(known))
    if other:
        raise ValueError(f"stack inputs: kinds {other} do not belong in this stack")
