"""Safe, bounded YAML loading, read as YAML 1.2 core, that knows where every node sits.

libyaml's C parser (PyYAML's CParser) composes the node tree; we convert it ourselves so
that
- scalars are read as YAML 1.2 core, as editors read them: booleans are `true`/`false`
  only (`yes`, `on`, `y` are strings), `0777` is decimal, `0o777` octal, `1_000` and
  `1:20` are strings, dates stay text, numbers are bounded (no 400-digit integers),
- a duplicate key is an error (PyYAML silently keeps the last one),
- alias uses, the nodes aliases expand to, nesting depth and file size are bounded
  (YAML bombs fail fast; libyaml itself caps nesting at 1000, so the C composer's
  recursion is bounded before ours),
- every value and every key has a 1-based (line, col), found on demand by walking the
  node tree along its path (a 100,000-resource spec keeps no position tables).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml._yaml import CParser
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from planner.errors import SpecError, SpecIssue, TrainctlError

MAX_BYTES = 32 * 1024 * 1024   # a 100,000-resource spec is about 6 MiB
MAX_ALIASES = 256              # alias uses (`*name`) in one file
MAX_NODES = 50_000             # nodes that alias expansion adds
MAX_DEPTH = 64                 # nesting of mappings and sequences
MAX_INT = 2**63 - 1            # what EC2, JSON tools and the schema validator take

Path = tuple[str | int, ...]
Pos = tuple[int, int]

_NS = "tag:yaml.org,2002:"
_PLAIN = "tag:trainctl:plain"   # a plain scalar whose type YAML 1.2 core decides
_STR, _MAP, _SEQ = _NS + "str", _NS + "map", _NS + "seq"
_NULL, _BOOL, _INT, _FLOAT = _NS + "null", _NS + "bool", _NS + "int", _NS + "float"
_MERGE, _TIMESTAMP = _NS + "merge", _NS + "timestamp"

# YAML 1.2.2 section 10.3.2, the core schema's tag resolution.
_NULLS = frozenset({"null", "Null", "NULL", "~", ""})
_TRUE = frozenset({"true", "True", "TRUE"})
_FALSE = frozenset({"false", "False", "FALSE"})
_INT10 = re.compile(r"[-+]?[0-9]+")
_INT8 = re.compile(r"0o[0-7]+")
_INT16 = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT_RE = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_INF_NAN = re.compile(r"[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)")
# A plain scalar starting with any other character is a string.
_MAYBE_NOT_STR = frozenset("0123456789+-.~nNtTfF")
# YAML 1.1 readings that 1.2 core reads as strings (used in messages).
YAML11_BOOLS = {spelling: value
                for words, value in (("y yes on", True), ("n no off", False))
                for word in words.split()
                for spelling in (word, word.capitalize(), word.upper())}
# Explicit tags (`!!int 3`) are read by the same rules and must agree with them.
_EXPLICIT: dict[str, type | tuple[type, ...]] = {
    _NULL: type(None), _BOOL: bool, _INT: int, _FLOAT: (int, float)}


def format_path(path: Path) -> str:
    """`("instances", "t", "mounts", 0, "device")` -> `instances.t.mounts[0].device`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _mark(node: Node) -> Pos:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _merge_sources(node: MappingNode) -> list[MappingNode]:
    out: list[MappingNode] = []
    for key_node, value_node in node.value:
        if _is_merge(key_node):
            nodes = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            out.extend(n for n in nodes if isinstance(n, MappingNode))
    return out


def _is_merge(key_node: Node) -> bool:
    return key_node.tag == _MERGE or (key_node.tag == _PLAIN and key_node.value == "<<")


def _child(node: Node, part: str | int) -> tuple[Node | None, Node] | None:
    """(key node, value node) of `part` in a composed collection, as the data reads it:
    explicit keys first, then `<<` merge sources in order."""
    if isinstance(node, SequenceNode):
        if isinstance(part, int) and 0 <= part < len(node.value):
            return None, node.value[part]
        return None
    if not isinstance(node, MappingNode) or not isinstance(part, str):
        return None
    for key_node, value_node in node.value:
        if isinstance(key_node, ScalarNode) and key_node.value == part \
                and not _is_merge(key_node):
            return key_node, value_node
    for source in _merge_sources(node):
        for key_node, value_node in source.value:
            if isinstance(key_node, ScalarNode) and key_node.value == part:
                return key_node, value_node
    return None


class _Positions(Mapping[Path, Pos]):
    """`doc.values[path]` / `doc.keys[path]`: looked up in the node tree on demand."""

    def __init__(self, doc: YamlDoc, *, keys: bool):
        self.doc, self.want_keys = doc, keys

    def __getitem__(self, path: Path) -> Pos:
        found = self.doc.walk(path)
        if len(found) != len(path) + 1:
            raise KeyError(path)
        key_node, value_node = found[-1]
        node = key_node if self.want_keys else value_node
        if node is None:
            raise KeyError(path)
        return _mark(node)

    def __iter__(self) -> Iterator[Path]:
        raise TypeError("positions are looked up by path, not listed")

    def __len__(self) -> int:
        raise TypeError("positions are looked up by path, not counted")


@dataclass
class YamlDoc:
    """A loaded document: plain data plus the composed node tree it came from."""

    file: str
    data: dict[str, Any]
    root: Node | None = None
    has_integral_floats: bool = False   # e.g. `100.0`: JSON Schema calls it an integer
    values: Mapping[Path, Pos] = field(init=False, repr=False)
    keys: Mapping[Path, Pos] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.values = _Positions(self, keys=False)
        self.keys = _Positions(self, keys=True)

    def walk(self, path: Path) -> list[tuple[Node | None, Node]]:
        """(key node, value node) of the root and of each prefix of `path` that exists."""
        if self.root is None:
            return []
        out: list[tuple[Node | None, Node]] = [(None, self.root)]
        node = self.root
        for part in path:
            found = _child(node, part)
            if found is None:
                break
            out.append(found)
            node = found[1]
        return out

    def pos(self, path: Path, *, key: bool = False) -> Pos:
        """Position of the value at `path` (or of its key); else of the nearest parent's key."""
        found = self.walk(tuple(path))
        if not found:
            return (1, 1)
        key_node, value_node = found[-1]
        if len(found) == len(path) + 1 and not key:
            return _mark(value_node)
        # the key asked for, or the nearest existing parent's key (its value at the root)
        return _mark(key_node if key_node is not None else value_node)

    def issue(self, path: Path, message: str, *, key: bool = False) -> SpecIssue:
        line, col = self.pos(path, key=key)
        return SpecIssue(self.file, line, col, format_path(path), message)


class _LoadError(Exception):
    def __init__(self, pos: Pos, message: str, *, alias: int = 0):
        self.pos = pos
        self.message = message
        self.alias = alias   # the n-th alias use is the problem (composed nodes don't say
        super().__init__(message)   # where an alias stands: the text does)


_ALIAS_TOKEN = re.compile(r"(?:^|(?<=[\s\[{,:?-]))\*[^\s,\[\]{}]+", re.MULTILINE)


def _alias_pos(text: str, n: int) -> Pos | None:
    """Where the n-th alias token (`*name`) of the text stands."""
    for i, m in enumerate(_ALIAS_TOKEN.finditer(text), 1):
        if i == n:
            line = text.count("\n", 0, m.start()) + 1
            return (line, m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1)
    return None


class _Composer(CParser):  # type: ignore[misc]
    """libyaml composes; tags are left for the converter (plain scalars marked _PLAIN)."""

    def descend_resolver(self, parent: Node | None, index: Any) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass

    def resolve(self, kind: type, value: str, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode:
            return _PLAIN if implicit[0] else _STR
        return _SEQ if kind is SequenceNode else _MAP


def core_scalar(text: str) -> Any:
    """A plain scalar's value under YAML 1.2's core schema (str when nothing else fits).
    Raises ValueError for a number trainctl does not take (infinite, NaN, too large)."""
    if text[:1] not in _MAYBE_NOT_STR:
        return text if text else None
    if text in _NULLS:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if _INT10.fullmatch(text):
        return _bounded(text.lstrip("+-"), 10, -1 if text[0] == "-" else 1)
    if _INT8.fullmatch(text):
        return _bounded(text[2:], 8, 1)
    if _INT16.fullmatch(text):
        return _bounded(text[2:], 16, 1)
    if _FLOAT_RE.fullmatch(text):
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"{_short(text)} is too large a number")
        return value
    if _INF_NAN.fullmatch(text):
        raise ValueError(f"{text!r} is not a finite number")
    return text


def _short(text: str) -> str:
    if len(text) <= 24:
        return repr(text)
    return f"'{text[:10]}...{text[-6:]}' ({len(text)} characters)"


def _bounded(digits: str, base: int, sign: int) -> int:
    stripped = digits.lstrip("0")
    if len(stripped) > 64 or (value := int(stripped or "0", base)) > MAX_INT:
        raise ValueError(f"{_short(digits)} is too large a number (the largest trainctl "
                         f"takes is {MAX_INT})")
    return sign * value


class _Converter:
    """Node tree -> plain Python data, enforcing the bounds; loader issues are collected."""

    def __init__(self) -> None:
        self.seen: set[int] = set()       # nodes converted once (a second time: an alias)
        self.active: set[int] = set()     # the nodes being converted (recursion guard)
        self.aliases = 0
        self.expanded = 0
        self.in_alias = 0
        self.integral_floats = False
        self.issues: list[tuple[Pos, str]] = []

    def convert(self, node: Node, depth: int) -> Any:
        nid = id(node)
        if nid in self.seen:
            return self._alias(node, depth)
        self.seen.add(nid)
        cls = node.__class__
        if cls is ScalarNode:
            return self._scalar(node)
        if depth >= MAX_DEPTH:
            raise _LoadError(_mark(node), f"nesting too deep (more than {MAX_DEPTH} levels)")
        self.active.add(nid)
        try:
            if cls is MappingNode:
                if node.tag != _MAP:
                    raise _LoadError(_mark(node), f"unsupported tag {node.tag}")
                return self._mapping(node, depth + 1)
            if node.tag != _SEQ:
                raise _LoadError(_mark(node), f"unsupported tag {node.tag}")
            convert = self.convert
            return [convert(child, depth + 1) for child in node.value]
        finally:
            self.active.discard(nid)

    def _count_expanded(self, node: Node) -> None:
        self.expanded += 1
        if self.expanded > MAX_NODES:
            raise _LoadError(_mark(node), f"document too large after alias expansion "
                                          f"(more than {MAX_NODES} nodes)")

    def _use_alias(self, node: Node) -> None:
        if not self.in_alias:   # inside an aliased subtree, nodes are expansion, not uses
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _LoadError(_mark(node), f"too many aliases (more than {MAX_ALIASES})",
                                 alias=self.aliases)
        self._count_expanded(node)

    def _alias(self, node: Node, depth: int) -> Any:
        """A node met again: an alias use (or a node inside an aliased subtree)."""
        if id(node) in self.active:
            raise _LoadError(_mark(node), "recursive alias")
        self._use_alias(node)
        if node.__class__ is ScalarNode:
            return self._scalar(node)
        if depth >= MAX_DEPTH:
            raise _LoadError(_mark(node), f"nesting too deep (more than {MAX_DEPTH} levels)")
        self.in_alias += 1
        self.active.add(id(node))
        try:
            if node.__class__ is MappingNode:
                return self._mapping(node, depth + 1)
            return [self.convert(child, depth + 1) for child in node.value]
        finally:
            self.in_alias -= 1
            self.active.discard(id(node))

    def _scalar(self, node: Node) -> Any:
        tag, text = node.tag, node.value
        if tag in (_STR, _TIMESTAMP):   # dates stay text: the schema wants strings
            return text
        try:
            if tag == _PLAIN:
                value = core_scalar(text)
            elif tag in _EXPLICIT:
                value = core_scalar(text)
                if not isinstance(value, _EXPLICIT[tag]) or (
                        tag in (_INT, _FLOAT) and isinstance(value, bool)):
                    raise ValueError(f"bad scalar {text!r} for {tag}")
                if tag == _FLOAT:
                    value = float(value)  # type: ignore[arg-type]
            else:
                raise _LoadError(_mark(node), f"unsupported tag {tag}")
        except ValueError as e:
            self.issues.append((_mark(node), str(e)))
            return text
        if value.__class__ is float and value.is_integer():
            self.integral_floats = True
        return value

    def _key(self, node: Node) -> str:
        if node.__class__ is not ScalarNode:
            raise _LoadError(_mark(node), "a mapping key must be a plain scalar")
        return node.value  # type: ignore[no-any-return]  # raw text: `on:` stays "on"

    def _mapping(self, node: Node, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merged = False
        convert, key_of = self.convert, self._key
        for key_node, value_node in node.value:
            key = key_of(key_node)
            if key == "<<" and _is_merge(key_node):
                merged = True
                continue
            if key in out:
                first = next(k for k, _ in node.value if k.value == key)
                self.issues.append((_mark(key_node), f"duplicate key {key!r} (first defined "
                                                     f"at line {first.start_mark.line + 1})"))
                continue
            out[key] = convert(value_node, depth)
        if merged:
            self._merge(node, out, depth)
        return out

    def _merge(self, node: Node, out: dict[str, Any], depth: int) -> None:
        """`<<: *base` fills in keys not given explicitly; earlier sources win."""
        for key_node, value_node in node.value:
            if not _is_merge(key_node):
                continue
            if isinstance(value_node, SequenceNode):
                self.seen.add(id(value_node))
                sources = value_node.value
            else:
                sources = [value_node]
            for source in sources:
                if not isinstance(source, MappingNode):
                    raise _LoadError(_mark(source), "`<<` merges only mappings")
                if any(_is_merge(k) for k, _ in source.value):
                    raise _LoadError(_mark(source), "nested `<<` merges are not supported")
                if id(source) in self.active:
                    raise _LoadError(_mark(source), "recursive alias")
                aliased = id(source) in self.seen     # `<<: *base`: one alias use
                if aliased:
                    self._use_alias(source)
                    self.in_alias += 1
                self.seen.add(id(source))
                try:
                    for k, v in source.value:
                        key = self._key(k)
                        if key not in out:
                            out[key] = self.convert(v, depth)
                finally:
                    if aliased:
                        self.in_alias -= 1


def _read_bytes(path: str) -> bytes:
    """The file's bytes, refusing anything over MAX_BYTES before reading it all."""
    limit = f"{MAX_BYTES // 1024 // 1024} MiB"
    try:
        size = os.stat(path).st_size
        if size > MAX_BYTES:
            raise SpecError([SpecIssue(path, 1, 1, "", f"file is too large "
                                       f"({size / 1024 / 1024:.1f} MiB; the limit is {limit})")])
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise TrainctlError(f"{path}: cannot read the spec: {e.strerror or e}") from None
    if len(raw) > MAX_BYTES:   # not a regular file, or it grew
        raise SpecError([SpecIssue(path, 1, 1, "", f"file is too large (the limit is {limit})")])
    return raw


def _decode(raw: bytes, path: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise SpecError([SpecIssue(path, line, col, "", "the file is not UTF-8 text")]) from None


def _yaml_error_issue(path: str, text: str, e: yaml.YAMLError) -> SpecIssue:
    if isinstance(e, yaml.MarkedYAMLError) and e.problem_mark is not None:
        mark = e.problem_mark
        message = e.problem or "invalid YAML"
        if "maximum nesting depth" in message:
            return SpecIssue(path, mark.line + 1, mark.column + 1, "",
                             f"nesting too deep (more than {MAX_DEPTH} levels)")
        if e.context:
            message = f"{e.context}: {message}"
        return SpecIssue(path, mark.line + 1, mark.column + 1, "", f"YAML syntax: {message}")
    if isinstance(e, yaml.reader.ReaderError):
        # libyaml counts bytes of the UTF-8 text
        raw = text.encode("utf-8")
        offset = min(e.position, len(raw))
        line = raw.count(b"\n", 0, offset) + 1
        start = raw.rfind(b"\n", 0, offset) + 1
        col = len(raw[start:offset].decode("utf-8", "replace")) + 1
        return SpecIssue(path, line, col, "",
                         f"YAML syntax: unacceptable character #x{e.character:04x}")
    return SpecIssue(path, 1, 1, "", f"YAML syntax: {e}")


def parse_yaml(text: str, file: str) -> YamlDoc:
    """Parse text into a YamlDoc; raises SpecError with the problem's location."""
    composer = _Composer(text)
    try:
        root = composer.get_single_node()
    except yaml.YAMLError as e:
        raise SpecError([_yaml_error_issue(file, text, e)]) from None
    finally:
        composer.dispose()
    if root is None or (isinstance(root, ScalarNode) and root.tag == _PLAIN
                        and root.value == ""):
        raise SpecError([SpecIssue(file, 1, 1, "", "the file is empty (expected a mapping "
                                                   "with version, project and region)")])
    if not isinstance(root, MappingNode):
        kind = "a list" if isinstance(root, SequenceNode) else "a scalar"
        raise SpecError([SpecIssue(file, *_mark(root), "",
                                   f"the top level must be a mapping, got {kind}")])
    converter = _Converter()
    try:
        data = converter.convert(root, 0)
    except _LoadError as e:
        pos = (_alias_pos(text, e.alias) if e.alias else None) or e.pos
        raise SpecError([SpecIssue(file, *pos, "", e.message)]) from None
    except RecursionError:
        raise SpecError([SpecIssue(file, 1, 1, "", "nesting too deep")]) from None
    if converter.issues:
        raise SpecError([SpecIssue(file, *pos, "", message)
                         for pos, message in converter.issues])
    return YamlDoc(file=file, data=data, root=root,
                   has_integral_floats=converter.integral_floats)


def load_yaml(path: str) -> YamlDoc:
    """Read and parse a spec file safely. Raises SpecError or TrainctlError."""
    return parse_yaml(_decode(_read_bytes(path), path), path)
