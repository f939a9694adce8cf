"""Bash scripts for the data plane, rendered from the templates in `scripts/`.

A template declares its parameters between `# >>> params` and `# <<< params`; rendering
replaces that block with one assignment per parameter, every value quoted with
`shlex.quote` (lists become bash arrays of quoted words), so a spec value only ever reaches
the script as data. The `# >>> lib` block is replaced by `scripts/lib.sh` (status line,
traps, sandbox paths, S3 sync), so a rendered script is self-contained.
"""

from __future__ import annotations

import base64
import re
import shlex
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources

ParamValue = str | int | bool | None | Sequence[str]

_BLOCK = re.compile(r"^# >>> (?P<name>\w+)\n(?P<body>.*?)^# <<< (?P=name)\n", re.M | re.S)
_PARAM = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*)=(?:''|\(\)|'[^'\n]*')$")

# The inlined library defines functions and variables a given script may not use, and the
# parameter block holds data that looks like code; templates are checked without this.
RENDERED_DIRECTIVE = "# shellcheck disable=SC2016,SC2034,SC2317,SC2329"

SPOT_MARKER = ".trainctl-spot-notice"
SPOT_UNIT = "trainctl-spot-watcher.service"


@cache
def template(name: str) -> str:
    """The text of `scripts/NAME.sh`, shipped as package data."""
    return (resources.files("planner.dataplane") / "scripts" / f"{name}.sh").read_text("utf-8")


@cache
def _lib() -> str:
    lines = template("lib").splitlines(keepends=True)
    return "".join(ln for ln in lines if not ln.startswith("#!"))


def template_params(name: str) -> tuple[str, ...]:
    """The parameter names a template declares, in order."""
    block = _block(template(name), "params")
    names = []
    for line in block.splitlines():
        m = _PARAM.match(line)
        if not m:
            raise ValueError(f"template {name}: bad parameter line {line!r}")
        names.append(m["name"])
    return tuple(names)


def _block(text: str, name: str) -> str:
    for m in _BLOCK.finditer(text):
        if m["name"] == name:
            return m["body"]
    raise ValueError(f"template has no `# >>> {name}` block")


def quote_value(value: ParamValue) -> str:
    """The bash right-hand side for a parameter value: always data, never code."""
    if value is None:
        return "''"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, Sequence):
        if not all(isinstance(v, str) for v in value):
            raise TypeError("list parameters must hold strings")
        return "(" + " ".join(_quote(v) for v in value) + ")"
    raise TypeError(f"cannot pass {type(value).__name__} to a script")


def _quote(s: str) -> str:
    """shlex.quote, always in single quotes (`vol-1` too, so it never reads as arithmetic)."""
    if "\0" in s:
        raise ValueError("a NUL character cannot be passed to a shell script")
    q = shlex.quote(s)
    return q if q.startswith("'") else f"'{q}'"


def render(name: str, params: Mapping[str, ParamValue]) -> str:
    """Render template NAME with PARAMS (exactly the names the template declares)."""
    declared = template_params(name)
    missing = [p for p in declared if p not in params]
    unknown = [p for p in params if p not in declared]
    if missing or unknown:
        raise ValueError(f"template {name}: missing {missing}, unknown {unknown}")
    assignments = "".join(f"{p}={quote_value(params[p])}\n" for p in declared)
    text = template(name)
    out = []
    pos = 0
    for m in _BLOCK.finditer(text):
        out.append(text[pos:m.start()])
        if m["name"] == "params":
            out.append(assignments)
        elif m["name"] == "lib":
            out.append(_lib())
        else:
            raise ValueError(f"template {name}: unknown block {m['name']!r}")
        pos = m.end()
    out.append(text[pos:])
    shebang, _, rest = "".join(out).partition("\n")
    return f"{shebang}\n{RENDERED_DIRECTIVE}\n{rest}"


# --- one builder per step ------------------------------------------------------------------

def mount_script(*, volume_id: str, device: str, path: str, read_only: bool,
                 filesystem: str, may_format: bool = False,
                 volume_bytes: int | None = None) -> str:
    """`may_format`: trainctl created the volume empty (never for a snapshot or import);
    even then the script formats only a device with no signature that reads as zeros.
    `volume_bytes`: the volume's size as EC2 reports it (the emulated device's size)."""
    return render("mount", {"VOLUME_ID": volume_id, "DEVICE": device, "MOUNT_PATH": path,
                            "READ_ONLY": bool(read_only), "FILESYSTEM": filesystem,
                            "MAY_FORMAT": may_format is True,
                            "VOLUME_BYTES": _count(volume_bytes)})


def unmount_script(*, path: str, volume_id: str) -> str:
    return render("unmount", {"VOLUME_ID": volume_id, "MOUNT_PATH": path})


def sync_script(*, uri: str, path: str, expect_objects: int | None,
                expect_bytes: int | None) -> str:
    return render("sync", {"URI": uri, "DEST_PATH": path,
                           "EXPECT_OBJECTS": _count(expect_objects),
                           "EXPECT_BYTES": _count(expect_bytes)})


def verify_script(*, path: str) -> str:
    return render("verify", {"DATA_PATH": path})


def training_check_script(*, pid_file: str | None, patterns: Sequence[str]) -> str:
    return render("training_check", {"PID_FILE": pid_file or "", "PATTERNS": list(patterns)})


def stop_training_script(*, pid_file: str | None, patterns: Sequence[str],
                         grace_seconds: int) -> str:
    return render("stop_training", {"PID_FILE": pid_file or "", "PATTERNS": list(patterns),
                                    "GRACE_SECONDS": _count(grace_seconds)})


def checkpoint_sync_script(*, path: str, sync_to: str) -> str:
    return render("checkpoint_sync", {"CKPT_PATH": path, "SYNC_TO": sync_to})


def spot_watcher_script(*, path: str, sync_to: str) -> str:
    """The long-running watcher itself (installed by `install_spot_watcher_script`)."""
    return render("spot_watcher", {"CKPT_PATH": path, "SYNC_TO": sync_to})


def install_spot_watcher_script(*, path: str, sync_to: str) -> str:
    watcher = spot_watcher_script(path=path, sync_to=sync_to)
    b64 = base64.b64encode(watcher.encode("utf-8")).decode("ascii")
    return render("install_spot_watcher", {"CKPT_PATH": path, "SYNC_TO": sync_to,
                                           "WATCHER_B64": b64})


def _count(n: int | None) -> int | None:
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"expected a count, not {n!r}")
    return n


def exec_script(*, run_id: str, argv: Sequence[str], workdir: str | None) -> str:
    return render("exec", {"RUN_ID": run_id, "WORK_DIR": workdir or "", "CMD": list(argv)})


def read_output_script(*, path: str, offset: int, length: int,
                       remove_dir: str | None = None) -> str:
    return render("read_output", {"FILE": path, "OFFSET": _count(offset),
                                  "LENGTH": _count(length), "REMOVE_DIR": remove_dir or ""})


def cp_push_script(*, path: str, uri: str, manifest_uri: str | None) -> str:
    return render("cp_push", {"SRC_PATH": path, "URI": uri, "MANIFEST_URI": manifest_uri or ""})


def lifetime_watcher_script(*, instance_id: str, deadline: int | None,
                            idle_seconds: int | None, action: str, ckpt_path: str | None,
                            sync_to: str | None, pid_file: str | None,
                            patterns: Sequence[str], interval: int) -> str:
    """The long-running lifetime/idle watcher (installed by install_lifetime_watcher)."""
    return render("lifetime_watcher", {
        "INSTANCE_ID": instance_id, "DEADLINE": _count(deadline),
        "IDLE_SECONDS": _count(idle_seconds), "ACTION": action, "CKPT_PATH": ckpt_path or "",
        "SYNC_TO": sync_to or "", "PID_FILE": pid_file or "", "PATTERNS": list(patterns),
        "INTERVAL": _count(interval)})


def install_lifetime_watcher_script(**watcher: object) -> str:
    text = lifetime_watcher_script(**watcher)  # type: ignore[arg-type]
    b64 = base64.b64encode(text.encode("utf-8")).decode("ascii")
    return render("install_lifetime_watcher", {"WATCHER_B64": b64})
