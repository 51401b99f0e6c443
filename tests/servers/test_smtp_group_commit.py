"""SMTP group commit (servers/committer.py, store/deferred.py): deliveries that arrive together are
stored in one batch by the committer's thread, the new/ directory fsynced once for all of them, and
each client gets its 250 only after its own file and that directory are on disk (RFC 5321 §4.5.4)."""

from __future__ import annotations

import errno
import os
import smtplib
import threading
from pathlib import Path

from tests.helpers import wait
from tuimail.core.events import SystemMessage
from tuimail.servers import committer as committer_module
from tuimail.servers.committer import committer

CLIENTS = 8


class FsyncLog:
    """Every fsync this process completes, in order: (device, inode) of what was synced."""

    def __init__(self, monkeypatch) -> None:
        self.synced: list[tuple[int, int]] = []
        self._lock = threading.Lock()
        real = os.fsync

        def fsync(fd):
            real(fd)
            st = os.fstat(fd)
            with self._lock:
                self.synced.append((st.st_dev, st.st_ino))

        monkeypatch.setattr(os, "fsync", fsync)

    def index(self, path: Path, before: int) -> int | None:
        """The position of the last fsync of `path` among the first `before` ones, or None."""
        st = os.stat(path)
        found = [i for i, key in enumerate(self.synced[:before]) if key == (st.st_dev, st.st_ino)]
        return found[-1] if found else None


class Client(threading.Thread):
    """One message in one SMTP session; notes how many fsyncs were done when its 250 arrived."""

    def __init__(self, port: int, n: int, log: FsyncLog | None = None, subject: str = "") -> None:
        super().__init__(daemon=True)
        self.port, self.n, self.log = port, n, log
        self.subject = subject or f"batch {n}"
        self.reply: tuple[int, bytes] | None = None
        self.synced_at_reply = -1
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as s:
                s.ehlo("batch.test")
                s.mail("sender@batch.test")
                s.rcpt("tester@lab.test")
                self.reply = s.data(f"Subject: {self.subject}\r\n\r\nmessage {self.n}\r\n".encode())
                if self.log is not None:
                    self.synced_at_reply = len(self.log.synced)
        except BaseException as e:  # the test reports it
            self.error = e


def hold_committer(server) -> threading.Event:
    """Keep the committer's thread busy until the returned event is set: deliveries queue meanwhile."""
    inside, release = threading.Event(), threading.Event()

    def blocker() -> None:
        inside.set()
        release.wait(30)

    server.call(lambda: committer().wait([blocker]))
    assert inside.wait(10)
    return release


def queued(server) -> int:
    return server.call(lambda: len(committer()._worker.queue))


def stored(server) -> dict[str, Path]:
    """Subject -> the message's file in INBOX's new/."""
    new = server.engine.store.mailbox("tester@lab.test").folder("INBOX").path / "new"
    found = {}
    for path in new.iterdir():
        for line in path.read_bytes().split(b"\n"):
            if line.startswith(b"Subject: "):
                found[line[9:].decode()] = path
    return found


def test_concurrent_deliveries_share_one_directory_fsync_and_each_250_waits_for_its_file(server, monkeypatch):
    log = FsyncLog(monkeypatch)
    release = hold_committer(server)
    clients = [Client(server.ports.smtp, n, log) for n in range(CLIENTS)]
    for client in clients:
        client.start()
    wait(lambda: queued(server) == CLIENTS, what="every delivery waiting for the committer")
    assert all(client.reply is None for client in clients)  # nobody answered while nothing is stored
    before = len(log.synced)
    release.set()
    for client in clients:
        client.join(30)
        assert client.error is None, client.error
        assert client.reply is not None and client.reply[0] == 250, client.reply
    files = stored(server)
    new_dir = next(iter(files.values())).parent
    for client in clients:
        path = files[f"batch {client.n}"]
        at_file = log.index(path, client.synced_at_reply)
        at_dir = log.index(new_dir, client.synced_at_reply)
        assert at_file is not None, f"message {client.n} was answered 250 before its file was fsynced"
        assert at_dir is not None and at_dir > at_file, (
            f"message {client.n} was answered 250 before new/ was fsynced after its rename")
    st = os.stat(new_dir)
    dir_syncs = log.synced[before:].count((st.st_dev, st.st_ino))
    assert dir_syncs == 1, f"{CLIENTS} deliveries in one batch fsynced new/ {dir_syncs} times"


def test_a_failed_directory_fsync_answers_451_to_its_batch_and_the_next_delivery_is_saved(server, monkeypatch):
    real = committer_module.fsync_dir
    failing = threading.Event()
    failing.set()

    def fsync_dir(directory) -> None:
        if failing.is_set() and str(directory).endswith("/new"):
            raise OSError(errno.EIO, "Input/output error")
        real(directory)

    monkeypatch.setattr(committer_module, "fsync_dir", fsync_dir)
    told: list[str] = []
    server.call(server.engine.bus.subscribe, lambda event: told.append(event.text), [SystemMessage])
    with smtplib.SMTP("127.0.0.1", server.ports.smtp, timeout=30) as s:
        s.ehlo("batch.test")
        s.mail("sender@batch.test")
        s.rcpt("tester@lab.test")
        code, text = s.data(b"Subject: not durable\r\n\r\nbody\r\n")
        assert code == 451 and b"message not saved" in text
        failing.clear()
        s.mail("sender@batch.test")
        s.rcpt("tester@lab.test")
        code, text = s.data(b"Subject: durable\r\n\r\nbody\r\n")
        assert code == 250 and b"message saved" in text
    assert "durable" in stored(server)
    assert "SMTP delivery failed ([Errno 5] Input/output error); the client was told to retry" in told


def test_a_file_that_cannot_be_fsynced_is_answered_451_and_never_reaches_new(server, monkeypatch):
    """Two deliveries in one batch; the fsync of one's file fails: that client gets 451 and its message
    is neither in new/ nor left in tmp/, the other gets its 250."""
    real = os.fsync

    def fsync(fd):
        target = os.readlink(f"/proc/self/fd/{fd}")
        if Path(target).parent.name == "tmp" and b"Subject: doomed" in Path(target).read_bytes():
            raise OSError(errno.EIO, "Input/output error")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    release = hold_committer(server)
    doomed, saved = Client(server.ports.smtp, 0, subject="doomed"), Client(server.ports.smtp, 1)
    for client in (doomed, saved):
        client.start()
    wait(lambda: queued(server) == 2, what="both deliveries waiting for the committer")
    release.set()
    for client in (doomed, saved):
        client.join(30)
        assert client.error is None, client.error
    assert doomed.reply[0] == 451 and saved.reply[0] == 250, (doomed.reply, saved.reply)
    assert list(stored(server)) == ["batch 1"]
    inbox = server.engine.store.mailbox("tester@lab.test").folder("INBOX")
    assert os.listdir(inbox.path / "tmp") == []
