"""The fail-open journal on disk (``MAC_JOURNAL_DIR``): new contacts allowed while Redis was
unreachable, fsync'd before they are answered, kept in segment files until replayed.

Layout: one file per segment, ``<created unix ms>-<pid>-<n>.journal``. A process appends to
one segment of its own, holding an exclusive ``flock`` on it while it is open; a segment is
sealed (closed) when a replay claims it, and the next entry opens a new one. A replay claims a
segment by taking the ``flock`` without waiting, so a segment is never replayed while a live
process writes it, nor by two processes at once; a process killed with ``kill -9`` loses its
locks, and its segments become claimable. A segment is deleted only after every entry in it
was decided; one cut short stays and is replayed again (which counts nothing twice).

A line is ``<crc32 of the JSON, 8 hex digits> <JSON>\\n`` with the JSON
``{"w": workspace, "t": unix ms, "p": [primary keys, hex], "v": visitor key hex or "",
"c": channel}``: keys only, never a raw email or phone number. A line without its newline
(torn by a crash mid-write) or whose checksum does not match is skipped and counted.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sidecar import metrics
from sidecar.domain.contact import KeyedContact
from sidecar.domain.errors import ConfigError
from sidecar.domain.ports import JournalEntry, JournalSegment, ReplayedWorkspace
from sidecar.logs import get_logger

log = get_logger("sidecar.storage.journal")

SUFFIX = ".journal"


def encode_entry(entry: JournalEntry) -> bytes:
    """One journal line for ``entry``."""
    contact = entry.contact
    body = json.dumps(
        {
            "w": entry.workspace_id,
            "t": entry.at_ms,
            "p": [key.hex() for key in contact.primaries],
            "v": contact.visitor.hex(),
            "c": contact.channel,
        },
        separators=(",", ":"),
    ).encode()
    return b"%08x %s\n" % (zlib.crc32(body), body)


def decode_entry(line: bytes) -> JournalEntry | None:
    """The entry of one line (without its newline), or ``None`` when it is damaged."""
    crc, _, body = line.partition(b" ")
    try:
        if int(crc, 16) != zlib.crc32(body):
            return None
        raw = json.loads(body)
        contact = KeyedContact(
            tuple(bytes.fromhex(key) for key in raw["p"]), bytes.fromhex(raw["v"]), raw["c"]
        )
        return JournalEntry(str(raw["w"]), int(raw["t"]), contact)
    except (ValueError, KeyError, TypeError):
        return None


def read_segment(data: bytes) -> tuple[list[JournalEntry], int]:
    """The entries of a segment's bytes, and how many lines were skipped as damaged (a last
    line without its newline among them)."""
    lines = data.split(b"\n")
    skipped = 1 if lines[-1] else 0  # whatever follows the last newline is a torn write
    entries = []
    for line in lines[:-1]:
        entry = decode_entry(line)
        if entry is None:
            skipped += 1
        else:
            entries.append(entry)
    return entries, skipped


@dataclass
class _Claim:
    """A segment claimed for replay: its path and the descriptor holding its lock."""

    path: Path
    fd: int


@dataclass
class _Active:
    """The segment this process appends to."""

    path: Path
    fd: int


@dataclass
class _Queue:
    lines: list[bytes] = field(default_factory=list)
    waiters: list[asyncio.Future[bool]] = field(default_factory=list)


class FileJournal:
    """``AdmissionJournal`` in a directory.

    ``pending`` counts the entries queued and those of every segment this process wrote or
    claimed that is still on disk; ``max_entries`` bounds it.

    :param directory: ``MAC_JOURNAL_DIR``; made when missing.
    :param max_entries: ``MAC_JOURNAL_MAX_ENTRIES``; beyond, ``append`` refuses.
    """

    def __init__(self, directory: str, max_entries: int) -> None:
        self.directory = Path(directory)
        self.max_entries = max_entries
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"MAC_JOURNAL_DIR {directory}: {exc.strerror}") from exc
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise ConfigError(f"MAC_JOURNAL_DIR {directory}: not writable")
        self.syncs = 0  # group writes (each one fsync)
        self._segments: dict[str, int] = {}  # name -> entries, of the segments counted
        self._pending = 0
        self._active: _Active | None = None
        self._queue = _Queue()
        self._flush: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()
        self._claimed: dict[str, _Claim] = {}
        self._seq = 0
        self._failing = False

    @property
    def pending(self) -> int:
        """Entries not replayed yet (see the class)."""
        return self._pending

    def _count(self, delta: int) -> None:
        self._pending += delta
        metrics.JOURNAL_PENDING.inc(delta)

    def has_room(self) -> bool:
        """Whether another entry fits under ``max_entries``."""
        return self._pending < self.max_entries

    def append(self, entry: JournalEntry) -> asyncio.Future[bool]:
        """Queue ``entry`` for the next group write (see ``AdmissionJournal.append``)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()
        if not self.has_room():
            done.set_result(False)
            return done
        self._count(1)
        self._queue.lines.append(encode_entry(entry))
        self._queue.waiters.append(done)
        if self._flush is None:
            # runs after every call of this loop turn has queued its entry: one write, one fsync
            self._flush = loop.create_task(self._flush_queue())
        return done

    async def _flush_queue(self) -> None:
        try:
            async with self._write_lock:
                # one more turn: calls whose Redis error arrives in it join this write
                await asyncio.sleep(0)
                while self._queue.lines:
                    queue, self._queue = self._queue, _Queue()
                    ok = await self._write(queue.lines)
                    for waiter in queue.waiters:
                        if not waiter.done():
                            waiter.set_result(ok)
        finally:
            self._flush = None

    async def _write(self, lines: list[bytes]) -> bool:
        try:
            if self._active is None:
                self._active = await asyncio.to_thread(self._open_segment)
                self._segments[self._active.path.name] = 0
            active = self._active
            await asyncio.to_thread(_write_all, active.fd, b"".join(lines))
        except OSError as exc:
            self._count(-len(lines))
            if not self._failing:
                log.error("journal write failed: new contacts are denied", error=str(exc))
            self._failing = True
            # a half-written line must not run into the next one: start a new segment
            self._seal()
            return False
        self._failing = False
        self._segments[active.path.name] += len(lines)
        self.syncs += 1
        metrics.JOURNAL_SYNCS.inc()
        metrics.JOURNAL_ENTRIES.inc(len(lines))
        return True

    def _open_segment(self) -> _Active:
        self._seq += 1
        path = self.directory / f"{int(time.time() * 1000)}-{os.getpid()}-{self._seq}{SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _sync_directory(self.directory)
        except OSError:
            os.close(fd)
            raise
        return _Active(path, fd)

    def _seal(self) -> None:
        """Close the active segment (releasing its lock); the next entry opens another."""
        active, self._active = self._active, None
        if active is not None:
            os.close(active.fd)

    async def claim(self) -> list[JournalSegment]:
        """Seal this process's segment, then claim every segment no one holds, oldest first."""
        async with self._write_lock:  # no write in flight on the segment being sealed
            self._seal()
        try:
            names = sorted(
                (e.name for e in os.scandir(self.directory) if e.name.endswith(SUFFIX)),
                key=_segment_order,
            )
        except OSError as exc:
            log.error("cannot list the journal", error=str(exc))
            return []
        for gone in set(self._segments) - set(names):  # another process replayed it
            self._count(-self._segments.pop(gone))
        segments = []
        for name in names:
            if name not in self._claimed:
                segment = await asyncio.to_thread(self._claim_one, name)
                if segment is not None:
                    segments.append(segment)
        return segments

    def _claim_one(self, name: str) -> JournalSegment | None:
        path = self.directory / name
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if not path.exists():  # replayed and removed between the listing and the lock
                raise FileNotFoundError(name)
            entries, skipped = read_segment(_read_all(fd))
        except OSError:  # held by a live process (or gone)
            os.close(fd)
            return None
        if skipped:
            metrics.JOURNAL_SKIPPED.inc(skipped)
            log.warning("journal lines skipped as damaged", segment=name, lines=skipped)
        counted = self._segments.get(name)
        if counted is None:
            self._count(len(entries))
        elif counted != len(entries):
            self._count(len(entries) - counted)
        self._segments[name] = len(entries)
        self._claimed[name] = _Claim(path, fd)
        return JournalSegment(name, entries)

    async def settle(self, segment: JournalSegment, report: Sequence[ReplayedWorkspace]) -> None:
        """Remove the replayed segment and publish what its replay did."""
        claim = self._claimed.pop(segment.name)
        try:
            await asyncio.to_thread(_remove, claim.path, self.directory)
        finally:
            os.close(claim.fd)
        self._count(-self._segments.pop(segment.name, 0))
        for done in report:
            metrics.JOURNAL_REPLAYED.inc(done.replayed)
            log.info(
                "journal replayed",
                workspace=done.workspace_id,
                replayed=done.replayed,
                counted=done.counted,
                overshoot=done.overshoot,
            )
            if done.overshoot:
                metrics.JOURNAL_OVERSHOOT.inc(done.overshoot)
                log.warning(
                    "the outage let contacts in over the limit: served, not counted",
                    workspace=done.workspace_id,
                    overshoot=done.overshoot,
                )
            if done.closed:
                metrics.JOURNAL_CLOSED.inc(done.closed)
                log.warning(
                    "journal entries dropped: their period closed before the replay; served, "
                    "not counted",
                    workspace=done.workspace_id,
                    periods=",".join(done.closed_periods),
                    dropped=done.closed,
                )

    def release(self, segment: JournalSegment, error: BaseException) -> None:
        """Unlock a segment whose replay failed; it stays pending and is claimed again."""
        claim = self._claimed.pop(segment.name, None)
        if claim is not None:
            os.close(claim.fd)
        if not isinstance(error, asyncio.CancelledError) and not _transient(error):
            log.error("journal replay failed", segment=segment.name, error=repr(error))

    def close(self) -> None:
        """Close the active segment and every claim (on shutdown); their entries stay."""
        self._seal()
        for claim in self._claimed.values():
            os.close(claim.fd)
        self._claimed.clear()


def _transient(error: BaseException) -> bool:
    return bool(getattr(error, "transient", False))


def _segment_order(name: str) -> tuple[int, str]:
    head = name.split("-", 1)[0]
    return (int(head) if head.isdigit() else 0, name)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
    os.fsync(fd)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _remove(path: Path, directory: Path) -> None:
    path.unlink(missing_ok=True)
    _sync_directory(directory)


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
