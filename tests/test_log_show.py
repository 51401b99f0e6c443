"""`tuimail log show`: a student's own session blocks, over real sessions on 127.0.0.1."""

from __future__ import annotations

import imaplib
import poplib
import smtplib

from tests.helpers import PASSWORD
from tuimail.cli import main


def pop_session(server, login, password=PASSWORD):
    pop = poplib.POP3("127.0.0.1", server.ports.pop3, timeout=10)
    pop.user(login)
    try:
        pop.pass_(password)
    except poplib.error_proto:
        pass
    pop.quit()


def test_log_show_prints_a_students_blocks_exactly(server, capsysbinary):
    cfg = str(server.config.path)
    pop_session(server, "tatareva")  # a bare name: the primary domain
    pop_session(server, "tester@lab.test")
    imap = imaplib.IMAP4("127.0.0.1", server.ports.imap, timeout=10)
    imap.login("tatareva", PASSWORD)
    imap.logout()
    with smtplib.SMTP("127.0.0.1", server.ports.smtp, timeout=10) as smtp:
        smtp.helo("admin")
        smtp.sendmail("tatareva@lab.test", ["tester@lab.test"], b"Subject: hi\r\n\r\nhi\r\n")
    server.wait_for(lambda: server.log_text("IMAP").count("-----") == 2 and server.log_text("SMTP-in").count("-----") == 2
                    and server.log_text("POP").count("-----") == 4)

    assert main(["log", "show", "--user", "tatareva", "--config", cfg]) == 0
    out = capsysbinary.readouterr().out
    assert out.count(b"; POP3 on port") == 1 and out.count(b"; IMAP on port") == 1 and out.count(b"; SMTP on port") == 1
    assert b"Authenticated as tatareva@lab.test" in out and b"Authenticated as tester" not in out
    assert PASSWORD.encode() not in out and b"PASS *****" in out
    pop_log = (server.config.log_dir / "POP.log").read_bytes()
    start = out.rindex(b"-----\n", 0, out.index(b"; POP3 on port"))
    pop_block = out[start - 25: out.index(b"-----\n", start + 6) + 6]
    assert pop_log.startswith(pop_block)  # byte-exact, the whole block (session 1 was the first)

    assert main(["log", "show", "--protocol", "pop3", "--session", "2", "--config", cfg]) == 0
    out = capsysbinary.readouterr().out
    assert out.count(b"Session 2; POP3") == 1 and b"Authenticated as tester@lab.test" in out and b"Session 1;" not in out

    assert main(["log", "show", "--since", "1h", "--protocol", "imap", "--config", cfg]) == 0
    assert capsysbinary.readouterr().out.count(b"; IMAP on port") == 1


def test_log_show_finds_nothing_in_one_line(server, capsysbinary):
    cfg = str(server.config.path)
    pop_session(server, "tatareva", "wrong")
    server.wait_for(lambda: "-----" in server.log_text("POP"))
    assert "Authentication failed for tatareva@lab.test" in server.log_text("POP")  # the full address tried
    assert main(["log", "show", "--user", "ghost@lab.test", "--config", cfg]) == 1
    err = capsysbinary.readouterr().err.decode()
    assert err.startswith("tuimail: no session found") and "ghost@lab.test" in err and err.count("\n") == 1
    assert main(["log", "show", "--session", "999", "--config", cfg]) == 1
    assert "session 999" in capsysbinary.readouterr().err.decode()
    assert main(["log", "show", "--since", "soon", "--config", cfg]) == 1
    assert "--since 'soon'" in capsysbinary.readouterr().err.decode()
