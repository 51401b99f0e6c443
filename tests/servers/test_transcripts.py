"""`[teaching] mail_transcripts`: each session's log block lands in its student's Transcripts folder,
byte-exact with the log file, and is read back over IMAP and POP3 never sees it in INBOX."""

from __future__ import annotations

import imaplib
import poplib
import re
import smtplib

import pytest

from tests.helpers import PASSWORD, RunningServer, make_config
from tuimail.core.logblocks import read_blocks


@pytest.fixture
def lab(tmp_path):
    config = make_config(tmp_path)
    config.settings.teaching.mail_transcripts = True
    config.save()
    running = RunningServer(config).start()
    running.engine.directory.add_account("tatareva@lab.test", PASSWORD, admin=True)
    running.engine.directory.add_account("tester@lab.test", PASSWORD)
    yield running
    running.stop()


def transcripts(server, address):
    folder = server.engine.store.mailbox(address).folder("Transcripts", create=True)
    return [folder.read(ref.uid) for ref in folder.messages()]


def imap_transcripts(server, login) -> list[bytes]:
    imap = imaplib.IMAP4("127.0.0.1", server.ports.imap, timeout=10)
    imap.login(login, PASSWORD)
    typ, data = imap.select("Transcripts", readonly=True)
    count = int(data[0])
    bodies = [imap.fetch(str(n), "(BODY.PEEK[])")[1][0][1] for n in range(1, count + 1)]
    imap.logout()
    return bodies


def test_a_pop3_session_is_mailed_to_its_student_never_into_inbox(lab):
    pop = poplib.POP3("127.0.0.1", lab.ports.pop3, timeout=10)
    pop.user("tatareva")
    pop.pass_(PASSWORD)
    assert pop.stat()[0] == 0
    pop.quit()
    lab.wait_for(lambda: len(transcripts(lab, "tatareva@lab.test")) == 1)
    [mail] = imap_transcripts(lab, "tatareva")
    [block] = [b for b in read_blocks(lab.config.log_dir, ["pop3"])]
    header, _, body = mail.partition(b"\r\n\r\n")
    assert body == block.raw.replace(b"\n", b"\r\n")  # exactly the file's block
    subject = re.search(rb"Subject: (.*)", header).group(1).decode().strip()
    assert subject == f"POP3 session {block.session}, {block.started:%Y-%m-%d %H:%M}"
    assert b"PASS *****" in body and PASSWORD.encode() not in mail
    assert b"Content-Type: text/plain; charset=utf-8" in header
    pop = poplib.POP3("127.0.0.1", lab.ports.pop3, timeout=10)  # the INBOX it reads holds no transcript
    pop.user("tatareva@lab.test")
    pop.pass_(PASSWORD)
    assert pop.stat()[0] == 0
    pop.quit()
    lab.wait_for(lambda: len(transcripts(lab, "tatareva@lab.test")) == 3)  # that session and the IMAP one


def test_smtp_sessions_go_to_the_local_sender_and_failures_to_nobody(lab):
    with smtplib.SMTP("127.0.0.1", lab.ports.smtp, timeout=10) as smtp:
        smtp.command_encoding = "utf-8"  # as a student types it into telnet
        smtp.helo("Петруха")
        smtp.sendmail("tester@lab.test", ["tatareva"], "Subject: отправка письма\r\n\r\nтекст\r\n".encode())
    pop = poplib.POP3("127.0.0.1", lab.ports.pop3, timeout=10)
    pop.user("tatareva")
    with pytest.raises(poplib.error_proto):
        pop.pass_("wrong")
    pop.quit()
    lab.wait_for(lambda: len(transcripts(lab, "tester@lab.test")) == 1 and "-----" in lab.log_text("POP"))
    [mail] = transcripts(lab, "tester@lab.test")
    assert re.search(rb"Subject: SMTP session \d+, \d{4}-\d\d-\d\d \d\d:\d\d\n", mail)
    assert "<-- helo Петруха".encode() in mail and b"Message saved for tatareva@lab.test" in mail
    assert transcripts(lab, "tatareva@lab.test") == []  # a recipient or a failed login gets none
    [tatareva_inbox] = lab.engine.store.mailbox("tatareva@lab.test").folder("INBOX").messages()


def test_off_by_default(server):
    pop = poplib.POP3("127.0.0.1", server.ports.pop3, timeout=10)
    pop.user("tatareva")
    pop.pass_(PASSWORD)
    pop.quit()
    server.wait_for(lambda: "-----" in server.log_text("POP"))
    assert not (server.engine.store.mailbox("tatareva@lab.test").path / ".Transcripts").exists()
