"""BINARY (RFC 3516): FETCH BINARY/BINARY.PEEK/BINARY.SIZE and APPEND of a literal8, driven with bytes."""

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.protocols.imap.harness import Driver
from tuimail.protocols.imap import binary
from tuimail.store.maildir import MailStore

MULTI = (
    b"From: a@lab.test\nSubject: parts\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n"
    b"--b\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\n"
    + base64.encodebytes(b"caf\xc3\xa9\r\nline two\0end")
    + b"--b\nContent-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n"
    b"soft=\n break and =3D sign  \nlast\n"
    b"--b\nContent-Type: application/x-thing\nContent-Transfer-Encoding: x-uuencode\n\n"
    b"begin 644 x\n--b\nContent-Type: text/plain\n\nplain\n--b--\n"
)


@pytest.fixture
def d(tmp_path):
    store = MailStore(tmp_path / "data")
    store.deliver("tatareva@lab.test", MULTI)
    driver = Driver(store)
    driver.login()
    driver.cmd("s1 select inbox")
    return driver


def test_base64_part_is_decoded_and_sent_as_literal8_because_of_the_nul(d):
    out = d.send(b"f1 fetch 1 (binary.peek[1] binary.size[1])\n")
    data = b"caf\xc3\xa9\r\nline two\0end"
    assert b"BINARY[1] ~{%d}\r\n" % len(data) + data + b" BINARY.SIZE[1] %d)" % len(data) in out
    assert out.endswith(b"f1 OK FETCH completed\r\n")


def test_quoted_printable_soft_breaks_padding_and_escapes(d):
    out = d.send(b"f1 fetch 1 binary.peek[2]\n")
    assert b"BINARY[2] {27}\r\nsoft break and = sign\r\nlast)" in out  # the LF before --b is the delimiter's


def test_partial_counts_decoded_octets_and_plain_part_keeps_crlf(d):
    out = d.send(b"f1 fetch 1 (binary.peek[2]<5.5> binary.peek[4] binary.size[4])\n")
    assert b"BINARY[2]<5> {5}\r\nbreak" in out
    assert b"BINARY[4] {5}\r\nplain BINARY.SIZE[4] 5" in out


def test_unknown_encoding_fails_the_whole_fetch_before_anything_is_sent(d):
    out = d.send(b"f1 fetch 1 (flags binary[3])\n")
    assert out.startswith(b"f1 NO [UNKNOWN-CTE] ")
    assert b"FETCH (" not in out
    assert b"\\Seen" not in d.send(b"f2 fetch 1 flags\n")  # not marked read either


def test_binary_sets_seen_and_peek_does_not(d):
    d.send(b"f1 fetch 1 binary.peek[4]\n")
    assert b"\\Seen" not in d.send(b"f2 fetch 1 flags\n")
    assert b"\\Seen" in d.send(b"f3 fetch 1 binary[4]\n")


def test_whole_message_and_composite_parts_are_not_decoded(d):
    out = d.send(b"f1 fetch 1 (binary.size[] binary.peek[]<0.5>)\n")
    assert b"BINARY.SIZE[] %d" % len(MULTI.replace(b"\n", b"\r\n")) in out
    assert b"BINARY[]<0> {5}\r\nFrom:" in out


@pytest.mark.parametrize("bad", ["binary[1.x]", "binary.size[1]<0.5>", "binary[header]", "binary[1]<0.0>"])
def test_malformed_binary_items_are_bad(d, bad):
    assert d.cmd(f"f1 fetch 1 {bad}")[-1].startswith("f1 BAD ")


def test_missing_part_is_nil(d):
    assert b"BINARY[9] NIL BINARY.SIZE[9] 0" in d.send(b"f1 fetch 1 (binary.peek[9] binary.size[9])\n")


BINARY_MESSAGE = (
    b"From: a@lab.test\r\nSubject: raw\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n"
    b"--q\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    b"\0\x01\r\rbare\ncr\r\n\r\n--q\r\nContent-Type: text/plain\r\n\r\nhello\r\n--q--\r\n"
)


def test_append_literal8_stores_binary_parts_as_base64_and_binary_gives_the_octets_back(d):
    out = d.send(b"a1 append inbox ~{%d+}\r\n" % len(BINARY_MESSAGE) + BINARY_MESSAGE + b"\r\n")
    assert b"a1 OK [APPENDUID " in out
    d.cmd("n1 noop")
    body = d.send(b"f1 fetch 2 (body.peek[1] body.peek[1.mime] binary.peek[1] binary.peek[2])\n")
    assert b"BODY[1] {" in body and b"\0" not in body.split(b"BINARY[1]")[0]  # BODY is plain 7-bit base64
    assert b"Content-Transfer-Encoding: base64" in body
    raw = b"\0\x01\r\rbare\ncr\r\n"
    assert b"BINARY[1] ~{%d}\r\n" % len(raw) + raw + b" BINARY[2] {5}\r\nhello)" in body


def test_append_plain_literal_is_not_converted(d):
    msg = b"Subject: x\r\nContent-Transfer-Encoding: binary\r\n\r\nhi\r\n"
    d.send(b"a1 append inbox {%d+}\r\n" % len(msg) + msg + b"\r\n")
    assert b"BODY[] {%d}\r\n" % len(msg) + msg in d.send(b"f1 fetch 2 body.peek[]\n")


def test_literal8_is_refused_where_a_string_is_expected(d):
    assert d.cmd("c1 create ~{3+}\nabc")[-1].startswith("c1 BAD ")


def test_decoders_are_lenient_with_broken_input():
    assert binary.decode_base64(b"aGVsbG8=garbage") == b"hello"
    assert binary.decode_base64(b"aGVsbG8") == b"hello"
    assert binary.decode_base64(b"a") == b""
    assert binary.decode_qp(b"a=ZZb=4") == b"a=ZZb=4"
    with pytest.raises(binary.UnknownCte):
        binary.decode(b"x", "x-uuencode")


@given(st.binary(max_size=300), st.booleans())
@settings(max_examples=150, deadline=None)
def test_literal8_octets_survive_the_lf_store_and_come_back_from_binary(octets, multipart):
    from tuimail.protocols.imap.backend import to_lf
    from tuimail.protocols.imap.structure import MessageStructure

    if multipart:
        boundary = b"=_tuimail_boundary_not_in_random_bytes"
        message = (b"Content-Type: multipart/mixed; boundary=\"" + boundary + b"\"\r\n\r\n--" + boundary
                   + b"\r\nContent-Transfer-Encoding: binary\r\n\r\n" + octets + b"\r\n--" + boundary + b"--\r\n")
    else:
        message = b"Subject: raw\r\nContent-Transfer-Encoding: binary\r\n\r\n" + octets
    stored = to_lf(binary.storable(message))
    assert b"\0" not in stored
    assert binary.section(MessageStructure.parse(stored), (1,)) == octets
