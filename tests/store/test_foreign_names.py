"""A file whose name is not UTF-8 in a Maildir's new/ or cur/ (another MDA's, or one a user copied in):
it is renamed to a new unique name before it is given a uid (what Dovecot does with a name it cannot
keep), so the folder's index stays UTF-8 and the message is served over IMAP and POP3 like any other.
A folder directory whose name is not ASCII is renamed to its modified UTF-7 name (bytes that are not
UTF-8 become U+FFFD, as Dovecot renames them) when it is listed, and served like any other folder;
a line of the subscriptions file that is not UTF-8 is kept but not listed."""

from __future__ import annotations

import imaplib
import os
import poplib

from imapclient import IMAPClient

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


# ----- a folder directory whose name is not ASCII (Maildir++ `.Name`) ------------------------------------

def make_folder(root: bytes, directory: bytes, messages: dict[bytes, bytes] = {}) -> None:
    """A Maildir++ folder made as another program (or `mkdir`) makes it: a bytes name, no index."""
    for sub in (b"cur", b"new", b"tmp"):
        os.makedirs(root + b"/" + directory + b"/" + sub)
    for name, data in messages.items():
        put(root + b"/" + directory + b"/new", name, data)


def listed(lines: list[bytes]) -> list[bytes]:
    """The names of a LIST/LSUB answer as imaplib returns it (every name here is quoted)."""
    return [line.rsplit(b' "/" ', 1)[1].strip(b'"') for line in lines]


FFFD = "Caf&,,0-"  # "Caf\ufffd": Dovecot's replacement of a byte that is not UTF-8, in modified UTF-7


def test_imap_lists_and_opens_a_folder_whose_directory_name_is_not_utf8(server):
    """It used to go out as a raw 8-bit byte in LIST, and no name a client could send opened it."""
    store = server.engine.store
    store.deliver("tatareva@lab.test", b"Subject: in\n\ninbox\n")
    box = store.mailbox("tatareva@lab.test")
    box.create_folder("Work")
    root = os.fsencode(box.path)
    make_folder(root, b".Caf\xe9", {b"1.courier": b"Subject: latin\n\nrestored\n"})  # latin-1 "Café"
    make_folder(root, b".Caf\xe9.Sub")

    imap = imaplib.IMAP4("127.0.0.1", server.ports.imap)
    imap.login("tatareva@lab.test", PASSWORD)
    typ, lines = imap.list()
    assert typ == "OK" and all(line.isascii() for line in lines)  # every name 7-bit (RFC 3501 §5.1.3)
    assert sorted(listed(lines)) == sorted(
        n.encode() for n in ["INBOX", FFFD, FFFD + "/Sub", "Drafts", "Junk", "Sent", "Trash", "Work"])
    assert b'(\\HasChildren) "/" "' + FFFD.encode() + b'"' in lines
    assert imap.status(FFFD, "(MESSAGES)") == ("OK", [b'"' + FFFD.encode() + b'" (MESSAGES 1)'])
    typ, data = imap.select(FFFD)
    assert typ == "OK" and data == [b"1"]
    typ, data = imap.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert data[0][1].strip() == b"Subject: latin"
    assert imap.subscribe(FFFD)[0] == "OK"
    assert listed(imap.lsub('""', "Caf*")[1]) == [FFFD.encode()]
    assert imap.close()[0] == "OK"  # (ENABLE is for the authenticated state, RFC 5161 §3.1)
    assert imap._simple_command("ENABLE", "UTF8=ACCEPT")[0] == "OK"  # RFC 6855: now names go as UTF-8
    assert listed(imap.list('""', "Caf%")[1]) == ["Caf\ufffd".encode()]
    imap.logout()
    moved = root + b"/.Caf&,,0-"  # the folder moved whole: its message (SELECT took it from new/ to cur/)
    assert len(os.listdir(moved + b"/new") + os.listdir(moved + b"/cur")) == 1
    assert all(name.isascii() for name in os.listdir(root))  # no 8-bit name left
    server.wait_for(lambda: "LOGOUT" in server.log_text("IMAP"))
    assert f'--> * LIST (\\HasChildren) "/" "{FFFD}"' in server.log_text("IMAP")  # as the client read it


def test_imapclient_opens_an_8bit_folder_by_the_name_it_lists(server):
    """imapclient decodes modified UTF-7 and encodes it back: what it shows is what it can open. A name
    that is UTF-8 but decomposed (NFD, as a Mac writes it) becomes the composed "Café" (RFC 5198)."""
    store = server.engine.store
    store.deliver("tatareva@lab.test", b"Subject: in\n\ninbox\n")
    root = os.fsencode(store.mailbox("tatareva@lab.test").path)
    make_folder(root, b".Cafe\xcc\x81", {b"1.mac": b"Subject: mac\n\nnfd\n"})
    make_folder(root, b".Caf\xe9", {b"1.courier": b"Subject: latin\n\nrestored\n"})

    client = IMAPClient("127.0.0.1", port=server.ports.imap, ssl=False, timeout=10)
    client.login("tatareva@lab.test", PASSWORD)
    names = [name for _flags, _sep, name in client.list_folders()]
    assert "Café" in names and "Caf\ufffd" in names
    assert client.select_folder("Café")[b"EXISTS"] == 1
    assert client.select_folder("Caf\ufffd")[b"EXISTS"] == 1
    assert client.folder_status("Café", ["MESSAGES"])[b"MESSAGES"] == 1
    client.logout()


def test_a_folder_whose_ascii_name_is_not_modified_utf7_is_renamed_and_opens(server):
    """`mkdir ~/Maildir/.Q&A` is ASCII but not modified UTF-7 (a lone `&`, RFC 3501 §5.1.3): LIST showed
    `Q&A` and SELECT refused that very name as bad UTF-7. It becomes `.Q&-A` (what clients show as
    "Q&A"); a good shift in such a name is kept, and a valid name is never touched."""
    store = server.engine.store
    store.deliver("tatareva@lab.test", b"Subject: in\n\ninbox\n")
    box = store.mailbox("tatareva@lab.test")
    box.create_folder("&BB4EQgRHBDUEQg-")  # "Отчет", valid: stays as it is
    root = os.fsencode(box.path)
    make_folder(root, b".Q&A", {b"1.mkdir": b"Subject: qa\n\nfaq\n"})
    make_folder(root, b".Q&A.Sub")
    make_folder(root, b".&BB4EQgRHBDUEQg-&x")  # a good shift, then a stray '&'

    imap = imaplib.IMAP4("127.0.0.1", server.ports.imap)
    imap.login("tatareva@lab.test", PASSWORD)
    typ, lines = imap.list()
    names = listed(lines)
    assert b"Q&-A" in names and b"Q&-A/Sub" in names and b"&BB4EQgRHBDUEQg-&-x" in names
    assert b"&BB4EQgRHBDUEQg-" in names and b"Q&A" not in names
    typ, data = imap.select('"Q&-A"')
    assert typ == "OK" and data == [b"1"]
    typ, data = imap.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert data[0][1].strip() == b"Subject: qa"
    assert imap.select('"Q&A"')[0] == "NO"  # the old name: refused as before, the session goes on
    imap.logout()
    assert sorted(n for n in os.listdir(root) if n.startswith(b".Q")) == [b".Q&-A", b".Q&-A.Sub"]

    client = IMAPClient("127.0.0.1", port=server.ports.imap, ssl=False, timeout=10)
    client.login("tatareva@lab.test", PASSWORD)
    shown = [name for _flags, _sep, name in client.list_folders()]
    assert "Q&A" in shown and "Q&A/Sub" in shown and "Отчет&x" in shown and "Отчет" in shown
    assert client.select_folder("Q&A")[b"EXISTS"] == 1
    client.logout()


def test_two_8bit_folder_names_that_map_to_one_name_are_both_kept(tmp_path):
    """`.Caf\\xe8` and `.Caf\\xe9` both become "Caf\\ufffd", a name a folder already has: neither is renamed
    onto another folder (they get `~2` and `~3`), and every message stays, in a folder that is listed."""
    store = MailStore(tmp_path / "data")
    store.deliver("bob@lab.test", b"Subject: in\n\ninbox\n")
    box = store.mailbox("bob@lab.test")
    box.create_folder(FFFD).append(b"Subject: mine\n\nalready there\n")
    root = os.fsencode(box.path)
    make_folder(root, b".Caf\xe8", {b"1.a": b"Subject: e8\n\na\n"})
    make_folder(root, b".Caf\xe9", {b"1.b": b"Subject: e9\n\nb\n"})

    names = box.list_folders()
    assert [n for n in names if n.startswith("Caf")] == [FFFD, FFFD + "~2", FFFD + "~3"]
    assert all(name.isascii() for name in os.listdir(root))
    again = MailStore(tmp_path / "data").mailbox("bob@lab.test")
    assert again.list_folders() == names  # renamed once: nothing moves on the next listing
    bodies = {n: [again.folder(n).read(r.uid) for r in again.folder(n).messages()] for n in names[1:]}
    assert bodies == {FFFD: [b"Subject: mine\n\nalready there\n"], FFFD + "~2": [b"Subject: e8\n\na\n"],
                      FFFD + "~3": [b"Subject: e9\n\nb\n"]}


def test_a_subscriptions_file_with_a_line_that_is_not_utf8_keeps_it_and_lsub_skips_it(server):
    """A `subscriptions` file restored from elsewhere, with a latin-1 line: LOGIN (which subscribes the
    default folders) and LSUB go on, the line is not listed (no client could name it, as Dovecot skips
    it) and is written back byte for byte when the file changes."""
    store = server.engine.store
    store.deliver("tatareva@lab.test", b"Subject: in\n\ninbox\n")
    box = store.mailbox("tatareva@lab.test")
    box.create_folder("Work")
    path = os.fsencode(box.path) + b"/subscriptions"
    with open(path, "wb") as f:
        f.write(b"INBOX\nCaf\xe9\nWork\n")

    imap = imaplib.IMAP4("127.0.0.1", server.ports.imap)
    imap.login("tatareva@lab.test", PASSWORD)
    typ, lines = imap.lsub()
    assert typ == "OK" and all(line.isascii() for line in lines)
    assert sorted(listed(lines)) == [b"Drafts", b"INBOX", b"Junk", b"Sent", b"Trash", b"Work"]
    assert imap.unsubscribe("Work")[0] == "OK"
    imap.logout()
    with open(path, "rb") as f:
        assert f.read().split(b"\n")[:2] == [b"INBOX", b"Caf\xe9"]
