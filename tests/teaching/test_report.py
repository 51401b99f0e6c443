"""`tuimail lab report` and `tuimail log show --explain`: a student's sessions over real sockets come
back as the report's sections (commands used, checklist, blocks annotated), in English and Russian."""

from __future__ import annotations

import imaplib
import smtplib

from tests.helpers import PASSWORD, RunningServer, make_config
from tuimail import i18n
from tuimail.cli import main
from tuimail.config import Config


def lab_sessions(tmp_path, language="en") -> Config:
    config = make_config(tmp_path)
    config.settings.server.language = language
    config.save()
    server = RunningServer(Config.load(config.path)).start()
    try:
        server.engine.directory.add_account("tatareva@lab.test", PASSWORD, full_name="Татьяна Татарева")
        server.engine.directory.add_account("tester@lab.test", PASSWORD)
        with smtplib.SMTP("127.0.0.1", config.settings.ports.smtp, timeout=10) as smtp:
            smtp.helo("admin")
            smtp.sendmail("tatareva@lab.test", ["tester@lab.test"], b"Subject: t\n\nhello\n")
        imap = imaplib.IMAP4("127.0.0.1", config.settings.ports.imap, timeout=10)
        imap.login("tatareva", PASSWORD)
        imap.select("INBOX")
        imap.logout()
        with smtplib.SMTP("127.0.0.1", config.settings.ports.smtp, timeout=10) as smtp:  # someone else's
            smtp.sendmail("tester@lab.test", ["tester@lab.test"], b"Subject: t\n\nmine\n")
        server.wait_for(lambda: server.log_text("IMAP").count("-----") >= 2 and server.log_text("SMTP-in").count("-----") >= 4)
    finally:
        server.stop()
        i18n.set_language("en")
    return Config.load(config.path)


def test_the_report_has_each_protocols_commands_checklist_and_annotated_blocks(tmp_path, capsys):
    config = lab_sessions(tmp_path)
    out_file = tmp_path / "report.md"
    assert main(["lab", "report", "tatareva", "--out", str(out_file), "--config", str(config.path)]) == 0
    text = out_file.read_text()
    smtp = text[text.index("## 2. Working with SMTP"):text.index("## 3.")]
    assert "Commands used: helo, mail from, rcpt to, data, quit." in smtp
    assert "- [x] HELO/EHLO" in smtp and "- [x] QUIT" in smtp
    assert "<-- mail FROM:<tatareva@lab.test>" in smtp and "= RFC 5321 §4.1.1.2:" in smtp
    assert "tester@lab.test> size" not in smtp.lower() and smtp.count("```") == 2  # only her session
    pop = text[text.index("## 3. Working with POP3"):text.index("## 4.")]
    assert "- [ ] USER" in pop and "No POP3 session of this student in the logs." in pop
    imap = text[text.index("## 4. Working with IMAP"):]
    assert "Commands used: capability, login, select, logout." in imap and "- [x] SELECT" in imap and "- [ ] FETCH" in imap
    assert "= RFC 3501 §6.3.1:" in imap and "## 5. Conclusions" in imap


def test_report_in_russian_and_an_unknown_account(tmp_path, capsys):
    config = lab_sessions(tmp_path, "ru")
    assert main(["lab", "report", "tatareva@lab.test", "--config", str(config.path)]) == 0
    text = capsys.readouterr().out
    assert "## 2. Работа по протоколу SMTP" in text and "Прием SMTP соединения от" in text
    assert "Открывает сессию и называет клиента" in text
    assert main(["lab", "report", "nobody@lab.test", "--config", str(config.path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no account nobody@lab.test" in err[0]
    i18n.set_language("en")


def test_log_show_explain_puts_each_lines_note_under_it(tmp_path, capsys):
    config = lab_sessions(tmp_path)
    assert main(["log", "show", "--protocol", "imap", "--explain", "--config", str(config.path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    login = next(i for i, line in enumerate(lines) if "<-- " in line and " LOGIN " in line.upper())
    assert lines[login + 1].startswith("    = RFC 3501 §6.2.3:")
    assert main(["log", "show", "--protocol", "imap", "--config", str(config.path)]) == 0
    assert "= RFC" not in capsys.readouterr().out
