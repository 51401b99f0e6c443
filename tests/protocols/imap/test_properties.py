"""Property tests: whatever a client types, every tagged command gets exactly one tagged reply,
and the machine never raises."""

import os
import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.protocols.imap.harness import Driver, message
from tuimail.store.maildir import MailStore

WORDS = [
    "select", "examine", "inbox", "INBOX", "Trash", "Work/Sub", "fetch", "uid", "1", "2", "1:*", "*", "3,1:2",
    "(flags", "body[]", "body.peek[header.fields", "(subject)]", "envelope", "bodystructure", "rfc822.size", ")",
    '"x"', '""', "store", "+flags", "-flags.silent", "\\seen", "\\Deleted", "$kw", "search", "or", "not", "all",
    "since", "1-Jan-2026", "larger", "copy", "move", "expunge", "create", "delete", "rename", "list", "lsub",
    "status", "(messages", "unseen)", "append", "{3+}\r\nabc", "login", "tatareva", "Secret123", "close",
    "unselect", "noop", "check", "namespace", "enable", "id", "nil", "subscribe", "capability", "full", "fast",
    "(", "\\", "%", "]", "[", "<0.5>", "charset", "utf-8", "idle", "authenticate", "plain",
]
word = st.one_of(st.sampled_from(WORDS), st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="{"), max_size=6))
line = st.lists(word, min_size=0, max_size=7).map(" ".join)


@settings(max_examples=int(os.environ.get("IMAP_FUZZ_EXAMPLES", "150")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(line, min_size=1, max_size=12))
@example(["", "IDLE"])  # (found by chance once: IDLE's tagged reply comes after DONE)
@example(["", "authenticate plain", "noop"])
def test_every_tagged_command_gets_exactly_one_tagged_reply(lines):
    with tempfile.TemporaryDirectory() as tmp:
        store = MailStore(Path(tmp))
        store.deliver("tatareva@lab.test", message("one"))
        store.deliver("tatareva@lab.test", message("two"))
        d = Driver(store, max_bad_commands=1000)
        if len(lines) > 1:
            d.login()
        replies = []
        for i, text in enumerate(lines):
            if d.closed:  # after LOGOUT (or too many bad commands) nothing more is read
                break
            tag = f"t{i}"
            raw = d.send(f"{tag} {text}\r\n".encode())
            if d.machine.wants_line and not d.closed:  # IDLE waits for DONE (RFC 2177 §3), AUTHENTICATE
                raw += d.send(b"DONE\r\n")           # for its response (RFC 3501 §6.2.2): both end here
            replies.append((tag, raw))
        for tag, raw in replies:
            tagged = [ln for ln in raw.split(b"\r\n") if re.match(rb"^" + tag.encode() + rb" (OK|NO|BAD) ", ln)]
            assert len(tagged) == 1, (tag, raw)
            assert b"SERVERBUG" not in raw, raw


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(data):
    with tempfile.TemporaryDirectory() as tmp:
        d = Driver(MailStore(Path(tmp)), max_bad_commands=1000)
        d.send(data)
        if d.reader.in_literal or d.machine.wants_line or d.closed:
            return
        assert b"z1 OK NOOP completed" in d.send(b"\r\nz1 noop\r\n")  # the session goes on
