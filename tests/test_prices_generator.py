"""scripts/generate_prices.py: the bundled table is reproducible from apache-libcloud's data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import MappingProxyType

import pytest

from planner import cost
from scripts import generate_prices as gen

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "planner" / "data" / "prices.json"
FAMILIES = ("g4dn", "g5", "g5g", "g6", "g6e", "gr6", "p4d", "p4de", "p5", "p5e", "p5en", "p6",
            "trn1", "trn1n", "trn2", "inf2", "dl1")
# libcloud 3.9.1 has no positive price for these (p6 launched later; p5e and trn2 are 0.0).
ABSENT = {"p6", "p5e", "trn2"}


def table() -> dict:
    return json.loads(TABLE.read_text("utf-8"))


def test_the_generator_reproduces_the_bundled_table(tmp_path: Path) -> None:
    pytest.importorskip("libcloud")
    out = tmp_path / "prices.json"
    subprocess.run([sys.executable, "-m", "scripts.generate_prices", "--out", str(out)],
                   cwd=ROOT, check=True, capture_output=True)
    assert out.read_text("utf-8") == TABLE.read_text("utf-8")


def test_the_table_covers_the_families_and_p6_is_absent() -> None:
    regions = table()["regions"]
    def regions_of(family: str) -> set[str]:
        return {r for r, v in regions.items()
                if any(t.split(".")[0] == family for t in v["instances"])}
    for family in FAMILIES:
        assert bool(regions_of(family)) == (family not in ABSENT), family
    for family in ("t3", "t4g"):                       # prewarm's t3.small / t4g.small
        assert len(regions_of(family)) >= 30, family
    assert table()["source"].count("apache-libcloud 3.9.1") == 1


def test_no_price_is_zero_or_negative() -> None:
    for region, entry in table()["regions"].items():
        for itype, price in entry["instances"].items():
            assert isinstance(price, float | int) and price > 0, (region, itype)
        for vtype, rates in entry.get("ebs", {}).items():
            assert all(v >= 0 for v in rates.values()) and rates["gib_month"] > 0, vtype


def test_a_zero_or_missing_price_is_left_out_and_local_zones_too() -> None:
    fixture = {"updated": 1740936978, "compute": {"ec2_linux": {
        "g5.xlarge": {"us-east-1": 1.006, "us-west-2": 0.0, "eu-west-1": -1,
                      "us-west-2-lax-1": 1.2},
        "g6.xlarge": {"us-west-2": 0.8048},
        "x2iedn.xlarge": {"us-east-1": 1.0},          # not a family trainctl keeps
    }}}
    ebs = {"source": "test", "regions": {"us-east-1": {"note": "n", "ebs": {
        "gp3": {"gib_month": 0.08}}}, "ap-south-1": {"note": "n", "ebs": {}}}}
    doc = gen.build(fixture, ebs, version="3.9.1")
    assert doc["as_of"] == "2025-03-02"
    assert doc["regions"] == {
        "us-east-1": {"instances": {"g5.xlarge": 1.006}, "ebs": {"gp3": {"gib_month": 0.08}}},
        "us-west-2": {"instances": {"g6.xlarge": 0.8048}},
    }
    assert doc["ebs_unpriced_regions"] == ["us-west-2"]


def test_p6_and_a_libcloud_gap_plan_as_unknown_never_zero() -> None:
    from datetime import UTC, datetime

    from planner.live import LiveState
    from planner.plan import Action, Change, Reason, ResourceType
    from planner.spec import CostLimits, Instance, Spec

    assert cost.on_demand_hourly("p6.48xlarge", "us-east-1") is None
    assert cost.on_demand_hourly("g5.12xlarge", "us-east-1") is None      # 0.0 in libcloud
    now = datetime(2026, 12, 1, tzinfo=UTC)
    spec = Spec(version=1, project="proj", region="us-east-1", cost=CostLimits(),
                volumes=MappingProxyType({}), instances=MappingProxyType({
                    "t": Instance(name="t", instance_type="p6.48xlarge", ami="ami-1",
                                  availability_zone="us-east-1a")}))
    live = LiveState(project="proj", region="us-east-1", read_at=now, volumes=(),
                     instances=(), spot_prices=MappingProxyType({}))
    ch = Change(address="instance.t", type=ResourceType.INSTANCE, actions=(Action.CREATE,),
                reason=Reason.CREATE_BECAUSE_MISSING, id=None, after=None)
    summary, warnings = cost.plan_cost(spec, live, [ch], now)
    assert "hourly_usd_after" in summary.incomplete            # "$?/h (at least ...)"
    assert [u.item for u in summary.unknown_prices] == ["p6.48xlarge"]
    assert any(w.message.startswith("$?/h: no price for p6.48xlarge in us-east-1")
               for w in warnings)


def test_a_region_without_ebs_rates_prices_volumes_unknown() -> None:
    doc = table()
    [region] = [r for r in ("ap-south-1",) if "ebs" not in doc["regions"][r]]
    assert cost.on_demand_hourly("t3.small", region) is not None
    assert cost.volume_hourly(100, "gp3", None, None, region) is None


def test_a_plan_in_a_region_without_ebs_rates_prices_the_instance_not_its_root() -> None:
    from datetime import UTC, datetime

    from planner.live import LiveState
    from planner.plan import Action, Change, Reason, ResourceType
    from planner.spec import CostLimits, Instance, Spec

    now = datetime(2026, 12, 1, tzinfo=UTC)
    spec = Spec(version=1, project="proj", region="ap-south-1", cost=CostLimits(),
                volumes=MappingProxyType({}), instances=MappingProxyType({
                    "t": Instance(name="t", instance_type="t3.small", ami="ami-1",
                                  availability_zone="ap-south-1a")}))
    live = LiveState(project="proj", region="ap-south-1", read_at=now, volumes=(),
                     instances=(), spot_prices=MappingProxyType({}))
    ch = Change(address="instance.t", type=ResourceType.INSTANCE, actions=(Action.CREATE,),
                reason=Reason.CREATE_BECAUSE_MISSING, id=None, after=None)
    summary, warnings = cost.plan_cost(spec, live, [ch], now)
    t3 = cost.on_demand_hourly("t3.small", "ap-south-1")
    assert t3 is not None and summary.hourly_usd_after == pytest.approx(t3)   # at least
    assert "hourly_usd_after" in summary.incomplete
    assert [u.item for u in summary.unknown_prices] == ["EBS gp3"]
    assert not any("not in the price table" in w.message for w in warnings)
