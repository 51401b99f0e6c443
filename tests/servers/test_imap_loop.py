"""Message commands answered on the event loop (servers/imap.py `_on_the_loop`), over real sockets.

On a small folder whose index matches the disk, FETCH, STORE, SEARCH, EXPUNGE, NOOP and STATUS of the
selected folder run on the loop, and the index fsyncs they wait for are group-committed by the
committer (servers/committer.py): the tagged OK still goes out only after the records are on disk. A
folder above the limits keeps the worker thread, with the same answers."""

from __future__ import annotations

import threading

import pytest

from tests.servers.test_imap import deliver
from tests.servers.test_imap_recent import Session
from tuimail.core.events import LineOut
from tuimail.servers import imap
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


def test_store_runs_on_the_loop_and_answers_after_the_fsync(server, monkeypatch):
    threads = _spy_threads(monkeypatch)
    sent: list[str] = []  # the server's lines, as the transcript sees them (appended on the loop)
    server.call(server.engine.bus.subscribe, lambda e: sent.append(e.text) if isinstance(e, LineOut) else None)
    at_fsync: list[bool] = []  # was the command's tagged OK already sent when its fsync ended?
    real_commit = IndexLog.commit

    def commit(self, ticket):
        real_commit(self, ticket)
        at_fsync.append(any(t.startswith(f"r{s.n} OK") for t in list(sent)))

    s = _session(server)
    monkeypatch.setattr(IndexLog, "commit", commit)
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
    monkeypatch.setattr(imap, "LOOP_UNLINKS", 1)
    threads.clear()
    deliver(server)
    s.send("noop")
    s.send("store 1:* +flags.silent (\\Deleted)")
    lines = s.send("expunge")
    assert lines[:3] == ["* 3 EXPUNGE", "* 2 EXPUNGE", "* 1 EXPUNGE"]
    assert [t.startswith("tuimail-io") for t in threads] == [False, True], threads  # 3 unlinks: the thread
    assert s.send("status INBOX (messages)")[0] == '* STATUS "INBOX" (MESSAGES 0)'


def test_a_folder_over_the_limit_keeps_the_worker_thread(server, monkeypatch):
    monkeypatch.setattr(imap, "LOOP_MESSAGES", 2)
    threads = _spy_threads(monkeypatch)
    s = _session(server)
    lines = s.send("store 1 +flags (\\Deleted)")
    assert lines[0].startswith("* 1 FETCH (FLAGS (\\Deleted")
    assert s.send("expunge")[0] == "* 1 EXPUNGE"
    assert all(t.startswith("tuimail-io") for t in threads), threads
    body = s.send("fetch 1 (body.peek[header.fields (subject)])")
    assert body[-1].endswith("OK FETCH completed")


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
