"""What the next hop offers and how long it takes: implicit TLS to a smarthost (RFC 8314), a message
larger than its SIZE (RFC 1870: a bounce, nothing sent), SMTPUTF8 mail to a hop without it (RFC 6531
§3.2: a bounce), 8-bit mail to a hop without 8BITMIME (sent unconverted, as Postfix does), PIPELINING
(RFC 2920: the hop answers nothing until the whole group is in), and the per-stage timeouts of
RFC 5321 §4.5.3.2 (a hop that goes quiet after RCPT runs out the RCPT timeout, not another; a hop that
stops reading the message runs out the data block timeout)."""

from __future__ import annotations

import smtplib
import socket
import threading

from tests.helpers import PASSWORD, free_port
from tests.outbound.helpers import inbox, outbound_config, parse, queue_ids, start, state_text, wait
from tests.outbound.stubs import Sink
from tests.outbound.test_delivery import MESSAGE, submit
from tuimail.outbound import relaypass


class RawHop:
    """A next hop written with sockets, to offer exactly the extensions a test names. It records every
    line it reads and the message data; `hold` makes it wait for MAIL, RCPT and DATA all together
    before it answers any (a server that only works with a pipelining client); `quiet_after` stops
    answering after that command (the client must time out)."""

    def __init__(self, extensions: list[str], hold: bool = False, quiet_after: str = "", stall: bool = False) -> None:
        self.extensions, self.hold, self.quiet_after, self.stall = extensions, hold, quiet_after.upper(), stall
        self.stalled = threading.Event()
        self.closed = threading.Event()
        self.lines: list[str] = []
        self.data: list[bytes] = []
        self.sock = socket.socket()
        if stall:  # a small receive buffer: the client's blocks stop leaving soon after we stop reading
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        conn.sendall(b"220 hop.test ESMTP\r\n")
        held: list[bytes] = []
        try:
            while line := reader.readline():
                verb = line.split(b" ", 1)[0].strip().upper().decode()
                self.lines.append(line.decode("utf-8", "replace").rstrip("\r\n"))
                if verb == self.quiet_after:
                    reader.read()  # say nothing more, read until the client gives up
                    return
                if verb == "EHLO":
                    conn.sendall("".join(f"250-{e}\r\n" for e in ["hop.test", *self.extensions[:-1]]).encode()
                                 + f"250 {self.extensions[-1]}\r\n".encode())
                elif verb in ("MAIL", "RCPT"):
                    held.append(b"250 2.0.0 Ok\r\n")
                elif verb == "DATA":
                    held.append(b"354 Go ahead\r\n")
                    conn.sendall(b"".join(held))  # the whole group at once
                    held = []
                    if self.stall:  # 354, then read nothing more: the message cannot leave the client
                        self.stalled.set()
                        self.closed.wait()
                        return
                    body = b""
                    while (chunk := reader.readline()) not in (b".\r\n", b""):
                        body += chunk
                    self.data.append(body)
                    conn.sendall(b"250 2.0.0 Queued\r\n")
                elif verb == "QUIT":
                    conn.sendall(b"221 Bye\r\n")
                    return
                else:
                    conn.sendall(b"250 Ok\r\n")
                if held and not self.hold:
                    conn.sendall(b"".join(held))
                    held = []
        except OSError:
            return

    def close(self) -> None:
        self.closed.set()
        for conn in self.conns:
            conn.close()
        self.sock.close()


def test_implicit_tls_to_the_smarthost(tmp_path, monkeypatch):
    """relay_tls = "implicit": TLS from the first byte to the relay's smtps port (RFC 8314), then AUTH."""
    relay_cfg = outbound_config(tmp_path / "relay", ["far.test"])
    relay_cfg.settings.ports.smtps = free_port()
    relay_cfg.settings.policy.enforce_sender = False
    relay = start(relay_cfg, "relayuser@far.test", "friend@far.test")
    cfg = outbound_config(tmp_path / "office", ["lab.test"], relay=f"127.0.0.1:{relay_cfg.settings.ports.smtps}",
                          relay_user="relayuser@far.test", relay_tls="implicit")
    relaypass.save(cfg.data_dir, PASSWORD)
    server = start(cfg, "tester@lab.test")
    try:
        submit(server, ["friend@far.test"])
        [got] = wait(lambda: inbox(relay, "friend@far.test"), what="delivery over implicit TLS")
        assert b"with ESMTPSA" in got  # TLS and AUTH, as the relay recorded them
        log = wait(lambda: "SMTP session successful" in server.log_text("SMTP-out") and server.log_text("SMTP-out"))
        assert "--> STARTTLS" not in log and "--> AUTH PLAIN *****" in log
        wait(lambda: not queue_ids(cfg), what="the queue empties")
    finally:
        server.stop()
        relay.stop()


def test_a_message_larger_than_the_hops_size_is_bounced_unsent(tmp_path):
    sink = Sink(data_size_limit=300).start()  # EHLO says SIZE 300
    cfg = outbound_config(tmp_path, ["lab.test"], {"*": sink.port})
    server = start(cfg, "tester@lab.test")
    try:
        submit(server, ["friend@far.test"], MESSAGE + b"x" * 400 + b"\r\n")
        [bounce] = wait(lambda: inbox(server, "tester@lab.test"), what="the bounce")
        report = parse(bounce)
        assert report.get_content_type() == "multipart/report"
        status = report.get_payload()[1].get_payload()[1]
        assert status["Action"] == "failed" and status["Status"] == "5.3.4"
        assert b"larger than" in bounce and b"(300)" in bounce
        assert sink.handler.datas == 0  # RFC 1870 §6.2: not even tried
        wait(lambda: not queue_ids(cfg), what="the queue empties")
    finally:
        server.stop()
        sink.stop()


def test_smtputf8_mail_to_a_hop_without_it_is_bounced(tmp_path):
    sink = Sink(enable_SMTPUTF8=False).start()
    cfg = outbound_config(tmp_path, ["lab.test"], {"*": sink.port})
    server = start(cfg, "tester@lab.test")
    try:
        with smtplib.SMTP("127.0.0.1", server.ports.submission) as client:
            client.login("tester@lab.test", PASSWORD)
            client.sendmail("tester@lab.test", ["друг@far.test"], MESSAGE, mail_options=["SMTPUTF8"])
        [bounce] = wait(lambda: inbox(server, "tester@lab.test"), what="the bounce")
        status = parse(bounce).get_payload()[1].get_payload()[1]
        assert status["Action"] == "failed" and status["Status"] == "5.6.7"
        assert b"does not support SMTPUTF8" in bounce
        assert sink.handler.datas == 0 and sink.messages == []  # RFC 6531 §3.2: no downgrade
    finally:
        server.stop()
        sink.stop()


def test_eight_bit_mail_to_a_hop_without_8bitmime_goes_unconverted(tmp_path):
    """RFC 6152 asks for a conversion; like Postfix (and most MTAs) we send the bytes as they are,
    without BODY=8BITMIME, and the README says so."""
    hop = RawHop(["SIZE 1000000", "ENHANCEDSTATUSCODES"])
    cfg = outbound_config(tmp_path, ["lab.test"], {"*": hop.port})
    server = start(cfg, "tester@lab.test")
    text = "Привет, группа!".encode()
    try:
        message = (b"From: tester@lab.test\r\nSubject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n"
                   b"Content-Transfer-Encoding: 8bit\r\n\r\n" + text + b"\r\n")
        with smtplib.SMTP("127.0.0.1", server.ports.submission) as client:
            client.login("tester@lab.test", PASSWORD)
            client.sendmail("tester@lab.test", ["friend@far.test"], message, mail_options=["BODY=8BITMIME"])
        [body] = wait(lambda: hop.data, what="the message at the hop")
        assert text in body
        mail = next(line for line in hop.lines if line.upper().startswith("MAIL"))
        assert "BODY=8BITMIME" not in mail.upper() and "SIZE=" in mail.upper()
        wait(lambda: not queue_ids(cfg), what="delivered")
    finally:
        server.stop()
        hop.close()


def test_pipelining_sends_the_group_in_one_go(tmp_path):
    """The hop answers MAIL and RCPT only once DATA is in: a client that waited for each reply would
    hang there; a pipelining one (RFC 2920 §3.1) delivers."""
    hop = RawHop(["PIPELINING", "SIZE 1000000", "8BITMIME"], hold=True)
    cfg = outbound_config(tmp_path, ["lab.test"], {"*": hop.port}, timeouts={"mail": 5, "rcpt": 5, "data": 5})
    server = start(cfg, "tester@lab.test")
    try:
        submit(server, ["one@far.test", "two@far.test"])
        wait(lambda: hop.data, what="the message at the hop")
        wait(lambda: not queue_ids(cfg), what="delivered")
        verbs = [line.split()[0].upper() for line in hop.lines]
        assert verbs[verbs.index("MAIL"):verbs.index("DATA") + 1] == ["MAIL", "RCPT", "RCPT", "DATA"]
    finally:
        server.stop()
        hop.close()


def test_each_stage_has_its_own_timeout(tmp_path):
    """A hop that goes quiet after RCPT: the RCPT timeout (1 s) runs out while the others are long."""
    hop = RawHop(["SIZE 1000000"], quiet_after="RCPT")
    cfg = outbound_config(tmp_path, ["lab.test"], {"*": hop.port}, retry_schedule=[3600],
                          timeouts={"greeting": 60, "command": 60, "mail": 60, "rcpt": 1, "data": 60})
    server = start(cfg, "tester@lab.test")
    try:
        submit(server, ["friend@far.test"])
        [qid] = wait(lambda: queue_ids(cfg), what="queued")
        text = wait(lambda: '"attempts": 1' in (t := state_text(cfg, qid)) and t, what="the attempt recorded")
        assert "timeout waiting for the reply to RCPT" in text and '"state": "queued"' in text
    finally:
        server.stop()
        hop.close()


def test_the_first_versions_single_timeout_still_reads():
    from tuimail.config import OutboundSettings

    stages = OutboundSettings.model_validate({"timeout": "1m", "timeouts": {"rcpt": 5}}).timeouts
    assert (stages.greeting, stages.mail, stages.rcpt, stages.data_end, stages.connect) == (60, 60, 5, 120, 30)


def test_a_hop_that_stops_reading_the_message_runs_out_the_block_timeout(tmp_path):
    """354, then the hop reads nothing (§4.5.3.2.5): a block of the message cannot leave within
    `data_block`, the attempt ends as a timeout while sending, and the message stays queued."""
    hop = RawHop(["SIZE 100000000"], stall=True)
    cfg = outbound_config(tmp_path, ["lab.test"], {"*": hop.port}, retry_schedule=[3600],
                          timeouts={"data_block": 1, "data_end": 600})
    server = start(cfg, "tester@lab.test")
    try:
        big = MESSAGE + (b"y" * 998 + b"\r\n") * 12_000  # 12 MB: more than the socket buffers hold
        submit(server, ["friend@far.test"], big)
        [qid] = wait(lambda: queue_ids(cfg), what="queued")
        assert hop.stalled.wait(20)
        text = wait(lambda: '"attempts": 1' in (t := state_text(cfg, qid)) and t, timeout=30, what="the attempt recorded")
        assert "timeout sending the message" in text and '"state": "queued"' in text
    finally:
        server.stop()
        hop.close()
