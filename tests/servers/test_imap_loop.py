"""Message commands answered on the event loop (servers/imap_loop.py `_on_the_loop`), over real sockets.

On a small folder whose index matches the disk, FETCH, STORE, SEARCH, EXPUNGE, NOOP and STATUS of the
selected folder run on the loop, and the index fsyncs they wait for are group-committed by the
committer (servers/committer.py): the tagged OK still goes out only after the records are on disk. A
folder above the limits keeps the worker thread, with the same answers."""

from __future__ import annotations

import os
import socket
import struct
import threading

import pytest

from tests.servers.test_imap import deliver
from tests.servers.test_imap_recent import Session
from tuimail.core.events import LineOut
from tuimail.servers import imap, imap_loop
from tuimail.servers.committer import Committer
from tuimail.store.folder import Folder
from tuimail.store.index import IndexLog


def _spy_threads(monkeypatch) -> list[str]:
    """The threads Folder.store_flags and Folder.expunge ran on (the real methods run)."""
    seen: list[str] = []
    for name in ("store_flags", "expunge"):
        real = getattr(Folder, name)

        def spy(self, *args, _real=real, **kwargs):
            seen.append(threading.current_thread().name)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(Folder, name, spy)
    return seen


def _session(server) -> Session:
    for _ in range(3):
        deliver(server)
    s = Session(server.ports.imap)
    s.send("select INBOX")
    return s


def _session_watching_commits(server, monkeypatch) -> tuple[Session, list[bool]]:
    """A session on a three-message INBOX, and a list that gets, for each index commit from then on,
    whether the session's latest tagged OK had been sent (by the transcript) when the commit's fsync ended."""
    sent: list[str] = []  # the server's lines, as the transcript sees them (appended on the loop)
    server.call(server.engine.bus.subscribe, lambda e: sent.append(e.text) if isinstance(e, LineOut) else None)
    at_commit: list[bool] = []
    real_commit = IndexLog.commit

    def commit(self, ticket):
        real_commit(self, ticket)
        at_commit.append(any(t.startswith(f"r{s.n} OK") for t in list(sent)))

    s = _session(server)
    monkeypatch.setattr(IndexLog, "commit", commit)
    return s, at_commit


def test_store_runs_on_the_loop_and_answers_after_the_fsync(server, monkeypatch):
    threads = _spy_threads(monkeypatch)
    s, at_fsync = _session_watching_commits(server, monkeypatch)
    lines = s.send("store 1:2 +flags (\\Flagged)")
    assert sum(" FETCH (FLAGS (" in line for line in lines) == 2
    assert at_fsync and not any(at_fsync), at_fsync  # the OK waited for the records
    assert len(threads) == 1 and not threads[0].startswith("tuimail-io"), threads  # the loop's thread
    folder = server.call(lambda: server.engine.store.mailbox("tatareva@lab.test").folder("INBOX"))
    log = folder._log
    assert server.call(lambda: log._synced == log._written)
    assert s.send("fetch 1:* (uid flags)")[-1].endswith("OK FETCH completed")
    assert s.send('status INBOX (messages)')[0] == '* STATUS "INBOX" (MESSAGES 3)'


def test_an_expunge_of_a_few_files_runs_on_the_loop_and_of_many_takes_the_thread(server, monkeypatch):
    threads = _spy_threads(monkeypatch)
    s = _session(server)
    assert s.send("expunge")[-1].endswith("OK EXPUNGE completed")  # nothing \\Deleted: on the loop
    s.send("store 1 +flags.silent (\\Deleted)")
    lines = s.send("expunge")  # one unlink: on the loop
    assert lines[0] == "* 1 EXPUNGE" and lines[-1].endswith("OK EXPUNGE completed"), lines
    assert not any(t.startswith("tuimail-io") for t in threads), threads
    monkeypatch.setattr(imap_loop, "LOOP_UNLINKS", 1)
    threads.clear()
    deliver(server)
    s.send("noop")
    s.send("store 1:* +flags.silent (\\Deleted)")
    lines = s.send("expunge")
    assert lines[:3] == ["* 3 EXPUNGE", "* 2 EXPUNGE", "* 1 EXPUNGE"]
    assert [t.startswith("tuimail-io") for t in threads] == [False, True], threads  # 3 unlinks: the thread
    assert s.send("status INBOX (messages)")[0] == '* STATUS "INBOX" (MESSAGES 0)'


def test_a_folder_over_the_limit_keeps_the_worker_thread(server, monkeypatch):
    monkeypatch.setattr(imap_loop, "LOOP_MESSAGES", 2)
    threads = _spy_threads(monkeypatch)
    s = _session(server)
    lines = s.send("store 1 +flags (\\Deleted)")
    assert lines[0].startswith("* 1 FETCH (FLAGS (\\Deleted")
    assert s.send("expunge")[0] == "* 1 EXPUNGE"
    assert all(t.startswith("tuimail-io") for t in threads), threads
    body = s.send("fetch 1 (body.peek[header.fields (subject)])")
    assert body[-1].endswith("OK FETCH completed")


def test_a_fetch_in_a_worker_thread_reads_its_stream_once_and_answers_in_one_write(server, monkeypatch):
    """A FETCH rendered in a worker thread (a folder over the loop's limits): a slice shorter than a
    write batch is the end of the stream, so its lines and the tagged OK go out together, after one
    hop to the thread (not a second hop to find the stream empty, with a write before it)."""
    from tuimail.servers import imap_output

    monkeypatch.setattr(imap_loop, "LOOP_MESSAGES", 2)
    takes: list[int] = []
    real_take = imap_output._take

    def take(stream, limit):
        chunk = real_take(stream, limit)
        takes.append(len(chunk))
        return chunk

    monkeypatch.setattr(imap_output, "_take", take)
    s = _session(server)
    writes = _count_writes(server, s)
    lines = s.send("fetch 1:3 (flags body.peek[header.fields (subject)])")
    assert lines[-1].endswith("OK FETCH completed")
    assert [line for line in lines if "FETCH (" in line][0].startswith("* 1 FETCH (FLAGS (")
    assert len(takes) == 1 and 0 < takes[0] < imap_output.WRITE_BATCH
    assert len(writes) == 1 and writes[0].endswith(b"OK FETCH completed\r\n")


def test_a_failed_fsync_fails_the_command_and_the_session_goes_on(server, monkeypatch):
    s = _session(server)
    real_commit = IndexLog.commit

    def failing(self, ticket):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(IndexLog, "commit", failing)
    s.n += 1
    lines = s.command(f"r{s.n} store 1 +flags (\\Flagged)\r\n".encode(), f"r{s.n}")
    assert lines[-1] == f"r{s.n} NO [SERVERBUG] Internal error; the command was not completed"
    monkeypatch.setattr(IndexLog, "commit", real_commit)
    assert s.send("noop")[-1].endswith("OK NOOP completed")
    s.send("logout")  # the session's log block is written when it ends
    server.wait_for(lambda: "Internal error in STORE: OSError" in server.log_text("IMAP"))


@pytest.mark.parametrize("command", ['status INBOX (messages)', 'list "" *'])
def test_status_and_list_answer_the_same_on_the_loop(server, command):
    s = _session(server)
    first = s.send(command)  # LIST: the first one in a thread
    assert s.send(command) == [line.replace(f"r{s.n - 1} ", f"r{s.n} ") for line in first]


def test_the_loop_never_waits_for_a_folder_lock_a_worker_holds(server):
    a = _session(server)
    b = Session(server.ports.imap)  # logged in, nothing selected
    folder = server.call(lambda: server.engine.store.mailbox("tatareva@lab.test").folder("INBOX"))
    folder._lock.acquire()  # as a worker thread's EXPUNGE or index rewrite would hold it
    try:
        a.n += 1
        a.type(f"r{a.n} fetch 1:* (uid flags)\r\n".encode())  # must take the thread, not block the loop
        assert b.send("noop")[-1].endswith("OK NOOP completed")  # the loop answers meanwhile
    finally:
        folder._lock.release()
    assert a.until_tag(f"r{a.n}")[-1].endswith("OK FETCH completed")


MESSAGE = b"From: a@lab.test\r\nSubject: appended\r\n\r\nHello\r\n"


def _append(s: Session, folder: str = "INBOX", messages: tuple[bytes, ...] = (MESSAGE,)) -> list[str]:
    """APPEND (MULTIAPPEND for several messages) with non-synchronizing literals (RFC 7888)."""
    s.n += 1
    tag = f"r{s.n}"
    parts = b"".join(b" (\\Seen) {%d+}\r\n" % len(m) + m for m in messages)
    return s.command(f"{tag} append {folder}".encode() + parts + b"\r\n", tag)


def _inbox(server) -> Folder:
    return server.call(lambda: server.engine.store.mailbox("tatareva@lab.test").folder("INBOX"))


def test_an_append_to_the_selected_folder_runs_on_the_loop_and_answers_after_the_fsyncs(server, monkeypatch):
    placed: list[str] = []  # the threads the messages were renamed and indexed in
    real_place = Folder._place_append

    def place(self, *args, **kwargs):
        placed.append(threading.current_thread().name)
        return real_place(self, *args, **kwargs)

    monkeypatch.setattr(Folder, "_place_append", place)
    trips: list[str] = []  # the calls to the committer: one per APPEND, however many messages
    real_call = Committer.call
    monkeypatch.setattr(Committer, "call", lambda self, work: trips.append(work) or real_call(self, work))
    monkeypatch.setattr(Folder, "append", lambda *a, **k: pytest.fail("APPEND took the worker thread"))
    s, at_commit = _session_watching_commits(server, monkeypatch)
    lines = _append(s)
    assert lines[-1].startswith(f"r{s.n} OK [APPENDUID ") and lines[-1].endswith(" 4] APPEND completed"), lines
    assert lines[0] == "* 4 EXISTS", lines
    assert at_commit and not any(at_commit), at_commit  # the OK waited for the uid's record
    assert len(trips) == 1, trips
    lines = _append(s, messages=(MESSAGE, MESSAGE.replace(b"Hello", b"Again")))  # MULTIAPPEND
    assert lines[-1].endswith(" 5:6] APPEND completed"), lines
    assert placed == ["tuimail-commit"] * 3 and len(trips) == 2, (placed, trips)
    folder = _inbox(server)
    assert not list((folder.path / "tmp").iterdir())
    assert len(list((folder.path / "cur").iterdir())) == 6
    body = s.send("uid fetch 6 (flags body[text])")
    assert body[0] == "* 6 FETCH (UID 6 FLAGS (\\Seen \\Recent) BODY[TEXT] {7}", body
    assert body[1] == "Again"


def test_an_append_whose_file_cannot_be_fsynced_stores_nothing_and_the_session_goes_on(server, monkeypatch):
    from tuimail.store import deferred

    s = _session(server)

    def failing(fd):
        return OSError(5, "Input/output error")

    monkeypatch.setattr(deferred, "fsync_or_error", failing)
    for messages in ((MESSAGE,), (MESSAGE, MESSAGE)):
        lines = _append(s, messages=messages)
        assert lines[-1] == f"r{s.n} NO [SERVERBUG] APPEND failed, nothing was stored: Input/output error", lines
    monkeypatch.undo()
    folder = _inbox(server)
    assert not list((folder.path / "tmp").iterdir())
    assert s.send("status INBOX (messages uidnext)")[0] == '* STATUS "INBOX" (MESSAGES 3 UIDNEXT 4)'
    assert _append(s)[-1].endswith(" 4] APPEND completed")


def test_a_store_bug_while_placing_an_append_is_a_serverbug_reply_and_the_session_goes_on(server, monkeypatch):
    s = _session(server)

    def broken(self, tmp, final, keywords):
        os.unlink(tmp)
        raise ValueError("a bug")

    monkeypatch.setattr(Folder, "_place_append", broken)
    lines = _append(s)
    assert lines[-1] == f"r{s.n} NO [SERVERBUG] Internal error; the command was not completed", lines
    monkeypatch.undo()
    assert not list((_inbox(server).path / "tmp").iterdir())
    assert _append(s)[-1].endswith(" 4] APPEND completed")


def test_a_session_that_ends_during_its_append_leaves_no_file_behind(server, monkeypatch):
    from tuimail.store import deferred

    s = _session(server)
    folder = _inbox(server)
    release, held = threading.Event(), threading.Event()
    real = deferred.fsync_or_error

    def slow(fd):  # the committer's thread is still at the file's fsync when the client goes
        held.set()
        release.wait(10)
        return real(fd)

    monkeypatch.setattr(deferred, "fsync_or_error", slow)
    try:
        s.n += 1
        s.type(f"r{s.n} append INBOX {{{len(MESSAGE)}+}}\r\n".encode() + MESSAGE + b"\r\n")
        assert held.wait(10)
        # a reset, not a half-close (after which the server would still answer, then close)
        s.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        server.wait_for(lambda: not [x for x in server.engine.sessions if x.protocol.label == "IMAP"])
    finally:
        release.set()
    server.wait_for(lambda: not list((folder.path / "tmp").iterdir()))
    assert len(list((folder.path / "cur").iterdir())) + len(list((folder.path / "new").iterdir())) == 3
    assert Session(server.ports.imap).send("status INBOX (messages)")[0] == '* STATUS "INBOX" (MESSAGES 3)'


def test_pipelined_commands_are_answered_in_one_write_in_order(server):
    """Commands that arrive together take turns with other sessions, but their replies are held and
    written together once the input is used up: one send for the lot. A command that ends the
    session (LOGOUT) still has every reply before it, then its own, before the stream ends."""
    from tests.servers.test_imap import Telnet

    deliver(server)
    t = Telnet(server.ports.imap)
    t.line()
    assert t.command(b"a1 login tatareva Secret123\r\n")[-1] == "a1 OK LOGIN completed"
    assert t.command(b"a2 select INBOX\r\n")[-1].startswith("a2 OK")
    [record] = list(server.engine.sessions)
    connection = record.abort.__self__
    writes: list[bytes] = []

    def count_writes() -> None:
        transport = connection.transport
        real = transport.write
        transport.write = lambda data: (writes.append(bytes(data)), real(data))[1]

    server.call(count_writes)
    t.type(b"b1 NOOP\r\nb2 FETCH 1 (FLAGS)\r\nb3 UID SEARCH ALL\r\nb4 NOOP\r\n")
    assert t.until_tag("b4") == ["b1 OK NOOP completed", "* 1 FETCH (FLAGS (\\Recent))", "b2 OK FETCH completed",
                                 "* SEARCH 1", "b3 OK SEARCH completed", "b4 OK NOOP completed"]
    assert len(writes) == 1
    t.type(b"c1 NOOP\r\nc2 LOGOUT\r\nc3 NOOP\r\n")
    assert t.until_tag("c2") == ["c1 OK NOOP completed", "* BYE IMAP engine signing off (no errors)",
                                 "c2 OK LOGOUT completed"]
    assert t.file.read() == b""
    t.close()


def _count_writes(server, session: Session) -> list[bytes]:
    """The transport writes of `session`'s connection from now on (the real writes still happen)."""
    connection = next(iter(server.engine.sessions)).abort.__self__
    writes: list[bytes] = []

    def wrap() -> None:
        real = connection.transport.write
        connection.transport.write = lambda data: (writes.append(bytes(data)), real(data))[1]

    server.call(wrap)
    return writes


def test_pipelined_writes_run_ahead_of_their_fsyncs_and_answer_in_order(server, monkeypatch):
    """imaptest sends STOREs, an EXPUNGE, a STATUS in one packet: the commands behind a STORE run while
    its records are fsynced (one committer batch for all), yet every reply, and the transcript, is in
    the order of one command at a time, and no OK goes out before the records it reports are on disk."""
    s = _session(server)
    sent: list[str] = []
    server.call(server.engine.bus.subscribe, lambda e: sent.append(e.text) if isinstance(e, LineOut) else None)
    ok_at_commit: list[set[str]] = []  # the tags whose OK was sent when each commit's fsync ended
    real_commit = IndexLog.commit

    def commit(self, ticket):
        real_commit(self, ticket)
        ok_at_commit.append({t.split()[0] for t in list(sent) if " OK " in t})

    monkeypatch.setattr(IndexLog, "commit", commit)
    ran_ahead: list[str] = []
    real_run_ahead = imap.ImapConnection._run_ahead
    monkeypatch.setattr(imap.ImapConnection, "_run_ahead",
                        lambda self, *args: (ran_ahead.append(args[2]), real_run_ahead(self, *args))[1])
    writes = _count_writes(server, s)
    s.type(b"b1 STORE 1 +FLAGS (\\Flagged)\r\nb2 STORE 2 +FLAGS.SILENT (\\Deleted)\r\nb3 EXPUNGE\r\n"
           b"b4 STATUS INBOX (MESSAGES)\r\nb5 NOOP\r\n")
    assert s.until_tag("b5") == [
        "* 1 FETCH (FLAGS (\\Flagged \\Recent))", "b1 OK STORE completed",
        "b2 OK STORE completed",
        "* 2 EXPUNGE", "* 2 RECENT", "b3 OK EXPUNGE completed",
        '* STATUS "INBOX" (MESSAGES 2)', "b4 OK STATUS completed",
        "b5 OK NOOP completed",
    ]
    # (on a loaded machine a command may still find the folder busy and take a thread: then the
    # ones before it are answered first, and it is answered after its own commit)
    assert ran_ahead[:1] == ["STORE"], ran_ahead
    assert ok_at_commit and not ok_at_commit[0], ok_at_commit  # the STOREs' records before any OK
    assert not any("b3" in tags for tags in ok_at_commit), ok_at_commit  # and the EXPUNGE's before its OK
    if ran_ahead == ["STORE", "STORE", "EXPUNGE"]:
        assert len(writes) == 1  # the lot in one write, after the fsyncs
    # a FETCH behind a STORE (its reply streams) waits for the STORE's fsyncs, then goes on in order
    s.type(b"c1 STORE 1 -FLAGS (\\Flagged)\r\nc2 FETCH 1:2 (FLAGS)\r\nc3 NOOP\r\n")
    assert s.until_tag("c3") == [
        "* 1 FETCH (FLAGS (\\Recent))", "c1 OK STORE completed",
        "* 1 FETCH (FLAGS (\\Recent))", "* 2 FETCH (FLAGS (\\Recent))", "c2 OK FETCH completed",
        "c3 OK NOOP completed",
    ]
    s.send("logout")
    server.wait_for(lambda: "c3 OK NOOP" in server.log_text("IMAP"))
    transcript = [" ".join(line.split(": ", 1)[1].split()[:2]) for line in server.log_text("IMAP").splitlines()
                  if ": <-- b" in line or ": --> b" in line or ": <-- c" in line or ": --> c" in line]
    assert transcript == [f"{arrow} {tag}" for tag in ("b1", "b2", "b3", "b4", "b5", "c1", "c2", "c3")
                          for arrow in ("<--", "-->")]


def test_failed_fsyncs_behind_pipelined_commands_fail_their_commands_in_order(server, monkeypatch):
    """Each command that ran ahead and whose records could not be made durable fails as it would
    alone (its replies dropped, a NO); the commands between and after are answered in order."""
    s = _session(server)
    real_commit = IndexLog.commit

    def failing(self, ticket):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(IndexLog, "commit", failing)
    s.type(b"b1 STORE 1 +FLAGS (\\Flagged)\r\nb2 NOOP\r\nb3 STORE 2 +FLAGS (\\Seen)\r\nb4 NOOP\r\n")
    assert s.until_tag("b4") == [
        "b1 NO [SERVERBUG] Internal error; the command was not completed",
        "b2 OK NOOP completed",
        "b3 NO [SERVERBUG] Internal error; the command was not completed",
        "b4 OK NOOP completed",
    ]
    monkeypatch.setattr(IndexLog, "commit", real_commit)
    assert s.send("noop")[-1].endswith("OK NOOP completed")
    s.send("logout")
    server.wait_for(lambda: server.log_text("IMAP").count("Internal error in STORE: OSError") == 2)


def test_idle_behind_a_pipelined_store_misses_no_change(server):
    """IDLE catches up and starts its watch in one step: a command waiting for its fsyncs ahead of it
    is settled first, so a message delivered right after is heard."""
    s = _session(server)
    s.type(b"b1 STORE 1 +FLAGS.SILENT (\\Flagged)\r\nb2 IDLE\r\n")
    assert s.until_tag("b1") == ["b1 OK STORE completed"]
    assert s.line() == "+ idling"
    deliver(server)
    assert s.line() == "* 4 EXISTS"
    s.type(b"DONE\r\n")
    assert s.until_tag("b2")[-1] == "b2 OK IDLE terminated"


@pytest.mark.parametrize(("line", "verb"), [
    (b"a1 FETCH 1 (FLAGS)", "FETCH"), (b"a1 fetch 1 (FLAGS)", "FETCH"), (b"a1 FeTcH 1", "FETCH"),
    (b"a1 UID STORE 1 +FLAGS (\\Seen)", "UID STORE"), (b"a1 uid store 1", "UID STORE"), (b"a1 Uid Fetch 1", "UID FETCH"),
    (b"a1 UID", "UID"), (b"a1 uid frob", "UID FROB"), (b"a1", ""), (b"a1 XYZZY", "XYZZY"), (b"a1 \xff", "\ufffd"),
])
def test_a_commands_name_is_read_in_any_case_as_the_machine_reads_it(line, verb):
    from tuimail.protocols.imap.reader import RawCommand

    assert imap_loop._verb(RawCommand((line,))) == verb
