"""Masking of IMAP secrets before a client line is logged (core/masking.py, DESIGN.md "Logs")."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuimail.core import masking
from tuimail.core.masking import MASK, mask_imap


@pytest.mark.parametrize(("line", "masked"), [
    ("a1 LOGIN tatareva Secret123", f"a1 LOGIN tatareva {MASK}"),
    ("a1 login \"tata reva\" \"pa ss\"", f"a1 login \"tata reva\" {MASK}"),
    ("  a1\tLoGiN\ttatareva Secret123", f"  a1\tLoGiN\ttatareva {MASK}"),
    ("a1 AUTHENTICATE PLAIN AHRhdGFyZXZhAFNlY3JldDEyMw==", f"a1 AUTHENTICATE PLAIN {MASK}"),
    ("a1 authenticate plain =", f"a1 authenticate plain {MASK}"),
    ("a1 AUTHENTICATE PLAIN", "a1 AUTHENTICATE PLAIN"),  # no initial response: nothing secret
    ("a1 FETCH 1:* (FLAGS)", "a1 FETCH 1:* (FLAGS)"),
    ("a1 LOGINX user pass", "a1 LOGINX user pass"),
    # the user name as a literal: its marker alone holds no secret (the next lines are masked whole)
    ("a1 LOGIN {8}", "a1 LOGIN {8}"),
    ("a1 login {8+}", "a1 login {8+}"),
    ("a1 LOGIN {8} Secret123", f"a1 LOGIN {{8}} {MASK}"),
    ("a1 LOGIN tatareva {9}", f"a1 LOGIN tatareva {MASK}"),
    ("a1 LOGIN {8}x", f"a1 LOGIN {MASK}"),
    ("LOGIN", "LOGIN"),
    ("", ""),
])
def test_login_and_authenticate_secrets_are_masked(line, masked):
    assert mask_imap(line) == masked


def _two_patterns(line: str) -> str:
    """mask_imap as it was before its one-look test: both patterns on every line."""
    m = masking._IMAP_LOGIN.match(line)
    if m:
        return masking.login_masked(m.group(1), m.group(2))
    m = masking._IMAP_AUTH_IR.match(line)
    return m.group(1) + MASK if m else line


_WORDS = st.sampled_from(["a1", "*", "LOGIN", "login", "LoGiN", "AUTHENTICATE", "authenticate", "PLAIN", "user",
                          '"quoted name"', "{5}", "=", "FETCH", "ſ", "ı", "K", "Ⅰ", ""])
_SPACES = st.sampled_from([" ", "  ", "\t", "\r", "\n", "\x0b", "\u00a0", "\u2003", ""])


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(_SPACES, _WORDS), max_size=6), st.text(max_size=12))
def test_the_one_look_test_masks_exactly_what_the_two_patterns_mask(parts, tail):
    line = "".join(space + word for space, word in parts) + tail
    assert mask_imap(line) == _two_patterns(line)
