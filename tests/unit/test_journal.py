"""The journal on disk: its lines, torn and damaged lines, group commit, its bound, claims."""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

import pytest

from sidecar.domain.contact import KeyedContact
from sidecar.domain.ports import JournalEntry, ReplayedWorkspace
from sidecar.storage.journal import FileJournal, decode_entry, encode_entry, read_segment

ENTRY = JournalEntry(
    "acme", 1_763_208_000_123, KeyedContact((b"e" * 14, b"p" * 14), b"v" * 14, "sms")
)


def entry(n: int) -> JournalEntry:
    return JournalEntry("acme", 1_763_208_000_000 + n, KeyedContact((n.to_bytes(14, "big"),)))


def read(path: Path) -> bytes:
    return path.read_bytes()


def write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def test_a_line_holds_keys_only_and_reads_back() -> None:
    line = encode_entry(ENTRY)
    assert line.endswith(b"\n")
    assert b"@" not in line
    assert b"sms" in line
    assert decode_entry(line[:-1]) == ENTRY


def test_a_torn_last_line_and_a_damaged_line_are_skipped() -> None:
    good = [encode_entry(entry(n)) for n in range(3)]
    damaged = good[1].replace(b"acme", b"acmf")  # the checksum no longer matches
    data = good[0] + damaged + good[2] + encode_entry(entry(9))[:20]
    entries, skipped = read_segment(data)
    assert entries == [entry(0), entry(2)]
    assert skipped == 2


async def test_appends_of_one_loop_turn_share_one_fsync(tmp_path: Path) -> None:
    journal = FileJournal(str(tmp_path), 1000)
    written = await asyncio.gather(*(journal.append(entry(n)) for n in range(100)))
    assert all(written)
    assert journal.syncs == 1
    assert journal.pending == 100
    (name,) = os.listdir(tmp_path)
    assert read_segment(read(tmp_path / name)) == ([entry(n) for n in range(100)], 0)
    journal.close()


async def test_a_full_journal_refuses_at_once(tmp_path: Path) -> None:
    journal = FileJournal(str(tmp_path), 3)
    assert journal.has_room()
    written = await asyncio.gather(*(journal.append(entry(n)) for n in range(5)))
    assert written == [True, True, True, False, False]
    assert not journal.has_room()
    journal.close()


async def test_a_segment_is_claimed_once_and_removed_when_settled(tmp_path: Path) -> None:
    journal = FileJournal(str(tmp_path), 100)
    assert await journal.append(entry(1))
    (segment,) = await journal.claim()
    assert segment.entries == [entry(1)]
    assert await journal.claim() == []  # claimed already
    assert await journal.append(entry(2))  # goes to a new segment
    assert len(os.listdir(tmp_path)) == 2
    await journal.settle(segment, [ReplayedWorkspace("acme", 1, 1, 0)])
    assert journal.pending == 1
    (rest,) = await journal.claim()
    assert rest.entries == [entry(2)]
    journal.release(rest, OSError("redis away"))
    (again,) = await journal.claim()  # released: claimed again, counted once
    assert journal.pending == 1
    await journal.settle(again, [])
    assert os.listdir(tmp_path) == []
    assert journal.pending == 0
    journal.close()


async def test_a_segment_a_live_process_holds_is_not_claimed(tmp_path: Path) -> None:
    held = tmp_path / "1-99999-1.journal"
    write(held, encode_entry(entry(1)))
    fd = os.open(held, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        journal = FileJournal(str(tmp_path), 100)
        assert await journal.claim() == []
    finally:
        os.close(fd)
    (segment,) = await journal.claim()  # its writer is gone (the lock went with it)
    assert segment.entries == [entry(1)]
    journal.close()


def test_a_journal_directory_that_cannot_be_made_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(Exception, match="MAC_JOURNAL_DIR"):
        FileJournal(str(blocker / "journal"), 10)
