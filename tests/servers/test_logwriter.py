"""Log files: one block per session in MDaemon's frame, system lines as they happen, rotation."""

from __future__ import annotations

import asyncio
import errno
from datetime import datetime, timedelta, timezone

from tuimail.core.events import EventBus, LineIn, LineOut, Note, Protocol, SessionClosed, SessionOpened
from tuimail.servers.logwriter import HEAD_LINES, TAIL_LINES, Block, LogWriter, stamp

AT = datetime(2007, 5, 30, 16, 8, 6).astimezone()
_DAY = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def session(bus: EventBus, sid: int, protocol=Protocol.POP3, port=2110) -> None:
    bus.publish(SessionOpened(sid, protocol, "192.168.1.59", 1997, port, at=AT))
    bus.publish(LineOut(sid, protocol, "+OK ready", at=AT))
    bus.publish(LineIn(sid, protocol, "user tatareva", at=AT))
    bus.publish(Note(sid, protocol, "Sending LIST response (not logged)", at=AT))
    bus.publish(SessionClosed(sid, protocol, 59, 365, "client quit", at=AT))


def test_stamp_is_english_whatever_the_locale():
    assert stamp(AT) == "Wed 2007-05-30 16:08:06: "


def test_stamp_reuses_a_second_only_for_the_same_clock_second():
    """stamp() keeps the second it formatted last: each time below must still show its own fields."""
    plus3 = timezone(timedelta(hours=3))
    times = [
        AT, AT.replace(microsecond=999_999), AT + timedelta(seconds=1), AT - timedelta(microseconds=1),
        AT.replace(tzinfo=None), AT.replace(tzinfo=None, microsecond=500_000),  # naive after aware
        AT.astimezone(plus3), AT.astimezone(plus3) + timedelta(microseconds=10),  # another zone, same instant
        AT.astimezone(timezone.utc), AT.replace(hour=17), AT.replace(day=31), AT,
        datetime(2026, 3, 29, 1, 59, 59, 999_999, tzinfo=timezone.utc), datetime(2026, 3, 29, 2, 0, 0, tzinfo=timezone.utc),
    ]
    for at in times:
        assert stamp(at) == _DAY[at.weekday()] + f" {at:%Y-%m-%d %H:%M:%S}: ", at


def test_a_session_is_one_block_written_when_it_ends(tmp_path):
    bus = EventBus()
    bus.subscribe(LogWriter(tmp_path))
    bus.publish(SessionOpened(1, Protocol.POP3, "192.168.1.59", 1997, 2110, at=AT))
    session(bus, 2)  # a second session opens and closes while the first is still open
    bus.publish(LineIn(1, Protocol.POP3, "quit", at=AT))
    bus.publish(SessionClosed(1, Protocol.POP3, 10, 20, "client quit", at=AT))
    lines = (tmp_path / "POP.log").read_text().splitlines()
    assert lines[:8] == [
        "Wed 2007-05-30 16:08:06: -----",
        "Wed 2007-05-30 16:08:06: Session 2; POP3 on port 2110",
        "Wed 2007-05-30 16:08:06: Accepting POP connection from [192.168.1.59 : 1997]",
        "Wed 2007-05-30 16:08:06: --> +OK ready",
        "Wed 2007-05-30 16:08:06: <-- user tatareva",
        "Wed 2007-05-30 16:08:06: Sending LIST response (not logged)",
        "Wed 2007-05-30 16:08:06: POP session complete (Bytes in/out: 59/365)",
        "Wed 2007-05-30 16:08:06: -----",
    ]
    assert lines[9] == "Wed 2007-05-30 16:08:06: Session 1; POP3 on port 2110"
    assert lines[-3] == "Wed 2007-05-30 16:08:06: <-- quit"


def test_closing_lines_per_protocol(tmp_path):
    bus = EventBus()
    bus.subscribe(LogWriter(tmp_path))
    bus.publish(SessionOpened(3, Protocol.IMAP, "127.0.0.1", 5, 2143, at=AT))
    bus.publish(SessionClosed(3, Protocol.IMAP, 400, 1028, "client quit", at=AT))
    bus.publish(SessionOpened(4, Protocol.SMTP, "127.0.0.1", 6, 2525, at=AT))
    bus.publish(SessionClosed(4, Protocol.SMTP, 1, 2, "killed by operator", ok=False, at=AT))
    assert "IMAP session complete, (1428 bytes)" in (tmp_path / "IMAP.log").read_text()
    assert "SMTP session terminated (Bytes in/out: 1/2) [killed by operator]" in (tmp_path / "SMTP-in.log").read_text()


def test_system_lines_are_written_at_once(tmp_path):
    bus = EventBus()
    bus.subscribe(LogWriter(tmp_path))
    bus.system("SMTP listening on 0.0.0.0:2525")
    assert (tmp_path / "system.log").read_text().endswith("SMTP listening on 0.0.0.0:2525\n")


async def _turns_until(condition, turns: int = 100) -> None:
    """Let the loop run until `condition()` holds (a bounded number of its turns, no clock)."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    assert condition()


async def test_blocks_of_one_loop_turn_reach_the_file_together_at_the_next(tmp_path):
    """While the engine's loop runs, the blocks of the sessions that ended in one turn are written at
    its next turn in one go (issue 15: with a connection per message, one write per turn instead of
    one per session), whole and in the order the sessions ended; system lines still go at once."""
    bus = EventBus()
    writer = LogWriter(tmp_path)
    writer.loop = asyncio.get_running_loop()
    bus.subscribe(writer)
    for sid in (3, 1, 2):
        session(bus, sid)
    bus.system("SMTP listening on 0.0.0.0:2525")
    assert (tmp_path / "system.log").read_text().endswith("SMTP listening on 0.0.0.0:2525\n")
    path = tmp_path / "POP.log"
    assert path.read_text() == ""  # (in the file's buffer until the turn ends)
    await _turns_until(lambda: path.read_text() != "")
    text = path.read_text()
    assert [line.split(": ", 1)[1] for line in text.splitlines() if ": Session " in line] == [
        "Session 3; POP3 on port 2110", "Session 1; POP3 on port 2110", "Session 2; POP3 on port 2110"]
    assert text.count(stamp(AT) + "-----\n") == 6
    session(bus, 4)
    writer.close()  # a stop before the next turn still writes every block
    assert "Session 4; POP3" in path.read_text()


async def test_a_block_that_cannot_be_flushed_later_is_reported_and_logging_goes_on(tmp_path):
    bus = EventBus()
    writer = LogWriter(tmp_path)
    writer.loop = asyncio.get_running_loop()
    bus.subscribe(writer)
    session(bus, 1)
    await _turns_until(lambda: "Session 1;" in (tmp_path / "POP.log").read_text())

    class FullDisk:  # the file's buffer cannot be written out: the disk filled up meanwhile
        def __init__(self, handle):
            self.handle = handle

        def write(self, data):
            return len(data)

        def flush(self):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            self.handle.close()

    writer._files[Protocol.POP3] = FullDisk(writer._files[Protocol.POP3])
    session(bus, 2)
    await _turns_until(lambda: writer.problem is not None)
    assert "No space left on device" in writer.problem
    assert "Cannot write the logs" in (tmp_path / "system.log").read_text()
    session(bus, 3)  # the file is opened again for the next block
    await _turns_until(lambda: "Session 3;" in (tmp_path / "POP.log").read_text())


def test_files_rotate_by_size(tmp_path):
    bus = EventBus()
    bus.subscribe(LogWriter(tmp_path, max_bytes=4096, backups=2))
    for sid in range(1, 40):
        session(bus, sid)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["POP.log", "POP.log.1", "POP.log.2"]
    assert all(p.stat().st_size <= 4096 for p in tmp_path.iterdir())
    assert "Session 39;" in (tmp_path / "POP.log").read_text()
    for path in tmp_path.iterdir():  # blocks are never split across files
        text = path.read_text()
        assert text.startswith(stamp(AT) + "-----\n") and text.endswith(stamp(AT) + "-----\n")


def test_many_sessions_lines_out_are_written_as_line_events_are(tmp_path):
    """An IDLE fan-out logs many sessions' identical lines in one call (`LogWriter.lines_out`): each
    block shows what LineOut events would have written, at each session's own time."""
    blocks = {}
    for bulk in (False, True):
        bus = EventBus()
        bus.subscribe(LogWriter(tmp_path / str(bulk)))
        for sid in (1, 2):
            bus.publish(SessionOpened(sid, Protocol.IMAP, "192.168.1.59", 1997, 2143, at=AT))
            bus.publish(LineIn(sid, Protocol.IMAP, "a3 idle", at=AT))
        sent = [(1, AT), (2, AT + timedelta(seconds=1))]
        texts = ("* 2 EXISTS", "* 1 RECENT")
        if bulk:
            bus.publish_lines_out(Protocol.IMAP, texts, sent + [(3, AT)])  # 3: no block (closed), skipped
        else:
            for sid, at in sent:
                for text in texts:
                    bus.publish(LineOut(sid, Protocol.IMAP, text, at=at))
        for sid in (1, 2):
            bus.publish(LineIn(sid, Protocol.IMAP, "DONE", at=AT))
            bus.publish(SessionClosed(sid, Protocol.IMAP, 10, 20, "client quit", at=AT))
        blocks[bulk] = (tmp_path / str(bulk) / "IMAP.log").read_text()
    assert blocks[True] == blocks[False]
    assert "Wed 2007-05-30 16:08:07: --> * 2 EXISTS\nWed 2007-05-30 16:08:07: --> * 1 RECENT\n" in blocks[True]


def test_a_block_takes_many_lines_at_once_as_it_takes_them_one_by_one():
    """`Block.extend` (one write's `-->` lines) keeps the same head, tail and omitted count as an
    `append` per line, however the lines fall across the head's and the tail's limits."""

    one, many = Block(Protocol.IMAP, 143), Block(Protocol.IMAP, 143)
    n = 0
    for count in [1, 7, HEAD_LINES - 3, 5, 50, TAIL_LINES + 9, 3, 1, 400] * 3:
        lines = [f"--> * {n + i} FETCH (FLAGS ())" + "x" * ((n + i) % 700) for i in range(count)]
        n += count
        for line in lines:
            one.append(line)
        many.extend(lines, sum(map(len, lines)))
        assert (many.head, list(many.tail or ()), many.tail_bytes, many.omitted) == \
            (one.head, list(one.tail or ()), one.tail_bytes, one.omitted)
    assert one.omitted > 0 and len(one.tail) <= TAIL_LINES


def test_a_reply_is_written_as_its_line_events_are(tmp_path):
    """One session's reply in one call (`LogWriter.reply_lines`): its block shows what LineOut events
    would have written, a line over MAX_LINE cut as one alone is, the head's limit crossed mid-reply."""
    from tuimail.servers.logwriter import MAX_LINE

    blocks = {}
    for reply in (False, True):
        bus = EventBus()
        writer = LogWriter(tmp_path / str(reply))
        bus.subscribe(writer)
        bus.publish(SessionOpened(1, Protocol.IMAP, "192.168.1.59", 1997, 2143, at=AT))
        for n, texts in enumerate([("* 1 FETCH (FLAGS ())", "a1 OK done"), ("* 2 FETCH " + "x" * MAX_LINE, "a2 OK"),
                                   tuple(f"* {i} FETCH (UID {i})" for i in range(HEAD_LINES + TAIL_LINES + 5)), ("a9 OK",)]):
            at = AT + timedelta(seconds=n)
            if reply:
                writer.reply_lines(1, Protocol.IMAP, texts, at)
                writer.reply_lines(2, Protocol.IMAP, texts, at)  # no block: skipped
            else:
                for text in texts:
                    bus.publish(LineOut(1, Protocol.IMAP, text, at=at))
        bus.publish(SessionClosed(1, Protocol.IMAP, 10, 20, "client quit", at=AT))
        blocks[reply] = (tmp_path / str(reply) / "IMAP.log").read_text()
    assert blocks[True] == blocks[False]
    assert "... (2039 characters)" in blocks[True] and "lines omitted" in blocks[True]


def test_a_long_sessions_tail_is_its_last_lines_within_both_limits():
    """The tail (a list, its oldest lines dropped in one step) keeps what dropping them one at a time
    kept: the longest run of last lines within TAIL_LINES lines and TAIL_BYTES characters, the lines
    before it counted as omitted, however the lines come (one by one or a write's at once)."""
    from tuimail.servers.logwriter import HEAD_BYTES, MAX_LINE, TAIL_BYTES

    block = Block(Protocol.IMAP, 143)
    sent: list[str] = []
    n = 0
    for count in [HEAD_LINES, 1, 3, TAIL_LINES, 2, 700, 1, 40, 5, 900, 2, 1, TAIL_LINES + 1, 30]:
        lines = [f"--> * {n + i} FETCH " + "x" * (((n + i) * 37) % (MAX_LINE - 40)) for i in range(count)]
        n += count
        if count % 2:
            for line in lines:
                block.append(line)
        else:
            block.extend(lines, sum(map(len, lines)))
        sent += lines
        head = block.head
        rest = sent[len(head):]
        assert head == sent[:len(head)] and block.head_bytes == sum(map(len, head)) <= HEAD_BYTES
        kept, size = [], 0
        for line in reversed(rest):
            if len(kept) == TAIL_LINES or size + len(line) > TAIL_BYTES:
                break
            kept.append(line)
            size += len(line)
        kept.reverse()
        assert list(block.tail or ()) == kept and block.tail_bytes == size
        assert block.omitted == len(rest) - len(kept)
    assert block.omitted > 0 and block.tail_bytes > TAIL_BYTES - MAX_LINE
