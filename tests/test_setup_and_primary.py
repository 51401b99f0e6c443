"""`tuimail setup` (the installer without a screen) and the primary domain, end to end: the CLI
writes the files, a real server on 127.0.0.1 then answers bare names for the group's own domain."""

from __future__ import annotations

import imaplib
import io
import poplib
import smtplib
import socket
import sys
from pathlib import Path

import pytest

from tests.helpers import PASSWORD, HostedServer, RunningServer, free_port, make_config
from tuimail.cli import main
from tuimail.config import Config, DomainSettings, Settings, save_settings


@pytest.fixture
def shipped(tmp_path) -> str:
    """A config as shipped: the lab.test placeholder, no account, free ports."""
    settings = Settings(domains=[DomainSettings(name="lab.test")])
    ports = settings.ports
    ports.address = "127.0.0.1"
    ports.smtp, ports.submission, ports.pop3, ports.imap = (free_port() for _ in range(4))
    path = tmp_path / "config.toml"
    save_settings(settings, path)
    return str(path)


def run(argv, stdin="", monkeypatch=None):
    if monkeypatch is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return main(argv)


def files(cfg: str) -> list[tuple[str, bytes]]:
    root = Path(cfg).parent
    return sorted((str(p.relative_to(root)), p.read_bytes()) for p in root.rglob("*") if p.is_file())


def pop_login(port: int, login: str) -> bytes:
    pop = poplib.POP3("127.0.0.1", port, timeout=10)
    pop.user(login)
    reply = pop.pass_(PASSWORD)
    pop.quit()
    return reply


def test_setup_then_the_lab_works_with_bare_names(shipped, capsys, monkeypatch):
    argv = ["setup", "--domain", "Group7.test", "--admin", "admin", "--full-name", "Администратор",
            "--password-stdin", "--config", shipped]
    assert run(argv, PASSWORD + "\n", monkeypatch) == 0
    out = capsys.readouterr().out
    assert "domain group7.test (primary, 127.0.0.1), hostname mail.group7.test, administrator admin@group7.test" in out
    config = Config.load(Path(shipped))
    settings = config.settings
    assert [d.name for d in settings.domains] == ["group7.test"]  # the placeholder is replaced
    assert settings.server.primary_domain == "group7.test" and settings.server.hostname == "mail.group7.test"
    server = RunningServer(config).start()
    try:
        assert pop_login(server.ports.pop3, "admin").startswith(b"+OK admin@group7.test's mailbox")
        with smtplib.SMTP("127.0.0.1", server.ports.smtp, timeout=10) as smtp:
            assert b"mail.group7.test" in smtp.ehlo()[1]
            smtp.mail("student@example.org")
            assert smtp.rcpt("postmaster") == (250, b"2.1.5 <postmaster@group7.test>, Recipient ok")
            smtp.data(b"Subject: hello\r\n\r\nhi\r\n")
        server.wait_for(lambda: len(server.engine.store.mailbox("admin@group7.test").folder("INBOX").messages()) == 1)
    finally:
        server.stop()
    before = files(shipped)
    assert run(argv, PASSWORD + "\n", monkeypatch) == 1  # a second setup is refused
    err = capsys.readouterr().err
    assert err.startswith("tuimail: this server is already set up (1 account(s), primary domain group7.test)")
    assert err.count("\n") == 1 and files(shipped) == before


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--domain", "bad_domain", "--admin", "admin"], PASSWORD, "--domain: domain name 'bad_domain' is not valid"),
        (["--domain", "g7.test", "--admin", "bad name"], PASSWORD, "--admin: mailbox name 'bad name' is not valid"),
        (["--domain", "g7.test", "--admin", "admin", "--ip", "300.1.1.1"], PASSWORD, "--ip:"),
        (["--domain", "g7.test", "--admin", "admin", "--hostname=bad_host"], PASSWORD, "--hostname:"),
        (["--domain", "g7.test", "--admin", "admin"], "simple", "too weak"),
        (["--domain", "g7.test", "--admin", "admin"], "", "nothing on standard input"),
        (["--domain", "g7.test", "--admin", "admin", "--language", "de"], PASSWORD, "--language: 'de' is not one of: en, ru"),
    ],
)
def test_setup_bad_input_is_one_line_exit_1_nothing_written(shipped, capsys, monkeypatch, args, stdin, message):
    before = files(shipped)
    assert run(["setup", *args, "--password-stdin", "--config", shipped], stdin, monkeypatch) == 1
    err = capsys.readouterr().err
    assert err.startswith("tuimail: ") and message in err and err.count("\n") == 1
    if message == "too weak":
        assert "--weak-passwords" in err  # names the switch that relaxes it
    assert files(shipped) == before


def test_setup_with_weak_passwords_turns_the_policy_off(shipped, monkeypatch):
    argv = ["setup", "--domain", "g7.test", "--admin", "admin", "--weak-passwords", "--password-stdin", "--config", shipped]
    assert run(argv, "admin\n", monkeypatch) == 0
    assert Config.load(Path(shipped)).settings.policy.require_strong_passwords is False


def test_setup_language_sets_the_server_language_and_the_log_phrases(shipped, capsys, monkeypatch):
    from tuimail import i18n

    argv = ["setup", "--domain", "g7.test", "--admin", "admin", "--language", "ru", "--password-stdin", "--config", shipped]
    assert run(argv, f"{PASSWORD}\n", monkeypatch) == 0
    assert "language ru" in capsys.readouterr().out
    config = Config.load(Path(shipped))
    assert config.settings.server.language == "ru"
    server = RunningServer(config).start()  # the log files' own phrases in Russian
    try:
        with smtplib.SMTP("127.0.0.1", config.settings.ports.smtp, timeout=10) as client:
            client.noop()
        server.wait_for(lambda: "Прием SMTP соединения от [127.0.0.1 : " in server.log_text("SMTP-in"))
    finally:
        server.stop()
        i18n.set_language("en")


def test_a_taken_mailbox_refuses_setup(shipped, capsys, monkeypatch):
    assert run(["account", "add", "admin@lab.test", "--password-stdin", "--config", shipped], PASSWORD, monkeypatch) == 0
    before = files(shipped)
    assert run(["setup", "--domain", "lab.test", "--admin", "admin", "--password-stdin", "--config", shipped],
               PASSWORD, monkeypatch) == 1
    assert "already set up" in capsys.readouterr().err and files(shipped) == before


def test_domain_primary_moves_bare_names_over_every_protocol(tmp_path, capsys, monkeypatch):
    config = make_config(tmp_path)  # lab.test (first) and other.test
    cfg = str(config.path)
    server = HostedServer(config).start()
    try:
        assert run(["domain", "add", "group7.test", "--primary", "--config", cfg]) == 0
        assert run(["account", "add", "tatareva@group7.test", "--admin", "--password-stdin", "--config", cfg],
                   PASSWORD, monkeypatch) == 0
        assert run(["account", "add", "tatareva@lab.test", "--password-stdin", "--config", cfg], PASSWORD, monkeypatch) == 0
        assert run(["domain", "list", "--config", cfg]) == 0
        assert "group7.test  127.0.0.1  1         yes" in capsys.readouterr().out
        directory = server.engine.directory
        server.wait_for(lambda: directory.primary_domain == "group7.test")  # seen without a restart
        assert pop_login(server.ports.pop3, "tatareva").startswith(b"+OK tatareva@group7.test's mailbox")
        imap = imaplib.IMAP4("127.0.0.1", server.ports.imap, timeout=10)
        imap.login("tatareva", PASSWORD)
        imap.logout()
        imap = imaplib.IMAP4("127.0.0.1", server.ports.imap, timeout=10)
        assert imap.authenticate("PLAIN", lambda _: f"\0tatareva\0{PASSWORD}".encode())[0] == "OK"  # bare AUTHENTICATE
        imap.logout()
        with smtplib.SMTP("127.0.0.1", server.ports.submission, timeout=10) as smtp:
            smtp.ehlo()
            smtp.login("tatareva", PASSWORD)
            smtp.mail("tatareva@group7.test")
            assert smtp.rcpt("tatareva")[1] == b"2.1.5 <tatareva@group7.test>, Recipient ok"
            smtp.rset()
        sock = socket.create_connection(("127.0.0.1", server.ports.pop3), timeout=10)
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(b"user tatareva\npass wrong\n")
        f.readline()
        assert f.readline().startswith(b"-ERR")
        f.close()
        sock.close()
        assert run(["domain", "primary", "lab.test", "--config", cfg]) == 0
        assert "lab.test is now the primary domain" in capsys.readouterr().out
        server.wait_for(lambda: directory.primary_domain == "lab.test")
        assert pop_login(server.ports.pop3, "tatareva").startswith(b"+OK tatareva@lab.test's mailbox")
        server.wait_for(lambda: "Authentication failed for tatareva@group7.test: password mismatch" in server.log_text("POP"))
        assert run(["domain", "del", "lab.test", "--config", cfg]) == 1
        assert "primary" in capsys.readouterr().err
        assert run(["domain", "primary", "nowhere.test", "--config", cfg]) == 1
        assert "no domain nowhere.test" in capsys.readouterr().err
    finally:
        server.stop()


def test_the_readme_lab_steps_work_typed_literally(tmp_path):
    """Steps 2 and 3 of "The lab, step by step", run as written with the venv's tuimail on PATH, in a
    folder holding the shipped config.toml."""
    import os
    import re
    import shutil
    import subprocess

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    steps = re.findall(r"^\s*`(echo '[^`]*\| tuimail (?:setup|account add) [^`]*)`\s*$", readme, re.M)
    assert len(steps) == 2, steps
    shutil.copy(root / "config.toml", tmp_path / "config.toml")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for step in [*steps, "tuimail domain list"]:
        done = subprocess.run(step, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (step, done.stderr)
    assert re.search(r"group7\.test\s+192\.0\.2\.7\s+2\s+yes", done.stdout)


def test_setup_goes_through_a_running_server(shipped, capsys, monkeypatch):
    server = HostedServer(Config.load(Path(shipped))).start()
    try:
        argv = ["setup", "--domain", "group7.test", "--admin", "admin", "--password-stdin", "--config", shipped]
        assert run(argv, PASSWORD + "\n", monkeypatch) == 0
        assert "administrator admin@group7.test" in capsys.readouterr().out
        assert server.engine.directory.primary_domain == "group7.test"  # the server wrote it: no restart
        assert pop_login(server.ports.pop3, "admin").startswith(b"+OK admin@group7.test's mailbox")
        server.wait_for(lambda: "Set up by" in server.log_text("system"))
    finally:
        server.stop()
