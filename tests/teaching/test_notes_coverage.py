"""Every command and reply the servers can produce has a note (issue 10 §1).

The replies are collected two ways: from the source (every string literal in the protocol modules,
the servers, aiosmtpd's SMTP class and the tests' transcripts that starts like a reply), and from a
real session per protocol typed over a socket, whose log block is annotated line by line. A reply
code, status, response, response code, capability or command without a note fails the test.
"""

from __future__ import annotations

import inspect
import re
import socket
import tokenize
from pathlib import Path

import aiosmtpd.smtp
import pytest

from tests.helpers import PASSWORD, RunningServer, make_config
from tuimail.protocols.imap import machine as imap_machine
from tuimail.protocols.pop3 import machine as pop3_machine
from tuimail.servers import smtp as smtp_server
from tuimail.teaching.annotate import Annotator, annotate
from tuimail.teaching.notes import imap as imap_notes
from tuimail.teaching.notes import pop3 as pop3_notes
from tuimail.teaching.notes import smtp as smtp_notes

ROOT = Path(__file__).resolve().parents[2]
SMTP_SOURCES = [ROOT / "tuimail/servers/smtp.py", Path(aiosmtpd.smtp.__file__), *sorted((ROOT / "tests").rglob("*.py"))]
POP3_SOURCES = [*sorted((ROOT / "tuimail/protocols/pop3").glob("*.py")), ROOT / "tuimail/servers/pop3.py"]
IMAP_SOURCES = [*sorted((ROOT / "tuimail/protocols/imap").glob("*.py")), *sorted((ROOT / "tuimail/servers").glob("imap*.py"))]


TRIPLE = re.compile(r"^[rbfuRBFU]*('''|\"\"\")")


def literals(path: Path) -> list[str]:
    """The text of every string (and bytes) literal in a Python file, f-strings included."""
    out = []
    with open(path, "rb") as f:
        for token in tokenize.tokenize(f.readline):
            if token.type == tokenize.STRING and not TRIPLE.match(token.string):  # not docstrings
                text = re.sub(r"^[rbfuRBFU]*('''|\"\"\"|'|\")", "", token.string)
                out.append(text)
            elif getattr(tokenize, "FSTRING_START", None) == token.type:
                out.append("")
    return out


def test_every_smtp_reply_code_and_enhanced_code_has_a_note():
    codes, enhanced = set(), set()
    for path in SMTP_SOURCES:
        for text in literals(path):
            match = re.match(r"^([2-5]\d\d)(?:[ -]|\\r|$)(?:(\d\.\d{1,3}\.\d{1,3})\b)?", text)
            if match:
                codes.add(match.group(1))
                if match.group(2):
                    enhanced.add(match.group(2))
    assert {"220", "250", "354", "221", "550", "535"} <= codes  # the collection works
    assert sorted(codes - set(smtp_notes.REPLIES)) == []
    assert sorted(enhanced - set(smtp_notes.ENHANCED)) == []


def test_every_command_the_servers_accept_has_a_note():
    smtp = {n[5:] for n in dir(smtp_server.TuimailSMTP) if n.startswith("smtp_")}
    smtp.discard("X_STRICT_REFUSAL")  # internal: strict mode's place in the reply order, never typed
    assert sorted(smtp - set(smtp_notes.COMMANDS)) == []
    pop3 = {n[3:].upper() for n in dir(pop3_machine.Pop3Machine) if n.startswith("do_")}
    assert sorted(pop3 - set(pop3_notes.COMMANDS)) == []
    imap = {n[3:].upper().removeprefix("UID_") for n in dir(imap_machine.ImapMachine) if n.startswith("do_")}
    assert len(imap) > 25 and sorted(imap - set(imap_notes.COMMANDS)) == []


def test_every_pop3_and_imap_response_code_has_a_note():
    pop3 = {m for path in POP3_SOURCES for t in literals(path) for m in re.findall(r"\[([A-Z][A-Z/-]+)[\] ]", t)}
    assert "SYS/TEMP" in pop3 and sorted(pop3 - set(pop3_notes.CODES)) == []
    imap = {m for path in IMAP_SOURCES for t in literals(path) for m in re.findall(r"\[([A-Z][A-Z-]+)[\] ]", t)}
    imap -= {"HEADER", "TEXT", "MIME"}  # BODY[HEADER] section names, not response codes
    assert "TRYCREATE" in imap and sorted(imap - set(imap_notes.CODES)) == []
    untagged = set()
    for path in IMAP_SOURCES:
        for text in literals(path):
            match = re.match(r"^\* (?:\{[^}]*\} |\d+ )?([A-Z]+)\b", text)
            if match:
                untagged.add(match.group(1))
    assert {"BYE", "EXPUNGE", "FETCH"} <= untagged and sorted(untagged - set(imap_notes.RESPONSES)) == []


def test_every_pop3_capability_has_a_note():
    source = inspect.getsource(pop3_machine.Pop3Machine.do_capa)
    words = {w.split()[0] for w in re.findall(r'"([A-Z][A-Z-]+(?: [A-Z]+)?)', source)}
    assert "UIDL" in words and sorted(words - set(pop3_notes.CAPABILITIES)) == []


def _typed(port: int, lines: list[bytes], until: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        got = b""
        s.sendall(b"".join(line + b"\r\n" for line in lines))
        while until not in got:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk


@pytest.fixture(scope="module")
def transcripts(tmp_path_factory):
    """Real sessions with many commands, right and wrong; the log files they wrote."""
    config = make_config(tmp_path_factory.mktemp("notes"))
    server = RunningServer(config).start()
    try:
        server.engine.directory.add_account("tester@lab.test", PASSWORD)
        ports = config.settings.ports
        _typed(ports.smtp, [b"ehlo pc", b"helo pc", b"vrfy x", b"expn x", b"help", b"noop", b"rset", b"mail from:<a@b.c>",
                            b"rcpt to:<nobody@lab.test>", b"rcpt to:<x@far.example>", b"rcpt to:<>", b"rcpt to:<tester@lab.test>",
                            b"data", b"Subject: t", b"", b"hi", b".", b"bogus", b"rcpt to:<tester@lab.test>",
                            b"auth login", b"dGVzdGVy", b"d3Jvbmc=", b"quit"], b"221")
        _typed(ports.pop3, [b"capa", b"apop x y", b"user tester", b"pass wrong", b"user tester", b"pass " + PASSWORD.encode(),
                            b"stat", b"list", b"uidl", b"retr 1", b"top 1 0", b"dele 1", b"rset", b"noop", b"retr 9", b"bogus",
                            b"quit"], b"signing off")
        _typed(ports.imap, [b"a login tester " + PASSWORD.encode(), b"b enable IMAP4rev2", b"c select inbox",
                            b"d search return (save) all", b"e fetch $ flags", b"f search unseen", b"g fetch 1,$ flags",
                            b"h status inbox (size deleted)", b"i select Trash", b"j logout"], b"j OK")  # RFC 9051
        _typed(ports.imap, [b"a capability", b"b login tester wrong", b"c login tester " + PASSWORD.encode(), b"d select inbox",
                            b"e fetch 1 full", b"f store 1 +flags (\\Deleted)", b"g search all", b"h list \"\" *",
                            b"i status inbox (messages)", b"j create box", b"k create box", b"l copy 1 nobox", b"m expunge",
                            b"n examine inbox", b"o namespace", b"p id nil", b"q bogus", b"r noop", b"s logout"], b"s OK")
        server.wait_for(lambda: server.log_text("IMAP").count("OK LOGOUT") == 2 and "signing off" in server.log_text("POP"))
        return {p: server.log_text(name) for p, name in (("SMTP", "SMTP-in"), ("POP3", "POP"), ("IMAP", "IMAP"))}
    finally:
        server.stop()


@pytest.mark.parametrize("protocol", ["SMTP", "POP3", "IMAP"])
def test_every_status_line_of_a_real_session_has_a_note(transcripts, protocol):
    lines = transcripts[protocol].splitlines()
    assert lines
    missing = []
    for line, notes in annotate(protocol, lines):
        body = re.sub(r"^.*?: (?=<--|-->)", "", line)
        if not body.startswith(("<--", "-->")) or notes:
            continue
        reply = body[4:]
        status = (
            (protocol == "SMTP" and re.match(r"\d{3}[ -]", reply))
            or (protocol == "POP3" and reply.startswith(("+OK", "-ERR", "+ ")))
            or (protocol == "IMAP" and re.match(r"(\*|\+|[A-Za-z0-9]+ (OK|NO|BAD))\b", reply))
            or body.startswith("<--")
        )
        if status and "*****" not in body:
            missing.append(body)
    assert missing == []


def test_an_annotated_line_reads_as_its_rfc():
    a = Annotator("SMTP")
    assert [n.rfc for n in a.line("<-- mail from:<x@lab.test>")] == ["RFC 5321 §4.1.1.2"]
    notes = a.line("--> 550 5.1.1 <x>: no such mailbox here")
    assert [n.rfc for n in notes] == ["RFC 5321 §4.2.3", "RFC 3463 §3.2"]
    assert "такого пользователя нет" in notes[1].text("ru")
    pop = Annotator("POP3")
    assert pop.line("--> +OK ready")[0].rfc == "RFC 1939 §4"
    pop.line("<-- PASS *****")
    assert "TRANSACTION" in pop.line("--> +OK logged in")[0].en
    imap = Annotator("IMAP")
    imap.line("--> * OK ready")
    assert [n.rfc for n in imap.line("--> a2 OK [READ-WRITE] SELECT completed")] == ["RFC 3501 §7.1.1", "RFC 3501 §7.1"]
    assert [n.rfc for n in imap.line("<-- a3 uid fetch 1:* flags")] == ["RFC 3501 §6.4.8", "RFC 3501 §6.4.5"]
