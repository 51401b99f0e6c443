"""printable() (tuimail.core.printable): control characters written as escapes, everything else as it
is; its shortcut for printable ASCII lines answers exactly as the regular expression does."""

from __future__ import annotations

from tuimail.core.printable import _CONTROL, _escape, has_control, printable


def test_every_ascii_character_alone_and_in_a_line():
    for code in range(128):
        char = chr(code)
        expected = _CONTROL.sub(_escape, char)
        assert printable(char) == expected
        assert printable(f"MAIL FROM:<a{char}b@example.org>") == f"MAIL FROM:<a{expected}b@example.org>"
        assert has_control(char) == (expected != char)
    assert printable("250 OK\tdone") == "250 OK\tdone"  # TAB stays
    assert printable("\x1b[2J") == "\\x1b[2J"


def test_non_ascii_lines_still_escape_line_separators_and_c1():
    assert printable("Привет") == "Привет"
    assert printable("a\u2028b\x85c") == "a\\u2028b\\x85c"
