"""MessageStructure: ENVELOPE, BODY/BODYSTRUCTURE and BODY[section] (RFC 3501 §7.4.2, §6.4.5).

Expected outputs are written by hand; sizes are computed from the part bodies written out separately,
never from the parser. Property tests feed junk and random MIME trees and check the two invariants a
client relies on: BODY[] is the stored message with CRLF line ends, and every size in BODYSTRUCTURE is
the length of the section it describes.
"""

from __future__ import annotations

import email
import itertools
import mailbox
import subprocess
import sys
from email.policy import compat32
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tuimail.protocols.imap.encode import astring, literal, nstring, quoted, string
from tuimail.protocols.imap.structure import MessageStructure

MAKE_MBOX = Path("/work/shared/peers/make-mbox")


def crlf(data: bytes) -> bytes:
    return data.replace(b"\n", b"\r\n")


def wire(data: bytes) -> int:
    return len(crlf(data))


# -- a tiny reader for IMAP response syntax, to check what we emit parses -------------------------


def read_imap(data: bytes):
    """Parse one IMAP value: list, NIL, quoted, literal, number or atom; returns (value, rest)."""
    data = data.lstrip(b" ")
    if data.startswith(b"("):
        items, rest = [], data[1:]
        while True:
            rest = rest.lstrip(b" ")
            if rest.startswith(b")"):
                return items, rest[1:]
            item, rest = read_imap(rest)
            items.append(item)
    if data.startswith(b'"'):
        out, i = bytearray(), 1
        while data[i:i + 1] != b'"':
            if data[i:i + 1] == b"\\":
                i += 1
            assert data[i:i + 1] not in (b"\r", b"\n", b""), data
            out += data[i:i + 1]
            i += 1
        return bytes(out), data[i + 1:]
    if data.startswith(b"{"):
        head, _, rest = data.partition(b"}\r\n")
        n = int(head[1:])
        assert len(rest) >= n
        return rest[:n], rest[n:]
    end = min((data.find(c) for c in (b" ", b")", b"(") if data.find(c) >= 0), default=len(data))
    atom = data[:end]
    assert atom, data
    return (None if atom == b"NIL" else atom), data[end:]


def parse_imap(data: bytes):
    value, rest = read_imap(data)
    assert rest == b"", rest
    return value


def leaves(body, path):
    """(part number, size, lines) of every non-multipart part, numbered as RFC 3501 §6.4.5 says."""
    if isinstance(body[0], list):
        for i, child in enumerate(itertools.takewhile(lambda b: isinstance(b, list), body)):
            yield from leaves(child, path + (i + 1,))
        return
    media = (body[0].lower(), body[1].lower())
    if media == (b"message", b"rfc822"):
        yield path, int(body[6]), int(body[9])
        inner = body[8]
        yield from leaves(inner, path if isinstance(inner[0], list) else path + (1,))
    else:
        yield path, int(body[6]), int(body[7]) if body[0].lower() == b"text" else None


def all_leaves(ms: MessageStructure):
    root = parse_imap(ms.bodystructure())
    return list(leaves(root, () if isinstance(root[0], list) else (1,)))


def line_count(data: bytes) -> int:
    return data.count(b"\n")


def check_invariants(raw: bytes) -> MessageStructure:
    ms = MessageStructure.parse(raw)
    assert ms.section(()) == crlf(raw)
    parse_imap(ms.envelope())
    basic = parse_imap(ms.bodystructure(extended=False))
    for path, size, lines in all_leaves(ms):
        part = ms.section(path)
        assert part is not None, path
        assert size == len(part), path
        if lines is not None:
            assert lines == line_count(raw_of(part)), path
    assert len(list(leaves(basic, () if isinstance(basic[0], list) else (1,)))) == len(all_leaves(ms))
    head, text = ms.section((), "HEADER"), ms.section((), "TEXT")
    assert head + text == crlf(raw)
    ms.header_value("subject"), ms.header_value("subject", decoded=True), ms.body_text_bytes(), ms.date()
    return ms


def raw_of(section: bytes) -> bytes:
    return section.replace(b"\r\n", b"\n")


# -- encode helpers ---------------------------------------------------------------------------------


def test_encoding_helpers():
    assert nstring(None) == b"NIL"
    assert nstring("") == b'""'
    assert nstring('say "hi" \\o/') == b'"say \\"hi\\" \\\\o/"'
    assert nstring("Тема") == b"{8}\r\n" + "Тема".encode()
    assert nstring(b"two\r\nlines") == b"{10}\r\ntwo\r\nlines"
    assert string("a\udcffb") == b"{3}\r\na\xffb"  # surrogate-escaped 8-bit octets go out as they came
    assert quoted("x") == b'"x"'
    assert literal(b"abc") == b"{3}\r\nabc"
    assert astring("INBOX") == b"INBOX"
    assert astring("Work/2026]") == b"Work/2026]"
    assert astring("two words") == b'"two words"'
    assert astring("") == b'""'
    assert astring("NIL") == b'"NIL"'
    assert astring("a{b") == b'"a{b"'


# -- a simple text message --------------------------------------------------------------------------

SIMPLE_HEAD = (b"From: Bob <bob@lab.test>\nTo: tatareva@lab.test\nSubject: Hi\n"
               b"Date: Thu, 26 Nov 2026 10:00:00 +0300\nMessage-ID: <a1@lab.test>\n")
SIMPLE_BODY = b"Hello\nworld\n"
SIMPLE = SIMPLE_HEAD + b"\n" + SIMPLE_BODY


def test_simple_text_message():
    ms = MessageStructure.parse(SIMPLE)
    bob = b'(("Bob" NIL "bob" "lab.test"))'
    assert ms.envelope() == (b'("Thu, 26 Nov 2026 10:00:00 +0300" "Hi" ' + bob + b" " + bob + b" " + bob
                             + b' ((NIL NIL "tatareva" "lab.test")) NIL NIL NIL "<a1@lab.test>")')
    assert ms.bodystructure() == b'("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 14 2 NIL NIL NIL NIL)'
    assert ms.bodystructure(extended=False) == b'("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 14 2)'
    assert ms.section(()) == crlf(SIMPLE)
    assert ms.section((), "HEADER") == crlf(SIMPLE_HEAD) + b"\r\n"
    assert ms.section((), "TEXT") == b"Hello\r\nworld\r\n"
    assert ms.section((1,)) == b"Hello\r\nworld\r\n"  # RFC 3501 §6.4.5: part 1 of a non-multipart
    assert ms.section((1,), "MIME") == crlf(SIMPLE_HEAD) + b"\r\n"
    assert ms.section((2,)) is None
    assert ms.section((1, 1)) is None
    assert ms.section((0,)) is None
    assert ms.section((1,), "HEADER") is None  # not a message/rfc822 part
    assert ms.section((), "MIME") is None  # MIME needs a part number
    assert ms.header_value("SUBJECT") == "Hi"
    assert ms.header_value("x-missing") is None
    assert ms.header_bytes() == SIMPLE_HEAD + b"\n"
    assert ms.body_text_bytes() == SIMPLE_BODY
    assert ms.date().isoformat() == "2026-11-26T10:00:00+03:00"


def test_header_fields_and_not():
    raw = (b"Received: from a\n\tby b\nSubject: folded\n  subject\nX-Thing: 1\nsubject: second\n"
           b"From: c@lab.test\n\nbody\n")
    ms = MessageStructure.parse(raw)
    assert ms.section((), "HEADER.FIELDS", ("Subject", "FROM")) == (
        b"Subject: folded\r\n  subject\r\nsubject: second\r\nFrom: c@lab.test\r\n\r\n")
    assert ms.section((), "header.fields.not", ("SUBJECT", "from")) == (
        b"Received: from a\r\n\tby b\r\nX-Thing: 1\r\n\r\n")
    assert ms.section((), "HEADER.FIELDS", ("x-none",)) == b"\r\n"
    assert ms.header_value("subject") == "folded  subject"  # unfolded: the CRLF goes, the WSP stays
    assert ms.header_values("Subject") == ["folded  subject", "second"]


def test_header_fields_asked_again_are_the_same_bytes_and_each_request_its_own():
    """A message's HEADER.FIELDS (.NOT) are kept per request (a list view asks the same of every
    message each time): asked again, in another order or with a part, the answer is still exact."""
    raw = b"Subject: s\nFrom: f@lab.test\nTo: t@lab.test\nDate: d\n\nbody\n"
    ms = MessageStructure.parse(raw)
    asked = [("HEADER.FIELDS", ("SUBJECT",)), ("HEADER.FIELDS", ("FROM", "TO")), ("HEADER.FIELDS.NOT", ("SUBJECT",)),
             ("HEADER.FIELDS", ("TO", "FROM"))] + [("HEADER.FIELDS", (f"X-{n}",)) for n in range(12)]
    first = [ms.section((), text, fields) for text, fields in asked]
    assert first[:4] == [b"Subject: s\r\n\r\n", b"From: f@lab.test\r\nTo: t@lab.test\r\n\r\n",
                         b"From: f@lab.test\r\nTo: t@lab.test\r\nDate: d\r\n\r\n",
                         b"From: f@lab.test\r\nTo: t@lab.test\r\n\r\n"]
    assert [ms.section((), text.lower(), fields) for text, fields in reversed(asked)] == first[::-1]
    assert ms.section((1,), "HEADER.FIELDS", ("SUBJECT",)) is None  # (not a message/rfc822 part)


# -- multipart/alternative ----------------------------------------------------------------------------


def test_multipart_alternative():
    raw = (b'From: a@lab.test\nSubject: alt\nMIME-Version: 1.0\n'
           b'Content-Type: multipart/alternative; boundary="b1"\n\n'
           b"--b1\nContent-Type: text/plain; charset=utf-8\n\nplain\n"
           b"--b1\nContent-Type: text/html; charset=utf-8\n\n<p>html</p>\n--b1--\n")
    ms = MessageStructure.parse(raw)
    assert ms.bodystructure() == (
        b'(("text" "plain" ("charset" "utf-8") NIL NIL "7BIT" 5 0 NIL NIL NIL NIL)'
        b'("text" "html" ("charset" "utf-8") NIL NIL "7BIT" 11 0 NIL NIL NIL NIL)'
        b' "alternative" ("boundary" "b1") NIL NIL NIL)')
    assert ms.bodystructure(extended=False) == (
        b'(("text" "plain" ("charset" "utf-8") NIL NIL "7BIT" 5 0)'
        b'("text" "html" ("charset" "utf-8") NIL NIL "7BIT" 11 0) "alternative")')
    assert ms.section((1,)) == b"plain"
    assert ms.section((2,)) == b"<p>html</p>"
    assert ms.section((2,), "MIME") == b"Content-Type: text/html; charset=utf-8\r\n\r\n"
    assert ms.section((3,)) is None
    assert ms.section((1, 1)) is None
    assert ms.section((), "TEXT") == crlf(raw.split(b"\n\n", 1)[1])


# -- multipart/mixed with a base64 attachment and every extension field ---------------------------

TEXT_PART = b"See attached.\n"
PDF_PART = b"JVBERi0xLjQK\nJSVFT0YK"
PDF_HEAD = (b'Content-Type: application/pdf; name="r.pdf"\nContent-Transfer-Encoding: base64\n'
            b'Content-Disposition: attachment;\n filename="r.pdf"\nContent-ID: <pdf1@lab.test>\n'
            b"Content-Description: Lab report\nContent-Language: en, ru\n"
            b"Content-Location: http://lab.test/r.pdf\nContent-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n\n")
MIXED = (b'From: a@lab.test\nSubject: report\nContent-Type: multipart/mixed; boundary="=_m"\n\n'
         b"This is a multi-part message in MIME format.\n"
         b"--=_m\nContent-Type: text/plain; charset=us-ascii; format=flowed\n"
         b"Content-Transfer-Encoding: 7bit\n\n" + TEXT_PART +
         b"\n--=_m\n" + PDF_HEAD + PDF_PART + b"\n--=_m--\nepilogue\n")


def test_multipart_mixed_with_attachment():
    ms = MessageStructure.parse(MIXED)
    text = b'("text" "plain" ("charset" "us-ascii" "format" "flowed") NIL NIL "7BIT" %d 1' % wire(TEXT_PART)
    pdf = (b'("application" "pdf" ("name" "r.pdf") "<pdf1@lab.test>" "Lab report" "BASE64" %d'
           % wire(PDF_PART))
    assert ms.bodystructure() == (
        b"(" + text + b" NIL NIL NIL NIL)" + pdf +
        b' "Q2hlY2sgSW50ZWdyaXR5IQ==" ("attachment" ("filename" "r.pdf")) ("en" "ru")'
        b' "http://lab.test/r.pdf") "mixed" ("boundary" "=_m") NIL NIL NIL)')
    assert ms.bodystructure(False) == b"(" + text + b")" + pdf + b') "mixed")'
    assert ms.section((1,)) == crlf(TEXT_PART)
    assert ms.section((2,)) == crlf(PDF_PART)
    assert ms.section((2,), "MIME") == crlf(PDF_HEAD)
    assert ms.body_text_bytes() == TEXT_PART  # the attachment is not text to search


# -- nested message/rfc822 ------------------------------------------------------------------------

INNER_HEAD = (b"From: Inner Person <inner@other.test>\nTo: outer@lab.test\nSubject: inner\n"
              b'Date: Mon, 1 Jun 2026 09:00:00 +0000\nContent-Type: multipart/alternative; boundary="in"\n\n')
INNER_BODY = (b"--in\nContent-Type: text/plain\n\ninner text\n"
              b"--in\nContent-Type: text/html\n\n<b>inner</b>\n--in--")
INNER = INNER_HEAD + INNER_BODY
FORWARD = (b'From: outer@lab.test\nSubject: Fwd: inner\nContent-Type: multipart/mixed; boundary="out"\n\n'
           b"--out\nContent-Type: text/plain\n\nsee below\n"
           b"--out\nContent-Type: message/rfc822\nContent-Disposition: inline\n\n" + INNER +
           b"\n--out\nContent-Type: message/rfc822\n\nSubject: plain inner\n\nplain inner body\n"
           b"--out--\n")


def test_nested_message_rfc822():
    ms = MessageStructure.parse(FORWARD)
    inner_from = b'(("Inner Person" NIL "inner" "other.test"))'
    inner_env = (b'("Mon, 1 Jun 2026 09:00:00 +0000" "inner" ' + inner_from + b" " + inner_from + b" "
                 + inner_from + b' ((NIL NIL "outer" "lab.test")) NIL NIL NIL NIL)')
    inner_body = (b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 10 0 NIL NIL NIL NIL)'
                  b'("text" "html" ("charset" "us-ascii") NIL NIL "7BIT" 12 0 NIL NIL NIL NIL)'
                  b' "alternative" ("boundary" "in") NIL NIL NIL)')
    plain_inner = b"Subject: plain inner\n\nplain inner body"  # its LF belongs to the delimiter
    assert ms.bodystructure() == (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 9 0 NIL NIL NIL NIL)'
        b'("message" "rfc822" NIL NIL NIL "7BIT" %d ' % wire(INNER) + inner_env + b" " + inner_body
        + b' %d NIL ("inline" NIL) NIL NIL)' % INNER.count(b"\n")
        + b'("message" "rfc822" NIL NIL NIL "7BIT" %d (NIL "plain inner" NIL NIL NIL NIL NIL NIL NIL NIL)'
          b' ("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 16 0 NIL NIL NIL NIL) 2 NIL NIL NIL NIL)'
        % wire(plain_inner) + b' "mixed" ("boundary" "out") NIL NIL NIL)')
    assert INNER.count(b"\n") == 14  # 14 line ends: "--in--" has none, its LF belongs to "--out"
    assert ms.section((2,)) == crlf(INNER)
    assert ms.section((2,), "HEADER") == crlf(INNER_HEAD)
    assert ms.section((2,), "TEXT") == crlf(INNER_BODY)
    assert ms.section((2,), "MIME") == b"Content-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n"
    assert ms.section((2,), "HEADER.FIELDS", ("subject",)) == b"Subject: inner\r\n\r\n"
    assert ms.section((2,), "HEADER.FIELDS.NOT", ("subject", "date", "content-type", "from")) == (
        b"To: outer@lab.test\r\n\r\n")
    assert ms.section((2, 1)) == b"inner text"
    assert ms.section((2, 2)) == b"<b>inner</b>"
    assert ms.section((2, 1), "MIME") == b"Content-Type: text/plain\r\n\r\n"
    assert ms.section((2, 1), "HEADER") is None
    assert ms.section((2, 3)) is None
    assert ms.section((3,), "HEADER") == b"Subject: plain inner\r\n\r\n"
    assert ms.section((3, 1)) == b"plain inner body"  # part 1 of the embedded non-multipart
    assert ms.section((3, 1), "MIME") == b"Subject: plain inner\r\n\r\n"
    assert ms.section((3, 2)) is None
    assert ms.section((4,)) is None
    assert ms.section((1,), "TEXT") is None
    assert b"inner text" in ms.body_text_bytes() and b"Subject: plain inner" in ms.body_text_bytes()
    check_invariants(FORWARD)


HOMEWORK = (b"From: student@lab.test\nTo: a@lab.test, b@lab.test\nDate: Wed, 4 Mar 2026 09:00:00 +0300\n"
            b'Subject: homework\nContent-Type: multipart/alternative; boundary="alt"\n\nInner prologue\n'
            b"--alt\nContent-Type: text/html\nContent-Transfer-Encoding: 8bit\n\n<p>done</p>\n\n"
            b"--alt\nContent-Type: text/plain\nContent-Transfer-Encoding: ?bogus\n\ndone, see html\n\n"
            b"--alt--\nInner epilogue\n")
LAB = (b"From: prof@lab.test\nDate: Tue, 3 Mar 2026 08:30:00 +0300\nMIME-Version: 1.0\n"
       b'Content-Type: multipart/mixed; boundary="lab\n sep"\n\nPrologue of the root.\n\n'
       b"--lab sep\n"
       b'Content-Type: text/x-notes; charset=us-ascii; note="say \\"hi\\""\nContent-ID: <notes@lab.test>\n'
       b"Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\nContent-Disposition: inline; size=6\n"
       b"Content-Description: lab notes\nContent-Language: ru, en, de\n"
       b"Content-Location: http://lab.test/notes.txt\n\nnotes\n\n"
       b"--lab sep\nContent-Type: message/rfc822\n\n" + HOMEWORK + b"\n--lab sep--\nRoot epilogue\n")


def test_dovecot_style_extension_data():
    """Folded boundary, escaped quotes, every extension field, prologues, epilogues, a bogus encoding."""
    ms = check_invariants(LAB)
    student = b'((NIL NIL "student" "lab.test"))'
    assert ms.bodystructure() == (
        b'(("text" "x-notes" ("charset" "us-ascii" "note" "say \\"hi\\"") "<notes@lab.test>" "lab notes"'
        b' "7BIT" 7 1 "Q2hlY2sgSW50ZWdyaXR5IQ==" ("inline" ("size" "6")) ("ru" "en" "de")'
        b' "http://lab.test/notes.txt")'
        b'("message" "rfc822" NIL NIL NIL "7BIT" %d' % wire(HOMEWORK) +
        b' ("Wed, 4 Mar 2026 09:00:00 +0300" "homework" ' + student + b" " + student + b" " + student +
        b' ((NIL NIL "a" "lab.test")(NIL NIL "b" "lab.test")) NIL NIL NIL NIL)'
        b' (("text" "html" ("charset" "us-ascii") NIL NIL "8BIT" 13 1 NIL NIL NIL NIL)'
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 16 1 NIL NIL NIL NIL)'
        b' "alternative" ("boundary" "alt") NIL NIL NIL) 21 NIL NIL NIL NIL)'
        b' "mixed" ("boundary" "lab sep") NIL NIL NIL)')
    assert HOMEWORK.count(b"\n") == 21
    assert ms.section((2, 2)) == b"done, see html\r\n"
    assert ms.section((2,), "TEXT").startswith(b"Inner prologue\r\n--alt\r\n")


def test_top_level_message_rfc822():
    raw = b"Subject: outer\nContent-Type: message/rfc822\n\nSubject: inner\n\ninner body\n"
    ms = check_invariants(raw)
    assert ms.section((1,)) == b"Subject: inner\r\n\r\ninner body\r\n"
    assert ms.section((1,), "HEADER") == b"Subject: inner\r\n\r\n"
    assert ms.section((1,), "TEXT") == ms.section((1, 1)) == b"inner body\r\n"
    assert ms.bodystructure(False) == (
        b'("message" "rfc822" NIL NIL NIL "7BIT" 30 (NIL "inner" NIL NIL NIL NIL NIL NIL NIL NIL)'
        b' ("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 12 1) 3)')


# -- envelope addresses ------------------------------------------------------------------------------


def test_envelope_groups_quoted_names_and_missing_fields():
    raw = (b"Subject: =?UTF-8?B?0KLQtdGB0YI=?=\n"
           b'From: "Doe, \\"JD\\" John" <jd@lab.test>\n'
           b"Sender:\n"
           b'To: Lab Group: a@lab.test, "B" <b@lab.test>;, undisclosed-recipients:;\n'
           b"Cc: c@lab.test (Carl C), John Q. Public <jqp@other.test>\n"
           b"Bcc: root\n"
           b"In-Reply-To: <p1@lab.test>\nMessage-ID:\n\n")
    frm = b'(("Doe, \\"JD\\" John" NIL "jd" "lab.test"))'
    assert MessageStructure.parse(raw).envelope() == (
        b'(NIL "=?UTF-8?B?0KLQtdGB0YI=?=" ' + frm + b" " + frm + b" " + frm +
        b' ((NIL NIL "Lab Group" NIL)(NIL NIL "a" "lab.test")("B" NIL "b" "lab.test")(NIL NIL NIL NIL)'
        b'(NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL))'
        b' (("Carl C" NIL "c" "lab.test")("John Q. Public" NIL "jqp" "other.test"))'
        b' ((NIL NIL "root" "MISSING_DOMAIN")) "<p1@lab.test>" "")')  # present but empty: ""


def test_envelope_eight_bit_and_routes():
    raw = ("From: Иван <ivan@lab.test>\nReply-To: <@relay.test,@hop.test:ret@lab.test>\n"
           "Subject: Привет\n\n").encode()
    env = MessageStructure.parse(raw).envelope()
    ivan = b'(({8}\r\n' + "Иван".encode() + b' NIL "ivan" "lab.test"))'
    assert env == (b"(NIL {12}\r\n" + "Привет".encode() + b" " + ivan + b" " + ivan +
                   b' ((NIL "@relay.test,@hop.test" "ret" "lab.test")) NIL NIL NIL NIL NIL)')
    parse_imap(env)


def test_envelope_junk_addresses():
    raw = b"From: a) b@lab.test\nTo: <>, ,,\"unterminated <x@y\nCc: (only a comment)\nBcc: [1.2.3.4]\n\n"
    env = parse_imap(MessageStructure.parse(raw).envelope())
    assert env[2] == [[None, None, b"a)b", b"lab.test"]]  # a stray ")" is text, not a hang
    assert env[6] is None and env[7] == [[None, None, b"[1.2.3.4]", b"MISSING_DOMAIN"]]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('ab@.,;:<>()"\\ \t[]Ж')), max_size=40))
def test_any_address_header_gives_valid_imap(value):
    raw = ("From: %s\nTo: %s\n\n" % (value, value)).encode()
    env = parse_imap(MessageStructure.parse(raw).envelope())
    for addrs in env[2:8]:
        assert addrs is None or all(len(a) == 4 for a in addrs)


def test_empty_message():
    ms = MessageStructure.parse(b"")
    assert ms.envelope() == b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
    assert ms.bodystructure() == b'("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 0 0 NIL NIL NIL NIL)'
    assert ms.section(()) == ms.section((), "HEADER") == ms.section((), "TEXT") == ms.section((1,)) == b""
    assert ms.section((), "HEADER.FIELDS", ("subject",)) == b"\r\n"
    assert ms.date() is None and ms.header_value("from") is None


# -- garbage ---------------------------------------------------------------------------------------


def test_header_only_without_newline():
    ms = check_invariants(b"Subject: no body")
    assert ms.section((), "HEADER") == b"Subject: no body"
    assert ms.section((), "TEXT") == b""
    assert ms.section((), "HEADER.FIELDS", ("SUBJECT",)) == b"Subject: no body\r\n\r\n"


def test_body_without_blank_line_starts_at_first_non_header_line():
    ms = check_invariants(b"Subject: x\nthis is not a header\nmore\n")
    assert ms.section((), "HEADER") == b"Subject: x\r\n"
    assert ms.section((), "TEXT") == b"this is not a header\r\nmore\r\n"


def test_multipart_without_boundary_parameter_is_text():
    ms = check_invariants(b"Content-Type: multipart/mixed\n\n--x\n\nhi\n--x--\n")
    assert ms.bodystructure(False) == b'("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 18 4)'


def test_multipart_with_no_parts_shows_one_empty_part():
    ms = check_invariants(b'Content-Type: multipart/mixed; boundary="zz"\n\njust text\n')
    assert ms.bodystructure() == (b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 0 0 NIL NIL NIL NIL)'
                                  b' "mixed" ("boundary" "zz") NIL NIL NIL)')
    assert ms.section((1,)) == b""
    assert ms.section((2,)) is None


def test_unterminated_multipart_runs_to_the_end():
    ms = check_invariants(b'Content-Type: multipart/mixed; boundary="b"\n\n--b\n\none\n--b\n\ntwo\nthree')
    assert ms.section((1,)) == b"one"
    assert ms.section((2,)) == b"two\r\nthree"


def test_unterminated_inner_multipart_ends_at_outer_boundary():
    raw = (b'Content-Type: multipart/mixed; boundary="out"\n\n--out\n'
           b'Content-Type: multipart/alternative; boundary="in"\n\n--in\n\nA\n--in\n\nB\n'
           b"--out\n\nC\n--out--\n")
    ms = check_invariants(raw)
    assert ms.section((1, 1)) == b"A"
    assert ms.section((1, 2)) == b"B"
    assert ms.section((2,)) == b"C"


def test_boundary_needs_its_own_line_and_only_padding_after():
    raw = (b'Content-Type: multipart/mixed; boundary="b"\n\n--b \n\nx --b\n--bb\n--b-x\n--b--  \nepi\n--b\n')
    ms = check_invariants(raw)
    assert ms.section((1,)) == b"x --b\r\n--bb\r\n--b-x"
    assert ms.section((2,)) is None  # after the close delimiter is epilogue


def test_digest_parts_default_to_message_rfc822():
    raw = (b'Content-Type: multipart/digest; boundary="d"\n\n--d\n\nSubject: one\n\nfirst\n'
           b"--d\nContent-Type: text/plain\n\nnot a message\n--d--\n")
    ms = check_invariants(raw)
    assert ms.bodystructure(False).startswith(
        b'(("message" "rfc822" NIL NIL NIL "7BIT" 21 (NIL "one" NIL NIL NIL NIL NIL NIL NIL NIL)')
    assert ms.section((1, 1)) == b"first"


def test_rfc2231_parameters_and_transfer_decoding():
    raw = (b"Content-Type: text/plain; charset=koi8-r;\n title*0*=utf-8'ru'%D0%A2; title*1=est\n"
           b"Content-Transfer-Encoding: quoted-printable\n\n=F0=D2=C9=D7=C5=D4 world=\n!\n")
    ms = check_invariants(raw)
    assert ms.bodystructure(False).startswith(
        b'("text" "plain" ("charset" "koi8-r" "title*" "utf-8\'ru\'%D0%A2est") NIL NIL "QUOTED-PRINTABLE"')
    assert ms.body_text_bytes() == "Привет world!\n".encode()


def test_eight_bit_content_type_parameters():
    raw = b"Content-Type: text/plain; name=\"\xd0\xa2\x80.txt\"; charset=\xff\n\nx\n"
    bs = check_invariants(raw).bodystructure(False)
    assert bs == b'("text" "plain" ("name" {7}\r\n\xd0\xa2\x80.txt "charset" {1}\r\n\xff) NIL NIL "7BIT" 3 1)'


def test_deep_nesting_is_bounded():
    raw = b"".join(b'Content-Type: multipart/mixed; boundary="%d"\n\n--%d\n' % (i, i) for i in range(200))
    ms = check_invariants(raw + b"\nbottom\n")
    assert ms.bodystructure().count(b'"mixed"') < 60


def test_date_parsing():
    assert MessageStructure.parse(b"Date: garbage\n\n").date() is None
    d = MessageStructure.parse(b"Date: Sat, 1 Aug 2026 12:00:00 GMT\n\n").date()
    assert (d.year, d.month, d.day, d.hour) == (2026, 8, 1, 12)


# -- properties ---------------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_raise(raw):
    check_invariants(raw)


JUNK_LINES = st.sampled_from([b"", b"text", b"--B", b"--B--", b"--C", b"--C--", b"--B  ", b"\r", b" folded",
                              b"Content-Type: text/plain", b"Content-Type: message/rfc822",
                              b'Content-Type: multipart/mixed; boundary="C"', b"Subject: s", b"\xff\xfe"])


@st.composite
def mime_message(draw, depth=0):
    """Random, mostly well-formed MIME trees with junk lines mixed in, sometimes cut short."""
    kind = draw(st.sampled_from(["text", "multipart", "message"] if depth < 3 else ["text"]))
    head = [b"Subject: s%d" % depth] if draw(st.booleans()) else []
    if kind == "text":
        head.append(b"Content-Type: text/plain")
        body = draw(st.lists(JUNK_LINES, max_size=6))
        return b"\n".join(head) + b"\n\n" + b"\n".join(body)
    if kind == "message":
        head.append(b"Content-Type: message/rfc822")
        return b"\n".join(head) + b"\n\n" + draw(mime_message(depth + 1))
    bnd = b"b%d" % depth
    head.append(b'Content-Type: multipart/%s; boundary="%s"' % (draw(st.sampled_from([b"mixed", b"digest"])), bnd))
    parts = draw(st.lists(mime_message(depth + 1), max_size=4))
    out = b"\n".join(head) + b"\n\npreamble\n"
    for p in parts:
        out += b"--" + bnd + b"\n" + p + b"\n"
    if draw(st.booleans()):
        out += b"--" + bnd + b"--\n" + b"\n".join(draw(st.lists(JUNK_LINES, max_size=3)))
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mime_message(), st.integers(min_value=0, max_value=10_000))
def test_random_mime_sizes_match_sections(raw, cut):
    check_invariants(raw)
    check_invariants(raw[:cut])  # truncated anywhere: still a structure, still consistent


@pytest.mark.skipif(not MAKE_MBOX.exists(), reason="peers' make-mbox script not available")
def test_peer_mbox_every_leaf_size_matches(tmp_path):
    path = tmp_path / "peers.mbox"
    subprocess.run([sys.executable, str(MAKE_MBOX), str(path), "200"], check=True, capture_output=True)
    box = mailbox.mbox(str(path))
    counted = attachments = encoded_subjects = qp_bodies = 0
    for key in box.keys():
        raw = box.get_bytes(key)
        ms = check_invariants(raw)
        if "=?UTF-8?B?" in ms.header_value("subject"):
            encoded_subjects += 1
            assert ms.header_value("subject", decoded=True).startswith("Тема ")
        if b"quoted-printable" in ms.bodystructure().lower():
            qp_bodies += 1
            assert " été".encode() in ms.body_text_bytes() and b"=C3" not in ms.body_text_bytes()
        counted += len(all_leaves(ms))
        bs = ms.bodystructure()
        if b'"application" "octet-stream"' in bs:
            attachments += 1
            assert b'"BASE64"' in bs and b'("attachment" ("filename" "data' in bs
        # an independent oracle: email's parser finds the same leaf parts with the same payloads
        theirs = [x for x in email.message_from_bytes(raw, policy=compat32).walk() if not x.is_multipart()]
        ours = all_leaves(ms)
        assert len(theirs) == len(ours)
        for (path, _, _), part in zip(ours, theirs):
            assert raw_of(ms.section(path)) == part.get_payload().encode("ascii")
        assert ms.header_value("message-id", decoded=False).startswith("<peers.")
        assert ms.date() is not None
    assert len(box) == 200 and attachments > 10 and counted > 200 and encoded_subjects and qp_bodies
