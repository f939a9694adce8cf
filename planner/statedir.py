"""`.trainctl/` checked before use: the folder and what trainctl keeps in it must be of
the right type (a folder where a folder belongs, a file where a file belongs, no dangling
symlink), else one clear error naming each wrong entry, before anything is changed."""

from __future__ import annotations

import os
import stat

from planner.filecheck import FileCheckError

FILES = ("lock", "local.json", "local.log")
FOLDERS = ("plans", "journal", "sandbox", "pulumi")
# entries inside these folders that must be regular files
FILES_IN = {"plans": ".json", "journal": ".jsonl"}


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device or special file"


def _problem(path: str, want_dir: bool) -> str | None:
    """Why `path` is not what trainctl expects there, or None (missing is fine)."""
    try:
        lst = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"cannot be read: {e.strerror or e}"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return f"is a dangling symlink (to {os.readlink(path)!r})" \
            if stat.S_ISLNK(lst.st_mode) else None
    except OSError as e:
        return f"cannot be read: {e.strerror or e}"
    if want_dir and not stat.S_ISDIR(st.st_mode):
        return f"is {_kind(st.st_mode)}; trainctl keeps a folder there"
    if not want_dir and not stat.S_ISREG(st.st_mode):
        return f"is {_kind(st.st_mode)}; trainctl keeps a file there"
    return None


def state_dir_problems(state_dir: str) -> list[str]:
    """`PATH: problem` for the folder and every known entry in it of the wrong type."""
    top = _problem(state_dir, want_dir=True)
    if top or not os.path.isdir(state_dir):
        return [f"{state_dir}: {top}"] if top else []
    out = []
    for name in FILES:
        p = os.path.join(state_dir, name)
        if (why := _problem(p, want_dir=False)):
            out.append(f"{p}: {why}")
    for name in FOLDERS:
        p = os.path.join(state_dir, name)
        if (why := _problem(p, want_dir=True)):
            out.append(f"{p}: {why}")
    for name, suffix in FILES_IN.items():
        folder = os.path.join(state_dir, name)
        if not os.path.isdir(folder):
            continue
        try:
            entries = sorted(os.listdir(folder))
        except OSError as e:
            out.append(f"{folder}: cannot be read: {e.strerror or e}")
            continue
        for entry in entries:
            if entry.endswith(suffix):
                p = os.path.join(folder, entry)
                if (why := _problem(p, want_dir=False)):
                    out.append(f"{p}: {why}")
    return out


def check_state_dir(state_dir: str) -> None:
    """Raise one FileCheckError listing every wrong entry (nothing is changed)."""
    problems = state_dir_problems(state_dir)
    if problems:
        raise FileCheckError("trainctl's state folder is not usable:\n" + "\n".join(problems)
                             + "\nhint: move the wrong entries away; trainctl recreates what "
                             "it needs")
