"""CREATE-SPECIAL-USE (RFC 6154 §3): CREATE name (USE (...)), stored per account, shown by LIST (§5)."""

import pytest

from tests.protocols.imap.harness import Driver
from tuimail.store import specialuse
from tuimail.store.maildir import MailStore


@pytest.fixture
def store(tmp_path):
    return MailStore(tmp_path / "data")


@pytest.fixture
def d(store):
    driver = Driver(store)
    driver.login()
    return driver


def listed(d, pattern="*", options=""):
    return [line for line in d.cmd(f'l1 list {options}"" "{pattern}"') if line.startswith("* LIST")]


def test_defaults_are_listed_without_any_file(d, store):
    lines = listed(d)
    assert '* LIST (\\HasNoChildren \\Sent) "/" "Sent"' in lines
    assert '* LIST (\\HasNoChildren \\Trash) "/" "Trash"' in lines
    assert not (store.mailbox("tatareva@lab.test").path / specialuse.FILE).exists()
    assert "CREATE-SPECIAL-USE" in d.cmd("c0 capability")[0].split()


def test_create_with_use_is_stored_and_listed_by_every_session(d, store):
    assert d.cmd('c1 create "Old mail" (USE (\\archive))') == ["c1 OK CREATE completed"]
    assert '* LIST (\\HasNoChildren \\Archive) "/" "Old mail"' in listed(d)
    other = Driver(store)
    other.login()
    assert listed(other, options="(SPECIAL-USE) ") == [
        '* LIST (\\Drafts) "/" "Drafts"',
        '* LIST (\\Junk) "/" "Junk"',
        '* LIST (\\Archive) "/" "Old mail"',
        '* LIST (\\Sent) "/" "Sent"',
        '* LIST (\\Trash) "/" "Trash"',
    ]
    text = (store.mailbox("tatareva@lab.test").path / specialuse.FILE).read_text()
    assert "Old mail\t\\Archive\n" in text and "Sent\t\\Sent\n" in text


@pytest.mark.parametrize("use, why", [
    ("\\Flagged", "virtual folder"),
    ("\\All", "virtual folder"),
    ("\\Important", "is not a special use"),
    ("\\Sent", "already belongs to Sent"),
])
def test_unsupported_or_taken_attribute_is_refused_and_nothing_is_created(d, use, why):
    reply = d.cmd(f"c1 create Box/Sub (USE ({use}))")[-1]
    assert reply.startswith("c1 NO [USEATTR] ") and why in reply
    assert listed(d, "Box*") == []


def test_malformed_create_parameters_are_bad(d):
    assert d.cmd("c1 create A (USE)")[-1].startswith("c1 BAD ")
    assert d.cmd("c2 create A (COLOR (red))")[-1].startswith("c2 BAD ")
    assert d.cmd("c3 create A (USE (Sent))")[-1].startswith("c3 BAD ")
    assert d.cmd("c4 create A extra")[-1].startswith("c4 BAD ")
    assert d.cmd("c5 create A (USE ())") == ["c5 OK CREATE completed"]


def test_rename_carries_the_use_and_delete_drops_it(d):
    d.cmd("c1 create Arch (USE (\\Archive))")
    assert d.cmd("r1 rename Arch Old/Arch") == ["r1 OK RENAME completed"]
    assert '* LIST (\\HasNoChildren \\Archive) "/" "Old/Arch"' in listed(d)
    d.cmd("d1 delete Old/Arch")
    assert d.cmd("c2 create Old/Arch") == ["c2 OK CREATE completed"]
    assert '* LIST (\\HasNoChildren) "/" "Old/Arch"' in listed(d)
    assert d.cmd("c3 create Again (USE (\\Archive))") == ["c3 OK CREATE completed"]


def test_deleted_default_comes_back_with_its_use_unless_taken(d, store):
    d.cmd("d1 delete Junk")
    assert d.cmd("c1 create Spam (USE (\\Junk))") == ["c1 OK CREATE completed"]
    d.cmd("d2 delete Trash")
    again = Driver(store)
    again.login()  # the first login of a session recreates the defaults
    lines = listed(again)
    assert '* LIST (\\HasNoChildren) "/" "Junk"' in lines  # \Junk stays with Spam
    assert '* LIST (\\HasNoChildren \\Junk) "/" "Spam"' in lines
    assert '* LIST (\\HasNoChildren \\Trash) "/" "Trash"' in lines
