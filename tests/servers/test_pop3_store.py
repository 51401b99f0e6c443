"""POP3 on the shared store: what other sessions see, dropped connections, kill, timeout, shutdown."""

from __future__ import annotations

import imaplib
import poplib
import socket
import struct

from tests.helpers import PASSWORD, RunningServer, make_config
from tests.servers.test_pop3_telnet import LAB_MESSAGES, Telnet, deliver_lab_mail
from tuimail.core.events import Protocol
from tuimail.servers.pop3 import StoreMaildrops
from tuimail.store import MailStore


def inbox(server, address: str = "tatareva@lab.test"):
    return server.engine.store.mailbox(address).folder("INBOX")


def logged_in(server) -> Telnet:
    t = Telnet(server.ports.pop3)
    t.line()
    assert t.command(b"user tatareva\n").startswith("+OK")
    assert t.command(b"pass Secret123\n").startswith("+OK")
    return t


def pop_sid(server) -> int:
    sessions = server.call(lambda: [s for s in server.engine.sessions if s.protocol is Protocol.POP3])
    (session,) = sessions
    return session.sid


def test_pop_deletions_are_seen_by_imap_style_access_and_the_other_way_round(server) -> None:
    deliver_lab_mail(server)
    folder = inbox(server)
    uids = [ref.uid for ref in folder.messages()]
    t = logged_in(server)
    assert t.command(b"dele 1\n") == "+OK Message 1 deleted"
    assert [ref.uid for ref in folder.messages()] == uids  # DELE only marks
    folder.expunge([uids[3]])  # an IMAP session expunges message 4 meanwhile
    assert t.command(b"retr 4\n") == "-ERR Message 4 is no longer available (removed by another session)"
    folder.set_flags(uids[1], "S")  # and flags message 2: POP3 can still read it
    assert t.multiline(b"retr 2\n")[-2] == "Hello number 2."
    assert t.command(b"quit\n").endswith("(2 messages left)")
    assert [ref.uid for ref in folder.messages()] == uids[1:3]
    server.engine.store.deliver("tatareva@lab.test", b"Subject: new\n\nnew\n")
    t = logged_in(server)
    assert t.command(b"stat\n").startswith("+OK 3 ")
    assert t.command(b"uidl 3\n") == f"+OK 3 {folder.uidvalidity}.{uids[3] + 1}"
    t.command(b"quit\n")


def test_messages_read_ahead_still_see_other_sessions_changes(server) -> None:
    """After each RETR the next message is read ahead; an expunge or a flag change made meanwhile by
    another session is seen as if it had not been (the RETR reads the disk again)."""
    deliver_lab_mail(server)
    folder = inbox(server)
    uids = [ref.uid for ref in folder.messages()]
    t = logged_in(server)
    assert t.multiline(b"retr 1\n")[-2] == "Hello number 1."
    assert t.command(b"noop\n") == "+OK"  # the server is done with RETR 1 and what follows it
    folder.expunge([uids[1]])  # message 2, read ahead, expunged by an IMAP session
    assert t.command(b"retr 2\n") == "-ERR Message 2 is no longer available (removed by another session)"
    assert t.command(b"noop\n") == "+OK"
    folder.set_flags(uids[2], "S")  # message 3, read ahead after that reply, renamed by a flag change
    assert t.multiline(b"retr 3\n")[-3:] == ["..A line with a dot.", "The end.", "."]
    assert t.multiline(b"retr 4\n")[-2:] == ["four", "."]
    assert t.command(b"quit\n").startswith("+OK")


def test_dropped_connection_after_dele_removes_nothing(server) -> None:
    deliver_lab_mail(server)
    t = logged_in(server)
    assert t.command(b"dele 1\n").startswith("+OK")
    assert t.command(b"dele 2\n").startswith("+OK")
    t.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset, no FIN
    t.close()
    server.wait_for(lambda: "POP session complete" in server.log_text("POP"))
    assert len(inbox(server).messages()) == 4
    assert "[connection lost]" in server.log_text("POP")
    again = poplib.POP3("127.0.0.1", server.ports.pop3, timeout=10)  # the lock was released
    again.user("tatareva")
    again.pass_(PASSWORD)
    assert again.stat()[0] == 4
    again.quit()


def test_kill_from_the_registry_closes_the_socket(server) -> None:
    t = logged_in(server)
    assert server.call(server.engine.sessions.kill, pop_sid(server)) is True
    assert t.until_eof() == b"-ERR Session closed by the administrator\r\n"
    t.close()
    server.wait_for(lambda: "POP session complete" in server.log_text("POP"))
    log = server.log_text("POP")
    assert "Session closed by the operator" in log and "[killed by operator]" in log
    assert "--> -ERR Session closed by the administrator" in log
    assert server.engine.store.try_lock_maildrop("tatareva@lab.test")  # released by the kill


def test_inactivity_timeout_says_goodbye(server) -> None:
    t = logged_in(server)
    sid = pop_sid(server)
    server.call(lambda: server.engine.sessions.get(sid).abort("timeout"))
    assert t.until_eof() == b"-ERR Inactivity timeout; closing the connection\r\n"
    t.close()


def test_server_shutdown_says_goodbye(tmp_path) -> None:
    running = RunningServer(make_config(tmp_path)).start()
    running.engine.directory.add_account("tatareva@lab.test", PASSWORD)
    t = Telnet(running.ports.pop3)
    t.line()
    running.stop()
    assert t.until_eof() == b"-ERR [SYS/TEMP] Server shutting down\r\n"
    t.close()


def test_many_messages_listed_without_reading_files(server) -> None:
    """LIST sizes come from the names: emptying the files on disk does not change them."""
    for data in LAB_MESSAGES * 5:
        server.engine.store.deliver("tatareva@lab.test", data)
    folder = inbox(server)
    for ref in folder.messages():
        folder.message_path(ref).write_bytes(b"")
    client = poplib.POP3("127.0.0.1", server.ports.pop3, timeout=10)
    client.user("tatareva")
    client.pass_(PASSWORD)
    sizes = [len(m) + m.count(b"\n") for m in LAB_MESSAGES * 5]
    assert client.list()[1] == [b"%d %d" % (n, s) for n, s in enumerate(sizes, 1)]
    client.quit()


def test_imap_session_keeps_working_and_sees_pop_deletions(server) -> None:
    deliver_lab_mail(server)
    imap = imaplib.IMAP4("127.0.0.1", server.ports.imap, timeout=10)
    imap.login("tatareva", PASSWORD)
    assert imap.select("INBOX") == ("OK", [b"4"])
    pop = poplib.POP3("127.0.0.1", server.ports.pop3, timeout=10)
    pop.user("tatareva")
    pop.pass_(PASSWORD)
    uidls = [line.split()[1].decode() for line in pop.uidl()[1]]
    _, fetched = imap.uid("FETCH", "1:*", "(UID)")
    assert [u.rpartition(".")[2] for u in uidls] == [f.split()[2].rstrip(b")").decode() for f in fetched]
    assert imap.store("2", "+FLAGS", "(\\Seen)")[0] == "OK"  # IMAP works while POP holds the maildrop
    pop.dele(1)
    assert pop.retr(2)[0].startswith(b"+OK")  # POP reads a message IMAP just renamed
    pop.quit()
    imap.noop()
    assert imap.response("EXPUNGE") == ("EXPUNGE", [b"1"])
    _, fetched = imap.uid("FETCH", "1:*", "(UID)")
    assert len(fetched) == 3
    imap.logout()


def test_snapshot_prepared_off_the_loop_is_used_only_while_the_folder_is_unchanged(tmp_path) -> None:
    store = MailStore(tmp_path)
    store.deliver("tatareva@lab.test", LAB_MESSAGES[0])
    drops = StoreMaildrops(store)
    drops.prepare("tatareva@lab.test")
    prepared = drops._prepared
    drop = drops.open("tatareva@lab.test")
    assert drop.messages() is prepared.messages and len(prepared.messages) == 1
    drop.release()
    drops.prepare("tatareva@lab.test")
    store.deliver("tatareva@lab.test", LAB_MESSAGES[1])  # arrives between the check and the lock
    drop = drops.open("tatareva@lab.test")
    assert [m.size for m in drop.messages()] == [len(m) + m.count(b"\n") for m in LAB_MESSAGES[:2]]
    assert drops.open("tatareva@lab.test") is None  # locked
    drop.release()
