"""planner.cost: figures checked against hand-computed values from the bundled table."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import pytest

from planner import cost
from planner.live import (
    TAG_ADDRESS,
    TAG_PROJECT,
    LiveAttachment,
    LiveInstance,
    LiveState,
    LiveVolume,
)
from planner.plan import Action, Block, Change, Reason, ResourceType, Rule
from planner.spec import CostLimits, Instance, Spec, Volume, VolumeType

NOW = datetime(2026, 11, 22, 21, 0, 0, tzinfo=UTC)
AZ = "us-east-1a"
G5_XLARGE = 1.006                                   # us-east-1 on-demand, per hour
# 500 GiB gp3 with 6000 IOPS and 500 MiB/s, per month:
#   500 * 0.08 + (6000 - 3000) * 0.005 + (500 - 125) * 0.04 = 40 + 15 + 15 = 70
GP3_500_MONTH = 70.0


def spec_with(*, volumes: dict[str, Volume] | None = None,
              instances: dict[str, Instance] | None = None,
              limits: CostLimits | None = None, region: str = "us-east-1") -> Spec:
    return Spec(version=1, project="proj", region=region,
                cost=limits or CostLimits(),
                volumes=MappingProxyType(volumes or {}),
                instances=MappingProxyType(instances or {}))


def live_with(*, volumes: tuple[LiveVolume, ...] = (), instances: tuple[LiveInstance, ...] = (),
              spot: dict[str, float] | None = None, region: str = "us-east-1") -> LiveState:
    return LiveState(project="proj", region=region, read_at=NOW, volumes=volumes,
                     instances=instances, spot_prices=MappingProxyType(spot or {}))


def lvol(vid: str, address: str, size: int, vtype: str = "gp3", *, hours_old: float = 0,
         iops: int | None = None, throughput: int | None = None) -> LiveVolume:
    return LiveVolume(id=vid, availability_zone=AZ, size_gib=size, type=vtype,
                      state="available", create_time=NOW - timedelta(hours=hours_old),
                      iops=iops, throughput_mibps=throughput,
                      tags=MappingProxyType({TAG_ADDRESS: address, TAG_PROJECT: "proj"}))


def linst(iid: str, address: str, itype: str, *, state: str = "running",
          market: str = "on-demand", hours_old: float = 0) -> LiveInstance:
    return LiveInstance(id=iid, instance_type=itype, availability_zone=AZ, state=state,
                        launch_time=NOW - timedelta(hours=hours_old), market=market,
                        tags=MappingProxyType({TAG_ADDRESS: address, TAG_PROJECT: "proj"}))


def change(address: str, actions: tuple[Action, ...], *, id: str | None = None,
           after: dict[str, object] | None = None, blocked: bool = False) -> Change:
    rtype = ResourceType(address.split(".")[0])
    return Change(address=address, type=rtype, actions=actions,
                  reason=Reason.REPLACE_BECAUSE_CANNOT_UPDATE if len(actions) == 2
                  else Reason.CREATE_BECAUSE_MISSING, id=id, after=after,
                  blocked_by=(Block(Rule.PERSISTENT, "kept"),) if blocked else ())


# --- the table and the unit prices ------------------------------------------------------


def test_price_table_is_dated_and_covers_the_families_and_regions() -> None:
    table = json.loads(Path(cost.__file__).with_name("data").joinpath("prices.json").read_text())
    assert table["as_of"] == cost.as_of() == "2025-03-02"     # libcloud 3.9.1's pricing.json
    assert "apache-libcloud 3.9.1" in table["source"] and "generate_prices" in table["generator"]
    assert table["spot_fraction"] == cost.spot_fraction() == 0.35
    for region in ("us-east-1", "us-west-2", "eu-west-1"):
        types = table["regions"][region]["instances"]
        for family in ("g4dn", "g5", "p3", "p4d", "inf2", "t3", "m5", "c5"):
            assert any(t.startswith(family + ".") for t in types), (region, family)
        assert set(table["regions"][region]["ebs"]) >= {"gp3", "gp2", "io1", "io2", "st1", "sc1"}
    us = table["regions"]["us-east-1"]["instances"]
    assert {"g6e.xlarge", "p5.48xlarge", "trn1.32xlarge", "p3.16xlarge"} <= set(us)
    eu = table["regions"]["eu-west-1"]["instances"]
    assert eu["g5.48xlarge"] > us["g5.48xlarge"]             # eu-west-1 costs more


def test_on_demand_and_volume_prices() -> None:
    assert cost.instance_hourly("g5.xlarge", "on-demand", "us-east-1", {}, AZ) == G5_XLARGE
    assert cost.volume_hourly(500, "gp3", 6000, 500, "us-east-1") == pytest.approx(
        GP3_500_MONTH / 730)
    # gp3 baseline IOPS / throughput are free; unset means baseline
    assert cost.volume_hourly(100, "gp3", None, None, "us-east-1") == pytest.approx(8 / 730)
    assert cost.volume_hourly(100, "gp3", 3000, 125, "us-east-1") == pytest.approx(8 / 730)
    # io2: 0.125/GiB-month + 0.065/IOPS-month
    assert cost.volume_hourly(100, "io2", 4000, None, "us-east-1") == pytest.approx(
        (12.5 + 260) / 730)
    assert cost.volume_hourly(1000, "sc1", 9999, 999, "us-east-1") == pytest.approx(15 / 730)
    assert cost.volume_hourly(100, "gp2", None, None, "eu-west-1") == pytest.approx(11 / 730)


def test_spot_prices_from_live_else_a_fraction_of_on_demand() -> None:
    prices = {"g5.xlarge/us-east-1a": 0.42, "g5.xlarge/us-east-1b": 0.47}
    assert cost.instance_hourly("g5.xlarge", "spot", "us-east-1", prices, AZ) == 0.42
    # another AZ: the highest known price of that type (a conservative bound)
    assert cost.instance_hourly("g5.xlarge", "spot", "us-east-1", prices, "us-east-1c") == 0.47
    assert cost.instance_hourly("g5.xlarge", "spot", "us-east-1", {}, AZ) == pytest.approx(
        G5_XLARGE * 0.35)
    assert cost.instance_hourly("g4dn.xlarge", "spot", "us-east-1", prices, AZ) == (
        pytest.approx(0.526 * 0.35))


def test_unknown_type_or_region_is_none() -> None:
    assert cost.instance_hourly("x9.huge", "on-demand", "us-east-1", {}, AZ) is None
    assert cost.instance_hourly("x9.huge", "spot", "us-east-1", {}, AZ) is None
    assert cost.instance_hourly("g5.xlarge", "on-demand", "mars-north-1", {}, None) is None
    assert cost.volume_hourly(100, "gp3", None, None, "mars-north-1") is None
    assert cost.volume_hourly(100, "gp9", None, None, "us-east-1") is None


# --- plan_cost ----------------------------------------------------------------------------

# the default root volume (the AMI's is unknown): 100 GiB gp3 = 8/month
ROOT = cost.DEFAULT_ROOT_GIB * 0.08 / 730


def test_plan_cost_of_creating_a_trainer_and_its_volume() -> None:
    spec = spec_with(
        volumes={"data": Volume(name="data", size_gib=500, availability_zone=AZ, type="gp3",
                                iops=6000, throughput_mibps=500)},
        instances={"trainer": Instance(name="trainer", instance_type="g5.xlarge", ami="ami-1",
                                       availability_zone=AZ)},
    )
    changes = [
        change("volume.data", (Action.CREATE,), after={"size_gib": 500, "type": "gp3"}),
        change("instance.trainer", (Action.CREATE,), after={"instance_type": "g5.xlarge"}),
        change("mount.trainer.data", (Action.CREATE,)),     # not billable
    ]
    summary, warnings = cost.plan_cost(spec, live_with(), changes, NOW)
    hourly = G5_XLARGE + GP3_500_MONTH / 730 + ROOT   # 1.006 + 0.09589 + 0.01096
    assert summary.hourly_usd_before == 0.0
    assert summary.hourly_usd_after == pytest.approx(hourly)
    assert summary.hourly_usd_after == pytest.approx(1.1128493, abs=1e-6)
    assert summary.daily_usd_after == pytest.approx(hourly * 24)
    assert summary.accumulated_usd == 0.0 and summary.exceeded == ()
    assert summary.incomplete == () and summary.unknown_prices == ()
    assert warnings == []


def test_the_root_volume_is_priced_at_plan_time_from_the_ami() -> None:
    """Before the instance exists: the AMI's root size and type (describe_images)."""
    spec = spec_with(instances={"t": Instance(name="t", instance_type="g5.xlarge",
                                              ami="ami-big", availability_zone=AZ)})
    live = replace(live_with(), image_roots=MappingProxyType(
        {"ami-big": MappingProxyType({"size_gib": 500, "type": "gp2"})}))
    summary, _ = cost.plan_cost(spec, live, [change("instance.t", (Action.CREATE,))], NOW)
    assert summary.hourly_usd_after == pytest.approx(G5_XLARGE + 500 * 0.10 / 730)


def test_a_live_root_volume_goes_with_its_instance() -> None:
    """The root volume trainctl tagged (no address) counts while its instance lives and
    leaves with it; an unknown-priced root type would make the figure unknown."""
    root = LiveVolume(id="vol-root", availability_zone=AZ, size_gib=50, type="gp3",
                      state="in-use", create_time=NOW,
                      attachments=(LiveAttachment("i-1", "/dev/xvda", "attached"),))
    live = live_with(volumes=(root,), instances=(linst("i-1", "instance.t", "g5.xlarge"),))
    summary, _ = cost.plan_cost(spec_with(), live,
                                [change("instance.t", (Action.DELETE,), id="i-1")], NOW)
    assert summary.hourly_usd_before == pytest.approx(G5_XLARGE + 4 / 730)
    assert summary.hourly_usd_after == 0.0
    # kept (blocked): the root stays billed too
    kept, _ = cost.plan_cost(spec_with(), live, [
        change("instance.t", (Action.DELETE,), id="i-1", blocked=True)], NOW)
    assert kept.hourly_usd_after == pytest.approx(G5_XLARGE + 4 / 730)


def test_plan_cost_follows_each_action() -> None:
    live = live_with(
        volumes=(lvol("vol-keep", "volume.keep", 100, "gp2"),          # 10/month, no-op
                 lvol("vol-grow", "volume.grow", 100, "gp3"),          # 8 -> 16/month
                 lvol("vol-gone", "volume.gone", 1000, "st1"),         # 45/month, deleted
                 lvol("vol-kept", "volume.kept", 100, "gp2")),         # 10, blocked delete
        instances=(linst("i-del", "instance.old", "g4dn.xlarge"),      # 0.526, deleted
                   linst("i-rep", "instance.trainer", "g5.xlarge"),    # replaced: g5.2xlarge
                   linst("i-stop", "instance.idle", "p3.2xlarge", state="stopped")),
    )
    spec = spec_with(instances={"trainer": Instance(
        name="trainer", instance_type="g5.2xlarge", ami="ami-1", availability_zone=AZ)})
    changes = [
        change("volume.keep", (Action.NOOP,), id="vol-keep"),
        change("volume.grow", (Action.UPDATE,), id="vol-grow", after={"size_gib": 200}),
        change("volume.gone", (Action.DELETE,), id="vol-gone"),
        change("volume.kept", (Action.DELETE,), id="vol-kept", blocked=True),
        change("instance.old", (Action.DELETE,), id="i-del"),
        change("instance.trainer", (Action.DELETE, Action.CREATE), id="i-rep"),
        change("volume.new", (Action.CREATE,),
               after={"size_gib": 50, "type": "io1", "iops": 1000}),   # 6.25 + 65 /month
    ]
    summary, warnings = cost.plan_cost(spec, live, changes, NOW)
    # the stopped p3 costs nothing, its root volume still does; i-del's root goes with it
    before = (10 + 8 + 45 + 10) / 730 + 0.526 + G5_XLARGE + 3 * ROOT
    after = (10 + 16 + 10 + 71.25) / 730 + 1.212 + 2 * ROOT
    assert summary.hourly_usd_before == pytest.approx(before)
    assert summary.hourly_usd_after == pytest.approx(after)
    assert summary.daily_usd_after == pytest.approx(after * 24)
    assert warnings == []


def test_spot_plan_uses_live_prices_or_the_fraction() -> None:
    spec = spec_with(instances={"t": Instance(name="t", instance_type="g5.xlarge", ami="ami-1",
                                              availability_zone=AZ, market="spot")})
    create = [change("instance.t", (Action.CREATE,))]
    priced, _ = cost.plan_cost(spec, live_with(spot={"g5.xlarge/us-east-1a": 0.3}), create, NOW)
    assert priced.hourly_usd_after == pytest.approx(0.3 + ROOT)
    fallback, warnings = cost.plan_cost(spec, live_with(), create, NOW)
    assert fallback.hourly_usd_after == pytest.approx(G5_XLARGE * 0.35 + ROOT)
    assert warnings == []


def test_an_unknown_instance_type_is_unknown_never_zero() -> None:
    spec = spec_with(instances={"t": Instance(name="t", instance_type="x9.huge", ami="ami-1",
                                              availability_zone=AZ)})
    summary, warnings = cost.plan_cost(spec, live_with(), [change("instance.t", (Action.CREATE,))],
                                       NOW)
    assert summary.figure("hourly_usd_after") is None
    assert summary.figure("daily_usd_after") is None
    assert summary.figure("hourly_usd_before") == 0.0
    assert summary.hourly_usd_after == pytest.approx(ROOT)          # the priced part
    [u] = summary.unknown_prices
    assert (u.address, u.item, u.region) == ("instance.t", "x9.huge", "us-east-1")
    assert u.message == "no price for x9.huge in us-east-1"
    [w] = warnings
    assert w.rule == Rule.COST and w.address == "instance.t"
    assert w.message.startswith("$?/h: no price for x9.huge in us-east-1")
    assert "2026-11-01" in w.message or cost.as_of() in w.message


def test_an_unknown_region_prices_nothing_there_not_even_ebs() -> None:
    live = live_with(region="mars-north-1",
                     volumes=(lvol("vol-1", "volume.a", 100, "gp2"),),
                     instances=(linst("i-1", "instance.t", "g5.xlarge"),))
    summary, warnings = cost.plan_cost(spec_with(region="mars-north-1"), live, [], NOW)
    assert summary.incomplete == ("hourly_usd_before", "hourly_usd_after",
                                  "daily_usd_after", "accumulated_usd")
    assert summary.hourly_usd_before == 0.0
    assert {u.message for u in summary.unknown_prices} == {
        "no price for EBS gp2 in mars-north-1", "no price for g5.xlarge in mars-north-1",
        "no price for EBS gp3 in mars-north-1"}                      # the default root
    assert "region mars-north-1 is not in the price table" in warnings[0].message
    assert all(w.rule == Rule.COST for w in warnings)


def test_enforced_limits_with_an_unknown_price_the_reported_case() -> None:
    """Four p5en.48xlarge, enforce, max_hourly_usd 1: never "$0.25/h, applyable"."""
    from planner.plan import Plan

    instances = {f"t{n}": Instance(name=f"t{n}", instance_type="p5en.48xlarge", ami="ami-1",
                                   availability_zone="eu-north-1a") for n in range(4)}
    limits = CostLimits(max_hourly_usd=1, enforce=True)
    spec = spec_with(instances=instances, limits=limits, region="mars-north-1")
    changes = [change(f"instance.t{n}", (Action.CREATE,)) for n in range(4)]
    summary, warnings = cost.plan_cost(spec, live_with(region="mars-north-1"), changes, NOW)
    assert summary.figure("hourly_usd_after") is None
    plan = Plan(project="proj", region="mars-north-1", created_at="2026-11-22T21:00:00Z",
                spec_digest="s", live_digest="l", changes=tuple(changes), cost=summary,
                cost_enforced=True)
    assert not plan.applyable
    assert any("max_hourly_usd $1.00/h cannot be checked" in w.message for w in warnings)
    # not enforced: applyable, still unknown
    assert replace(plan, cost_enforced=False).applyable


def test_a_known_part_above_the_limit_is_exceeded_even_when_the_rest_is_unknown() -> None:
    instances = {"a": Instance(name="a", instance_type="g5.48xlarge", ami="ami-1",
                               availability_zone=AZ),
                 "b": Instance(name="b", instance_type="x9.huge", ami="ami-1",
                               availability_zone=AZ)}
    spec = spec_with(instances=instances, limits=CostLimits(max_hourly_usd=1))
    summary, warnings = cost.plan_cost(spec, live_with(), [
        change("instance.a", (Action.CREATE,)), change("instance.b", (Action.CREATE,))], NOW)
    assert summary.exceeded == ("max_hourly_usd",)
    g5_48 = cost.on_demand_hourly("g5.48xlarge", "us-east-1")
    assert g5_48 is not None
    at_least = f"hourly cost after apply is at least ${g5_48 + 2 * ROOT:.2f}/h"
    assert any(w.message.startswith(at_least) for w in warnings)


def test_accumulated_spend_from_launch_and_create_times() -> None:
    live = live_with(
        volumes=(lvol("vol-1", "volume.a", 500, "gp2", hours_old=730),),    # 50/month * 1
        instances=(linst("i-1", "instance.t", "g5.xlarge", hours_old=10),    # 10.06
                   linst("i-2", "instance.s", "g5.xlarge", hours_old=99, state="stopped"),
                   linst("i-3", "instance.f", "t3.micro", hours_old=-1)),  # clock skew: 0
    )
    summary, _ = cost.plan_cost(spec_with(), live, [], NOW)
    # each instance's (default) root volume since its launch, the stopped one's too
    assert summary.accumulated_usd == pytest.approx(50 + 10 * G5_XLARGE + (10 + 99) * ROOT)
    assert summary.hourly_usd_before == summary.hourly_usd_after == pytest.approx(
        50 / 730 + G5_XLARGE + 0.0104 + 3 * ROOT)


def test_limits_give_exceeded_and_warnings_with_figures() -> None:
    live = live_with(instances=(linst("i-1", "instance.t", "g5.xlarge", hours_old=100),))
    limits = CostLimits(max_hourly_usd=1.0, max_daily_usd=100, max_accumulated_usd=50)
    summary, warnings = cost.plan_cost(spec_with(limits=limits), live, [], NOW)
    assert summary.exceeded == ("max_hourly_usd", "max_accumulated_usd")
    assert [w.rule for w in warnings] == [Rule.COST, Rule.COST]
    assert warnings[0].message == "hourly cost after apply is $1.02/h, above max_hourly_usd $1.00/h"
    assert warnings[1].message == (
        "spend so far of what is running is $101.70, above max_accumulated_usd $50.00")

    enforced = CostLimits(max_daily_usd=10, enforce=True)
    summary, warnings = cost.plan_cost(spec_with(limits=enforced), live, [], NOW)
    assert summary.exceeded == ("max_daily_usd",)
    assert "$24.41/day" in warnings[0].message and "--allow-cost" in warnings[0].message


def test_deleting_the_expensive_instance_brings_cost_under_the_limit() -> None:
    live = live_with(instances=(linst("i-1", "instance.t", "g5.xlarge"),))
    spec = spec_with(limits=CostLimits(max_hourly_usd=1.0))
    summary, warnings = cost.plan_cost(spec, live, [change("instance.t", (Action.DELETE,),
                                                           id="i-1")], NOW)
    assert summary.hourly_usd_before == pytest.approx(G5_XLARGE + ROOT)
    assert summary.hourly_usd_after == 0.0 and summary.exceeded == () and warnings == []


def test_an_implausible_spot_price_falls_back_to_the_fraction() -> None:
    """moto's spot price history says 0.00001 for every type: not a market price."""
    od = cost.on_demand_hourly("g5.48xlarge", "us-east-1")
    assert od is not None
    got = cost.instance_hourly("g5.48xlarge", "spot", "us-east-1",
                               {"g5.48xlarge/us-east-1a": 0.00001}, AZ)
    assert got == pytest.approx(od * cost.spot_fraction())


def test_unknown_prices_are_null_in_the_plan_file_and_named() -> None:
    from planner.plan import Plan, plan_from_json, plan_to_json

    spec = spec_with(instances={"t": Instance(name="t", instance_type="x9.huge", ami="ami-1",
                                              availability_zone=AZ)})
    changes = (change("instance.t", (Action.CREATE,)),)
    summary, _ = cost.plan_cost(spec, live_with(), changes, NOW)
    plan = Plan(project="proj", region="us-east-1", created_at="2026-11-22T21:00:00Z",
                spec_digest="s", live_digest="l", changes=changes, cost=summary)
    doc = plan_to_json(plan)["cost"]
    assert doc["hourly_usd_after"] is None and doc["daily_usd_after"] is None
    assert doc["hourly_usd_before"] == 0.0
    assert doc["at_least"]["hourly_usd_after"] == pytest.approx(ROOT)
    assert doc["unknown_prices"] == [{"address": "instance.t", "item": "x9.huge",
                                      "region": "us-east-1",
                                      "message": "no price for x9.huge in us-east-1"}]
    assert plan_from_json(json.loads(json.dumps(plan_to_json(plan)))).cost == summary


def test_every_rendering_says_unknown_never_a_dollar_figure() -> None:
    from planner.plan import Plan, plan_to_json
    from planner.render.markdown import render_markdown
    from planner.render.text import render_text

    spec = spec_with(instances={"trainer": Instance(
        name="trainer", instance_type="p5en.48xlarge", ami="ami-1",
        availability_zone="mars-north-1a")}, limits=CostLimits(max_hourly_usd=1, enforce=True),
        region="mars-north-1")
    changes = (change("instance.trainer", (Action.CREATE,)),)
    summary, warnings = cost.plan_cost(spec, live_with(region="mars-north-1"), changes, NOW)
    plan = Plan(project="proj", region="mars-north-1", created_at="2026-11-22T21:00:00Z",
                spec_digest="s", live_digest="l", changes=changes, cost=summary,
                warnings=tuple(warnings), cost_enforced=True)
    text = render_text(plan, color=False)
    assert "-> $?/h (at least $0.00/h)" in text
    assert "$?/h: no price for p5en.48xlarge in mars-north-1 (instance.trainer)" in text
    assert "not applyable" in text
    md = render_markdown(plan)
    assert "**$?/h (at least $0.00/h)**" in md
    assert "$?/h: no price for p5en.48xlarge in mars-north-1" in md
    assert "cannot be applied without `--allow-cost`" in md
    doc = plan_to_json(plan)
    assert doc["cost"]["hourly_usd_after"] is None and doc["applyable"] is False


def test_a_deleted_resource_leaves_the_after_cost_whatever_its_change_type() -> None:
    """A temporary prewarm instance the plan terminates (`prewarm.D@i-...`, type prewarm)
    leaves the after-cost with its root volume; blocked, it stays; a change without an id
    (an attachment, a mount) deletes no billed resource."""
    temp = linst("i-temp", "prewarm.tiny", "t3.small")
    trainer = linst("i-1", "instance.t", "g5.xlarge")
    data = lvol("vol-d", "volume.d", 100, "gp2")            # 10/month
    live = live_with(volumes=(data,), instances=(trainer, temp))
    t3_small = cost.instance_hourly("t3.small", "on-demand", "us-east-1")
    assert t3_small is not None
    before = G5_XLARGE + t3_small + 10 / 730 + 2 * ROOT
    gone, _ = cost.plan_cost(spec_with(), live, [
        change("prewarm.tiny@i-temp", (Action.DELETE,), id="i-temp"),
        change("attachment.t.d", (Action.DELETE,)),
        change("mount.t.d", (Action.DELETE,))], NOW)
    assert gone.hourly_usd_before == pytest.approx(before)
    assert gone.hourly_usd_after == pytest.approx(G5_XLARGE + 10 / 730 + ROOT)
    assert gone.daily_usd_after == pytest.approx((G5_XLARGE + 10 / 730 + ROOT) * 24)
    kept, _ = cost.plan_cost(spec_with(), live, [
        change("prewarm.tiny@i-temp", (Action.DELETE,), id="i-temp", blocked=True)], NOW)
    assert kept.hourly_usd_after == pytest.approx(before)
    # a delete of any type names the volume it removes by id: it leaves too
    vol_gone, _ = cost.plan_cost(spec_with(), live, [
        change("prewarm.d@vol-d", (Action.DELETE,), id="vol-d")], NOW)
    assert vol_gone.hourly_usd_after == pytest.approx(G5_XLARGE + t3_small + 2 * ROOT)


def test_only_this_projects_resources_are_priced() -> None:
    """A snapshot may hold another project's resources and untagged ones: they cost
    this plan nothing, before or after. An untagged volume attached to one of the
    project's instances is its root volume and counts; what `import:` names counts."""
    ours = linst("i-1", "instance.t", "g5.xlarge")
    other = replace(linst("i-x", "instance.t", "g5.xlarge"),
                    tags=MappingProxyType({TAG_ADDRESS: "instance.t", TAG_PROJECT: "other"}))
    bare = replace(linst("i-bare", "instance.t", "g5.xlarge"), tags=MappingProxyType({}))
    root = LiveVolume(id="vol-root", availability_zone=AZ, size_gib=50, type="gp3",
                      state="in-use", create_time=NOW,
                      attachments=(LiveAttachment("i-1", "/dev/xvda", "attached"),))
    foreign_root = replace(root, id="vol-xroot",
                           attachments=(LiveAttachment("i-x", "/dev/xvda", "attached"),))
    other_vol = replace(lvol("vol-x", "volume.d", 1000, "gp2"),
                        tags=MappingProxyType({TAG_ADDRESS: "volume.d", TAG_PROJECT: "other"}))
    untagged = replace(lvol("vol-y", "volume.d", 1000, "gp2"), tags=MappingProxyType({}))
    live = live_with(volumes=(root, foreign_root, other_vol, untagged),
                     instances=(ours, other, bare))
    summary, _ = cost.plan_cost(spec_with(), live, [
        change("instance.t", (Action.DELETE,), id="i-1")], NOW)
    assert summary.hourly_usd_before == pytest.approx(G5_XLARGE + 4 / 730)
    assert summary.hourly_usd_after == 0.0
    assert summary.accumulated_usd == 0.0
    # `import:` adopts the untagged volume: it is this project's, before and after
    spec = spec_with(volumes={"d": Volume(name="d", size_gib=1000, type=VolumeType.GP2,
                                          availability_zone=AZ, import_id="vol-y")})
    adopted, _ = cost.plan_cost(spec, live, [
        change("instance.t", (Action.NOOP,), id="i-1"),
        change("volume.d", (Action.UPDATE,), id="vol-y")], NOW)
    assert adopted.hourly_usd_before == pytest.approx(G5_XLARGE + 4 / 730 + 100 / 730)
    assert adopted.hourly_usd_after == pytest.approx(G5_XLARGE + 4 / 730 + 100 / 730)
