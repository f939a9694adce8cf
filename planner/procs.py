"""Is a process alive? (lock holders, the emulator's server)"""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True when `pid` runs (a zombie does not count; another user's process does)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass               # exists, owned by someone else
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True        # no /proc (macOS): kill(0) is all we can tell
