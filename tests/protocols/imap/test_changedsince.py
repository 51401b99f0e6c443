"""`FETCH 1:* (...) (CHANGEDSINCE n)` (RFC 7162 §3.1.4.1) answered from the snapshot's column of
mod-sequences (`Snapshot.changed_since`) instead of a look-up per message: the same messages as
`FETCH 1:* (FLAGS MODSEQ)` filtered by hand, in the same order with the same sequence numbers,
including when the folder holds messages the client has not been told of yet."""

from __future__ import annotations

import random
import re

from tests.protocols.imap.harness import ADDRESS, Driver, message, store_with_messages

FETCH = re.compile(r"\* (\d+) FETCH \((.*)\)$")


def modseq_of(line: str) -> int:
    return int(re.search(r"MODSEQ \((\d+)\)", line).group(1))


def test_changedsince_gives_what_filtering_every_modseq_gives(tmp_path):
    rng = random.Random(15)
    store = store_with_messages(tmp_path, 40)
    d, other = Driver(store), Driver(store)
    for x in (d, other):
        x.login()
        x.cmd("e1 enable CONDSTORE")
        x.cmd("s1 select INBOX")
    for round_ in range(8):
        for _ in range(rng.randint(1, 6)):
            n = rng.randint(1, 40 - round_)
            flag = rng.choice(["\\Seen", "\\Flagged", "$Work"])
            other.cmd(f"o1 store {n} {rng.choice('+-')}flags.silent ({flag})")
        if round_ % 3 == 1:
            other.cmd(f"o2 store {rng.randint(1, 30)} +flags.silent (\\Deleted)")
            other.cmd("o3 expunge")
        d.cmd("n1 noop")  # told of the expunges and flags so far
        if round_ % 2:
            other.cmd("o4 store 1:* +flags.silent ($Late)")
        sinces = None
        for step in range(5):
            every = [line for line in d.send(b"f1 fetch 1:* (flags modseq)\r\n").decode().split("\r\n") if FETCH.match(line)]
            highest = max(map(modseq_of, every))
            if sinces is None:
                sinces = sorted({1, highest - 3, highest - 1, highest, rng.randint(1, highest)} - {0, -1, -2})
            if step >= len(sinces):
                break
            since = sinces[step]
            if round_ % 2 and step == 0:  # in the folder (changed after `since`), not yet in the client's view
                store.deliver(ADDRESS, message(f"late {round_}"))
            lines = d.send(f"f2 fetch 1:* (flags) (changedsince {since})\r\n".encode()).decode().split("\r\n")
            assert lines[-2].startswith("f2 OK"), lines
            got = [line for line in lines if FETCH.match(line)]
            assert got == [line for line in every if modseq_of(line) > since], (round_, since)
            if round_ % 2 and step == 0:
                continue  # (the completion of that FETCH told the client of the late message)
            uid_lines = d.send(f"f3 uid fetch 1:* (flags) (changedsince {since})\r\n".encode()).decode().split("\r\n")
            assert [FETCH.match(line).group(1) for line in uid_lines if FETCH.match(line)] == \
                [FETCH.match(line).group(1) for line in got]
