"""Domains and accounts: rules, hashes only, atomic 0600 file, logins, postmaster, live reload."""

from __future__ import annotations

import json
import stat

import pytest

from tests.helpers import PASSWORD, make_config
from tuimail.config import Config
from tuimail.core.addresses import AddressError
from tuimail.core.directory import AuthOutcome, Directory, DirectoryError, Service
from tuimail.core.passwords import WeakPassword


@pytest.fixture
def directory(tmp_path):
    return Directory(make_config(tmp_path))


def test_account_is_stored_with_a_hash_only_and_mode_0600(directory):
    directory.add_account("Tatareva@Lab.Test", PASSWORD, full_name="Татарева", notes="группа 1", admin=True)
    path = directory.accounts_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text(encoding="utf-8")
    assert PASSWORD not in text
    record = json.loads(text)["accounts"][0]
    assert record["address"] == "tatareva@lab.test"
    assert record["password_hash"].startswith("$argon2id$")
    assert record["full_name"] == "Татарева"


def test_logins_by_full_address_or_bare_mailbox_of_the_first_domain(directory):
    directory.add_account("tatareva@lab.test", PASSWORD)
    directory.add_account("bob@other.test", PASSWORD)
    assert directory.authenticate("tatareva", PASSWORD, Service.POP3)[0] is AuthOutcome.OK
    assert directory.authenticate("TATAREVA@lab.test", PASSWORD, Service.IMAP)[0] is AuthOutcome.OK
    assert directory.authenticate("bob", PASSWORD, Service.IMAP)[0] is AuthOutcome.USER_UNKNOWN
    assert directory.authenticate("bob@other.test", PASSWORD, Service.IMAP)[0] is AuthOutcome.OK
    assert directory.authenticate("tatareva", "wrong", Service.POP3)[0] is AuthOutcome.PASSWORD_MISMATCH


def test_protocol_access_switches(directory):
    directory.add_account("nopop@lab.test", PASSWORD, pop=False)
    assert directory.authenticate("nopop", PASSWORD, Service.POP3)[0] is AuthOutcome.ACCESS_DISABLED
    assert directory.authenticate("nopop", PASSWORD, Service.IMAP)[0] is AuthOutcome.OK


@pytest.mark.parametrize(
    ("address", "password", "error", "match"),
    [
        ("bad name@lab.test", PASSWORD, AddressError, "Latin letters"),
        ("bob@unknown.test", PASSWORD, DirectoryError, "not hosted"),
        ("bob@lab.test", "short1A", WeakPassword, "too weak"),
        ("bob@lab.test", "alllowercase1", WeakPassword, "too weak"),
        ("bob@lab.test", "Bob12345x", WeakPassword, "mailbox name"),
    ],
)
def test_refused_accounts_say_why_and_write_nothing(directory, address, password, error, match):
    with pytest.raises(error, match=match):
        directory.add_account(address, password)
    assert not directory.accounts_path.exists()


def test_duplicate_account_refused(directory):
    directory.add_account("bob@lab.test", PASSWORD)
    with pytest.raises(DirectoryError, match="already exists"):
        directory.add_account("BOB@lab.test", PASSWORD)


def test_weak_passwords_allowed_when_the_policy_is_off(tmp_path):
    directory = Directory(make_config(tmp_path, require_strong_passwords=False))
    directory.add_account("student@lab.test", "student")
    assert directory.authenticate("student", "student", Service.POP3)[0] is AuthOutcome.OK


def test_postmaster_reaches_the_domain_admins(directory):
    directory.add_account("boss@lab.test", PASSWORD, admin=True)
    directory.add_account("pupil@lab.test", PASSWORD)
    assert directory.local_recipients("postmaster@lab.test") == ["boss@lab.test"]
    assert directory.local_recipients("Postmaster") == ["boss@lab.test"]
    # a domain without admins falls back to every admin (RFC 5321 §4.5.1 requires postmaster)
    assert directory.local_recipients("postmaster@other.test") == ["boss@lab.test"]
    assert directory.local_recipients("nobody@lab.test") is None


def test_another_process_changes_are_seen(tmp_path, monkeypatch):
    monkeypatch.setattr("tuimail.core.directory.REFRESH_INTERVAL", 0.0)  # look at the files every time
    config = make_config(tmp_path)
    running = Directory(config)
    cli = Directory(Config.load(config.path))
    cli.add_domain("new.test", "10.1.2.3")
    cli.add_account("late@new.test", PASSWORD)
    assert running.hosts("new.test")
    assert running.get("late@new.test") is not None


def test_domain_with_accounts_cannot_be_deleted(directory):
    directory.add_account("bob@lab.test", PASSWORD)
    with pytest.raises(DirectoryError, match="still has 1 account"):
        directory.delete_domain("lab.test")
    directory.delete_account("bob@lab.test")
    directory.delete_domain("lab.test")
    assert not directory.hosts("lab.test")


def test_update_account(directory):
    directory.add_account("bob@lab.test", PASSWORD)
    directory.update_account("bob@lab.test", password="NewSecret9", imap=False, notes="two\nlines")
    assert directory.authenticate("bob", "NewSecret9", Service.POP3)[0] is AuthOutcome.OK
    assert directory.authenticate("bob", "NewSecret9", Service.IMAP)[0] is AuthOutcome.ACCESS_DISABLED
    with pytest.raises(DirectoryError, match="cannot change"):
        directory.update_account("bob@lab.test", created="yesterday")
