"""Plan warnings that block nothing: empty datasets, duplicates, foreign stage objects,
resources deleted outside trainctl."""

from __future__ import annotations

from planner import leftovers
from planner.diff.blocks import going_duplicates
from planner.diff.context import DiffContext
from planner.diff.data import source_manifest
from planner.diff.resources import terminated_outside, volume_gone
from planner.diff.work import WorkSet
from planner.keys import named as named_keys
from planner.plan import Action, PlanWarning, Reason, ResourceType, Rule
from planner.words import counted


def empty_dataset_warnings(ctx: DiffContext, work: WorkSet) -> None:
    """`empty-dataset` warnings: a listing that holds nothing is most often a prefix typo."""
    if ctx.destroy:
        return
    work.warnings += [
        PlanWarning(f"dataset.{name}", Rule.EMPTY_DATASET,
                    f"{m.uri} lists no object: check the prefix (a typo plans an empty "
                    f"sync or prewarm)")
        for name in ctx.spec.datasets
        if (m := source_manifest(ctx, name)) is not None and m.objects == 0
    ]


def duplicate_warnings(ctx: DiffContext, work: WorkSet) -> None:
    """`duplicate` warnings: one per address that more than one live resource carries."""
    named = ctx.overrides.allow_delete
    for addr, group in sorted(ctx.groups.items()):
        imported = any(d.imported for d in ctx.dups.values() if d.address == addr)
        work.warnings.append(PlanWarning(addr, Rule.DUPLICATE, leftovers.warning_message(
            addr, group, group[0], imported, named, going_duplicates(work, addr, group))))


def stage_warnings(ctx: DiffContext, work: WorkSet) -> None:
    """`foreign-objects` warnings: objects under a stage that trainctl keeps (it did not
    write them), stage objects it overwrites without having written them, and records
    it cannot read."""
    if ctx.destroy:
        return
    for name, ds in ctx.spec.datasets.items():
        stage = ctx.live.stages.get(name)
        if not ds.is_local or stage is None:
            continue
        addr = f"dataset.{name}"
        if stage.kept_objects:
            one = stage.kept_objects == 1
            work.warnings.append(PlanWarning(addr, Rule.FOREIGN_OBJECTS, (
                f"{counted(stage.kept_objects, 'object')} "
                f"({counted(stage.kept_bytes, 'byte')}) under stage "
                f"{ds.stage} {'is' if one else 'are'} not in {ds.source} and "
                f"{'was' if one else 'were'} not written by trainctl: "
                f"{'it is' if one else 'they are'} kept (and synced with the dataset): "
                f"{named_keys(stage.kept_examples, stage.kept_objects)}; remove "
                f"{'it' if one else 'them'} by hand if {'it is' if one else 'they are'} "
                f"stale")))
        if stage.replace_foreign:
            work.warnings.append(PlanWarning(addr, Rule.FOREIGN_OBJECTS, (
                f"the upload overwrites {counted(stage.replace_foreign, 'object')} under stage "
                f"{ds.stage} that trainctl did not record writing (same keys as files "
                f"in {ds.source})")))
        if stage.problem:
            work.warnings.append(PlanWarning(addr, Rule.FOREIGN_OBJECTS, (
                f"{stage.problem}: nothing under the stage counts as trainctl's, so "
                f"nothing there is deleted")))


def deleted_outside_warnings(ctx: DiffContext, work: WorkSet) -> None:
    """`deleted-outside` warnings: the resource a create because deleted outside replaces
    (`i-0abc was terminated outside trainctl`). Terraform's drift: the create itself has
    no `before`, there is nothing live to show."""
    for c in work.ordered:
        if c.reason is not Reason.CREATE_BECAUSE_DELETED_OUTSIDE:
            continue
        if c.type is ResourceType.VOLUME:
            gone, verb = volume_gone(ctx, c.address), "deleted"
        else:
            li = terminated_outside(ctx, c.address)
            gone, verb = (li.id if li else None), "terminated"
        if gone:
            work.warnings.append(PlanWarning(c.address, Rule.DELETED_OUTSIDE,
                                             f"{gone} was {verb} outside trainctl"))


def unknown_live_warnings(ctx: DiffContext, work: WorkSet) -> None:
    """`unknown-live` warnings: `encrypted: true` on an instance (its root volume: the
    live read does not see its encryption, the engine does not set it at launch), and
    lifetime/idle limits on a running instance (installed only at launch, recorded
    nowhere): the plan says what it cannot check or do, never a silent no-op."""
    if ctx.destroy:
        return
    for name, ins in sorted(ctx.spec.instances.items()):
        addr = f"instance.{name}"
        live = ctx.instances.get(addr)
        c = work.changes.get(addr)
        relaunched = c is not None and Action.CREATE in c.actions and not c.blocked
        if live is not None and not relaunched and (ins.max_lifetime or ins.idle_stop_minutes):
            work.warnings.append(PlanWarning(addr, Rule.UNKNOWN_LIVE, (
                f"instances.{name}: max_lifetime, idle_stop_minutes and idle_action are "
                f"installed on the instance only at launch and not recorded on it: this "
                f"plan cannot tell whether {live.id} runs these limits, and apply does not "
                f"install them on a running instance (a replace of the instance does)")))
        if not ins.encrypted:
            continue
        now = (f"whether the root volume of {live.id} is encrypted is not read, so this "
               f"plan cannot compare it (root-disk encryption cannot change in place: a "
               f"replace of the instance would be needed)" if live is not None else
               "the instance is not launched yet")
        work.warnings.append(PlanWarning(addr, Rule.UNKNOWN_LIVE, (
            f"instances.{name}.encrypted: true: {now}; trainctl does not set root-disk "
            f"encryption at launch: the root volume is encrypted only if the AMI's snapshot "
            f"is or the account encrypts new EBS volumes by default")))
