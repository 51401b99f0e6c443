"""CONDSTORE and QRESYNC (RFC 7162) over real sockets: raw commands as a client library sends them,
imapclient's own CONDSTORE support, two sessions watching each other's changes, bad input answered
with BAD while the session goes on, and mod-sequences and expunges surviving a restart."""

from __future__ import annotations

import re
import socket

import pytest
from imapclient import IMAPClient

from tests.helpers import PASSWORD, RunningServer

MESSAGE = b"From: Ann <ann@lab.test>\nTo: tatareva@lab.test\nSubject: hello %d\n\nHi there %d\n"


def deliver(server, count: int, address: str = "tatareva@lab.test") -> None:
    for i in range(1, count + 1):
        server.call(server.engine.store.deliver, address, MESSAGE % (i, i))


class Raw:
    """A line-at-a-time IMAP session over a socket (no literals in these answers)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")
        assert self.file.readline().startswith(b"* OK")
        self.n = 0

    def cmd(self, line: str) -> list[str]:
        self.n += 1
        tag = f"c{self.n}"
        self.sock.sendall(f"{tag} {line}\r\n".encode())
        out = []
        while True:
            got = self.file.readline().decode().rstrip("\r\n")
            assert got, f"connection closed after {out}"
            out.append(got)
            if got.startswith(tag + " "):
                return out

    def login(self) -> Raw:
        assert self.cmd(f"login tatareva@lab.test {PASSWORD}")[-1].endswith("OK LOGIN completed")
        return self

    def close(self) -> None:
        self.sock.close()


def code(lines: list[str], name: str) -> str:
    for line in lines:
        m = re.search(r"\[" + name + r" ([^\]]+)\]", line)
        if m:
            return m.group(1)
    raise AssertionError(f"no [{name}] in {lines}")


def modseqs(lines: list[str]) -> dict[int, int]:
    """uid -> MODSEQ from untagged FETCH lines that carry both."""
    out = {}
    for line in lines:
        uid, modseq = re.search(r"UID (\d+)", line), re.search(r"MODSEQ \((\d+)\)", line)
        if line.startswith("* ") and "FETCH" in line and uid and modseq:
            out[int(uid.group(1))] = int(modseq.group(1))
    return out


@pytest.fixture
def raw(server):
    sessions: list[Raw] = []

    def connect() -> Raw:
        sessions.append(Raw(server.ports.imap).login())
        return sessions[-1]

    yield connect
    for s in sessions:
        s.close()


def test_capabilities_and_enable(server, raw):
    a = raw()
    caps = a.cmd("capability")[0].split()
    assert "CONDSTORE" in caps and "QRESYNC" in caps
    assert a.cmd("enable condstore qresync")[0] == "* ENABLED CONDSTORE QRESYNC"
    assert a.cmd("enable qresync")[0] == "* ENABLED"  # already on: nothing newly enabled


def test_condstore_select_fetch_store_search_status(server, raw):
    deliver(server, 4)
    a = raw()
    out = a.cmd("select INBOX (CONDSTORE)")
    highest = int(code(out, "HIGHESTMODSEQ"))
    assert out[-1].endswith("OK [READ-WRITE] SELECT completed") and highest >= 4
    out = a.cmd("fetch 1:* (uid modseq)")
    before = modseqs(out)
    assert sorted(before) == [1, 2, 3, 4] and max(before.values()) <= highest
    out = a.cmd("store 2 +flags (\\Seen)")  # once enabled, STORE's FETCH carries MODSEQ
    after = modseqs(out)
    assert after[2] > highest and "FLAGS (\\Seen" in out[0]
    # only what changed since the modseq before the STORE
    out = a.cmd(f"uid fetch 1:* (flags) (changedsince {highest})")
    assert modseqs(out) == {2: after[2]} and out[-1].endswith("OK FETCH completed")
    # UNCHANGEDSINCE: message 2 changed after `highest`, message 3 did not
    out = a.cmd(f"store 2:3 (unchangedsince {highest}) +flags (\\Flagged)")
    assert out[-1].endswith("OK [MODIFIED 2] Conditional STORE failed")
    assert list(modseqs(out)) == [3]
    out = a.cmd(f"uid store 1 (unchangedsince {highest}) +flags.silent (\\Answered)")
    assert modseqs(out)[1] > after[2] and "FLAGS" not in out[0]  # .SILENT still tells the new MODSEQ
    out = a.cmd(f"search modseq {after[2] + 1}")
    assert re.fullmatch(r"\* SEARCH 1 3 \(MODSEQ \d+\)", out[0]), out
    out = a.cmd(f'search modseq "/flags/\\\\flagged" all {after[2] + 1} flagged')
    assert out[0] == f"* SEARCH 3 (MODSEQ {_modseq(a, 3)})"
    assert a.cmd("search modseq 999999")[0] == "* SEARCH"  # nothing: no MODSEQ part
    out = a.cmd("search return (min count) modseq 1")
    assert re.fullmatch(r'\* ESEARCH \(TAG "c\d+"\) MIN 1 COUNT 4 MODSEQ \d+', out[0]), out
    status = a.cmd("status INBOX (highestmodseq messages)")[0]
    now = int(re.fullmatch(r'\* STATUS "INBOX" \(HIGHESTMODSEQ (\d+) MESSAGES 4\)', status).group(1))
    assert now == max(_modseq(a, u) for u in (1, 2, 3, 4))


def _modseq(a: Raw, uid: int) -> int:
    return modseqs(a.cmd(f"uid fetch {uid} (modseq)"))[uid]


def test_first_enabling_command_reports_highestmodseq(server, raw):
    deliver(server, 2)
    a = raw()
    out = a.cmd("select INBOX")
    assert not any("HIGHESTMODSEQ" in line for line in out)  # not asked for: not shown (as Dovecot)
    out = a.cmd("fetch 1 (modseq)")  # RFC 7162 §3.1: CONDSTORE-enabling, so HIGHESTMODSEQ first
    assert out[0].startswith("* OK [HIGHESTMODSEQ ") and "MODSEQ (" in out[1]


def test_changes_by_another_session_come_with_uid_and_modseq(server, raw):
    deliver(server, 3)
    a, b = raw(), raw()
    a.cmd("enable condstore")
    a.cmd("select INBOX")
    b.cmd("select INBOX")
    b.cmd("store 3 +flags (\\Flagged)")
    out = a.cmd("noop")
    assert re.fullmatch(r"\* 3 FETCH \(UID 3 FLAGS \(\\Flagged \\Recent\) MODSEQ \(\d+\)\)", out[0]), out


def test_qresync_select_reports_vanished_and_changed(server, raw):
    deliver(server, 6)
    a = raw()
    a.cmd("enable qresync")
    out = a.cmd("select INBOX")
    validity, highest = code(out, "UIDVALIDITY"), int(code(out, "HIGHESTMODSEQ"))
    a.cmd("unselect")
    b = raw()
    b.cmd("select INBOX")
    b.cmd("store 2,5 +flags (\\Deleted)")
    b.cmd("expunge")
    b.cmd("store 2 +flags (\\Seen)")  # uid 3, now message 2
    out = a.cmd(f"select INBOX (QRESYNC ({validity} {highest} 1:6))")
    assert "* VANISHED (EARLIER) 2,5" in out
    changed = [line for line in out if "FETCH" in line]
    assert len(changed) == 1 and changed[0].startswith("* 2 FETCH (UID 3 FLAGS (\\Seen) MODSEQ (")
    assert out.index("* VANISHED (EARLIER) 2,5") < out.index(changed[0])
    # another session's expunge now arrives as VANISHED, not EXPUNGE
    b.cmd("store 1 +flags (\\Deleted)")
    b.cmd("expunge")
    out = a.cmd("noop")
    assert out[0] == "* VANISHED 1" and not any("EXPUNGE" in line for line in out)
    # UID FETCH ... (CHANGEDSINCE n VANISHED)
    out = a.cmd(f"uid fetch 1:* (flags) (changedsince {highest} vanished)")
    assert out[0] == "* VANISHED (EARLIER) 1:2,5"
    assert list(modseqs(out)) == [3]
    # this session's own EXPUNGE: VANISHED, and the tagged OK gives the new highest modseq
    a.cmd("store 1 +flags (\\Deleted)")
    out = a.cmd("expunge")
    assert out[0] == "* VANISHED 3" and "[HIGHESTMODSEQ " in out[-1]
    # a wrong UIDVALIDITY: a plain SELECT (the client resynchronises from scratch)
    out = a.cmd(f"select INBOX (QRESYNC (1 {highest}))")
    assert out[0] == "* OK [CLOSED] Previous mailbox is now closed"
    assert not any("VANISHED" in line or "FETCH" in line for line in out)


def test_closed_when_select_replaces_a_mailbox(server, raw):
    a = raw()
    a.cmd("select INBOX")
    out = a.cmd("examine Sent")
    assert out[0] == "* OK [CLOSED] Previous mailbox is now closed" and out[-1].endswith("OK [READ-ONLY] EXAMINE completed")


@pytest.mark.parametrize("line, expected", [
    ("fetch 1 (flags) (changedsince 0)", "CHANGEDSINCE needs a mod-sequence"),
    ("fetch 1 (flags) (changedsince 99999999)", "beyond the mailbox's HIGHESTMODSEQ"),
    ("fetch 1 (flags) (changedsince abc)", "CHANGEDSINCE needs a mod-sequence"),
    ("fetch 1 (flags) (changedsince 1 vanished)", "VANISHED is only for UID FETCH"),
    ("uid fetch 1 (flags) (changedsince 1 vanished)", "VANISHED modifier needs ENABLE QRESYNC first"),
    ("fetch 1 (flags) (whatever 1)", "unknown FETCH modifier"),
    ("store 1 (unchangedsince -1) +flags (\\Seen)", "UNCHANGEDSINCE needs a mod-sequence"),
    ("store 1 (unchangedsince) +flags (\\Seen)", "(UNCHANGEDSINCE modseq)"),
    ("search modseq", "missing an argument"),
    ("search modseq x", "MODSEQ needs a mod-sequence"),
    ('search modseq "/nothing" all 1', "entry is like"),
    ("select INBOX (QRESYNC (1 1))", "needs ENABLE QRESYNC first"),
    ("select INBOX (FOO)", "unknown SELECT parameter"),
    ("status INBOX (highestmodseq bogus)", "unknown status item"),
])
def test_bad_input_gets_bad_and_the_session_goes_on(server, raw, line, expected):
    deliver(server, 1)
    a = raw()
    a.cmd("select INBOX")
    out = a.cmd(line)
    assert " BAD " in out[-1] and expected in out[-1], out
    assert a.cmd("noop")[-1].endswith("OK NOOP completed")


@pytest.mark.parametrize("params, expected", [
    ("(QRESYNC)", "QRESYNC needs"),
    ("(QRESYNC (0 1))", "uidvalidity must be a number"),
    ("(QRESYNC (5 0))", "QRESYNC needs a mod-sequence"),
    ("(QRESYNC (5 1 1:x))", "invalid sequence number"),
    ("(QRESYNC (5 1 1:3 (1:2 1:3)))", "must name as many messages"),
])
def test_malformed_qresync_parameters(server, raw, params, expected):
    a = raw()
    a.cmd("enable qresync")
    out = a.cmd(f"select INBOX {params}")
    assert " BAD " in out[-1] and expected in out[-1], out
    assert a.cmd("select INBOX")[-1].endswith("OK [READ-WRITE] SELECT completed")


def test_imapclient_condstore(server):
    deliver(server, 3)
    with IMAPClient("127.0.0.1", port=server.ports.imap, ssl=False, timeout=10) as client:
        client.login("tatareva@lab.test", PASSWORD)
        assert client.has_capability("CONDSTORE")
        assert client.enable("CONDSTORE") == [b"CONDSTORE"]
        info = client.select_folder("INBOX", readonly=True)
        highest = info[b"HIGHESTMODSEQ"]
        assert info[b"READ-ONLY"] == [b""] and highest >= 3
        with IMAPClient("127.0.0.1", port=server.ports.imap, ssl=False, timeout=10) as other:
            other.login("tatareva@lab.test", PASSWORD)
            other.select_folder("INBOX")
            other.add_flags([2], [b"$Label1"])
        changed = client.fetch([1, 2, 3], ["FLAGS"], modifiers=[f"CHANGEDSINCE {highest}"])
        assert list(changed) == [2]
        assert b"$Label1" in changed[2][b"FLAGS"] and changed[2][b"MODSEQ"][0] > highest
        assert client.folder_status("INBOX", ["HIGHESTMODSEQ"])[b"HIGHESTMODSEQ"] == changed[2][b"MODSEQ"][0]


def test_modseqs_and_expunges_survive_a_restart(config):
    """The engine stops and starts again on the same data: HIGHESTMODSEQ, each message's modseq and
    the expunged uids (QRESYNC's VANISHED) are all still there; new changes get higher modseqs."""
    first = RunningServer(config).start()
    first.engine.directory.add_account("tatareva@lab.test", PASSWORD)
    deliver(first, 5)
    a = Raw(config.settings.ports.imap).login()
    a.cmd("enable qresync")
    out = a.cmd("select INBOX")
    validity, base = code(out, "UIDVALIDITY"), int(code(out, "HIGHESTMODSEQ"))
    a.cmd("store 2 +flags (\\Seen)")
    a.cmd("store 4 +flags (\\Deleted)")
    a.cmd("expunge")
    before = modseqs(a.cmd("uid fetch 1:* (modseq)"))
    a.close()
    first.stop()
    again = RunningServer(config).start()
    try:
        b = Raw(config.settings.ports.imap).login()
        b.cmd("enable qresync")
        out = b.cmd(f"select INBOX (QRESYNC ({validity} {base}))")
        assert "* VANISHED (EARLIER) 4" in out
        assert list(modseqs(out)) == [2]
        assert modseqs(b.cmd("uid fetch 1:* (modseq)")) == before
        top = int(code(out, "HIGHESTMODSEQ"))
        assert top > max(before.values())  # the expunge raised it after the last flag change
        assert modseqs(b.cmd("store 1 +flags (\\Seen)"))[1] > top
        b.close()
    finally:
        again.stop()


def test_modseqs_and_expunges_survive_sigkill_of_serve(tmp_path):
    """`tuimail serve` is SIGKILLed right after its replies: every modseq and expunge a client was
    told of is in the index when it starts again (they were fsynced before the replies)."""
    from tests.helpers import make_config
    from tests.servers.test_crash import Server
    from tuimail.core.directory import Directory

    config = make_config(tmp_path)
    Directory(config).add_account("tatareva@lab.test", PASSWORD)
    serve = Server(config)
    port = config.settings.ports.imap  # (after the start: a port found taken is moved)
    try:
        a = Raw(port).login()
        a.cmd("enable qresync")
        for i in range(4):
            assert a.cmd("append INBOX {%d+}\r\nSubject: %d\r\n\r\nx" % (len(f"Subject: {i}\r\n\r\nx"), i))[-1].endswith("completed")
        out = a.cmd("select INBOX")
        validity, base = code(out, "UIDVALIDITY"), int(code(out, "HIGHESTMODSEQ"))
        told = modseqs(a.cmd("uid store 1:2 +flags (\\Flagged)"))
        a.cmd("uid store 3 +flags (\\Deleted)")
        highest = int(code(a.cmd("expunge"), "HIGHESTMODSEQ"))
    finally:
        serve.kill()
    serve = Server(config)
    port = config.settings.ports.imap
    try:
        b = Raw(port).login()
        b.cmd("enable qresync")
        out = b.cmd(f"select INBOX (QRESYNC ({validity} {base}))")
        assert "* VANISHED (EARLIER) 3" in out and int(code(out, "HIGHESTMODSEQ")) == highest
        assert modseqs(out) == told
        b.close()
    finally:
        serve.stop()


def test_qresync_after_the_list_of_expunges_was_trimmed(server, raw, monkeypatch):
    """RFC 7162 §3.2.5.2: when the server no longer knows every expunge since the client's modseq, it
    reports every uid of the client's set that is gone; the client's (sequence uid) pairs that still
    match let it leave out what the client must already know."""
    from tuimail.store import folder as folder_module

    monkeypatch.setattr(folder_module, "MAX_VANISHED", 2)
    deliver(server, 8)
    a, b = raw(), raw()
    a.cmd("enable qresync")
    out = a.cmd("select INBOX")
    validity, base = code(out, "UIDVALIDITY"), int(code(out, "HIGHESTMODSEQ"))
    a.cmd("unselect")
    b.cmd("select INBOX")
    for uid in (2, 6, 7):  # one at a time: the expunge of uid 2 is forgotten
        b.cmd(f"uid store {uid} +flags (\\Deleted)")
        b.cmd("expunge")
    out = a.cmd(f"select INBOX (QRESYNC ({validity} {base} 1:8))")
    assert "* VANISHED (EARLIER) 2,6:7" in out
    # the client's message 4 is uid 5 here too: nothing at or below uid 5 needs reporting
    out = a.cmd(f"select INBOX (QRESYNC ({validity} {base} 1:8 (1,4 1,5)))")
    assert "* VANISHED (EARLIER) 6:7" in out
    out = a.cmd(f"uid fetch 1:* (flags) (changedsince {base} vanished)")
    assert out[0] == "* VANISHED (EARLIER) 2,6:7"


def test_fetch_that_sets_seen_tells_the_new_modseq(server, raw):
    deliver(server, 1)
    a = raw()
    a.cmd("select INBOX (CONDSTORE)")
    before = _modseq(a, 1)
    out = " ".join(a.cmd("fetch 1 (body[text])"))  # the body is one short line: read as a line here
    told = re.search(r"FLAGS \(\\Seen[^)]*\) MODSEQ \((\d+)\)", out)
    assert told and int(told.group(1)) == _modseq(a, 1) > before, out


@pytest.mark.parametrize("enable", [False, True])
def test_silent_store_still_tells_what_another_session_changed(server, raw, enable):
    """STORE .SILENT on a message another session changed since this client last heard of it: the
    client cannot work out the result, so its FLAGS follow (RFC 3501 §6.4.6); imaptest's checkpoints
    found clients left with old flags before."""
    deliver(server, 2)
    a, b = raw(), raw()
    if enable:
        a.cmd("enable condstore")
    a.cmd("select INBOX")
    b.cmd("select INBOX")
    b.cmd("store 1 +flags ($Work)")
    out = a.cmd("store 1 +flags.silent (\\Seen)")
    told = [line for line in out if line.startswith("* 1 FETCH")]
    assert len(told) == 1 and "$Work" in told[0] and "\\Seen" in told[0], out
    if enable:
        assert "MODSEQ" in told[0]
    out = a.cmd("store 2 +flags.silent (\\Seen)")  # nobody else touched it: silence
    assert not any("FETCH" in line for line in out) if not enable else \
        all("FLAGS" not in line for line in out if "FETCH" in line)


def test_sort_with_modseq_ends_with_the_highest(server, raw):
    deliver(server, 3)
    a = raw()
    a.cmd("select INBOX (CONDSTORE)")
    a.cmd("store 2 +flags (\\Flagged)")
    top = _modseq(a, 2)
    assert a.cmd(f"sort (reverse arrival) utf-8 modseq {top}")[0] == f"* SORT 2 (MODSEQ {top})"
    assert a.cmd("sort (arrival) utf-8 all")[0] == "* SORT 1 2 3"  # no MODSEQ key: no MODSEQ part
    assert a.cmd(f"sort (arrival) utf-8 modseq {top + 1}")[0] == "* SORT"
