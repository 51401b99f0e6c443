"""Crash atomicity and full disks (issue 16, findings 4 and 7), with `tuimail serve` as a process.

- SIGKILL in the middle of mixed IMAP operations and POP3 QUITs: no acknowledged message lost, never
  in two folders after a MOVE, never twice in one folder, UIDs never reused (`mixed_ops`); a few
  rounds here, 1,000 operations in bench/hostile.py.
- A full disk (a small tmpfs, when the test runs as root): a user still logs in and deletes mail over
  IMAP and POP3, POP3 says the disk is full, delivery answers 451, and a full log directory is
  reported once while the server keeps serving.
"""

from __future__ import annotations

import imaplib
import os
import poplib
import random
import shutil
import smtplib
import subprocess
import threading
import time

import pytest

from tests.helpers import PASSWORD, RunningServer, make_config
from tests.servers.mixed_ops import FOLDERS, Model, Worker, reconcile, scan
from tests.servers.test_crash import Server
from tuimail.control.local import InProcessClient
from tuimail.core.directory import Directory
from tuimail.store import MailStore
from tuimail.store.folder import Folder
from tuimail.store.index import INDEX
from tuimail.tui.clock import fixed_clock
from tuimail.tui.widgets.status_header import header_markup

ADDRESS = "tester@lab.test"
ROUNDS = 3


def test_sigkill_during_mixed_operations_keeps_every_promise(tmp_path):
    config = make_config(tmp_path)
    Directory(config).add_account(ADDRESS, PASSWORD)
    box = MailStore(config.data_dir).mailbox(ADDRESS)
    for name in FOLDERS[1:]:
        box.create_folder(name)
    rng = random.Random(int(os.environ.get("TUIMAIL_CRASH_SEED", "16")))
    model, pending = Model(), None
    ports = config.settings.ports
    kinds: dict[str, int] = {}
    for _ in range(ROUNDS):
        server = Server(config)
        try:
            reconcile(model, scan(ports.imap, ADDRESS, PASSWORD, model), pending)
            worker = Worker(ports, ADDRESS, PASSWORD, model, random.Random(rng.random()), 10_000, rng.randrange(5, 16))
            worker.start()
            while not worker.in_flight.wait(0.5):
                assert worker.is_alive(), f"the workload stopped before the kill: {worker.error}"
        finally:
            server.kill()  # in the middle of an operation; and never left running when the test fails
        worker.join(60)
        assert not worker.is_alive() and worker.error is None, worker.error
        pending = worker.pending
        for kind, n in worker.counts.items():
            kinds[kind] = kinds.get(kind, 0) + n
    server = Server(config)
    try:
        reconcile(model, scan(ports.imap, ADDRESS, PASSWORD, model), pending)
    finally:
        server.stop()
    assert model.acked >= ROUNDS * 5
    assert {"APPEND", "MOVE"} <= set(kinds), kinds


def test_move_is_a_rename_and_every_copy_is_a_new_message(tmp_path):
    store = MailStore(tmp_path)
    box = store.mailbox(ADDRESS)
    inbox, trash = box.folder("INBOX", create=True), box.create_folder("Trash")
    uid = inbox.append(b"Subject: one\n\nbody\n", "S")
    inode = os.stat(inbox.message_path(inbox.get(uid))).st_ino
    [(old, moved)] = inbox.move_to([uid], trash)
    assert old == uid and inbox.messages() == () and len(trash.messages()) == 1
    assert os.stat(trash.message_path(trash.get(moved))).st_ino == inode  # the same file, renamed
    assert trash.get(moved).flags == "S"
    # moved back and forth: a new name each time, so never an old uid list entry (no uid is reused)
    [(_, back)] = trash.move_to([moved], inbox)
    assert back > uid
    [(_, first)] = inbox.copy_to([back], trash)
    [(_, again)] = inbox.copy_to([back], trash)  # COPY twice on purpose: two copies (RFC 3501 §6.4.7)
    assert again > first and len(trash.messages()) == 2
    assert len(inbox.copy_to([back], inbox)) == 1 and len(inbox.messages()) == 2  # within a folder: a copy


def test_a_torn_index_record_is_cut_off_and_never_glued_onto(tmp_path):
    store = MailStore(tmp_path)
    inbox = store.mailbox(ADDRESS).folder("INBOX", create=True)
    first = inbox.append(b"Subject: a\n\nx\n")
    inbox.close()
    index = inbox.path / INDEX
    index.write_bytes(index.read_bytes() + b"+ 7 9 c 3 4 1234 1234.M1P1Q1.torn")  # a crash mid-append
    again = MailStore(tmp_path).mailbox(ADDRESS).folder("INBOX")
    second = again.append(b"Subject: b\n\ny\n")
    assert second > first
    again.close()
    third = MailStore(tmp_path).mailbox(ADDRESS).folder("INBOX")
    assert {r.uid for r in third.messages()} == {first, second}
    assert b"torn" not in index.read_bytes()


@pytest.mark.parametrize("step", ["links", "target records", "source records"])
def test_a_kill_between_the_steps_of_move_leaves_each_message_in_one_folder(tmp_path, monkeypatch, step):
    """MOVE's order: S 0 0 in both indexes, renames, the target's records, the source's records. A kill
    after any step (here: an exception that stops the rest, then a fresh store as after a restart)
    leaves each message in exactly one folder, with a uid the target never gave out before."""
    box = MailStore(tmp_path).mailbox(ADDRESS)
    inbox, work = box.folder("INBOX", create=True), box.create_folder("Work")
    kept = work.append(b"Subject: already there\n\n.\n")
    uids = [inbox.append(b"Subject: %d\n\nbody\n" % n, "S") for n in range(3)]
    class Killed(Exception):
        pass
    def kill(*args, **kwargs):
        raise Killed
    if step == "links":
        monkeypatch.setattr(Folder, "_index_arrivals", kill)
    elif step == "target records":
        real = Folder._index_arrivals
        def arrive_then_die(self, arrivals):
            real(self, arrivals)
            raise Killed
        monkeypatch.setattr(Folder, "_index_arrivals", arrive_then_die)
    else:
        real_write = Folder._write
        def write_then_die(self, lines, durable=False):
            if self is inbox and any(line.startswith("- ") for line in lines):
                raise Killed
            return real_write(self, lines, durable)
        monkeypatch.setattr(Folder, "_write", write_then_die)
    with pytest.raises(Killed):
        inbox.move_to(uids[:2], work)
    monkeypatch.undo()
    for folder in (inbox, work):
        folder.close()
    after = MailStore(tmp_path).mailbox(ADDRESS)
    left, there = after.folder("INBOX").messages(), after.folder("Work").messages()
    assert [r.uid for r in left] == [uids[2]]
    subjects = sorted(after.folder("Work").read(r.uid).split(b"\n")[0] for r in there)
    assert subjects == [b"Subject: 0", b"Subject: 1", b"Subject: already there"]
    assert all(r.uid > kept for r in there if r.uid != kept)
    assert all(r.flags == "S" for r in there if r.uid != kept)


# ----- a full disk -----------------------------------------------------------------------------

def _mount_tmpfs(path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def _fill(path) -> None:
    """Fill the file system holding `path` to the last byte."""
    fd = os.open(path / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (65536, 4096, 1):
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                continue
    finally:
        os.close(fd)


@pytest.fixture
def full_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs (run the suite as root to test a full disk)")
    mount = tmp_path / "small"
    if not _mount_tmpfs(mount, "4m"):
        pytest.skip("mount -t tmpfs is not allowed here (no CAP_SYS_ADMIN in this container)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_still_lets_users_log_in_and_delete(tmp_path, full_disk):
    config = make_config(tmp_path)
    config.settings.server.data_dir = str(full_disk / "data")
    config.settings.server.log_dir = str(tmp_path / "logs")
    running = RunningServer(config).start()
    try:
        running.engine.directory.add_account(ADDRESS, PASSWORD)
        for n in range(3):
            running.engine.store.deliver(ADDRESS, b"Subject: %d\n\n%s\n" % (n, b"z" * 1000))
        _fill(full_disk)
        with smtplib.SMTP("127.0.0.1", config.settings.ports.smtp) as client:  # nothing half-written
            with pytest.raises(smtplib.SMTPDataError) as info:
                client.sendmail("a@lab.test", [ADDRESS], b"Subject: more\r\n\r\n" + b"y" * 100000)
            assert info.value.smtp_code == 451
        with imaplib.IMAP4("127.0.0.1", config.settings.ports.imap) as client:
            assert client.login(ADDRESS, PASSWORD)[0] == "OK"  # first login: default folders cannot be made
            assert client.select("INBOX")[0] == "OK"
            typ, data = client.append("INBOX", None, None, b"Subject: no room\r\n\r\n" + b"x" * 100000)
            assert typ == "NO" and b"[OVERQUOTA] Not enough disk space" in data[0], data
            client.store("1", "+FLAGS", "(\\Deleted)")
            assert client.expunge()[0] == "OK"
        pop = poplib.POP3("127.0.0.1", config.settings.ports.pop3, timeout=30)
        pop.user(ADDRESS)
        welcome = pop.pass_(PASSWORD)
        assert b"disk is full" in welcome, welcome
        pop.dele(1)
        assert pop.quit().startswith(b"+OK")
        inbox = running.engine.store.mailbox(ADDRESS).folder("INBOX")
        assert len(inbox.messages()) == 1
    finally:
        running.stop()


def test_a_full_log_directory_is_reported_once_and_serving_goes_on(tmp_path, full_disk):
    config = make_config(tmp_path)
    config.settings.server.log_dir = str(full_disk / "logs")
    running = RunningServer(config).start()
    try:
        running.engine.directory.add_account(ADDRESS, PASSWORD)
        _fill(full_disk)
        for _ in range(5):
            with imaplib.IMAP4("127.0.0.1", config.settings.ports.imap) as client:
                client.login(ADDRESS, PASSWORD)
                client.noop()
        running.wait_for(lambda: running.engine.log_problem is not None)
        assert "Cannot write the logs" in running.engine.log_problem
        header = running.call(header_markup, InProcessClient(running.engine, start=False),
                              fixed_clock(time.time(), time.monotonic()), False)
        assert "! Cannot write the logs" in header  # the monitor's header says so
        (full_disk / "filler").unlink()  # room again: what follows is written
        running.wait_for(lambda: len(running.engine.sessions) == 0)
        running.call(running.engine.bus.system, "after the outage")
        system = (full_disk / "logs" / "system.log").read_text()
        assert system.count("Cannot write the logs") <= 1
        assert "after the outage" in system
    finally:
        running.stop()
