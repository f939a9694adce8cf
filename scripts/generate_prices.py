"""Generate `planner/data/prices.json` from apache-libcloud's bundled price list.

    python -m scripts.generate_prices [--source PRICING_JSON] [--ebs EBS_JSON] [--out OUT]

Source: `libcloud/data/pricing.json` shipped by the PyPI package apache-libcloud (pinned in
the `dev` extra); `compute.ec2_linux` maps instance type -> {region: on-demand Linux $/h}.
Only the families trainctl prices are kept (accelerators, and the CPU families prewarm and
small jobs use). A 0.0, negative or missing price is left out: cost.py then prices it as
unknown (fail closed), never $0. EBS rates come from `scripts/ebs_rates.json` (hand
transcribed: no registry package ships them). The runtime never imports libcloud.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import metadata, resources
from pathlib import Path
from typing import Any

GENERATOR = "scripts/generate_prices.py"
ACCELERATOR_FAMILIES = ("g4dn", "g5", "g5g", "g6", "g6e", "gr6", "p3", "p4d", "p4de", "p5",
                        "p5e", "p5en", "p6", "trn1", "trn1n", "trn2", "inf2", "dl1")
# Prewarm's temporary instance is t3.small / t4g.small (planner/engines/direct_data.py).
CPU_FAMILIES = ("t3", "t4g", "m5", "c5")
FAMILIES = frozenset(ACCELERATOR_FAMILIES + CPU_FAMILIES)
# AWS regions only (no Local Zones such as us-west-2-lax-1).
REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d+$")
HOURS_PER_MONTH = 730
SPOT_FRACTION = 0.35
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EBS = ROOT / "scripts" / "ebs_rates.json"
DEFAULT_OUT = ROOT / "planner" / "data" / "prices.json"


def _size_key(instance_type: str) -> tuple[str, int, str]:
    family, _, size = instance_type.partition(".")
    rank = {"nano": -6, "micro": -5, "small": -4, "medium": -3, "large": -2, "xlarge": 1}
    m = re.fullmatch(r"(\d+)xlarge", size)
    return family, int(m.group(1)) if m else rank.get(size, 10_000), size


def build(pricing: Mapping[str, Any], ebs: Mapping[str, Any],
          package: str = "apache-libcloud", version: str = "?") -> dict[str, Any]:
    """The price table (cost.py's format) from libcloud's pricing document and EBS rates."""
    updated = datetime.fromtimestamp(int(pricing["updated"]), UTC).date().isoformat()
    regions: dict[str, dict[str, Any]] = {}
    ec2 = pricing["compute"]["ec2_linux"]
    for itype in sorted(ec2, key=_size_key):
        if itype.split(".", 1)[0] not in FAMILIES:
            continue
        for region, price in ec2[itype].items():
            if REGION.match(region) and isinstance(price, int | float) and price > 0:
                regions.setdefault(region, {"instances": {}})["instances"][itype] = price
    for region, entry in ebs["regions"].items():
        if region in regions:
            regions[region]["ebs"] = entry["ebs"]
    no_ebs = sorted(r for r in regions if "ebs" not in regions[r])
    return {
        "as_of": updated,
        "currency": "USD",
        "source": (f"EC2 On-Demand Linux: libcloud/data/pricing.json from the PyPI package "
                   f"{package} {version} (data updated {updated}); a type/region it prices "
                   f"at 0 or omits is left out (unknown). EBS: {ebs['source']}"),
        "ebs_source": ebs["source"],
        "ebs_unpriced_regions": no_ebs,
        "generator": f"{GENERATOR} (make prices)",
        "hours_per_month": HOURS_PER_MONTH,
        "spot_fraction": SPOT_FRACTION,
        "spot_fraction_note": ("Used when describe_spot_price_history gives no price for a "
                               "type/AZ: spot hourly = on-demand hourly * spot_fraction."),
        "regions": {r: regions[r] for r in sorted(regions)},
    }


def render(table: Mapping[str, Any]) -> str:
    return json.dumps(table, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.generate_prices",
                                     description=__doc__.split("\n", 1)[0])
    parser.add_argument("--source", type=Path, help="a libcloud pricing.json "
                        "(default: the one in the installed apache-libcloud)")
    parser.add_argument("--ebs", type=Path, default=DEFAULT_EBS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.source is not None:
        text, version = args.source.read_text("utf-8"), f"(file {args.source.name})"
    else:
        text = resources.files("libcloud").joinpath("data/pricing.json").read_text("utf-8")
        version = metadata.version("apache-libcloud")
    table = build(json.loads(text), json.loads(args.ebs.read_text("utf-8")),
                  version=version)
    args.out.write_text(render(table), "utf-8")
    counts = len(table["regions"])
    print(f"wrote {args.out} ({counts} regions, as of {table['as_of']})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
