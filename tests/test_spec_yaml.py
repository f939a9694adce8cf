"""Safe, bounded YAML loading: positions, duplicate keys, bombs, sizes, bad text."""

from __future__ import annotations

from pathlib import Path

import pytest

from planner import yamlsafe
from planner.errors import SpecError, TrainctlError
from planner.yamlsafe import load_yaml, parse_yaml


def errors_of(tmp_path: Path, text: str | bytes, name: str = "t.yaml") -> list[str]:
    f = tmp_path / name
    if isinstance(text, bytes):
        f.write_bytes(text)
    else:
        f.write_text(text)
    with pytest.raises(SpecError) as exc:
        load_yaml(str(f))
    return [str(i) for i in exc.value.issues]


def test_positions_of_values_and_keys() -> None:
    doc = parse_yaml("a: 1\nb:\n  c: [x, {d: 2}]\n", "f.yaml")
    assert doc.data == {"a": 1, "b": {"c": ["x", {"d": 2}]}}
    assert doc.values[("a",)] == (1, 4)
    assert doc.keys[("b", "c")] == (3, 3)
    assert doc.values[("b", "c", 1, "d")] == (3, 14)
    assert doc.issue(("b", "c", 0), "m").__str__() == "f.yaml:3:7: b.c[0]: m"
    # a missing child points at its parent (the key where there is one)
    assert doc.pos(("b", "c", 1, "zz")) == (3, 10)
    assert doc.pos(("b", "zz")) == (2, 1)


def test_syntax_error_is_located(tmp_path: Path) -> None:
    lines = errors_of(tmp_path, "version: 1\nproject: x\n  region: [\n")
    assert lines == [f"{tmp_path}/t.yaml:3:9: (document): "
                     "YAML syntax: mapping values are not allowed in this context"]


def test_unclosed_flow_sequence(tmp_path: Path) -> None:
    (line,) = errors_of(tmp_path, "a: [1, 2\n")
    assert line.startswith(f"{tmp_path}/t.yaml:2:1: (document): YAML syntax: ")


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    lines = errors_of(tmp_path, "version: 1\nproject: a\nregion: x\nproject: b\n")
    assert lines == [f"{tmp_path}/t.yaml:4:1: (document): "
                     "duplicate key 'project' (first defined at line 2)"]


def test_duplicate_nested_key(tmp_path: Path) -> None:
    lines = errors_of(tmp_path, "volumes:\n  a: {size_gib: 1, size_gib: 2}\n")
    assert lines == [f"{tmp_path}/t.yaml:2:20: (document): "
                     "duplicate key 'size_gib' (first defined at line 2)"]


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    assert errors_of(tmp_path, text) == [
        f"{tmp_path}/t.yaml:1:1: (document): the file is empty "
        "(expected a mapping with version, project and region)"]


@pytest.mark.parametrize(("text", "message"), [
    ("- a\n- b\n", "the top level must be a mapping, got a list"),
    ("\n  just text\n", "the top level must be a mapping, got a scalar"),
])
def test_top_level_not_a_mapping(tmp_path: Path, text: str, message: str) -> None:
    line = 2 if text.startswith("\n") else 1
    col = 3 if text.startswith("\n") else 1
    assert errors_of(tmp_path, text) == [f"{tmp_path}/t.yaml:{line}:{col}: (document): {message}"]


def _billion_laughs() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(20)
def test_yaml_bomb_fails_on_the_expansion_bound(tmp_path: Path) -> None:
    text = _billion_laughs()
    assert text.count("*") < yamlsafe.MAX_ALIASES   # only the expansion bound can stop it
    (line,) = errors_of(tmp_path, text)
    assert line.startswith(f"{tmp_path}/t.yaml:1:")
    assert line.endswith(": (document): document too large after alias "
                         f"expansion (more than {yamlsafe.MAX_NODES} nodes)")


def test_alias_uses_are_bounded(tmp_path: Path) -> None:
    text = "x: &x 1\nl: [" + ",".join(["*x"] * (yamlsafe.MAX_ALIASES + 1)) + "]\n"
    (line,) = errors_of(tmp_path, text)
    col = len("l: [") + 1 + 3 * yamlsafe.MAX_ALIASES
    assert line == (f"{tmp_path}/t.yaml:2:{col}: (document): "
                    f"too many aliases (more than {yamlsafe.MAX_ALIASES})")


def test_aliases_within_bounds_work() -> None:
    doc = parse_yaml("x: &x {a: 1}\ny: *x\nz: [*x, *x]\n", "f.yaml")
    assert doc.data == {"x": {"a": 1}, "y": {"a": 1}, "z": [{"a": 1}, {"a": 1}]}


def test_recursive_alias(tmp_path: Path) -> None:
    assert errors_of(tmp_path, "a: &a [*a]\n") == [
        f"{tmp_path}/t.yaml:1:4: (document): recursive alias"]


def test_deep_nesting_is_bounded(tmp_path: Path) -> None:
    (line,) = errors_of(tmp_path, "a: " + "[" * 5000 + "]" * 5000 + "\n")
    assert line.endswith(f"(document): nesting too deep (more than {yamlsafe.MAX_DEPTH} levels)")


@pytest.mark.timeout(20)
def test_oversized_file_is_refused_before_reading(tmp_path: Path) -> None:
    f = tmp_path / "big.yaml"
    with f.open("w") as out:
        out.write("version: 1\n")
        out.write("# " + "x" * (yamlsafe.MAX_BYTES + 1024 * 1024) + "\n")
    with pytest.raises(SpecError) as exc:
        load_yaml(str(f))
    assert [str(i) for i in exc.value.issues] == [
        f"{f}:1:1: (document): file is too large (33.0 MiB; the limit is 32 MiB)"]


def test_size_limit_holds_for_unsized_files() -> None:
    # /dev/zero reports size 0 but never ends: the read is bounded too
    with pytest.raises(SpecError, match="file is too large"):
        load_yaml("/dev/zero")


def test_merge_keys_fill_missing_keys() -> None:
    doc = parse_yaml("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  y: 3\n", "f.yaml")
    assert doc.data["d"] == {"y": 3, "x": 1}
    assert doc.keys[("d", "x")] == (1, 11)   # merged keys point into the anchor


def test_scalars_are_typed_and_dates_stay_text() -> None:
    doc = parse_yaml("a: 1\nb: 1.5\nc: true\nd: ~\ne: 2024-01-01\nf: '007'\non: x\n", "f.yaml")
    assert doc.data == {"a": 1, "b": 1.5, "c": True, "d": None, "e": "2024-01-01",
                        "f": "007", "on": "x"}


@pytest.mark.parametrize(("text", "message"), [
    ("a: !!python/object:os.system x\n",
     "unsupported tag tag:yaml.org,2002:python/object:os.system"),
    ("a: !custom x\n", "unsupported tag !custom"),
    ("a: !!set {x, y}\n", "unsupported tag tag:yaml.org,2002:set"),
    ("a: !!omap [x: 1]\n", "unsupported tag tag:yaml.org,2002:omap"),
    ("a: !!binary aGk=\n", "unsupported tag tag:yaml.org,2002:binary"),
    ("a: .inf\n", "'.inf' is not a finite number"),
    ("[a, b]: 1\n", "a mapping key must be a plain scalar"),
])
def test_unsafe_or_odd_nodes(tmp_path: Path, text: str, message: str) -> None:
    (line,) = errors_of(tmp_path, text)
    assert line.endswith(f"(document): {message}")


def test_control_characters_and_bad_encoding(tmp_path: Path) -> None:
    assert errors_of(tmp_path, 'a: 1\nb: "x\x00"\n') == [
        f"{tmp_path}/t.yaml:2:6: (document): YAML syntax: unacceptable character #x0000"]
    assert errors_of(tmp_path, b"a: 1\nb: \xff\xfe\n") == [
        f"{tmp_path}/t.yaml:2:4: (document): the file is not UTF-8 text"]


def test_missing_file_is_a_clean_error(tmp_path: Path) -> None:
    with pytest.raises(TrainctlError, match="cannot read the spec: No such file"):
        load_yaml(str(tmp_path / "nope.yaml"))
