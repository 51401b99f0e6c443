"""`smtp_base.LeanSMTP`: what aiosmtpd would have set up, and DATA read in one piece as it reads it."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import smtplib
import socket
import struct
import warnings
import weakref

from aiosmtpd.smtp import SMTP, Session

from tests.helpers import wait
from tests.servers.test_smtp import Telnet, inbox
from tuimail.servers.smtp import SmtpHandler, TuimailSMTP


def test_a_connection_gets_what_aiosmtpds_own_init_gives_it(server):
    """The tables built once per class equal the ones aiosmtpd's __init__ looks up per connection."""
    engine = server.engine

    async def build():
        loop = asyncio.get_running_loop()
        ours = TuimailSMTP(engine, submission=True)
        theirs = object.__new__(TuimailSMTP)
        with warnings.catch_warnings():  # aiosmtpd warns about AUTH without TLS (the lab's choice)
            warnings.simplefilter("ignore")
            SMTP.__init__(theirs, SmtpHandler(engine, theirs), hostname=ours.hostname, ident=ours.__ident__,
                          loop=loop, enable_SMTPUTF8=True, data_size_limit=ours.data_size_limit,
                          tls_context=ours.tls_context, timeout=ours._timeout_duration, auth_required=True,
                          auth_require_tls=ours._auth_require_tls)
        return ours, theirs

    ours, theirs = server.run(build())
    skip = {"_stream_reader", "_stream_reader_wr", "_source_traceback", "_closed", "_loop", "event_handler",
            "_auth_methods", "_handle_hooks", "_smtp_methods", "_strong_reader", "_client_connected_cb"}
    ours_vars = {k: v for k, v in vars(ours).items() if k in vars(theirs) and k not in skip}
    assert ours_vars == {k: v for k, v in vars(theirs).items() if k not in skip}
    assert set(vars(theirs)) <= set(vars(ours))
    assert ours._client_connected_cb.__func__ is theirs._client_connected_cb.__func__
    assert ours._strong_reader._limit == theirs._strong_reader._limit

    def names(table):
        return {key: (getattr(value, "method", value).__func__, getattr(value, "is_builtin", None))
                for key, value in table.items()}

    for table in ("_auth_methods", "_handle_hooks", "_smtp_methods"):
        assert names(getattr(ours, table)) == names(getattr(theirs, table)), table
    assert all(m.__self__ is ours for m in ours._smtp_methods.values())
    assert all(h.__self__ is ours.event_handler for h in ours._handle_hooks.values())
    assert set(ours._auth_methods) == {"LOGIN", "PLAIN", "SCRAM-SHA-256"}
    # bound when looked up, as aiosmtpd's command loop and hooks look them up
    assert ours._smtp_methods.get("EHLO").__func__ is theirs._smtp_methods["EHLO"].__func__
    assert ours._smtp_methods.get("BOGUS") is None and "BOGUS" not in ours._smtp_methods
    assert "DATA" in ours._handle_hooks and ours._handle_hooks.get("BOGUS", 1) == 1
    assert len(ours._smtp_methods) == len(theirs._smtp_methods)


def test_ehlo_answers_as_aiosmtpds_own_ehlo_with_our_hook(server):
    """`LeanSMTP.smtp_EHLO` (its extensions made once per configuration) leaves the same state and
    sends the same reply as aiosmtpd's `smtp_EHLO` driving our hook: with and without a TLS context,
    after STARTTLS, AUTH shown or hidden, with and without a size limit, a bad host name, none."""
    engine = server.engine

    async def ehlo(method, submission: bool, tls: bool, after_starttls: bool, size: int | None, name: str):
        protocol = TuimailSMTP(engine, submission=submission)
        protocol.tls_context = object() if tls else None
        protocol._tls_protocol = object() if after_starttls else None
        protocol.data_size_limit = size
        protocol.session = Session(protocol.loop)
        protocol.envelope = None
        sent: list[str] = []

        async def push(status):
            sent.append(status)

        protocol.push = push
        await method(protocol, name)
        return sent, dict(protocol.command_size_limits), protocol.session.extended_smtp, \
            protocol.session.host_name, protocol.envelope is not None

    async def compare():
        cases = 0
        for submission in (False, True):
            for tls in (False, True):
                for after_starttls in (False, True):
                    for size in (None, 0, 10_000_000):
                        for name in ("student", "", "bad\x1bname"):
                            ours = await ehlo(TuimailSMTP.smtp_EHLO, submission, tls, after_starttls, size, name)
                            theirs = await ehlo(SMTP.smtp_EHLO, submission, tls, after_starttls, size, name)
                            assert ours == theirs, (submission, tls, after_starttls, size, name)
                            cases += 1
        return cases

    assert server.run(compare()) == 72


def test_help_and_an_unknown_command_answer_as_aiosmtpd_does(server):
    """HELP lists the commands from the table and HELP <verb> looks one up (aiosmtpd's smtp_HELP);
    an unknown verb is a 500 and the session goes on."""
    t = Telnet(server.ports.smtp)
    assert t.reply()[0].startswith("220 ")
    assert t.type("EHLO student")[-1].startswith("250 ")
    assert t.type("HELP") == ["250 Supported commands: DATA EHLO HELO HELP MAIL NOOP QUIT RCPT RSET STARTTLS VRFY"]
    assert t.type("HELP MAIL")[0].startswith("250 Syntax: MAIL FROM:")
    assert t.type("FROBNICATE")[0].startswith("500 ")
    assert t.type("NOOP") == ["250 OK"]
    t.close()


def test_the_ehlo_reply_is_logged_line_by_line_in_order(server):
    """A multi-line reply goes to the log as one `-->` line per reply line, in the order sent."""
    t = Telnet(server.ports.smtp)
    t.reply()
    sent = t.type("EHLO student")
    assert len(sent) > 3
    t.type("QUIT")
    t.close()
    server.wait_for(lambda: "EHLO student" in server.log_text("SMTP-in"))
    logged = [line.split("--> ", 1)[1] for line in server.log_text("SMTP-in").splitlines() if "--> 250" in line]
    assert logged[:len(sent)] == sent


def test_dot_stuffed_lines_and_an_end_split_across_packets(server):
    """RFC 5321 §4.5.2: a leading dot is removed once per line, whatever the line; the end-of-data
    line counts only on its own, even when it arrives a byte at a time."""
    t = Telnet(server.ports.smtp)
    t.reply()
    t.type(b"helo x", b"\r\n"), t.type(b"mail from:<a@b.test>", b"\r\n"), t.type(b"rcpt to:<tester@lab.test>", b"\r\n")
    assert t.type(b"data", b"\r\n")[0].startswith("354")
    t.send(b"..first\r\nSubject: dots\r\n\r\n..\r\n...\r\n.x\r\nmid.\r\n.\r", end=b"")  # not the end yet
    t.send(b"x\r\n.", end=b"")
    t.send(b"\r", end=b"")
    assert t.type(b"\n", b"")[0].startswith("250 2.0.0")
    assert t.type(b"noop", b"\r\n")[0].startswith("250")
    [message] = inbox(server, "tester@lab.test")
    assert message.endswith(b"\n.first\nSubject: dots\n\n.\n..\nx\nmid.\n\rx\n")


def test_an_empty_message_and_one_larger_than_the_reader_limit(server):
    t = Telnet(server.ports.smtp)
    t.reply()
    t.type(b"helo x", b"\r\n"), t.type(b"mail from:<a@b.test>", b"\r\n"), t.type(b"rcpt to:<tester@lab.test>", b"\r\n")
    t.type(b"data", b"\r\n")
    assert t.type(b".", b"\r\n")[0].startswith("250 2.0.0")  # no data at all
    line = b"z" * 998 + b"\r\n"
    big = b"Subject: big\r\n\r\n" + b".dot\r\n" + line * (TuimailSMTP.line_length_limit // len(line) + 50)
    with smtplib.SMTP("127.0.0.1", server.ports.smtp) as client:  # past the reader's limit
        client.sendmail("a@b.test", ["tester@lab.test"], big)
    messages = sorted(inbox(server, "tester@lab.test"), key=len)
    assert messages[0].endswith(b"; " + messages[0].rsplit(b"; ", 1)[1])  # headers only
    assert b"\nSubject: big\n\n.dot\n" + b"z" * 998 + b"\n" in messages[1]  # smtplib stuffed the dot
    assert messages[1].endswith((b"z" * 998 + b"\n") * 10)
    assert messages[1].count(b"z" * 998) == TuimailSMTP.line_length_limit // len(line) + 50


def test_the_client_leaving_in_the_middle_of_data_stores_nothing(server):
    sock = socket.create_connection(("127.0.0.1", server.ports.smtp))
    sock.sendall(b"helo x\r\nmail from:<a@b.test>\r\nrcpt to:<tester@lab.test>\r\ndata\r\nSubject: cut\r\n\r\nhalf")
    server.wait_for(lambda: any(s.last_command == "data" for s in server.engine.sessions))
    sock.close()
    server.wait_for(lambda: not list(server.engine.sessions))
    assert inbox(server, "tester@lab.test") == []



def test_data_past_the_reader_limit_without_its_end_is_read_line_by_line(server):
    line = b"z" * 998 + b"\r\n"
    count = TuimailSMTP.line_length_limit // len(line) + 5

    async def read():
        smtp = TuimailSMTP(server.engine, submission=False)
        smtp.transport = object()  # (not None: the line reader runs while there is a connection)
        reader = smtp._reader = smtp._stream_reader  # (set by connection_made otherwise)
        reader.feed_data(b"..dot\r\n" + line * count)
        assert await smtp._data_block() is None  # no end within the limit
        reader.feed_data(b".\r\nQUIT\r\n")
        state, content = await smtp._data_lines()
        assert await reader.readuntil() == b"QUIT\r\n"  # what follows the data stays for the command loop
        return state, content

    state, content = server.run(read())
    assert state.name == "NOMINAL"
    assert content == b".dot\r\n" + line * count


@contextlib.contextmanager
def freed_without_gc(server, monkeypatch, connections: int):
    """Within the block the cyclic collector is off and every new SMTP connection's server object is
    recorded; at its end, `connections` of them must have closed their sessions and been freed by
    their reference counts alone (no cycle left behind)."""
    made: list[weakref.ref] = []
    connection_made = TuimailSMTP.connection_made

    def recording(self, transport):
        if self.record is None:
            made.append(weakref.ref(self))
        connection_made(self, transport)

    monkeypatch.setattr(TuimailSMTP, "connection_made", recording)
    gc.collect()
    gc.disable()
    try:
        yield
        wait(lambda: len(made) == connections and not len(server.engine.sessions), what="the sessions closed")
        wait(lambda: all(ref() is None for ref in made), timeout=10, what="every connection freed without gc")
    finally:
        gc.enable()


def test_a_finished_connection_is_freed_without_the_cyclic_collector(server, monkeypatch):
    """Whatever way a connection ends (QUIT after a delivery, QUIT with an argument then a drop, a
    drop in the middle of a transaction), its objects are freed by their reference counts: with the
    cyclic collector off, every connection's server object goes away once its session has closed."""
    with freed_without_gc(server, monkeypatch, connections=3):
        with smtplib.SMTP("127.0.0.1", server.ports.smtp, timeout=10) as client:
            client.sendmail("someone@example.org", ["tester@lab.test"], b"Subject: freed\r\n\r\nhello\r\n")
        t = Telnet(server.ports.smtp)
        t.reply()
        assert t.type("QUIT now")[0].startswith("501")
        t.file.close()
        t.close()
        t = Telnet(server.ports.smtp)
        t.reply()
        t.type("HELO me")
        t.type("MAIL FROM:<someone@example.org>")
        t.file.close()
        t.close()


def _session_protocol(server):
    record = wait(lambda: next(iter(server.engine.sessions), None), what="the session")
    return record, record.abort.__self__


def test_the_command_loop_starts_with_the_clients_first_line(server):
    """The greeting comes from `connection_made`; the command loop's task is made when input arrives
    (none for a client that has not spoken yet), and the first line is answered as before."""
    t = Telnet(server.ports.smtp)
    assert t.reply()[0].startswith("220 mail.lab.test ESMTP")
    record, protocol = _session_protocol(server)
    assert protocol._handler_coroutine is None
    t.send("EH", end=b"")  # half a line: still nothing for the command loop
    server.wait_for(lambda: record.bytes_in == 2)
    assert protocol._handler_coroutine is None
    assert t.type("LO me")[0] == "250-mail.lab.test Hello me, pleased to meet you"
    assert protocol._handler_coroutine is not None
    assert t.type("QUIT")[0].startswith("221 ")
    assert t.closed()
    t.close()
    server.wait_for(lambda: record.closed)
    assert record.close_reason is None and record.last_command == "QUIT"


def test_a_client_that_leaves_without_a_word(server, monkeypatch):
    """Closed, half-closed (EOF) or reset before its first line, a connection without a command loop
    ends as one with it did: the session closes as a lost connection (its log block written), the
    server closes its side, and its objects are freed by their reference counts."""
    with freed_without_gc(server, monkeypatch, connections=3):
        t = Telnet(server.ports.smtp)  # EOF: the server closes its side too
        t.reply()
        t.sock.shutdown(socket.SHUT_WR)
        assert t.closed()
        t.file.close()
        t.close()
        t = Telnet(server.ports.smtp)  # gone at once, the greeting unread
        t.file.close()
        t.close()
        t = Telnet(server.ports.smtp)  # reset (RST)
        t.reply()
        t.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        t.file.close()
        t.close()
    path = server.config.log_dir / "SMTP-in.log"
    server.wait_for(lambda: path.exists() and path.read_text().count("[connection lost]") == 3)
    closing = [line for line in path.read_text().splitlines() if "SMTP session" in line]
    assert len(closing) == 3 and all("SMTP session terminated (Bytes in/out: 0/" in line for line in closing)
