"""A file whose name is not UTF-8 in a Maildir's new/ or cur/ (another MDA's, or one a user copied in):
it is renamed to a new unique name before it is given a uid (what Dovecot does with a name it cannot
keep), so the folder's index stays UTF-8 and the message is served over IMAP and POP3 like any other."""

from __future__ import annotations

import imaplib
import os
import poplib

from tests.helpers import PASSWORD
from tuimail.store import MailStore
from tuimail.store.index import INDEX

ODD_NAMED = b"1700000000.M1P2Q3.host\xff\xfe,S=28,W=31:2,S"  # tuimail's shape, with bytes that are not UTF-8
ODD_PLAIN = b"courier.\xe9t\xe9"  # a name in no shape tuimail knows (sizes and date from the file)


def put(directory: bytes, name: bytes, data: bytes) -> None:
    with open(directory + b"/" + name, "wb") as f:  # a bytes path: the name as another MDA wrote it
        f.write(data)


def names(path) -> list[bytes]:
    return sorted(os.listdir(os.fsencode(path)))


def test_a_first_build_renames_names_that_are_not_utf8_and_keeps_their_uids_on_reload(tmp_path):
    store = MailStore(tmp_path / "data")
    for i in range(3):
        store.deliver("bob@lab.test", b"Subject: %d\n\nbody\n" % i)
    inbox = store.mailbox("bob@lab.test").folder("INBOX")
    path = os.fsencode(inbox.path)
    os.unlink(path + b"/" + INDEX.encode())  # a Maildir copied from elsewhere: built from the listing
    put(path + b"/cur", ODD_NAMED, b"Subject: odd\n\nodd name body\n")
    put(path + b"/new", ODD_PLAIN, b"Subject: plain\n\nsecond\n")

    first = MailStore(tmp_path / "data").mailbox("bob@lab.test").folder("INBOX")
    refs = first.messages()
    assert len(refs) == 5
    assert all(name.decode() for name in names(inbox.path / "cur") + names(inbox.path / "new"))  # all UTF-8 now
    odd = next(r for r in refs if r.internaldate == 1700000000.0)
    assert odd.flags == "S" and odd.subdir == "cur" and first.read(odd.uid) == b"Subject: odd\n\nodd name body\n"
    plain = next(r for r in refs if first.read(r.uid).startswith(b"Subject: plain"))
    assert plain.subdir == "new" and plain.size == 23 and plain.wire_size == 26
    text = (inbox.path / INDEX).read_bytes().decode("utf-8")  # the index is UTF-8, every line of it
    assert "\n* " in text  # the first build's bulk records hold the renamed file too

    again = MailStore(tmp_path / "data").mailbox("bob@lab.test").folder("INBOX")  # replays the index
    assert [(r.uid, r.base, r.flags) for r in again.messages()] == [(r.uid, r.base, r.flags) for r in refs]
    assert (inbox.path / INDEX).read_bytes().decode("utf-8") == text  # nothing listed again


def test_imap_and_pop3_serve_a_message_whose_file_name_is_not_utf8(server):
    server.engine.store.deliver("tatareva@lab.test", b"Subject: one\n\nfirst\n")
    inbox = server.engine.store.mailbox("tatareva@lab.test").folder("INBOX")
    assert len(inbox.messages()) == 1  # indexed: the odd file arrives in a folder with an index
    path = os.fsencode(inbox.path)
    put(path + b"/cur", ODD_NAMED, b"Subject: odd\n\nodd name body\n")
    put(path + b"/new", ODD_PLAIN, b"Subject: plain\n\nsecond\n")

    imap = imaplib.IMAP4("127.0.0.1", server.ports.imap)
    imap.login("tatareva@lab.test", PASSWORD)
    typ, data = imap.select("INBOX")
    assert typ == "OK" and data == [b"3"]
    typ, data = imap.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK"
    subjects = [part[1].strip() for part in data if isinstance(part, tuple)]
    assert subjects == [b"Subject: one", b"Subject: odd", b"Subject: plain"]
    assert b"\\Seen" in data[2][0]  # the odd file's flag survived the rename
    imap.logout()

    pop = poplib.POP3("127.0.0.1", server.ports.pop3)
    pop.user("tatareva@lab.test")
    pop.pass_(PASSWORD)
    assert pop.stat()[0] == 3
    assert b"odd name body" in b"\n".join(pop.retr(2)[1])
    assert len(pop.uidl()[1]) == 3
    pop.quit()
