"""Safe, bounded YAML loading that keeps the line and column of every node.

PyYAML composes the node tree (safe tags only); we convert it ourselves so that
- a duplicate key is an error (PyYAML silently keeps the last one),
- alias uses, expanded nodes, nesting depth and file size are bounded (YAML bombs fail fast),
- every value and every key has a 1-based (line, col), looked up by its path.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from planner.errors import SpecError, SpecIssue, TrainctlError

MAX_BYTES = 1024 * 1024      # a spec is a few KiB; 1 MiB is generous
MAX_ALIASES = 256            # alias uses (`*name`) in one file
MAX_NODES = 50_000           # nodes after alias expansion
MAX_DEPTH = 64               # nesting of mappings and sequences

Path = tuple[str | int, ...]
Pos = tuple[int, int]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_SAFE_SCALAR_TAGS = {
    "tag:yaml.org,2002:null", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float", _STR_TAG, _TIMESTAMP_TAG,
}


def format_path(path: Path) -> str:
    """`("instances", "t", "mounts", 0, "device")` -> `instances.t.mounts[0].device`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


@dataclass
class YamlDoc:
    """A loaded document: plain data plus where each value and key sits in the file."""

    file: str
    data: dict[str, Any]
    values: dict[Path, Pos] = field(default_factory=dict)
    keys: dict[Path, Pos] = field(default_factory=dict)

    def pos(self, path: Path, *, key: bool = False) -> Pos:
        """Position of the value at `path` (or of its key); else of the nearest parent's key."""
        p = tuple(path)
        if key and p in self.keys:
            return self.keys[p]
        if p in self.values:
            return self.values[p]
        while p:
            p = p[:-1]
            if p in self.keys:
                return self.keys[p]
            if p in self.values:
                return self.values[p]
        return (1, 1)

    def issue(self, path: Path, message: str, *, key: bool = False) -> SpecIssue:
        line, col = self.pos(path, key=key)
        return SpecIssue(self.file, line, col, format_path(path), message)


class _LoadError(Exception):
    def __init__(self, pos: Pos, message: str):
        self.pos = pos
        self.message = message
        super().__init__(message)


def _mark(node: Node) -> Pos:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer counts aliases and nesting depth."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.alias_uses = 0
        self.depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            self.alias_uses += 1
            if self.alias_uses > MAX_ALIASES:
                ev = self.peek_event()
                pos = (ev.start_mark.line + 1, ev.start_mark.column + 1)
                raise _LoadError(pos, f"too many aliases (more than {MAX_ALIASES})")
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                ev = self.peek_event()
                pos = (ev.start_mark.line + 1, ev.start_mark.column + 1)
                raise _LoadError(pos, f"nesting too deep (more than {MAX_DEPTH} levels)")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _Converter:
    """Node tree -> plain Python data, recording positions and enforcing the bounds."""

    def __init__(self, doc: YamlDoc):
        self.doc = doc
        self.nodes = 0
        self.stack: set[int] = set()
        self.constructor = SafeConstructor()

    def convert(self, node: Node, path: Path) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _LoadError(_mark(node), f"document too large after alias expansion "
                                          f"(more than {MAX_NODES} nodes)")
        self.doc.values.setdefault(path, _mark(node))
        if id(node) in self.stack:
            raise _LoadError(_mark(node), "recursive alias")
        self.stack.add(id(node))
        try:
            if isinstance(node, MappingNode):
                if node.tag != _MAP_TAG:
                    raise _LoadError(_mark(node), f"unsupported tag {node.tag}")
                return self._mapping(node, path)
            if isinstance(node, SequenceNode):
                if node.tag != _SEQ_TAG:
                    raise _LoadError(_mark(node), f"unsupported tag {node.tag}")
                return [self.convert(child, (*path, i)) for i, child in enumerate(node.value)]
            assert isinstance(node, ScalarNode)
            return self._scalar(node)
        finally:
            self.stack.discard(id(node))

    def _scalar(self, node: ScalarNode) -> Any:
        if node.tag not in _SAFE_SCALAR_TAGS:
            raise _LoadError(_mark(node), f"unsupported tag {node.tag}")
        if node.tag == _TIMESTAMP_TAG:
            return node.value   # keep dates as text: the schema wants strings
        try:
            value = self.constructor.construct_object(node, deep=True)
        except (ConstructorError, ValueError) as e:
            raise _LoadError(_mark(node), f"bad scalar {node.value!r}: {e}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise _LoadError(_mark(node), f"{node.value!r} is not a finite number")
        return value

    def _key(self, node: Node) -> str:
        if not isinstance(node, ScalarNode):
            raise _LoadError(_mark(node), "a mapping key must be a plain scalar")
        return str(node.value)   # raw text: `on:` stays "on", `1:` stays "1"

    def _mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merged: list[MappingNode] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.extend(self._merge_sources(value_node))
                continue
            key = self._key(key_node)
            child = (*path, key)
            if key in out:
                first = self.doc.keys[child]
                raise _LoadError(_mark(key_node),
                                 f"duplicate key {key!r} (first defined at line {first[0]})")
            self.doc.keys[child] = _mark(key_node)
            out[key] = self.convert(value_node, child)
        # `<<: *base` fills in keys not given explicitly; earlier sources win.
        for source in merged:
            self.nodes += 1
            for key_node, value_node in source.value:
                key = self._key(key_node)
                if key in out:
                    continue
                child = (*path, key)
                self.doc.keys[child] = _mark(key_node)
                out[key] = self.convert(value_node, child)
        return out

    def _merge_sources(self, node: Node) -> list[MappingNode]:
        if isinstance(node, MappingNode):
            nodes: list[Node] = [node]
        elif isinstance(node, SequenceNode):
            nodes = list(node.value)
        else:
            nodes = [node]
        for n in nodes:
            if not isinstance(n, MappingNode):
                raise _LoadError(_mark(n), "`<<` merges only mappings")
            if any(k.tag == _MERGE_TAG for k, _ in n.value):
                raise _LoadError(_mark(n), "nested `<<` merges are not supported")
        return nodes  # type: ignore[return-value]


def _read_text(path: str) -> str:
    """The file's text, refusing anything over MAX_BYTES before reading it all."""
    try:
        size = os.stat(path).st_size
        if size > MAX_BYTES:
            raise SpecError([SpecIssue(path, 1, 1, "", f"file is too large "
                                       f"({size / 1024 / 1024:.1f} MiB; the limit is "
                                       f"{MAX_BYTES // 1024 // 1024} MiB)")])
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise TrainctlError(f"{path}: cannot read the spec: {e.strerror or e}") from None
    if len(raw) > MAX_BYTES:   # not a regular file, or it grew
        raise SpecError([SpecIssue(path, 1, 1, "",
                                   f"file is too large (the limit is "
                                   f"{MAX_BYTES // 1024 // 1024} MiB)")])
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
        if e.context:
            message = f"{e.context}: {message}"
        return SpecIssue(path, mark.line + 1, mark.column + 1, "", f"YAML syntax: {message}")
    if isinstance(e, yaml.reader.ReaderError):
        offset = e.position
        line = text.count("\n", 0, offset) + 1
        col = offset - (text.rfind("\n", 0, offset) + 1) + 1
        return SpecIssue(path, line, col, "",
                         f"YAML syntax: unacceptable character #x{e.character:04x}")
    return SpecIssue(path, 1, 1, "", f"YAML syntax: {e}")


def parse_yaml(text: str, file: str) -> YamlDoc:
    """Parse text into a YamlDoc; raises SpecError with the problem's location."""
    loader: _BoundedLoader | None = None
    try:
        loader = _BoundedLoader(text)
        root = loader.get_single_node()
    except _LoadError as e:
        raise SpecError([SpecIssue(file, *e.pos, "", e.message)]) from None
    except yaml.YAMLError as e:
        raise SpecError([_yaml_error_issue(file, text, e)]) from None
    except RecursionError:
        raise SpecError([SpecIssue(file, 1, 1, "", "nesting too deep")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if root is None or (isinstance(root, ScalarNode) and root.tag.endswith(":null")
                        and root.value == ""):
        raise SpecError([SpecIssue(file, 1, 1, "", "the file is empty (expected a mapping "
                                                   "with version, project and region)")])
    if not isinstance(root, MappingNode):
        kind = "a list" if isinstance(root, SequenceNode) else "a scalar"
        raise SpecError([SpecIssue(file, *_mark(root), "",
                                   f"the top level must be a mapping, got {kind}")])
    doc = YamlDoc(file=file, data={})
    try:
        doc.data = _Converter(doc).convert(root, ())
    except _LoadError as e:
        raise SpecError([SpecIssue(file, *e.pos, "", e.message)]) from None
    except RecursionError:
        raise SpecError([SpecIssue(file, 1, 1, "", "nesting too deep")]) from None
    return doc


def load_yaml(path: str) -> YamlDoc:
    """Read and parse a spec file safely. Raises SpecError or TrainctlError."""
    return parse_yaml(_read_text(path), path)
