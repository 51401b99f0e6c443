"""Address and name rules, with hypothesis for the parsers that read what people type."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tuimail.core.addresses import AddressError, check_mailbox, parse_path, split_address

mailboxes = st.from_regex(r"\A[A-Za-z0-9_-][A-Za-z0-9_-]{0,20}\Z")
domains = st.from_regex(r"\A[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){0,3}\Z")


@pytest.mark.parametrize(
    ("typed", "address"),
    [
        ("<bob@lab.test>", "bob@lab.test"),
        ("bob@lab.test", "bob@lab.test"),
        ("  <bob@lab.test> SIZE=100 BODY=8BITMIME", "bob@lab.test"),
        ("bob@lab.test SIZE=100", "bob@lab.test"),
        ("<>", ""),
        ("<@relay.test:bob@lab.test>", "bob@lab.test"),
        ("<bob@lab.test", None),
        ("bob", None),
        ("", None),
        ("<a b@lab.test>", None),
    ],
)
def test_parse_path(typed, address):
    assert parse_path(typed) == address


@given(mailboxes, domains)
def test_parse_path_finds_the_address_however_it_is_typed(mailbox, domain):
    address = f"{mailbox}@{domain}"
    for typed in (address, f"<{address}>", f" <{address}> SIZE=12", f"{address} BODY=7BIT"):
        assert parse_path(typed) == address


@given(st.text(max_size=80))
def test_parse_path_never_raises(text):
    result = parse_path(text)
    assert result is None or result == "" or "@" in result


@given(mailboxes)
def test_valid_mailboxes_are_lower_cased(name):
    assert check_mailbox(name) == name.lower()


@pytest.mark.parametrize("name", [".hidden", "a b", "тест", "a/b", "a..b", "", "x" * 65, "a@b"])
def test_invalid_mailboxes_name_the_rule(name):
    with pytest.raises(AddressError, match="Latin letters"):
        check_mailbox(name)


def test_split_address():
    assert split_address("Bob@Lab.Test") == ("bob", "lab.test")
    with pytest.raises(AddressError):
        split_address("bob")
