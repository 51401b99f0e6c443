"""The command line: every subcommand, and one clear line with a non-zero exit for bad input."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from tests.helpers import PASSWORD, make_config
from tuimail.cli import main
from tuimail.config import Config


@pytest.fixture
def cfg(tmp_path):
    return str(make_config(tmp_path).path)


def run(argv, stdin="", monkeypatch=None):
    if monkeypatch is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return main(argv)


def test_account_lifecycle(cfg, capsys, monkeypatch):
    assert run(["account", "add", "Tatareva@lab.test", "--config", cfg, "--password-stdin", "--full-name", "Т. Татарева",
                "--admin", "--notes", "группа 7"], PASSWORD + "\n", monkeypatch) == 0
    assert run(["--config", cfg, "account", "list"]) == 0
    out = capsys.readouterr().out
    assert "tatareva@lab.test" in out and "Т. Татарева" in out and "группа 7" in out
    assert run(["account", "set", "tatareva@lab.test", "--no-pop", "--config", cfg]) == 0
    accounts = json.loads((Config.load(__import__("pathlib").Path(cfg)).data_dir / "accounts.json").read_text())
    assert accounts["accounts"][0]["pop"] is False
    assert PASSWORD not in json.dumps(accounts)
    assert run(["account", "del", "tatareva@lab.test", "--config", cfg]) == 0
    assert "its mail is kept" in capsys.readouterr().out


def test_domains(cfg, capsys):
    assert run(["domain", "add", "group7.test", "--ip", "192.0.2.7", "--config", cfg]) == 0
    assert run(["domain", "list", "--config", cfg]) == 0
    assert "group7.test  192.0.2.7" in capsys.readouterr().out
    assert run(["domain", "del", "group7.test", "--config", cfg]) == 0


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["account", "add", "bad name@lab.test", "--password-stdin"], PASSWORD, "mailbox name 'bad name' is not valid"),
        (["account", "add", "bob@nowhere.test", "--password-stdin"], PASSWORD, "domain nowhere.test is not hosted"),
        (["account", "add", "bob@lab.test", "--password-stdin"], "weak", "the password is too weak"),
        (["account", "add", "bob@lab.test", "--password-stdin"], "", "nothing on standard input"),
        (["account", "add", "bob@lab.test"], "", "use --password-stdin"),
        (["account", "del", "ghost@lab.test"], "", "no account ghost@lab.test"),
        (["account", "set", "ghost@lab.test", "--admin"], "", "no account ghost@lab.test"),
        (["domain", "add", "bad_domain"], "", "domain name 'bad_domain' is not valid"),
        (["domain", "add", "lab.test"], "", "domain lab.test already exists"),
        (["domain", "add", "x.test", "--ip", "999.1.1.1"], "", "is not an IP address"),
        (["domain", "del", "ghost.test"], "", "no domain ghost.test"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(cfg, capsys, monkeypatch, argv, stdin, message):
    before = sorted(p.read_bytes() for p in __import__("pathlib").Path(cfg).parent.rglob("*") if p.is_file())
    assert run(argv + ["--config", cfg], stdin, monkeypatch) == 1
    err = capsys.readouterr().err
    assert err.startswith("tuimail: ") and message in err and err.count("\n") == 1
    after = sorted(p.read_bytes() for p in __import__("pathlib").Path(cfg).parent.rglob("*") if p.is_file())
    assert before == after  # nothing written


def test_duplicate_account(cfg, capsys, monkeypatch):
    assert run(["account", "add", "bob@lab.test", "--password-stdin", "--config", cfg], PASSWORD, monkeypatch) == 0
    assert run(["account", "add", "BOB@lab.test", "--password-stdin", "--config", cfg], PASSWORD, monkeypatch) == 1
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[ports]\nsmtp = 'x'\n", ":2: ports.smtp: Input should be a valid integer"),
        ("[server\n", "TOML syntax error"),
        ("[policy]\nunknown_key = 1\n", ":2: policy.unknown_key: unknown key"),
    ],
)
def test_check_reports_config_errors(tmp_path, capsys, text, message):
    path = tmp_path / "config.toml"
    path.write_text(text)
    assert main(["check", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert str(path) in err and message in err and "Traceback" not in err


def test_check_prints_the_effective_settings(cfg, capsys):
    assert main(["check", "--config", cfg]) == 0
    out = capsys.readouterr().out
    assert "is valid" in out and "[ports]" in out and "[[domains]]" in out


def test_missing_config_file(tmp_path, capsys):
    assert main(["check", "--config", str(tmp_path / "nope.toml")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_the_console_script_runs(cfg):
    result = subprocess.run([sys.executable, "-m", "tuimail", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("tuimail ")
