"""Lab reset: refused while a server runs; then an archive that holds the old mail, logs and progress,
and empty mailboxes, logs and progress (accounts removed unless kept)."""

from __future__ import annotations

import smtplib
import tarfile

from tests.helpers import PASSWORD, RunningServer, make_config
from tuimail.cli import main
from tuimail.core.directory import Directory
from tuimail.store import MailStore


def test_reset_archives_the_old_mail_and_leaves_empty_mailboxes(tmp_path, capsys):
    config = make_config(tmp_path)
    Directory(config).add_account("tatareva@lab.test", PASSWORD, full_name="Татьяна Татарева")
    server = RunningServer(config).start()
    try:
        with smtplib.SMTP("127.0.0.1", config.settings.ports.smtp, timeout=10) as smtp:
            smtp.sendmail("tatareva@lab.test", ["tatareva@lab.test"], "Subject: отчёт\n\nлабораторная 7\n".encode())
        server.wait_for(lambda: server.engine.progress.done("tatareva@lab.test"))
        assert main(["lab", "reset", "--config", str(config.path)]) == 1  # refused while it runs
        err = capsys.readouterr().err
        assert "a server is running on this config" in err and "stop it first" in err
    finally:
        server.stop()
    assert MailStore(config.data_dir).mailbox("tatareva@lab.test").totals()[0] == 1
    archive = tmp_path / "group7.tar.gz"
    assert main(["lab", "reset", "--keep-accounts", "--archive", str(archive), "--config", str(config.path)]) == 0
    assert "accounts kept" in capsys.readouterr().out
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        message = next(n for n in names if n.startswith("mail/lab.test/tatareva/new/"))
        assert "лабораторная 7" in tar.extractfile(message).read().decode()
        assert "logs/SMTP-in.log" in names and "progress.json" in names
    assert MailStore(config.data_dir).mailbox("tatareva@lab.test").totals() == (0, 0)
    assert not (config.log_dir / "SMTP-in.log").exists()
    assert not (config.data_dir / "progress.json").exists()
    assert Directory(config).get("tatareva@lab.test") is not None
    # the next reset, without --keep-accounts, removes them; the default archive sits beside config.toml
    assert main(["lab", "reset", "--config", str(config.path)]) == 0
    assert "1 account(s) removed" in capsys.readouterr().out
    assert Directory(config).accounts() == [] and list(tmp_path.glob("lab-archive-*.tar.gz"))
