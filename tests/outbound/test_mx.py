"""MX delivery through a DNS stub in the test process (RFC 5321 §5.1, RFC 7505): preference order
with fallback to the next host, the implicit MX, null MX and NXDOMAIN (permanent: a bounce) and
SERVFAIL or a silent server (temporary: the message stays queued)."""

from __future__ import annotations

import json

from tests.outbound.helpers import inbox, outbound_config, parse, queue_ids, start, state_text, wait
from tests.outbound.test_delivery import submit


def mx_server(tmp_path, sink, dns_stub):
    cfg = outbound_config(tmp_path, ["lab.test"], dns_servers=[dns_stub.server], port=sink.port)
    return cfg, start(cfg, "tester@lab.test")


def test_mx_by_preference_falls_over_to_the_next_host(tmp_path, sink, dns_stub):
    dns_stub.add("far.test", "MX", "10 mx1.far.test.", "20 mx2.far.test.")
    dns_stub.add("mx1.far.test", "A", "127.0.0.2")  # nothing listens there: refused
    dns_stub.add("mx2.far.test", "A", "127.0.0.1")
    cfg, server = mx_server(tmp_path, sink, dns_stub)
    try:
        submit(server, ["friend@far.test"])
        wait(lambda: sink.messages, what="delivery through mx2")
        assert ("far.test", "MX") in dns_stub.queries
        log = wait(lambda: "SMTP session successful" in server.log_text("SMTP-out") and server.log_text("SMTP-out"))
        assert "Attempting SMTP connection to [127.0.0.2 :" in log
        assert "Next hop mx2.far.test" in log
    finally:
        server.stop()


def test_implicit_mx_is_the_domains_address(tmp_path, sink, dns_stub):
    dns_stub.add("plain.test", "A", "127.0.0.1")
    cfg, server = mx_server(tmp_path, sink, dns_stub)
    try:
        submit(server, ["friend@plain.test"])
        wait(lambda: sink.messages, what="delivery to the implicit MX")
    finally:
        server.stop()


def test_null_mx_and_nxdomain_bounce(tmp_path, sink, dns_stub):
    dns_stub.add("nomail.test", "MX", "0 .")
    cfg, server = mx_server(tmp_path, sink, dns_stub)
    try:
        submit(server, ["a@nomail.test", "b@nowhere.test"])
        [raw] = wait(lambda: inbox(server, "tester@lab.test"), what="the bounce")
        status = parse(raw).get_payload()[1].get_payload()
        by_rcpt = {b["Final-Recipient"]: b for b in status[1:]}
        assert by_rcpt["rfc822; a@nomail.test"]["Action"] == "failed"
        assert "null MX" in raw.decode()
        assert "NXDOMAIN" in raw.decode()
        assert sink.messages == []
        wait(lambda: not queue_ids(cfg), what="the queue empties")
    finally:
        server.stop()


def test_servfail_keeps_the_message_queued(tmp_path, sink, dns_stub):
    dns_stub.add("broken.test", "A", "127.0.0.1")
    dns_stub.servfail.add("broken.test")
    cfg, server = mx_server(tmp_path, sink, dns_stub)
    try:
        submit(server, ["friend@broken.test"])
        [qid] = wait(lambda: queue_ids(cfg), what="queued")
        state = wait(lambda: (s := json.loads(state_text(cfg, qid) or "{}")).get("recipients", [{}])[0].get("attempts", 0) >= 2 and s,
                     what="two deferred attempts")
        assert state["recipients"][0]["state"] == "queued"
        assert "DNS" in state["recipients"][0]["last_reply"]
        assert inbox(server, "tester@lab.test") == []
        dns_stub.servfail.clear()  # DNS comes back: the next retry delivers
        wait(lambda: sink.messages, what="delivery after DNS recovered")
    finally:
        server.stop()
