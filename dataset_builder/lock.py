"""One ``annotate`` run per work dir shard: an exclusive lock on ``WORK_DIR/locks/shard-IIIII-of-NNNNN.lock``.

Two runs on one shard would each read the answer cache at start and then buy the same answers twice. The lock is a
``flock`` on the lock file, held for the whole run; the file names its holder (pid, host, start time, shard). The
kernel drops a ``flock`` when its process dies, even by ``kill -9``, so a lock file left by a killed run is free: the
next run takes it over (and says so). A run also refuses while a live run holds an *overlapping* shard of the same
work dir (``0/2`` and ``0/4`` share every video whose hash is ``0 mod 4``); disjoint shards (``0/2`` and ``1/2``)
run side by side, as they are meant to.

Example:
    >>> import tempfile
    >>> from dataset_builder.lock import WorkDirLock, WorkDirLocked
    >>> work = tempfile.mkdtemp()
    >>> with WorkDirLock(work, 0, 2) as lock:
    ...     try:
    ...         WorkDirLock(work, 0, 4).acquire()
    ...     except WorkDirLocked as error:
    ...         print(str(error).split(":")[0])
    Another annotate run holds an overlapping shard of this work dir
    >>> with WorkDirLock(work, 0, 4):  # released when the first run ended
    ...     pass
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path


class WorkDirLocked(ValueError):
    """Another live run holds this shard (or an overlapping one) of the work dir."""


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or held) a lock: process id, host name, start time (Unix seconds) and shard ``(index, count)``."""

    pid: int
    host: str
    started: float
    shard: tuple[int, int]

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return f"pid {self.pid} on host {self.host}, started {when}, shard {self.shard[0]}/{self.shard[1]}"


def shards_overlap(first: tuple[int, int], second: tuple[int, int]) -> bool:
    """Whether shard ``I/N`` and shard ``J/M`` can hold the same video: ``I = J (mod gcd(N, M))`` (Chinese remainder)."""
    divisor = math.gcd(first[1], second[1])
    return first[0] % divisor == second[0] % divisor


def _read_holder(fd: int) -> LockHolder | None:
    """The holder recorded in an open lock file, or ``None`` when it is empty or unreadable."""
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        data = json.loads(os.read(fd, 4096) or b"null")
        return LockHolder(int(data["pid"]), str(data["host"]), float(data["started"]), tuple(data["shard"]))
    except (ValueError, KeyError, TypeError):
        return None


class WorkDirLock:
    """Exclusive lock of shard ``index/count`` of ``work_dir``; a context manager. See the module docstring.

    After :meth:`acquire`, ``took_over`` is the holder a killed run left in the lock file (else ``None``).
    """

    def __init__(self, work_dir: str | os.PathLike, index: int, count: int) -> None:
        self.directory = Path(work_dir) / "locks"
        self.shard = (index, count)
        self.path = self.directory / f"shard-{index:05d}-of-{count:05d}.lock"
        self.took_over: LockHolder | None = None
        self._fd: int | None = None

    def acquire(self) -> WorkDirLock:
        """Take the lock or raise :class:`WorkDirLocked` at once, naming the live holder."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise WorkDirLocked(
                self._refusal("Another annotate run holds this shard of the work dir", holder)
            ) from None
        self.took_over = _read_holder(fd)  # a holder recorded in a free lock file: its process is gone
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "shard": list(self.shard)}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        os.fsync(fd)
        self._fd = fd
        for other in sorted(set(self.directory.glob("shard-*.lock")) - {self.path}):
            if shards_overlap(self.shard, _shard_of(other)) and _is_held(other):
                self.release()
                what = "Another annotate run holds an overlapping shard of this work dir"
                raise WorkDirLocked(self._refusal(what, _holder_of(other)))
        return self

    def _refusal(self, what: str, holder: LockHolder | None) -> str:
        who = holder.describe() if holder else "a process that has not recorded itself yet"
        return (
            f"{what}: {who} (lock files in {self.directory}). Two runs on the same videos would pay for every answer "
            "twice: wait for that run to finish or stop it, or give this run a disjoint --shard."
        )

    def release(self) -> None:
        """Empty the lock file (a clean exit leaves no holder behind) and unlock it."""
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> WorkDirLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _is_held(path: Path) -> bool:
    """Whether a live process holds the lock of ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's own shared lock
    return False


def _holder_of(path: Path) -> LockHolder | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        return _read_holder(fd)
    finally:
        os.close(fd)


def _shard_of(path: Path) -> tuple[int, int]:
    """``shard-00001-of-00004.lock`` -> ``(1, 4)``."""
    _, index, _, count = path.stem.split("-")
    return int(index), int(count)
