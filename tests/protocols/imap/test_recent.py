"""\\Recent when another session acts in the middle of a SELECT (RFC 3501 §2.3.2, §7.3.2).

IMAP commands run in worker threads, so a delivery or another session's EXPUNGE can land between the
moment a SELECT claims the folder's recent messages and the moment it reads the folder. These tests put
that other action exactly there (inside `claim_recent`, right after the claim) and check what the
client is told: RECENT never above EXISTS, and every message of the view that no other session took is
recent to this one once the next command has caught up."""

from __future__ import annotations

import re

import pytest

from tests.protocols.imap.harness import ADDRESS, Driver, message, store_with_messages
from tuimail.store.maildir import MailStore



@pytest.fixture
def store(tmp_path):
    return store_with_messages(tmp_path, 3)


def count(lines: list[str], word: str) -> int | None:
    found = [int(m[1]) for m in (re.fullmatch(rf"\* (\d+) {word}", line) for line in lines) if m]
    return found[-1] if found else None


def right_after_the_claim(monkeypatch, store: MailStore, action) -> None:
    folder = store.mailbox(ADDRESS).folder("INBOX")
    claim = folder.claim_recent

    def claim_then_act() -> list[int]:
        claimed = claim()
        monkeypatch.setattr(folder, "claim_recent", claim)  # once
        action(folder)
        return claimed

    monkeypatch.setattr(folder, "claim_recent", claim_then_act)


def test_an_expunge_racing_select_never_makes_recent_exceed_exists(store, monkeypatch):
    right_after_the_claim(monkeypatch, store, lambda folder: folder.expunge([1]))
    d = Driver(store)
    d.login()
    lines = d.cmd("a1 select INBOX")
    assert count(lines, "RECENT") <= count(lines, "EXISTS"), lines
    lines += d.cmd("a2 noop")  # caught up: two messages left, both recent to this session
    exists = count(lines, "EXISTS") - sum(1 for line in lines if line.endswith(" EXPUNGE"))
    assert exists == 2 and count(lines, "RECENT") == 2, lines

def test_a_delivery_racing_select_is_recent_to_that_session_only(store, monkeypatch):
    right_after_the_claim(monkeypatch, store, lambda folder: store.deliver(ADDRESS, message("msg 4")))
    d, other = Driver(store), Driver(store)
    d.login()
    other.login()
    lines = d.cmd("a1 select INBOX")
    assert count(lines, "RECENT") <= count(lines, "EXISTS"), lines
    lines += d.cmd("a2 noop")  # caught up: all four arrived before this session, so all are recent to it
    assert count(lines, "EXISTS") == 4 and count(lines, "RECENT") == 4, lines
    assert count(other.cmd("b1 select INBOX"), "RECENT") == 0  # and to no one else
