"""Roster import: a Russian class list from a spreadsheet (UTF-8 with BOM, `;`) becomes accounts whose
generated passwords work over POP3; any bad row lists every problem by line and creates nothing."""

from __future__ import annotations

import csv
import io
import poplib

import pytest

from tests.helpers import RunningServer, make_config
from tuimail.cli import main
from tuimail.core.directory import Directory
from tuimail.teaching.roster import mailbox_candidates, plan, readable_password

ROSTER = ("\ufeffФИО;Ящик;Примечание\r\n"
          "Татьяна Татарева;;Татарева Т., группа 7\r\n"
          "Татарева Анна Ивановна;;группа 7\r\n"
          "Щукин Юрий;yshchukin;\r\n"
          "\r\n"
          "Ёлкина Ольга;;\"многострочное\r\nпримечание\"\r\n").encode("utf-8")


@pytest.fixture
def config(tmp_path):
    return make_config(tmp_path)


def run(config, *argv):
    return main([*argv, "--config", str(config.path)])


def test_a_russian_roster_makes_accounts_whose_passwords_work_over_pop3(config, tmp_path, capsys):
    path = tmp_path / "roster.csv"
    path.write_bytes(ROSTER)
    sheet = tmp_path / "sheet.csv"
    assert run(config, "account", "import", str(path), "--sheet", str(sheet)) == 0
    assert "4 account(s) created in lab.test" in capsys.readouterr().out
    assert sheet.stat().st_mode & 0o777 == 0o600
    rows = list(csv.DictReader(io.StringIO(sheet.read_text(encoding="utf-8-sig"))))
    assert [r["address"] for r in rows] == ["tatareva@lab.test", "atatareva@lab.test", "yshchukin@lab.test",
                                            "elkina@lab.test"]
    accounts = {a.address: a for a in Directory(config).accounts()}
    assert accounts["tatareva@lab.test"].notes == "Татарева Т., группа 7"
    assert accounts["elkina@lab.test"].notes == "многострочное\nпримечание"
    assert all(r["password"] not in (config.data_dir / "accounts.json").read_text() for r in rows)
    server = RunningServer(config).start()
    try:
        for row in rows[:2]:
            pop = poplib.POP3("127.0.0.1", config.settings.ports.pop3, timeout=10)
            pop.user(row["address"])
            assert pop.pass_(row["password"]).startswith(b"+OK")
            pop.quit()
    finally:
        server.stop()
    # the same roster again: refused, line by line, nothing created
    assert run(config, "account", "import", str(path)) == 1
    err = capsys.readouterr().err
    assert "line 2: Татьяна Татарева already has an account, tatareva@lab.test" in err
    assert "line 4: account yshchukin@lab.test already exists" in err
    assert len(Directory(config).accounts()) == 4


def test_every_problem_is_listed_by_line_and_nothing_is_created(config, tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("Full name,Mailbox,Notes\nIvan Ivanov,ivanov,\n,,no name\nPetr Petrov,ivanov,\nA B,bad name!,\n"
                    "Anna Smirnova,,\n", encoding="utf-8")
    assert run(config, "account", "import", str(path), "--domain", "lab.test") == 1
    err = capsys.readouterr().err.splitlines()
    assert any("line 3: empty full name" in e for e in err)
    assert any("line 4: mailbox ivanov is also on line 2" in e for e in err)
    assert any("line 5: mailbox name 'bad name!' is not valid" in e for e in err)
    assert err[-1] == "tuimail: nothing imported (3 problem(s))"
    assert Directory(config).accounts() == []
    assert run(config, "account", "import", str(path), "--domain", "nowhere.test") == 1
    assert "domain nowhere.test is not hosted here" in capsys.readouterr().err


def test_a_broken_encoding_names_the_line(config, tmp_path, capsys):
    path = tmp_path / "cp1251.csv"
    path.write_bytes("Ivan Ivanov\nТатьяна Татарева\n".encode("cp1251"))
    assert run(config, "account", "import", str(path)) == 1
    err = capsys.readouterr().err
    assert "line 2: not UTF-8" in err and Directory(config).accounts() == []


def test_a_100000_row_roster_is_answered_at_once_and_nothing_created(config, tmp_path, capsys):
    path = tmp_path / "huge.csv"
    path.write_text("".join(f"Student Number{n};;\n" for n in range(100_000)), encoding="utf-8")
    assert run(config, "account", "import", str(path), "--dry-run") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1  # one line
    assert "huge.csv: 100000 students, at most 5000 per import" in err and "nothing imported" in err
    assert Directory(config).accounts() == []
    assert run(config, "account", "import", str(path)) == 1  # not only in a dry run: nothing is hashed
    assert "split the file" in capsys.readouterr().err and Directory(config).accounts() == []


def test_dry_run_shows_the_plan_and_changes_nothing(config, tmp_path, capsys):
    path = tmp_path / "roster.csv"
    path.write_bytes(ROSTER)
    assert run(config, "account", "import", str(path), "--dry-run") == 0
    out = capsys.readouterr().out
    assert "tatareva@lab.test" in out and "dry run: nothing changed" in out
    assert Directory(config).accounts() == []


def test_names_and_passwords():
    assert mailbox_candidates("Татьяна Татарева") == ["tatareva", "ttatareva"]
    assert mailbox_candidates("Татарева Татьяна Ивановна")[:2] == ["tatareva", "ttatareva"]
    result = plan("Татьяна Татарева\n".encode(), "lab.test", {"tatareva"})
    assert [s.mailbox for s in result.students] == ["ttatareva"]
    for _ in range(50):
        password = readable_password("tatareva")
        assert len(password) >= 8 and any(c.isdigit() for c in password) and password != password.lower()
