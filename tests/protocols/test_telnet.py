"""The telnet layer as plain bytes: negotiation (RFC 854/855/856/860), the Cyrillic repair for the byte
sequences Debian's telnet really sends (captured; see tuimail.protocols.telnet), editing commands,
and bad input: option storms, a lone IAC at a read boundary, IAC IAC."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from tuimail.protocols.telnet import AYT_ANSWER, CONTROL_BYTES, HOLD_LIMIT, TelnetFilter

DO_TM, WILL_TM = b"\xff\xfd\x06", b"\xff\xfb\x06"
OFFER = b"\xff\xfd\x00\xff\xfb\x00"  # IAC DO BINARY, IAC WILL BINARY
IP, AO, SUSP, BRK = b"\xff\xf4", b"\xff\xf5", b"\xff\xed", b"\xff\xf3"


def feed(f: TelnetFilter, *chunks: bytes) -> tuple[bytes, bytes]:
    data, answer = b"", b""
    for chunk in chunks:
        d, a = f.receive(chunk)
        data, answer = data + d, answer + a
    return data, answer


def debian_default_mode(text: str) -> bytes:
    """What Debian's telnet sends for a typed line before 8-bit mode (the captured table)."""
    out = bytearray()
    for b in text.encode():
        if b == 0x85:
            continue  # its echo-toggle character: dropped
        command = {v: k for k, v in CONTROL_BYTES.items()}.get(b)
        out += bytes((0xFF, command)) + DO_TM if command else bytes((b,))
    return bytes(out) + b"\r\n"


# ----- a client that never speaks telnet ------------------------------------------------------


def test_a_mail_client_passes_untouched_and_is_never_sent_iac():
    f = TelnetFilter()
    assert f.receive(b"EHLO client\r\n") == (b"EHLO client\r\n", b"")
    assert f.receive("Привет\r\n".encode()) == ("Привет\r\n".encode(), b"")
    assert not f.telnet and f.escape(b"\xff") == b"\xff"


def test_8bit_text_with_an_ff_byte_is_data_until_the_client_speaks_telnet():
    f = TelnetFilter()
    cp1251 = "ясно, моя ручка".encode("cp1251")  # FF F1 ...: IAC NOP to a naive filter
    latin1 = "L'Haÿ-les-Roses\r\n".encode("latin-1")
    assert feed(f, cp1251, b"\r\n", latin1) == (cp1251 + b"\r\n" + latin1, b"")
    assert not f.telnet


# ----- what Debian's telnet sends --------------------------------------------------------------


def test_helo_petrukha_as_the_client_sends_it():
    f = TelnetFilter()
    wire = debian_default_mode("helo Петруха")
    assert wire == b"helo \xd0\x9f\xd0\xb5\xd1\x82\xd1\x80\xd1" + IP + DO_TM + b"\xd1\xd0\xb0\r\n"
    data, answer = f.receive(wire)
    assert data == "helo Петруха\r\n".encode()
    assert answer == OFFER + WILL_TM
    assert f.restored == 2


def test_every_captured_control_byte_is_restored_after_a_lead_byte():
    for command, byte in CONTROL_BYTES.items():
        for lead in (0xD0, 0xD1):
            f = TelnetFilter()
            data, answer = f.receive(bytes((lead, 0xFF, command)) + DO_TM + b"x\r\n")
            assert data == bytes((lead, byte)) + b"x\r\n"
            assert answer.endswith(WILL_TM)


def test_the_whole_alphabet_lower_then_upper():
    lower = "абвгдеёжзийклмнопрстуфхцчшщъыьэюя"
    f = TelnetFilter()
    data, answer = f.receive(debian_default_mode(lower))
    assert data == (lower + "\r\n").encode() and answer == OFFER + WILL_TM
    assert f.receive(b"\xff\xfb\x00\xff\xfd\x00") == (b"", b"")  # the client agrees: no reply (RFC 854)
    assert f.binary_in and f.binary_out
    upper = (lower.upper() + "\n").encode()  # in binary mode every byte arrives; Enter is a bare LF
    assert f.receive(upper) == (upper, b"")


def test_the_dropped_byte_is_not_invented_for_other_clients_or_in_binary_mode():
    f = TelnetFilter()
    assert f.receive(b"\xd1A\r\n") == (b"\xd1A\r\n", b"")  # not telnet (cp1251 "СA"): left alone
    f.receive(b"\xff\xfb\x00")  # WILL BINARY: the client sends 8 bits, it drops nothing
    assert f.receive(b"\xd1A\n")[0] == b"\xd1A\n"


def test_a_command_that_is_not_a_continuation_byte_is_not_turned_into_one():
    f = TelnetFilter()
    data, _ = f.receive(b"a" + IP + DO_TM + b"b\r\n")  # IP after ASCII: a real interrupt
    assert data == b"b\r\n"


# ----- Ctrl+C, editing, AYT -------------------------------------------------------------------


def test_ctrl_c_drops_the_line_being_typed_and_answers_the_mark():
    f = TelnetFilter()
    assert f.receive(IP + DO_TM) == (b"", OFFER + WILL_TM)  # at an empty line, as the client sends it
    assert f.receive(b"noo") == (b"", b"")  # a telnet client's unfinished line is held ...
    assert f.holding
    assert f.receive(IP + DO_TM) == (b"", WILL_TM)  # ... so an interrupt can drop it
    assert f.receive(b"noop\r\n") == (b"noop\r\n", b"")
    assert any("interrupt" in note for note in f.take_notes())


def test_erase_character_and_erase_line():
    f = TelnetFilter()
    f.receive(b"\xff\xfd\x01")  # IAC DO ECHO: a telnet client
    data, _ = feed(f, b"quii\xff\xf7t\r\n", "привеы".encode(), b"\xff\xf7", "т\n".encode())
    assert data == "quit\r\nпривет\n".encode()  # EC erases a whole character, even across reads
    assert f.receive(b"junk\xff\xf8noop\n")[0] == b"noop\n"


def test_are_you_there_gets_one_short_line_per_read():
    f = TelnetFilter()
    f.receive(b"\xff\xfd\x01")  # DO ECHO: refused (and telnet seen)
    assert f.receive(b"\xff\xf6\xff\xf6\xff\xf6") == (b"", AYT_ANSWER)
    assert f.receive(b"\xff\xf6")[1] == AYT_ANSWER


def test_cr_nul_is_a_bare_cr_in_nvt_mode():
    f = TelnetFilter()
    f.receive(b"\xff\xfd\x01")
    assert f.receive(b"a\r\x00b\n")[0] == b"a\rb\n"


def test_output_to_a_telnet_client_doubles_ff():
    f = TelnetFilter()
    f.receive(b"\xff\xfd\x01")
    assert f.escape(b"a\xffb") == b"a\xff\xffb"


# ----- negotiation ----------------------------------------------------------------------------


def test_other_options_are_refused_once_and_never_looped():
    f = TelnetFilter()
    _, answer = f.receive(b"\xff\xfd\x01\xff\xfb\x1f\xff\xfd\x01\xff\xfb\x1f\xff\xfc\x1f\xff\xfe\x01")
    assert answer == OFFER + b"\xff\xfc\x01" + b"\xff\xfe\x1f"  # WONT ECHO, DONT NAWS: once each
    assert f.receive(b"\xff\xfd\x01\xff\xfb\x1f") == (b"", b"")


def test_binary_negotiation_follows_rfc_856():
    f = TelnetFilter()
    _, answer = f.receive(b"\xff\xfb\x00")  # the client proposes to send binary
    assert answer == OFFER and f.binary_in  # our DO is its agreement; our WILL our own offer
    assert f.receive(b"\xff\xfe\x00") == (b"", b"")  # DONT BINARY: our offer refused, nothing to say
    assert not f.binary_out
    assert f.receive(b"\xff\xfc\x00") == (b"", b"\xff\xfe\x00")  # WONT when on: acknowledged
    assert not f.binary_in
    assert f.receive(b"\xff\xfc\x00") == (b"", b"")  # a repeat is not answered


def test_subnegotiation_is_skipped_and_bounded():
    f = TelnetFilter()
    assert f.receive(b"\xff\xfa\x18\x00xterm\xff\xf0quit\n")[0] == b"quit\n"
    data, _ = f.receive(b"\xff\xfa\x18" + b"z" * 1000 + b"\nnoop\n")  # no IAC SE: given up on
    assert data.endswith(b"noop\n") and len(data) < 1000


# ----- bad input ------------------------------------------------------------------------------


def test_a_lone_iac_at_a_read_boundary_waits_for_the_next_read():
    f = TelnetFilter()
    f.receive(b"\xff\xfd\x01")
    assert f.receive(b"a\xff") == (b"", b"")
    assert f.receive(b"\xffb\n") == (b"a\xffb\n", b"")  # IAC IAC: a literal 0xFF
    assert f.receive(b"x\xff") == (b"", b"")
    assert f.receive(b"\xfd\x06\n") == (b"x\n", WILL_TM)
    g = TelnetFilter()  # before the client spoke telnet, too
    assert feed(g, b"\xd1\xff", b"\xf4\xff", b"\xfd\x06\xd1\x80\n") == ("ур\n".encode(), OFFER + WILL_TM)


def test_iac_iac_is_a_literal_ff():
    assert TelnetFilter().receive(b"a\xff\xffb\n")[0] == b"a\xffb\n"


def test_an_option_storm_is_answered_at_most_once_per_option():
    storm = bytearray()
    for n in range(40):
        for option in range(256):
            storm += bytes((0xFF, 0xFD, option, 0xFF, 0xFB, option, 0xFF, 0xFE, option, 0xFF, 0xFC, option))
        storm += DO_TM + b"\xff\xf6" + b"\xff\xf1"
    f = TelnetFilter()
    started = time.perf_counter()
    data, answer = f.receive(bytes(storm) + b"noop\n")
    assert time.perf_counter() - started < 5  # one pass; a generous bound for a loaded machine
    assert data == b"noop\n"
    # 255 options refused both ways, BINARY's few changes, one TM, one AYT: never one per sequence
    assert len(answer) < 2 * 256 * 3 + 100 + len(AYT_ANSWER)
    again = f.receive(bytes(storm))[1]
    assert len(again) <= 3 + len(AYT_ANSWER)  # only the timing mark and the AYT line, once per read
    f.take_notes()
    f.receive((IP + DO_TM) * 5000 + b"\xff\xfb\x00\xff\xfc\x00" * 5000)
    assert len(f.take_notes()) <= 1 + 4  # the log gets one line per read, not one per sequence


def test_a_held_line_is_bounded():
    f = TelnetFilter()
    f.receive(b"\xff\xfd\x01")
    out = f.receive(b"x" * (HOLD_LIMIT + 10))[0]
    assert len(out) == HOLD_LIMIT + 10 and not f.holding  # passed on: the parsers bound it


# ----- properties -----------------------------------------------------------------------------

NEGOTIATION = st.sampled_from([b"\xff\xfd\x01", b"\xff\xfb\x03", b"\xff\xfe\x18", b"\xff\xfc\x05", b"\xff\xf1",
                               b"\xff\xf9", b"\xff\xfa\x1f\x00\x50\x00\x18\xff\xf0", DO_TM, b"\xff\xfb\x00"])


def cut(data: bytes, sizes: list[int]) -> list[bytes]:
    chunks, at = [], 0
    for size in sizes:
        chunks.append(data[at : at + size])
        at += size
    return chunks + [data[at:]]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="\r\x00", blacklist_categories=("Cs",)), max_size=60),
       st.lists(st.tuples(st.integers(0, 200), NEGOTIATION), max_size=8),
       st.lists(st.integers(1, 30), max_size=12))
def test_negotiation_anywhere_is_invisible_whatever_the_chunking(text, inserts, sizes):
    clean = text.encode().replace(b"\xff", b"")  # UTF-8 never holds 0xFF
    wire, last = bytearray(b"\xff\xfb\x18"), 0  # WILL TERMINAL-TYPE: a client known to speak telnet
    for at, command in sorted(inserts):  # commands anywhere, even inside a character's bytes
        at = min(at, len(clean))
        wire += clean[last:at] + command
        last = at
    wire += clean[last:] + b"\n"
    data, answer = feed(TelnetFilter(), *cut(bytes(wire), sizes))
    assert data == clean + b"\n"
    assert len(answer) <= 9 + 3 * len(inserts) + 3 * (len(sizes) + 1)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(1, 40), max_size=20))
def test_any_bytes_in_any_chunks_give_the_same_data_and_never_loop(data, sizes):
    whole, _ = TelnetFilter().receive(data + b"\n")
    parts, answers = feed(TelnetFilter(), *cut(data + b"\n", sizes))
    assert parts == whole
    assert len(answers) <= 6 + len(data) + len(AYT_ANSWER) * (len(sizes) + 1)
