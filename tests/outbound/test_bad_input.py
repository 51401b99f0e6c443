"""Bad next hops and old mail: a host that accepts the connection and never answers (the per-reply
timeout), a host that answers garbage, a next hop that drops the connection after DATA (the message
stays queued and is delivered once later), the delay warning and the age limit (both DSNs)."""

from __future__ import annotations

import socket
import threading

from tests.outbound.helpers import inbox, outbound_config, parse, queue_ids, start, state_text, wait
from tests.outbound.test_delivery import submit


class Silent:
    """A TCP listener that accepts and then says nothing (or `greeting` and nothing else)."""

    def __init__(self, greeting: bytes = b"") -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.greeting = greeting
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.greeting:
                conn.sendall(self.greeting)

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.sock.close()


def test_a_silent_host_and_a_garbage_host_are_retried(tmp_path):
    silent, garbage = Silent(), Silent(b"HELLO THERE I AM NOT SMTP\r\n")
    cfg = outbound_config(tmp_path, ["lab.test"], {"quiet.test": silent.port, "noise.test": garbage.port},
                          timeouts={"greeting": 1, "command": 1}, retry_schedule=[3600])
    server = start(cfg, "tester@lab.test")
    try:
        submit(server, ["a@quiet.test", "b@noise.test"])
        [qid] = wait(lambda: queue_ids(cfg), what="queued")
        wait(lambda: state_text(cfg, qid).count('"attempts": 1') == 2, what="both attempts recorded")
        text = state_text(cfg, qid)
        assert "timeout" in text
        assert '"state": "queued"' in text and inbox(server, "tester@lab.test") == []
    finally:
        server.stop()
        silent.close()
        garbage.close()


def test_connection_dropped_after_data_keeps_the_message(tmp_path, sink):
    cfg = outbound_config(tmp_path, ["lab.test"], {"*": sink.port})
    dropped = []

    async def drop_after_data(server, session, envelope):
        if not dropped:
            dropped.append(True)
            server.transport.close()  # the dot was sent; no reply ever comes
            return "250 never seen"
        sink.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 sunk"

    sink.handler.handle_DATA = drop_after_data
    server = start(cfg, "tester@lab.test")
    try:
        submit(server, ["friend@far.test"])
        wait(lambda: len(sink.messages) == 1 and not queue_ids(cfg), what="delivered on the retry")
        assert dropped == [True] and len(sink.messages) == 1
    finally:
        server.stop()


def test_delay_warning_then_bounce_at_the_age_limit(tmp_path, sink):
    sink.handler.script = ["451 4.3.0 Not now"] * 100
    cfg = outbound_config(tmp_path, ["lab.test"], {"*": sink.port}, retry_schedule=[0.3],
                          delay_warning_after=0.5, max_queue_age=2.5)
    server = start(cfg, "tester@lab.test")
    try:
        submit(server, ["friend@far.test"])
        warning, bounce = wait(lambda: len(got := inbox(server, "tester@lab.test")) == 2 and got,
                               timeout=30, what="a warning, then a bounce")
        assert b"Subject: Delivery delayed" in warning
        status = parse(warning).get_payload()[1].get_payload()[1]
        assert status["Action"] == "delayed" and status["Status"] == "4.3.0"
        assert b"Undelivered Mail Returned to Sender" in bounce and b"4.4.7 message expired" in bounce
        wait(lambda: not queue_ids(cfg), what="the queue empties")
    finally:
        server.stop()
