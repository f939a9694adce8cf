"""The apply lock: `.trainctl/lock` (local) or `PREFIX/lock` under an s3:// `state:` prefix
(planner.aws.lock_store.S3Lock).

Both are created atomically: the local file with O_CREAT|O_EXCL, the S3 object with a
conditional put (`IfNoneMatch="*"`). The lock records who holds it (id, holder, host,
pid, time, operation) so a refusal can say who, where and since when.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from planner.errors import LockHeldError, TrainctlError
from planner.procs import pid_alive

UNREADABLE_ID = "unreadable"
STALE_AFTER_HOURS = 12     # an S3 lock from another host older than this may be released

Say = Callable[[str], None]


def quiet(_message: str) -> None:
    pass


class LockError(TrainctlError):
    """A lock operation was refused (e.g. release with an id that does not match)."""


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


@dataclass(frozen=True)
class LockInfo:
    id: str
    holder: str
    host: str
    pid: int
    time: str
    operation: str
    problem: str = field(default="", compare=False)   # why an unreadable lock is so

    @classmethod
    def new(cls, operation: str) -> LockInfo:
        return cls(
            id=uuid.uuid4().hex, holder=_user(), host=socket.gethostname(), pid=os.getpid(),
            time=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), operation=operation,
        )

    @classmethod
    def parse(cls, raw: bytes | str) -> LockInfo:
        """The lock's content, checked against planner.fileschemas.LOCK_SCHEMA; an invalid
        one (a crash while writing it, an edit) gets id `unreadable` and says why."""
        from planner.filecheck import FileCheckError, field_name, issues_of, loads_checked
        from planner.fileschemas import LOCK_SCHEMA

        try:
            doc = loads_checked(raw, "lock", "lock")
        except FileCheckError as e:
            return cls.unreadable(str(e).split(": ", 1)[-1])
        issues = issues_of(doc, LOCK_SCHEMA)
        if issues:
            return cls.unreadable("; ".join(f"{field_name(p)}: {m}" for p, m in issues[:5]))
        return cls(id=doc["id"], holder=doc["holder"], host=doc["host"], pid=doc["pid"],
                   time=doc["time"], operation=doc["operation"])

    @classmethod
    def unreadable(cls, problem: str) -> LockInfo:
        return cls(id=UNREADABLE_ID, holder="?", host="?", pid=0, time="?", operation="?",
                   problem=problem)

    def to_bytes(self) -> bytes:
        doc = {"id": self.id, "holder": self.holder, "host": self.host, "pid": self.pid,
               "time": self.time, "operation": self.operation}
        return (json.dumps(doc, indent=2) + "\n").encode()

    def holder_gone(self) -> bool:
        """True when the holder ran on this host and its process no longer exists."""
        return (self.id != UNREADABLE_ID and self.host == socket.gethostname()
                and not pid_alive(self.pid))

    def age_hours(self, now: datetime | None = None) -> float | None:
        try:
            since = datetime.strptime(self.time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return None
        return ((now or datetime.now(UTC)) - since).total_seconds() / 3600

    def stale(self) -> bool:
        """Older than STALE_AFTER_HOURS (its holder cannot be checked from another host)."""
        age = self.age_hours()
        return age is not None and age > STALE_AFTER_HOURS

    def describe(self) -> str:
        if self.id == UNREADABLE_ID:
            why = f": {self.problem}" if self.problem else ""
            return ("held (the lock's content is unreadable, maybe a crash while taking "
                    f"it{why})")
        return (f"held by {self.holder}@{self.host} (pid {self.pid}) since {self.time} "
                f"for {self.operation}; lock id {self.id}")

    def who(self) -> str:
        return (f"{self.holder}@{self.host} (pid {self.pid}, {self.operation} since "
                f"{self.time}, lock id {self.id})")


def held_error(where: str, info: LockInfo) -> LockHeldError:
    msg = f"the lock {where} is {info.describe()}"
    if info.id == UNREADABLE_ID:
        msg += ("\nhint: the lock is unreadable; if no apply is running: "
                f"trainctl lock release {info.id}")
    elif info.holder_gone():
        msg += (f"\nhint: the holder process (pid {info.pid}) is gone; if no apply is "
                f"running: trainctl lock release {info.id}")
    elif info.host != socket.gethostname() and info.stale():
        msg += (f"\nhint: the lock is older than {STALE_AFTER_HOURS} h and its holder on "
                f"{info.host} cannot be checked from here; if no apply runs there, take "
                f"it over: trainctl lock release {info.id}")
    return LockHeldError(msg)


def takeover_message(where: str, old: LockInfo) -> str:
    return (f"taking over the lock {where}: its holder {old.who()} is gone (no such "
            "process on this host)")


class Lock(Protocol):
    where: str

    def acquire(self, operation: str, say: Say = quiet) -> LockInfo: ...

    def release(self, lock_id: str) -> None: ...

    def status(self) -> LockInfo | None: ...


class LocalLock:
    """`STATE_DIR/lock`, created with O_CREAT|O_EXCL."""

    def __init__(self, state_dir: str):
        self.path = os.path.join(state_dir, "lock")
        self.where = self.path

    def acquire(self, operation: str, say: Say = quiet) -> LockInfo:
        from planner.statedir import check_state_dir

        check_state_dir(os.path.dirname(self.path))
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        for _ in range(3):
            info = LockInfo.new(operation)
            if self._create(info):
                return info
            current = self.status()
            if current is None:       # released in between: try again
                continue
            if not current.holder_gone():
                raise held_error(self.where, current)
            if self._take_over(current):
                say(takeover_message(self.where, current))
        raise held_error(self.where, self.status() or LockInfo.unreadable("changing"))

    def _create(self, info: LockInfo) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, info.to_bytes())
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    def _take_over(self, dead: LockInfo) -> bool:
        """Remove `dead`'s lock file, only if it still holds `dead` (takeovers serialise on
        a flock, so two takers never remove each other's new lock)."""
        import fcntl

        with open(self.path + ".takeover", "a+b") as guard:
            fcntl.flock(guard.fileno(), fcntl.LOCK_EX)
            current = self.status()
            if current is None or current.id != dead.id:
                return False
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            return True

    def status(self) -> LockInfo | None:
        from planner.statedir import check_state_dir

        check_state_dir(os.path.dirname(self.path))
        try:
            with open(self.path, "rb") as f:
                return LockInfo.parse(f.read(64 * 1024))
        except FileNotFoundError:
            return None
        except OSError as e:
            raise LockError(f"{self.path}: cannot read the lock: {e.strerror or e}") from None

    def release(self, lock_id: str) -> None:
        current = self.status()
        if current is None:
            raise LockError(f"the lock {self.where} is not held")
        if current.id != lock_id:
            raise LockError(f"lock id {lock_id} does not match: the lock {self.where} is "
                            f"{current.describe()}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


@contextlib.contextmanager
def holding(lock: Lock, operation: str, say: Say = quiet) -> Iterator[LockInfo]:
    """Hold `lock` for the block; released in a finally, and only if it is still ours."""
    info = lock.acquire(operation, say)
    try:
        yield info
    finally:
        with contextlib.suppress(LockError):
            lock.release(info.id)


# --- one project on one machine: a lock outside the folder ------------------------------

LOCK_DIR_ENV = "TRAINCTL_LOCK_DIR"
LOCK_WAIT_ENV = "TRAINCTL_LOCK_WAIT"     # seconds an apply waits for another (default 3600)
DEFAULT_WAIT = 3600.0


def machine_lock_dir() -> str:
    """$TRAINCTL_LOCK_DIR, else $XDG_RUNTIME_DIR/trainctl-locks, else /tmp/trainctl-locks."""
    explicit = os.environ.get(LOCK_DIR_ENV)
    if explicit:
        return explicit
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return os.path.join(runtime, "trainctl-locks")
    return os.path.join("/tmp", "trainctl-locks")


class MachineLock:
    """An flock(2) on `DIR/<hash of account|region|project>.lock`: applies of one project
    from two folders of this machine run one after the other (the second waits, then
    plans on what the first made). The kernel drops it when the holder dies (kill -9
    included), so it never goes stale; the file only says who holds it."""

    def __init__(self, key: str, *, directory: str | None = None):
        import hashlib

        self.key = key
        self.directory = directory or machine_lock_dir()
        name = hashlib.sha256(key.encode()).hexdigest()[:32]
        self.path = os.path.join(self.directory, f"{name}.lock")
        self._fd: int | None = None

    def acquire(self, operation: str, folder: str, *, wait: float | None = None,
                on_wait: Any = None) -> None:
        import fcntl
        import time

        os.makedirs(self.directory, mode=0o1777, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        limit = _wait_seconds() if wait is None else wait
        deadline = time.monotonic() + limit
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = self._holder()
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockHeldError(f"another apply of {self.key} runs on this machine "
                                        f"({holder}); waited {limit:g} s ({LOCK_WAIT_ENV})"
                                        ) from None
                if not told and on_wait is not None:
                    on_wait(f"Waiting for another apply of {self.key} on this machine "
                            f"({holder}) to finish...")
                    told = True
                time.sleep(0.2)
        doc = {**json.loads(LockInfo.new(operation).to_bytes()), "folder": folder,
               "key": self.key}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(doc) + "\n").encode(), 0)
        self._fd = fd

    def _holder(self) -> str:
        try:
            with open(self.path, encoding="utf-8") as f:
                doc = json.load(f)
            return (f"from {doc.get('folder')}, pid {doc.get('pid')}, since "
                    f"{doc.get('time')}")
        except (OSError, ValueError, AttributeError):
            return "holder unknown"

    def release(self) -> None:
        import fcntl

        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _wait_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get(LOCK_WAIT_ENV, DEFAULT_WAIT)))
    except ValueError:
        return DEFAULT_WAIT


@contextlib.contextmanager
def machine_holding(key: str, operation: str, folder: str,
                    on_wait: Any = None) -> Iterator[MachineLock]:
    lock = MachineLock(key)
    lock.acquire(operation, folder, on_wait=on_wait)
    try:
        yield lock
    finally:
        lock.release()
