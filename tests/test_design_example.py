"""The spec example in docs/DESIGN.md (the contract users copy from) stays valid."""

from __future__ import annotations

import re
from pathlib import Path

from planner.loader import load_spec

ROOT = Path(__file__).resolve().parent.parent


def test_design_example_validates(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "DESIGN.md").read_text()
    example = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert example, "docs/DESIGN.md lost its spec example"
    path = tmp_path / "trainctl.yaml"
    path.write_text(example.group(1))
    spec = load_spec(str(path))
    assert spec.volumes["imagenet-cache"].persistent
    assert spec.instances["trainer"].mounts[0].read_only
