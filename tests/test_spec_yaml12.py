"""One reading of the YAML, shared with editors: YAML 1.2 core, bounded numbers, and the
cross-field rules in the schema itself (so yaml-language-server shows them too)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from planner import schema as schema_mod
from planner.errors import SpecError
from planner.loader import load_spec, loads_spec
from planner.yamlsafe import MAX_INT, core_scalar, parse_yaml

HEAD = """\
version: 1
project: demo
region: us-east-1
defaults:
  availability_zone: us-east-1a
"""


def value_of(text: str) -> Any:
    return parse_yaml(f"a: {text}\n", "f.yaml").data["a"]


def errors_of(tmp_path: Path, text: str) -> list[str]:
    f = tmp_path / "t.yaml"
    f.write_text(text)
    with pytest.raises(SpecError) as exc:
        load_spec(str(f))
    prefix = f"{f}:"
    return [str(i)[len(prefix):] for i in exc.value.issues]


# --- YAML 1.2 core scalars ----------------------------------------------------------------

@pytest.mark.parametrize(("text", "value"), [
    ("true", True), ("True", True), ("TRUE", True), ("false", False), ("FALSE", False),
    # YAML 1.1 booleans are strings in 1.2
    ("yes", "yes"), ("no", "no"), ("on", "on"), ("off", "off"), ("y", "y"), ("n", "n"),
    ("Yes", "Yes"), ("ON", "ON"), ("Off", "Off"),
    ("null", None), ("Null", None), ("NULL", None), ("~", None), ("", None),
    ("0", 0), ("-12", -12), ("+7", 7), ("0777", 777), ("0o777", 0o777), ("0x1F", 31),
    ("1_000", "1_000"), ("1:20", "1:20"), ("0b101", "0b101"), ("-0x1F", "-0x1F"),
    ("1.5", 1.5), (".5", 0.5), ("1.", 1.0), ("1e3", 1000.0), ("-2.5E-1", -0.25),
    ("2024-01-01", "2024-01-01"), ("'007'", "007"), ('"true"', "true"), ("'yes'", "yes"),
    ("!!str 12", "12"), ("!!int 12", 12), ("!!float 1", 1.0), ("!!bool true", True),
    ("!!null ~", None), ("a b", "a b"), ("nan", "nan"), ("tru", "tru"),
])
def test_scalars_read_as_yaml_1_2_core(text: str, value: Any) -> None:
    got = value_of(text)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(("text", "message"), [
    (".inf", "'.inf' is not a finite number"),
    ("-.Inf", "'-.Inf' is not a finite number"),
    (".nan", "'.nan' is not a finite number"),
    ("1e400", "'1e400' is too large a number"),
    ("!!int yes", "bad scalar 'yes' for tag:yaml.org,2002:int"),
    ("!!bool yes", "bad scalar 'yes' for tag:yaml.org,2002:bool"),
    ("!!int true", "bad scalar 'true' for tag:yaml.org,2002:int"),
])
def test_scalars_trainctl_refuses(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "t.yaml"
    f.write_text(f"a: 1\nb: {text}\n")
    with pytest.raises(SpecError) as exc:
        load_spec(str(f))
    assert [str(i) for i in exc.value.issues] == [f"{f}:2:4: (document): {message}"]


@pytest.mark.parametrize("digits", [20, 400, 5000, 100_000])
def test_huge_integers_are_a_clean_error(tmp_path: Path, digits: int) -> None:
    """10**400 (and past Python's 4300-digit int() limit) is refused, located, at once."""
    text = HEAD + (f"volumes:\n  a: {{size_gib: 1{'0' * digits}}}\n"
                   f"  b: {{size_gib: -9{'9' * digits}}}\n")
    f = tmp_path / "t.yaml"
    f.write_text(text)
    r = run_cli("-f", str(f), "validate")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{f}:7:17: (document): ")
    assert lines[1].startswith(f"{f}:8:17: (document): ")
    assert all("is too large a number (the largest trainctl takes is "
               f"{MAX_INT})" in line for line in lines)
    assert max(map(len, lines)) < 300          # the number is shortened, not echoed whole


def test_largest_integers_pass_the_loader() -> None:
    assert core_scalar(str(MAX_INT)) == MAX_INT
    assert core_scalar(f"-{MAX_INT}") == -MAX_INT
    assert core_scalar("0" * 100 + "5") == 5        # leading zeros are not digits of size
    with pytest.raises(ValueError, match="too large"):
        core_scalar(str(MAX_INT + 1))
    with pytest.raises(ValueError, match="too large"):
        core_scalar("0x" + "f" * 16)


def test_keys_stay_raw_text() -> None:
    doc = parse_yaml("on: 1\nyes: 2\n1: 3\nnull: 4\n", "f.yaml")
    assert doc.data == {"on": 1, "yes": 2, "1": 3, "null": 4}


# --- what a spec author sees ---------------------------------------------------------------

@pytest.mark.parametrize(("field", "word", "fix"), [
    ("persistent", "yes", "true"), ("persistent", "no", "false"),
    ("encrypted", "on", "true"), ("protect", "Off", "false"), ("protect", "Y", "true"),
])
def test_yaml11_booleans_are_errors_that_say_why(tmp_path: Path, field: str, word: str,
                                                 fix: str) -> None:
    got = errors_of(tmp_path, HEAD + f"volumes:\n  a: {{size_gib: 1, {field}: {word}}}\n")
    col = len(f"  a: {{size_gib: 1, {field}: ") + 1
    assert got == [f"7:{col}: volumes.a.{field}: expected true or false, got a string "
                   f"({word!r}); YAML 1.2 reads {word} as a string: write {fix}"]


def test_yaml11_boolean_in_a_mount_and_in_cost(tmp_path: Path) -> None:
    text = HEAD + ("cost: {max_hourly_usd: 10, enforce: yes}\nvolumes:\n  v: {size_gib: 1}\n"
                   "instances:\n  t:\n    instance_type: g5.xlarge\n"
                   "    ami: ami-0123456789abcdef0\n"
                   "    mounts: [{volume: v, device: /dev/sdf, path: /v, read_only: y}]\n")
    got = errors_of(tmp_path, text)
    assert got == [
        "6:37: cost.enforce: expected true or false, got a string ('yes'); YAML 1.2 reads yes "
        "as a string: write true",
        "13:65: instances.t.mounts[0].read_only: expected true or false, got a string ('y'); "
        "YAML 1.2 reads y as a string: write true"]


@pytest.mark.parametrize(("text", "fix"), [("1_000", "1000"), ("1:20", "80"),
                                           ("0b1010", "10"), ("1_0:00", "600")])
def test_yaml11_numbers_are_errors_that_say_why(tmp_path: Path, text: str, fix: str) -> None:
    got = errors_of(tmp_path, HEAD + f"volumes:\n  a: {{size_gib: {text}}}\n")
    assert got == [f"7:17: volumes.a.size_gib: expected an integer, got a string ({text!r}); "
                   f"YAML 1.2 reads {text} as a string: write {fix}"]


def test_yaml11_booleans_are_plain_strings_in_tags(tmp_path: Path) -> None:
    spec = loads_spec(HEAD + "  tags: {spot: yes, legacy: off}\nvolumes:\n"
                             "  a: {size_gib: 1, tags: {on: n, count: '3'}}\n",
                      str(tmp_path / "t.yaml"))
    assert dict(spec.defaults.tags) == {"spot": "yes", "legacy": "off"}
    assert dict(spec.volumes["a"].tags) == {"spot": "yes", "legacy": "off", "on": "n",
                                            "count": "3"}


def test_octal_looking_numbers_are_decimal(tmp_path: Path) -> None:
    spec = loads_spec(HEAD + "volumes:\n  a: {size_gib: 0100}\n  b: {size_gib: 0o100}\n",
                      str(tmp_path / "t.yaml"))
    assert (spec.volumes["a"].size_gib, spec.volumes["b"].size_gib) == (100, 64)


# --- the schema carries the cross-field rules -------------------------------------------------

SCHEMA = json.loads((ROOT / "schemas" / "trainctl.schema.json").read_text())
BASE: dict[str, Any] = {"version": 1, "project": "demo", "region": "us-east-1"}


def _editor_errors(doc: dict[str, Any]) -> list[str]:
    """What an editor that knows only the schema file reports (the JSON path of each)."""
    return sorted("/".join(map(str, e.absolute_path))
                  for e in Draft202012Validator(SCHEMA).iter_errors(doc))


@pytest.mark.parametrize(("section", "entry", "where"), [
    ("volumes", {"size_gib": 1, "import": "vol-0123456789abcdef0",
                 "snapshot_id": "snap-0123456789abcdef0"}, "volumes/x/import"),
    ("datasets", {"source": "s3://bkt/p/", "strategy": "prewarmed-ebs"}, "datasets/x"),
    ("datasets", {"source": "s3://bkt/p/", "strategy": "existing-ebs"}, "datasets/x"),
    ("datasets", {"source": "s3://bkt/p/", "strategy": "local-cache", "volume": "v"},
     "datasets/x/volume"),
    ("datasets", {"source": "s3://bkt/p/", "strategy": "direct-s3", "volume": "v"},
     "datasets/x/volume"),
    ("datasets", {"source": "s3://bkt/p/", "strategy": "direct-s3", "path": "/p"},
     "datasets/x/path"),
    ("datasets", {"source": "./data", "strategy": "local-cache"}, "datasets/x"),
    ("datasets", {"source": "data", "strategy": "direct-s3"}, "datasets/x"),
])
def test_cross_field_rules_are_in_the_schema_file(section: str, entry: dict[str, Any],
                                                  where: str) -> None:
    assert _editor_errors({**BASE, section: {"x": entry}}) == [where]


@pytest.mark.parametrize(("section", "entry", "expected"), [
    ("volumes", {"size_gib": 1, "import": "vol-0123456789abcdef0"}, []),
    ("volumes", {"size_gib": 1, "snapshot_id": "snap-0123456789abcdef0"}, []),
    ("datasets", {"source": "s3://bkt/p/", "strategy": "prewarmed-ebs", "volume": "v"}, []),
    ("datasets", {"source": "s3://bkt/p/", "strategy": "local-cache", "path": "/d"}, []),
    ("datasets", {"source": "./data", "stage": "s3://bkt/s/", "strategy": "direct-s3"}, []),
    # an S3 URI in the wrong case is a bad URI, not a local source without a stage
    ("datasets", {"source": "S3://bkt/p/", "strategy": "direct-s3"}, ["datasets/x/source"]),
])
def test_cross_field_rules_accept_what_they_allow(section: str, entry: dict[str, Any],
                                                  expected: list[str]) -> None:
    assert _editor_errors({**BASE, section: {"x": entry}}) == expected


def test_one_problem_one_error(tmp_path: Path) -> None:
    """A rule both the schema and a semantic check could see is reported once, and a
    cross-field error does not hide the checks of the values it names."""
    text = HEAD + ("datasets:\n"
                   "  d: {source: ./missing, strategy: local-cache, volume: v}\n"
                   "volumes:\n  v: {size_gib: 1, import: vol-0123456789abcdef0, "
                   "snapshot_id: snap-0123456789abcdef0}\n")
    assert errors_of(tmp_path, text) == [
        "7:15: datasets.d.source: a local source needs stage: the s3:// prefix it is "
        "uploaded to",
        f"7:15: datasets.d.source: local source ./missing does not exist (looked for "
        f"{tmp_path / 'missing'})",
        "7:49: datasets.d.volume: strategy local-cache takes no volume",
        "9:20: volumes.v.import: import and snapshot_id exclude each other"]


def test_schema_id_is_absent_or_resolvable() -> None:
    assert "$id" not in SCHEMA         # nothing to resolve: editors use the $schema modeline


def test_both_schema_copies_are_equal() -> None:
    packaged = ROOT / "planner" / "schemas" / "trainctl.schema.json"
    assert packaged.read_bytes() == (ROOT / "schemas" / "trainctl.schema.json").read_bytes()
    assert schema_mod.load_schema() == SCHEMA


def test_schema_command_prints_the_schema(tmp_path: Path) -> None:
    r = run_cli("schema", cwd=tmp_path)            # no spec file needed
    assert r.returncode == 0, r.stderr
    assert r.stdout == (ROOT / "schemas" / "trainctl.schema.json").read_text()
    assert json.loads(r.stdout)["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_volume_limits_agree_with_each_other() -> None:
    """The largest gp3 IOPS needs a size the schema allows, the largest throughput needs
    IOPS the schema allows (500 IOPS/GiB, 0.25 MiB/s per IOPS), and so on for io1/io2."""
    props = SCHEMA["$defs"]["volume"]["properties"]
    rules = json.dumps(SCHEMA["$defs"]["volume"]["allOf"])
    assert props["size_gib"]["maximum"] == 65536
    assert props["throughput_mibps"]["maximum"] == 2000
    assert props["iops"]["maximum"] == 256000
    assert '"maximum": 80000' in rules and '"maximum": 64000' in rules
    assert 2000 / 0.25 <= 80000 and 80000 / 500 <= 65536      # gp3
    assert 256000 / 1000 <= 65536 and 64000 / 50 <= 16384     # io2, io1


# --- the fast validator and the explaining one agree ------------------------------------------

_names = st.sampled_from(["a", "b", "v", "x-1"])
_scalars = st.one_of(st.integers(-10, 70000), st.booleans(), st.none(),
                     st.sampled_from(["gp3", "io2", "gp2", "st1", "yes", "s3://bkt/p/", "./d",
                                      "us-east-1a", "/dev/sdf", "/data", "snap-0123456789abcdef0",
                                      "vol-0123456789abcdef0", "prewarmed-ebs", "local-cache",
                                      "direct-s3", "existing-ebs", "/data/\n", "ami-123"]),
                     st.floats(allow_nan=False, allow_infinity=False, width=32))
_volume = st.dictionaries(st.sampled_from(["size_gib", "type", "iops", "throughput_mibps",
                                           "import", "snapshot_id", "persistent", "colour"]),
                          _scalars, max_size=5)
_dataset = st.dictionaries(st.sampled_from(["source", "stage", "strategy", "volume", "path"]),
                           _scalars, max_size=5)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(volumes=st.dictionaries(_names, _volume, max_size=2),
       datasets=st.dictionaries(_names, _dataset, max_size=2))
def test_fast_and_explaining_validators_agree(volumes: dict[str, Any],
                                              datasets: dict[str, Any]) -> None:
    doc = {**BASE, "volumes": volumes, "datasets": datasets}
    fast = schema_mod._fast().is_valid(doc)
    explained = not any(True for _ in schema_mod._explainer().iter_errors(doc))
    integral_float = any(isinstance(v, float) and v.is_integer()
                         for section in (volumes, datasets) for e in section.values()
                         for v in e.values())
    if integral_float:      # the loader flags these and skips the fast path
        assert explained <= fast
    else:
        assert fast == explained, doc


def test_min_age_is_bounded(tmp_path: Path) -> None:
    """A 64-bit min_age_minutes passes the loader but not timedelta: the schema stops it."""
    text = HEAD.replace("  availability_zone", "  min_age_minutes: 9223372036854775807\n"
                                               "  availability_zone")
    assert errors_of(tmp_path, text) == [
        "5:20: defaults.min_age_minutes: must be at most 52560000; got 9223372036854775807"]


@pytest.mark.parametrize("text", [
    "a: {<<: 1}\n", "a: {<<: [1, {x: 1}]}\n", "b: &b {x: 1}\na: {<<: [*b, [2]]}\n",
    "a: &a {<<: *a}\n", "a: &a {b: {<<: *a}}\n", "a: {? [x] : 1}\n", "a: !!map [1]\n",
    "a: !!seq {x: 1}\n", "a: &x 1\nb: {<<: *x}\n",
])
def test_odd_merges_and_tags_are_clean_errors(tmp_path: Path, text: str) -> None:
    f = tmp_path / "t.yaml"
    f.write_text(text)
    with pytest.raises(SpecError) as exc:
        load_spec(str(f))
    (issue,) = exc.value.issues
    assert issue.line >= 1 and issue.path == ""


def test_positions_through_merges_and_aliases() -> None:
    doc = parse_yaml("base: &b {x: 1, y: [2, 3]}\nd:\n  <<: *b\n  y: 4\ne: *b\n", "f.yaml")
    assert doc.pos(("d", "x")) == (1, 14)           # merged: where the anchor holds it
    assert doc.pos(("d", "y")) == (4, 6)            # explicit key wins
    assert doc.pos(("e", "y", 1)) == (1, 24)        # through an alias
    assert doc.pos(("d", "nope"), key=True) == (2, 1)
    assert doc.pos(("e", "y", 7)) == (1, 17)        # missing index: its list's key


def test_a_hand_made_document_with_integral_floats_is_explained() -> None:
    from planner.yamlsafe import YamlDoc

    doc = YamlDoc(file="f.yaml", data={"version": 1, "project": "p", "region": "us-east-1",
                                       "volumes": {"a": {"size_gib": 100.0}}})
    issues, rejected = schema_mod.check(doc)
    assert [i.path for i in issues] == ["volumes.a.size_gib"] and rejected
