"""The POP3 machine driven with plain bytes, as a student types them (RFC 1939, 2449, 5034)."""

from __future__ import annotations

import base64

import pytest

from tests.protocols.pop3.memory import Driver, MemoryStore, logged_in
from tuimail.protocols.pop3 import AuthResult, Pop3Machine, StartTls, State
from tuimail.protocols.pop3.message import wire_body

LAB = [
    b"From: tester@lab.test\nSubject: one\n\nfirst\n",
    b"From: tester@lab.test\nSubject: two\n\nsecond\n",
    b"From: tester@lab.test\nSubject: three\n\nthird line\n.starts with a dot\n..two dots\n",
    b"From: tester@lab.test\nSubject: four\n\nno final newline",
]


def wire_size(data: bytes) -> int:
    return len(data) + data.count(b"\n")


@pytest.fixture
def store() -> MemoryStore:
    store = MemoryStore()
    for data in LAB:
        store.add("tatareva@lab.test", data)
    return store


def test_greeting_has_hostname_and_version_and_no_apop_timestamp() -> None:
    # RFC 1939 §7: a <...@host> timestamp announces APOP, which is never offered: s-nail would try it
    driver = Driver()
    assert bytes(driver.wire) == b"+OK mail.lab.test POP tuimail 0.1.0 ready\r\n"
    assert driver.machine.state is State.AUTHORIZATION


def test_a_timestamp_is_shown_only_when_the_driver_offers_apop() -> None:
    driver = Driver(timestamp="<1.2.3@mail.lab.test>")
    assert bytes(driver.wire) == b"+OK mail.lab.test POP tuimail 0.1.0 ready <1.2.3@mail.lab.test>\r\n"


def test_the_lab_session(store: MemoryStore) -> None:
    d = Driver(store)
    capa = d.lines(b"capa\n")
    assert capa[0] == "+OK Capability list follows" and capa[-1] == "."
    assert {"TOP", "USER", "UIDL", "SASL PLAIN LOGIN", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING",
            "EXPIRE NEVER", "IMPLEMENTATION tuimail-0.1.0"} == set(capa[1:-1])
    assert not any(line.startswith(("APOP", "STLS")) for line in capa)
    assert d.lines(b"user tatareva\n") == ["+OK tatareva... User ok"]
    total = sum(map(wire_size, LAB))
    assert d.lines(b"pass Secret123\n") == [f"+OK tatareva@lab.test's mailbox has 4 total messages ({total} octets)"]
    assert d.machine.state is State.TRANSACTION
    assert d.lines(b"stat\n") == [f"+OK 4 {total}"]
    assert d.lines(b"list\n") == [f"+OK 4 messages ({total} octets)",
                                  *(f"{n} {wire_size(m)}" for n, m in enumerate(LAB, 1)), "."]
    assert d.lines(b"uidl\n") == ["+OK Unique-ID listing follows", *(f"{n} 1700000000.{n}" for n in range(1, 5)), "."]
    retr = d.send(b"retr 3\n")
    assert retr == (f"+OK {wire_size(LAB[2])} octets\r\n".encode()
                    + b"From: tester@lab.test\r\nSubject: three\r\n\r\nthird line\r\n"
                    + b"..starts with a dot\r\n...two dots\r\n.\r\n")
    assert d.lines(b"quit\n") == ["+OK tatareva@lab.test mail.lab.test POP Server signing off (4 messages left)"]
    assert d.closed and d.machine.state is State.UPDATE and not store.locked


def test_log_masks_the_password_and_summarises_listings_and_bodies(store: MemoryStore) -> None:
    d = Driver(store)
    d.send(b"user tatareva\npass Secret123\nlist\nuidl\nretr 1\ntop 2 0\n")
    assert "<-- PASS *****" in d.log and not any("Secret123" in line for line in d.log)
    assert "Sending LIST response (4 lines, not logged)" in d.log
    assert "Sending UIDL response (4 lines, not logged)" in d.log
    assert d.log.count("Sending message (not logged)") == 2
    assert not any("first" in line or "Subject" in line for line in d.log)


def test_message_without_final_newline_still_ends_with_crlf_before_the_dot(store: MemoryStore) -> None:
    d = logged_in(store)
    assert d.send(b"RETR 4\r\n").endswith(b"\r\nno final newline\r\n.\r\n")


def test_top_sends_header_blank_line_and_k_body_lines(store: MemoryStore) -> None:
    d = logged_in(store)
    assert d.send(b"top 3 1\n") == (b"+OK Top of message follows\r\nFrom: tester@lab.test\r\nSubject: three\r\n"
                                    b"\r\nthird line\r\n.\r\n")
    assert d.send(b"top 3 0\n").endswith(b"Subject: three\r\n\r\n.\r\n")
    assert d.send(b"top 3 99\n").endswith(b"...two dots\r\n.\r\n")
    assert d.lines(b"top 3\n") == ["-ERR Missing argument: TOP message-number lines"]


def test_single_message_list_and_uidl(store: MemoryStore) -> None:
    d = logged_in(store)
    assert d.lines(b"list 2\n") == [f"+OK 2 {wire_size(LAB[1])}"]
    assert d.lines(b"uidl 2\n") == ["+OK 2 1700000000.2"]
    assert d.lines(b"list 5\n") == ["-ERR No such message: 5 (the maildrop has 4)"]
    assert d.lines(b"list 0\n") == ["-ERR No such message: 0 (the maildrop has 4)"]


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"retr\n", "-ERR Missing argument: RETR message-number"),
        (b"retr abc\n", "-ERR Invalid message number: abc (a number is expected)"),
        (b"retr -1\n", "-ERR Invalid message number: -1 (a number is expected)"),
        (b"retr 99999999999999\n", "-ERR Invalid message number: too large"),
        (b"dele 1 2\n", "-ERR Too many arguments: DELE message-number"),
        (b"stat now\n", "-ERR STAT takes no arguments"),
        (b"frobnicate\n", "-ERR Unknown command: frobnicate"),
        (b"\n", "-ERR Empty command line"),
        (b"user bob\n", "-ERR USER is not valid after login (already logged in)"),
        (b"apop bob 0123456789abcdef\n", "-ERR APOP is not valid after login (already logged in)"),
    ],
)
def test_bad_commands_get_a_reason_and_the_session_goes_on(store: MemoryStore, line: bytes, reply: str) -> None:
    d = logged_in(store)
    assert d.lines(line) == [reply]
    assert d.lines(b"noop\n") == ["+OK"]


def test_transaction_commands_before_login_are_refused() -> None:
    d = Driver()
    for verb in (b"stat", b"list", b"retr 1", b"dele 1", b"noop", b"rset", b"top 1 1", b"uidl"):
        (reply,) = d.lines(verb + b"\n")
        assert reply.startswith("-ERR ") and "not valid before login" in reply
    assert d.lines(b"retr abc\n") == ["-ERR RETR is not valid before login (use USER and PASS first)"]


def test_wrong_password_and_unknown_user_get_the_same_reply() -> None:
    d = Driver()
    assert d.lines(b"pass Secret123\n") == ["-ERR Send USER first, then PASS"]
    d.send(b"user tatareva\n")
    wrong = d.lines(b"pass nope\n")
    d.send(b"user nobody\n")
    unknown = d.lines(b"pass Secret123\n")
    assert wrong == unknown == ["-ERR [AUTH] Invalid login or password"]
    assert "Authentication failed: password mismatch" in d.log
    assert "Authentication failed: user unknown" in d.log
    assert d.lines(b"pass Secret123\n") == ["-ERR Send USER first, then PASS"]  # RFC 1939: USER again
    d.send(b"user tatareva@lab.test\n")
    assert d.lines(b"pass Secret123\n")[0].startswith("+OK tatareva@lab.test's mailbox has 0 total")


def test_password_may_contain_spaces() -> None:
    d = Driver()
    d.send(b"USER tatareva\r\nPASS  two words \r\n")
    assert d.requests[-1].password == " two words "


def test_dele_marks_rset_unmarks_quit_removes(store: MemoryStore) -> None:
    d = logged_in(store)
    assert d.lines(b"dele 1\n") == ["+OK Message 1 deleted"]
    assert d.lines(b"dele 1\n") == ["-ERR Message 1 is marked as deleted"]
    assert d.lines(b"retr 1\n") == ["-ERR Message 1 is marked as deleted"]
    assert d.lines(b"stat\n")[0].startswith("+OK 3 ")
    assert "1 " not in [line[:2] for line in d.lines(b"list\n")[1:-1]]
    assert d.lines(b"rset\n")[0].startswith("+OK Maildrop has 4 messages")
    d.send(b"dele 1\ndele 2\n")
    assert len(store.boxes["tatareva@lab.test"]) == 4  # only marked so far
    assert d.lines(b"quit\n") == ["+OK tatareva@lab.test mail.lab.test POP Server signing off (2 messages left)"]
    assert sorted(store.boxes["tatareva@lab.test"]) == [3, 4]
    assert "2 message(s) removed" in d.log


def test_sign_off_says_when_the_mailbox_is_empty(store: MemoryStore) -> None:
    d = logged_in(store)
    d.send(b"dele 1\ndele 2\ndele 3\n")
    assert d.lines(b"dele 4\nquit\n")[-1] == "+OK tatareva@lab.test mail.lab.test POP Server signing off (mailbox empty)"
    one = MemoryStore()
    one.add("tatareva@lab.test", LAB[0])
    assert logged_in(one).lines(b"quit\n") == [
        "+OK tatareva@lab.test mail.lab.test POP Server signing off (1 message left)"
    ]


def test_quit_before_login() -> None:
    d = Driver()
    assert d.lines(b"QUIT\n") == ["+OK mail.lab.test POP Server signing off"]
    assert d.closed and d.lines(b"noop\n") == []


def test_dropped_connection_removes_nothing_and_releases_the_lock(store: MemoryStore) -> None:
    d = logged_in(store)
    d.send(b"dele 1\ndele 2\n")
    d.machine.connection_lost()
    assert len(store.boxes["tatareva@lab.test"]) == 4 and not store.locked


def test_second_session_on_a_locked_maildrop_is_in_use(store: MemoryStore) -> None:
    first = logged_in(store)
    second = Driver(store)
    second.send(b"user tatareva\n")
    assert second.lines(b"pass Secret123\n") == ["-ERR [IN-USE] Maildrop is already in use by another POP3 session"]
    assert second.machine.state is State.AUTHORIZATION
    first.send(b"quit\n")
    second.send(b"user tatareva\n")
    assert second.lines(b"pass Secret123\n")[0].startswith("+OK")


def test_message_numbers_are_fixed_for_the_session(store: MemoryStore) -> None:
    d = logged_in(store)
    store.add("tatareva@lab.test", b"Subject: late\n\nlate\n")  # arrives after login
    del store.boxes["tatareva@lab.test"][2]  # removed by another (IMAP) session
    assert d.lines(b"stat\n")[0].startswith("+OK 4 ")
    assert d.lines(b"retr 2\n") == ["-ERR Message 2 is no longer available (removed by another session)"]
    assert d.send(b"retr 3\n").startswith(f"+OK {wire_size(LAB[2])} octets".encode())
    assert d.lines(b"list 5\n")[0].startswith("-ERR No such message")


def test_pipelined_session_keeps_its_order_across_the_password_check(store: MemoryStore) -> None:
    d = Driver(store)
    replies = d.lines(b"USER tatareva\r\nPASS Secret123\r\nSTAT\r\nLIST 1\r\nQUIT\r\n")
    assert [r.split(" ")[0] for r in replies] == ["+OK"] * 5
    assert replies[2] == f"+OK 4 {sum(map(wire_size, LAB))}"
    assert replies[3] == f"+OK 1 {wire_size(LAB[0])}"


def test_apop_is_refused_with_a_reason() -> None:
    d = Driver()
    assert d.lines(b"apop tatareva c4c9334bac560ecc979e58001b3e22fb\n") == [
        "-ERR APOP is not available here (passwords are stored hashed); use USER/PASS or AUTH"
    ]
    assert d.log[-2] == "<-- apop tatareva *****"


def b64(text: str) -> bytes:
    return base64.b64encode(text.encode())


def test_auth_plain_with_initial_response() -> None:
    d = Driver()
    reply = d.lines(b"AUTH PLAIN " + b64("\0tatareva\0Secret123") + b"\r\n")
    assert reply[0].startswith("+OK tatareva@lab.test's mailbox has")
    assert d.log[-3:-1] == ["<-- AUTH PLAIN *****", "Authenticated as tatareva@lab.test"]


def test_auth_plain_with_continuation_is_masked_in_the_log() -> None:
    d = Driver()
    assert d.send(b"auth plain\n") == b"+ \r\n"
    assert d.lines(b64("tatareva@lab.test\0tatareva@lab.test\0Secret123") + b"\n")[0].startswith("+OK")
    assert d.log[-4:-1] == ["--> + ", "<-- *****", "Authenticated as tatareva@lab.test"]


def test_auth_login_asks_for_user_and_password() -> None:
    d = Driver()
    assert d.lines(b"AUTH LOGIN\r\n") == ["+ " + b64("Username:").decode()]
    assert d.lines(b64("tatareva") + b"\r\n") == ["+ " + b64("Password:").decode()]
    assert d.lines(b64("Secret123") + b"\r\n")[0].startswith("+OK")
    assert d.log.count("<-- *****") == 2


@pytest.mark.parametrize(
    ("lines", "reply"),
    [
        ([b"AUTH PLAIN", b"*"], "-ERR Authentication cancelled"),
        ([b"AUTH PLAIN", b"not base64!"], "-ERR [AUTH] invalid base64 data"),
        ([b"AUTH PLAIN " + b64("tester\0tatareva\0Secret123")],
         "-ERR [AUTH] acting as another user (authorization identity) is not supported"),
        ([b"AUTH PLAIN " + b64("\0tatareva\0wrong")], "-ERR [AUTH] Invalid login or password"),
        ([b"AUTH CRAM-MD5"], "-ERR Unsupported mechanism (use one of: PLAIN LOGIN)"),
    ],
)
def test_auth_failures(lines: list[bytes], reply: str) -> None:
    d = Driver()
    assert d.lines(b"".join(line + b"\r\n" for line in lines))[-1] == reply
    assert d.machine.state is State.AUTHORIZATION
    assert d.lines(b"capa\r\n")[0] == "+OK Capability list follows"  # back to commands


def test_auth_without_mechanism_lists_them() -> None:
    assert Driver().lines(b"AUTH\r\n") == ["+OK Supported mechanisms follow", "PLAIN", "LOGIN", "."]


def test_ten_bad_commands_in_a_row_close_the_session() -> None:
    d = Driver()
    for _ in range(9):
        d.send(b"bogus\n")
    assert not d.closed
    assert d.lines(b"bogus\n") == ["-ERR Unknown command: bogus", "-ERR Too many bad commands; closing the connection"]
    assert d.closed


def test_a_good_command_resets_the_bad_count() -> None:
    d = Driver()
    for _ in range(9):
        d.send(b"bogus\n")
    d.send(b"capa\n")
    for _ in range(9):
        d.send(b"bogus\n")
    assert not d.closed


def test_overlong_line_is_refused_and_the_session_goes_on() -> None:
    d = Driver()
    assert d.lines(b"user " + b"x" * 2000 + b"\n") == ["-ERR Command line too long (at most 1000 octets)"]
    assert d.lines(b"user " + b"y" * 900 + b"\n")[0].startswith("+OK yyyy")
    assert d.lines(b"noop\n")[0].startswith("-ERR")


def test_telnet_typing_backspace_and_delete() -> None:
    d = Driver()
    assert d.lines(b"usr\x08\x08ser tatarevx\x7fa\r\n") == ["+OK tatareva... User ok"]
    assert d.log[-2] == "<-- user tatareva"


def test_plaintext_login_can_be_disabled() -> None:
    d = Driver(plaintext_auth=False)
    capa = d.lines(b"CAPA\r\n")
    assert "USER" not in capa and not any(c.startswith("SASL") for c in capa)
    assert d.lines(b"USER tatareva\r\n")[0].startswith("-ERR [AUTH] Plaintext login is disabled")
    assert d.lines(b"AUTH PLAIN\r\n")[0].startswith("-ERR [AUTH]")


def test_stls_is_a_hook_for_later() -> None:
    assert Driver().lines(b"STLS\r\n") == ["-ERR STLS is not available (TLS is not configured on this server)"]
    machine = Pop3Machine(MemoryStore(), hostname="h", version="1", timestamp="<t@h>", tls_available=True)
    assert "STLS" in machine.receive(b"CAPA\r\n")[1].lines
    outputs = machine.receive(b"STLS\r\n")
    assert outputs[1].status_line == "+OK Begin TLS negotiation" and isinstance(outputs[2], StartTls)
    assert machine.tls_started() == [] and "STLS" not in machine.receive(b"CAPA\r\n")[1].lines


def test_maildrop_that_cannot_be_opened_is_a_temporary_error() -> None:
    class Broken(MemoryStore):
        def open(self, address):
            raise OSError("disk on fire")

    machine = Pop3Machine(Broken(), hostname="h", version="1", timestamp="<t@h>")
    machine.receive(b"user a\npass b\n")
    outputs = machine.auth_result(AuthResult("a@lab.test"))
    assert outputs[-1].status_line == "-ERR [SYS/TEMP] Cannot open the maildrop; try again later"


def test_no_lock_is_taken_when_the_connection_went_away_during_the_check(store: MemoryStore) -> None:
    machine = Pop3Machine(store, hostname="h", version="1", timestamp="<t@h>")
    machine.receive(b"user tatareva\npass Secret123\n")
    machine.connection_lost()
    assert machine.auth_result(AuthResult("tatareva@lab.test")) == [] and not store.locked


class CountingStore(MemoryStore):
    """Counts the reads of message bytes, so a test sees when a body was read ahead."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def open(self, address: str):
        drop = super().open(address)
        if drop is not None:
            read = drop.read
            drop.read = lambda uid: (setattr(self, "reads", self.reads + 1), read(uid))[1]
        return drop


def test_the_next_message_is_read_ahead_and_sent_exactly_as_when_read_on_demand() -> None:
    now = [100.0]
    store = CountingStore()
    for data in LAB:
        store.add("tatareva@lab.test", data)
    d = logged_in(store, clock=lambda: now[0])
    d.machine.read_ahead()  # nothing retrieved yet: nothing to guess
    assert store.reads == 0
    first = d.send(b"retr 1\n")
    d.machine.read_ahead()
    assert store.reads == 2  # message 1, then message 2 ahead of its RETR
    second = d.send(b"retr 2\n")
    assert store.reads == 2 and second == f"+OK {wire_size(LAB[1])} octets\r\n".encode() + wire_body(LAB[1]) + b".\r\n"
    assert first == f"+OK {wire_size(LAB[0])} octets\r\n".encode() + wire_body(LAB[0]) + b".\r\n"
    assert d.log[-3:] == ["<-- retr 2", f"--> +OK {wire_size(LAB[1])} octets", "Sending message (not logged)"]
    d.machine.read_ahead()  # message 3, but the client waits: after READ_AHEAD_SECONDS it is read again
    now[0] += 5
    assert d.send(b"retr 3\n").endswith(wire_body(LAB[2]) + b".\r\n") and store.reads == 4


def test_a_message_read_ahead_then_removed_by_another_session_is_not_sent(store: MemoryStore) -> None:
    d = logged_in(store)
    d.send(b"retr 1\n")
    d.machine.read_ahead()
    del store.boxes["tatareva@lab.test"][2]  # an IMAP session expunges it meanwhile
    assert d.lines(b"retr 2\n") == ["-ERR Message 2 is no longer available (removed by another session)"]
    d.send(b"retr 3\n")
    d.machine.read_ahead()
    assert d.lines(b"dele 4\n") == ["+OK Message 4 deleted"]  # marked: never sent, read ahead or not
    assert d.lines(b"retr 4\n") == ["-ERR Message 4 is marked as deleted"]
    assert d.lines(b"top 3 0\n")[0] == "+OK Top of message follows"
