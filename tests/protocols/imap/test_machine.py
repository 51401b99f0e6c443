"""The IMAP state machine driven with plain bytes (no sockets): every command, as a session script."""

import base64
import re

import pytest

from tests.protocols.imap.harness import PASSWORD, Driver, message
from tuimail.store import reaper
from tuimail.protocols.imap.fetch import internaldate
from tuimail.protocols.imap.state import State
from tuimail.store.maildir import MailStore


@pytest.fixture
def store(tmp_path):
    return MailStore(tmp_path / "data")


@pytest.fixture
def d(store):
    driver = Driver(store)
    for i in range(1, 4):
        store.deliver("tatareva@lab.test", message(f"msg {i}", body=f"body number {i}\n"))
    return driver


def selected(d):
    d.login()
    d.cmd("s1 select inbox")
    return d


# ----- not authenticated -------------------------------------------------------------------------


def test_greeting_and_capability(d):
    assert d.greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 ")
    assert d.greeting.endswith(b"] mail.lab.test IMAP4rev1 tuimail test ready\r\n")
    caps = d.cmd("a1 capability")
    assert caps[-1] == "a1 OK CAPABILITY completed"
    for cap in ("IMAP4rev1", "LITERAL+", "IDLE", "UIDPLUS", "MOVE", "NAMESPACE", "ID", "ENABLE", "SPECIAL-USE",
                "CHILDREN", "UNSELECT", "SASL-IR", "AUTH=PLAIN", "AUTH=LOGIN"):
        assert cap in caps[0].split()
    assert "STARTTLS" not in caps[0]


def test_login_bare_and_full_address(store):
    d = Driver(store)
    assert d.cmd("a001 login tatareva Secret123") == ["a001 OK LOGIN completed"]
    assert d.machine.state is State.AUTHENTICATED and d.machine.user == "tatareva@lab.test"
    d2 = Driver(store)
    assert d2.cmd('a1 LOGIN "tester@lab.test" {9+}\nSecret123') == ["a1 OK LOGIN completed"]


def test_login_failures_are_one_generic_reply(store):
    d = Driver(store)
    assert d.cmd("a1 login tatareva wrong") == ["a1 NO [AUTHENTICATIONFAILED] Authentication failed"]
    assert d.cmd("a2 login nobody Secret123") == ["a2 NO [AUTHENTICATIONFAILED] Authentication failed"]
    assert any("password mismatch" in n for o in d.effects for n in o.notes)
    assert d.cmd("a3 login onlyone") == ["a3 BAD LOGIN parse error: LOGIN needs a user name and a password"]
    assert d.machine.state is State.NOT_AUTHENTICATED


def test_login_disabled_without_tls_when_policy_says_so(store):
    d = Driver(store, plaintext_allowed=False)
    assert "LOGINDISABLED" in d.cmd("a1 capability")[0]
    assert d.cmd("a2 login tatareva Secret123")[0].startswith("a2 NO [PRIVACYREQUIRED]")


def test_authenticate_plain_with_and_without_initial_response(store):
    token = base64.b64encode(b"\0tatareva\0" + PASSWORD.encode()).decode()
    d = Driver(store)
    assert d.cmd(f"a1 authenticate plain {token}") == ["a1 OK LOGIN completed"]
    d = Driver(store)
    assert d.cmd("a1 AUTHENTICATE PLAIN") == ["+ "]
    assert d.machine.wants_line and d.machine.masks_lines
    assert d.cmd(token) == ["a1 OK LOGIN completed"]


def test_authenticate_plain_refuses_another_authorization_identity(store):
    token = base64.b64encode(b"tester\0tatareva\0" + PASSWORD.encode()).decode()
    assert Driver(store).cmd(f"a1 authenticate plain {token}") == ["a1 NO [AUTHENTICATIONFAILED] Authentication failed"]
    token = base64.b64encode(b"tatareva\0tatareva\0" + PASSWORD.encode()).decode()
    assert Driver(store).cmd(f"a1 authenticate plain {token}") == ["a1 OK LOGIN completed"]


def test_authenticate_login_and_cancel(store):
    d = Driver(store)
    assert d.cmd("a1 AUTHENTICATE LOGIN") == ["+ VXNlcm5hbWU6"]
    assert d.cmd(base64.b64encode(b"tatareva").decode()) == ["+ UGFzc3dvcmQ6"]
    assert d.cmd(base64.b64encode(b"bad").decode()) == ["a1 NO [AUTHENTICATIONFAILED] Authentication failed"]
    assert d.cmd("a2 AUTHENTICATE PLAIN") == ["+ "]
    assert d.cmd("*") == ["a2 BAD AUTHENTICATE cancelled"]
    assert d.cmd("a3 AUTHENTICATE PLAIN") == ["+ "]
    assert d.cmd("!!notbase64") == ["a3 BAD Invalid base64 in the SASL response"]
    assert d.cmd("a4 AUTHENTICATE CRAM-MD5") == ["a4 NO [CANNOT] Unsupported authentication mechanism"]
    assert d.cmd("a5 noop") == ["a5 OK NOOP completed"]


def test_commands_outside_their_state_are_bad(store):
    d = Driver(store)
    assert d.cmd("a1 select inbox") == ["a1 BAD SELECT is not allowed in the not authenticated state"]
    assert d.cmd("a2 fetch 1 full") == ["a2 BAD FETCH is not allowed in the not authenticated state"]
    d.login()
    assert d.cmd("a3 login x y") == ["a3 BAD LOGIN is not allowed in the authenticated state"]
    assert d.cmd("a4 expunge") == ["a4 BAD EXPUNGE is not allowed in the authenticated state"]
    assert d.cmd("a5 frobnicate") == ["a5 BAD Unknown command FROBNICATE"]
    assert d.cmd("+ noop")[0].startswith("* BAD Invalid tag")
    assert d.cmd("a6") == ["a6 BAD Missing command"]


def test_a_line_typed_without_its_tag_gets_a_hint(store):
    d = Driver(store)
    hint = "* BAD every IMAP command starts with a tag, e.g. a001 login NAME PASSWORD"
    assert d.cmd("login tatareva admin") == [hint]
    assert d.cmd("logout") == [hint]
    assert d.cmd("LIST \"\" *") == [hint]
    assert d.cmd("uid fetch 1:* flags") == [hint]
    assert d.cmd("noop noop") == ["noop OK NOOP completed"]  # a tag that happens to be a command name
    d.login()
    assert d.cmd("select inbox") == [hint]
    assert d.machine.state.value == "authenticated"


def test_too_many_bad_commands_close_the_session(store):
    d = Driver(store)
    for i in range(19):
        d.cmd(f"x{i} bogus")
    assert not d.closed
    assert d.cmd("x20 bogus")[-1] == "* BYE Too many invalid commands"
    assert d.closed


def test_id_namespace_enable_logout(d):
    assert d.cmd('a1 ID ("name" "mutt")')[0].startswith('* ID ("name" "tuimail"')
    d.login()
    assert d.cmd("a2 namespace") == ['* NAMESPACE (("" "/")) NIL NIL', "a2 OK NAMESPACE completed"]
    assert d.cmd("a3 enable CONDSTORE") == ["* ENABLED CONDSTORE", "a3 OK ENABLE completed"]
    assert d.cmd("a4 logout") == ["* BYE IMAP engine signing off (no errors)", "a4 OK LOGOUT completed"]
    assert d.closed and d.machine.state is State.LOGOUT


# ----- SELECT / EXAMINE ----------------------------------------------------------------------------


def test_select_as_the_seed_shows(d):
    d.login()
    lines = d.cmd("a002 select inbox")
    uidvalidity = d.machine.view.folder.uidvalidity
    assert lines == [
        "* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft \\Recent)",
        "* 3 EXISTS",
        "* 3 RECENT",
        "* OK [UNSEEN 1] first unseen",
        f"* OK [UIDVALIDITY {uidvalidity}] UIDs valid",
        "* OK [UIDNEXT 4] Predicted next UID",
        "* OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft \\*)] Flags permitted",
        "a002 OK [READ-WRITE] SELECT completed",
    ]
    assert d.machine.session_state == "selected INBOX"
    # \Recent went to this session: a second one sees none
    other = Driver(d.store)
    other.login()
    assert "* 0 RECENT" in other.cmd("b1 select INBOX")


def test_examine_is_read_only_and_claims_nothing(d):
    d.login()
    lines = d.cmd("a1 examine inbox")
    # RFC 3501 §6.3.2: EXAMINE reports the recent messages but MUST NOT take \Recent from them
    assert "* 3 RECENT" in lines and lines[-1] == "a1 OK [READ-ONLY] EXAMINE completed"
    assert "* 3 RECENT" in d.cmd("a1b examine inbox")
    assert "* OK [PERMANENTFLAGS ()] Flags permitted" in lines
    assert d.cmd("a2 store 1 +flags \\seen")[-1] == "a2 NO [READ-ONLY] Mailbox is read-only"
    d.cmd("a3 fetch 1 body[]")
    assert "S" not in d.store.mailbox("tatareva@lab.test").folder("INBOX").messages()[0].flags
    assert "* 3 RECENT" in d.cmd("a4 select inbox")  # the first SELECT still gets them


def test_select_typed_in_lower_case_finds_the_folder(d):
    d.login()
    assert d.cmd("a1 select sent")[-1] == "a1 OK [READ-WRITE] SELECT completed"
    assert d.machine.session_state == "selected Sent"
    d.cmd("a2 create sent")  # an exact match wins once it exists
    d.cmd("a3 select sent")
    assert d.machine.session_state == "selected sent"
    assert d.cmd("a4 status TRASH (messages)") == ['* STATUS "Trash" (MESSAGES 0)', "a4 OK STATUS completed"]


def test_select_missing_folder_deselects(d):
    selected(d)
    assert d.cmd("a1 select nowhere") == ["* OK [CLOSED] Previous mailbox is now closed",  # RFC 7162 §3.2.11
                                          "a1 NO [NONEXISTENT] Mailbox nowhere does not exist"]
    assert d.machine.state is State.AUTHENTICATED
    assert d.cmd("a2 fetch 1 flags")[0].startswith("a2 BAD FETCH is not allowed")


# ----- FETCH ---------------------------------------------------------------------------------------


def test_fetch_without_items_is_bad_and_the_session_goes_on(d):
    selected(d)
    assert d.cmd("a005 fetch 3") == ["a005 BAD FETCH parse error: expected a message set and data items, e.g. fetch 1 full"]
    assert d.cmd("a006 fetch 9 flags") == ["a006 BAD FETCH: message 9 does not exist (the mailbox has 3)"]
    assert d.cmd("a007 fetch 3 flags") == ["* 3 FETCH (FLAGS (\\Recent))", "a007 OK FETCH completed"]


def test_fetch_every_simple_item(d):
    selected(d)
    ref = d.store.mailbox("tatareva@lab.test").folder("INBOX").messages()[0]
    lines = d.cmd("a1 fetch 1 (uid flags internaldate rfc822.size envelope body bodystructure)")
    line = lines[0]
    assert line.startswith(f"* 1 FETCH (UID {ref.uid} FLAGS (\\Recent) INTERNALDATE \"")
    assert re.search(r'INTERNALDATE "\d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d [+-]\d{4}"', line)
    assert f"RFC822.SIZE {ref.wire_size} " in line
    assert 'ENVELOPE ("Thu, 26 Nov 2026 10:00:00 +0000" "msg 1" (("Ann" NIL "ann" "lab.test"))' in line
    assert " BODY (" in line and " BODYSTRUCTURE (" in line
    assert lines[-1] == "a1 OK FETCH completed"


def test_fetch_full_and_body_macros(d):
    selected(d)
    full = d.cmd("a003 fetch 1 full")[0]
    assert all(k in full for k in ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", " BODY ("))
    body = d.cmd("a004 fetch 1 body")[0]
    assert body.startswith("* 1 FETCH (BODY (") and "BODYSTRUCTURE" not in body


def test_fetch_sections_and_partials(d):
    selected(d)
    raw = d.send(b"a1 fetch 2 (body.peek[header.fields (subject)] body.peek[text] body.peek[]<0.10> rfc822.header)\n")
    assert b"BODY[HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: msg 2\r\n\r\n" in raw
    assert b"BODY[TEXT] {15}\r\nbody number 2\r\n" in raw
    assert b"BODY[]<0> {10}\r\nFrom: Ann " in raw
    assert b"RFC822.HEADER {" in raw and b"Message-ID: <msg.2@lab.test>\r\n\r\n" in raw
    assert b"FLAGS" not in raw  # PEEK leaves \Seen alone
    raw = d.send(b"a2 fetch 2 body[1]\n")
    assert b"BODY[1] {15}\r\nbody number 2\r\n" in raw
    raw = d.send(b"a3 fetch 2 body[5]\n")
    assert b"BODY[5] NIL" in raw


def test_fetch_body_sets_seen_and_reports_flags(d):
    selected(d)
    raw = d.send(b"a1 fetch 1 rfc822\n")
    assert raw.startswith(b"* 1 FETCH (RFC822 {")
    assert b"FLAGS (\\Seen \\Recent))\r\na1 OK FETCH completed\r\n" in raw
    assert d.cmd("a2 fetch 1 flags")[0] == "* 1 FETCH (FLAGS (\\Seen \\Recent))"
    raw = d.send(b"a3 uid fetch 1:* (rfc822.text)\n")
    assert raw.count(b" FETCH (UID ") == 3


def test_fetch_data_is_marked_not_logged(d):
    selected(d)
    d.cmd("a1 fetch 1 body[]")
    reply = d.effects[-1].replies[0]
    assert reply.log == () and reply.note == "Sending FETCH response (not logged)..."


# ----- STORE and keywords ---------------------------------------------------------------------------


def test_store_flags_variants(d):
    selected(d)
    assert d.cmd("a006 store 1 +flags \\deleted") == ["* 1 FETCH (FLAGS (\\Deleted \\Recent))", "a006 OK STORE completed"]
    assert d.cmd("a2 store 1:2 +FLAGS (\\Seen \\Flagged)") == [
        "* 1 FETCH (FLAGS (\\Flagged \\Seen \\Deleted \\Recent))",
        "* 2 FETCH (FLAGS (\\Flagged \\Seen \\Recent))",
        "a2 OK STORE completed",
    ]
    assert d.cmd("a3 store 1 -flags (\\deleted \\flagged)") == ["* 1 FETCH (FLAGS (\\Seen \\Recent))", "a3 OK STORE completed"]
    assert d.cmd("a4 store 1 flags.silent (\\Answered)") == ["a4 OK STORE completed"]
    # RFC 3501 §7.2.6: a new keyword is announced in FLAGS and PERMANENTFLAGS before a FETCH carries it
    assert d.cmd("a5 uid store 1 +flags $Work") == [
        "* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Work \\Recent)",
        "* OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Work \\*)] Flags permitted",
        "* 1 FETCH (UID 1 FLAGS (\\Answered $Work \\Recent))",
        "a5 OK STORE completed",
    ]
    assert d.cmd("a6 store 1 +flags \\Bogus")[0].startswith("a6 BAD STORE parse error: unknown system flag")
    assert d.cmd("a7 store 1 +flagz \\Seen")[0].startswith("a7 BAD STORE parse error")
    ref = d.store.mailbox("tatareva@lab.test").folder("INBOX").messages()[0]
    assert ref.flags == "R"


def test_keywords_survive_a_restart(d, tmp_path):
    selected(d)
    d.cmd("a1 store 2 +flags ($Forwarded Work)")
    before = [line for line in d.cmd("a2 select inbox") if "UIDVALIDITY" in line or "UIDNEXT" in line]
    fresh = Driver(MailStore(tmp_path / "data"))  # a new process: the folder index is read from disk
    fresh.login()
    lines = fresh.cmd("b1 select inbox")
    assert [line for line in lines if "UIDVALIDITY" in line or "UIDNEXT" in line] == before
    assert lines[0] == "* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Forwarded Work \\Recent)"
    assert fresh.cmd("b2 fetch 2 flags")[0] == "* 2 FETCH (FLAGS ($Forwarded Work))"
    assert fresh.cmd("b3 search keyword work") == ["* SEARCH 2", "b3 OK SEARCH completed"]


# ----- SEARCH --------------------------------------------------------------------------------------


def test_search_grammar_against_messages(d):
    selected(d)
    d.cmd("a0 store 2 +flags \\seen")
    cases = {
        "all": "1 2 3", "seen": "2", "unseen": "1 3", "not seen": "1 3", "or seen 3": "2 3",
        "subject \"msg 3\"": "3", "from ANN": "1 2 3", "to nobody": "", "body \"number 1\"": "1",
        "text msg": "1 2 3", "header message-id msg.2": "2", "2:*": "2 3", "uid 1,3": "1 3",
        "larger 1": "1 2 3", "smaller 10": "", "since 1-Jan-2000": "1 2 3", "before 1-Jan-2000": "",
        "sentsince 26-Nov-2026": "1 2 3", "senton 25-Nov-2026": "", "new": "1 3", "recent": "1 2 3",
        "old": "", "(seen subject msg)": "2", "charset utf-8 subject msg": "1 2 3", "deleted": "",
        "undeleted": "1 2 3", "not (or 1 2)": "3",
    }
    for query, expected in cases.items():
        assert d.cmd(f"s {query}".replace("s ", "s search ", 1)) == [f"* SEARCH {expected}".rstrip(), "s OK SEARCH completed"], query
    assert d.cmd("u uid search 2:3") == ["* SEARCH 2 3", "u OK SEARCH completed"]
    assert d.cmd("b search charset koi8-r all") == ["b NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"]
    assert d.cmd("c search bogus")[0].startswith("c BAD SEARCH parse error")


def test_search_by_literal_utf8(d):
    d.store.deliver("tatareva@lab.test", message("=?utf-8?b?0J/RgNC40LLQtdGC?=", body="тело\n"))
    selected(d)
    needle = "Привет".encode()
    raw = d.send(b"a1 search charset utf-8 subject {%d+}\r\n" % len(needle) + needle + b"\r\n")
    assert raw == b"* SEARCH 4\r\na1 OK SEARCH completed\r\n"


# ----- COPY / MOVE / EXPUNGE ------------------------------------------------------------------------


def test_copy_move_expunge_with_uidplus(d):
    selected(d)
    box = d.store.mailbox("tatareva@lab.test")
    trash = box.folder("Trash")
    assert d.cmd("a1 copy 1:2 Trash") == [f"a1 OK [COPYUID {trash.uidvalidity} 1:2 1:2] COPY completed"]
    assert d.cmd("a2 copy 1 Nowhere") == ["a2 NO [TRYCREATE] Mailbox Nowhere does not exist"]
    assert d.cmd("a3 uid move 2 Junk") == [
        f"* OK [COPYUID {box.folder('Junk').uidvalidity} 2 1] Moved",
        "* 2 EXPUNGE",
        "* 2 RECENT",  # RFC 3501 §7.3.2: a recent message left, so the count the client holds changed
        "a3 OK MOVE completed",
    ]
    d.cmd("a4 store 1 +flags.silent \\deleted")
    assert d.cmd("a5 expunge") == ["* 1 EXPUNGE", "* 1 RECENT", "a5 OK EXPUNGE completed"]
    assert d.machine.view.exists == 1
    assert [r.uid for r in box.folder("INBOX").messages()] == [3]
    assert len(trash.messages()) == 2


def test_uid_expunge_only_touches_the_given_uids(d):
    selected(d)
    d.cmd("a1 store 1:3 +flags.silent \\deleted")
    assert d.cmd("a2 uid expunge 2") == ["* 2 EXPUNGE", "* 2 RECENT", "a2 OK EXPUNGE completed"]
    assert d.cmd("a3 close") == ["a3 OK CLOSE completed"]
    assert d.store.mailbox("tatareva@lab.test").folder("INBOX").messages() == ()
    assert d.machine.state is State.AUTHENTICATED


def test_unselect_keeps_deleted_messages(d):
    selected(d)
    d.cmd("a1 store 1 +flags \\deleted")
    assert d.cmd("a2 unselect") == ["a2 OK UNSELECT completed"]
    assert len(d.store.mailbox("tatareva@lab.test").folder("INBOX").messages()) == 3


# ----- mailbox commands -----------------------------------------------------------------------------


def test_special_use_folders_exist_after_first_login(d):
    d.login()
    lines = d.cmd('a1 list "" "*"')
    assert lines == [
        '* LIST (\\HasNoChildren) "/" "INBOX"',
        '* LIST (\\HasNoChildren \\Drafts) "/" "Drafts"',
        '* LIST (\\HasNoChildren \\Junk) "/" "Junk"',
        '* LIST (\\HasNoChildren \\Sent) "/" "Sent"',
        '* LIST (\\HasNoChildren \\Trash) "/" "Trash"',
        "a1 OK LIST completed",
    ]
    assert d.cmd('a2 list "" ""') == ['* LIST (\\Noselect) "/" ""', "a2 OK LIST completed"]
    assert d.cmd('a3 lsub "" *')[:-1] == [f'* LSUB () "/" "{n}"' for n in ("Drafts", "Junk", "Sent", "Trash")]


def test_create_rename_delete_hierarchy(d):
    d.login()
    assert d.cmd("a1 create Work/2026/") == ["a1 OK CREATE completed"]
    assert d.cmd("a2 create work/2026") == ["a2 OK CREATE completed"]  # names other than INBOX are case-sensitive
    assert d.cmd("a3 create Work") == ["a3 NO [ALREADYEXISTS] Mailbox Work already exists"]
    assert d.cmd("a4 create inbox") == ["a4 NO [ALREADYEXISTS] Mailbox INBOX already exists"]
    assert d.cmd('a5 list "" Work%') == ['* LIST (\\HasChildren) "/" "Work"', "a5 OK LIST completed"]
    assert d.cmd('a6 list Work/ %') == ['* LIST (\\HasNoChildren) "/" "Work/2026"', "a6 OK LIST completed"]
    assert d.cmd("a7 rename Work Projects") == ["a7 OK RENAME completed"]
    assert d.cmd('a8 list "" Projects*')[:-1] == ['* LIST (\\HasChildren) "/" "Projects"', '* LIST (\\HasNoChildren) "/" "Projects/2026"']
    assert d.cmd("a9 delete Projects/2026") == ["a9 OK DELETE completed"]
    assert d.cmd("a10 delete Projects/2026") == ["a10 NO [NONEXISTENT] Mailbox Projects/2026 does not exist"]
    assert d.cmd("a11 delete inbox") == ["a11 NO [CANNOT] INBOX cannot be deleted"]
    assert d.cmd("a12 create bad.name")[0].startswith("a12 NO [CANNOT]")
    # RFC 6855: an 8-bit name is refused (as Dovecot does) until the client enables UTF8=ACCEPT...
    refused = d.cmd("a13 create Работа")
    assert refused[0].startswith("a13 NO [CANNOT]") and "ENABLE UTF8=ACCEPT" in refused[0]
    assert d.cmd("a14 create &BCAEMAQxBD4EQgQw-") == ["a14 OK CREATE completed"]  # modified UTF-7 is fine
    assert '* LIST (\\HasNoChildren) "/" "&BCAEMAQxBD4EQgQw-"' in d.cmd('a15 list "" *')
    # ...after which names travel in UTF-8 both ways
    assert d.cmd("a16 enable utf8=accept") == ["* ENABLED UTF8=ACCEPT", "a16 OK ENABLE completed"]
    assert d.cmd("a17 enable utf8=accept") == ["* ENABLED", "a17 OK ENABLE completed"]  # already on
    assert '* LIST (\\HasNoChildren) "/" "Работа"' in d.cmd('a18 list "" *')
    assert d.cmd("a19 create Проекты/2026") == ["a19 OK CREATE completed"]
    assert d.cmd('a20 status Проекты/2026 (messages)') == ['* STATUS "Проекты/2026" (MESSAGES 0)', "a20 OK STATUS completed"]
    assert d.cmd("a21 create A&B") == ["a21 OK CREATE completed"]  # '&' is just a character now
    assert '* LIST (\\HasNoChildren) "/" "A&B"' in d.cmd('a22 list "" A*')


def test_rename_inbox_moves_its_messages(d):
    d.login()
    assert d.cmd("a1 rename INBOX Old") == ["a1 OK RENAME completed"]
    assert d.cmd("a2 status inbox (messages)") == ['* STATUS "INBOX" (MESSAGES 0)', "a2 OK STATUS completed"]
    assert d.cmd("a3 status Old (messages unseen)") == ['* STATUS "Old" (MESSAGES 3 UNSEEN 3)', "a3 OK STATUS completed"]


def test_subscribe_and_status(d):
    d.login()
    d.cmd("a1 create Lists")
    assert d.cmd("a2 subscribe Lists") == ["a2 OK SUBSCRIBE completed"]
    assert '* LSUB () "/" "Lists"' in d.cmd('a3 lsub "" *')
    d.cmd("a3b delete Lists")  # RFC 3501 §6.3.9: the subscription stays, as \Noselect
    assert '* LSUB (\\Noselect) "/" "Lists"' in d.cmd('a3c lsub "" *')
    assert d.cmd("a4 unsubscribe Lists") == ["a4 OK UNSUBSCRIBE completed"]
    assert '* LSUB () "/" "Lists"' not in d.cmd('a5 lsub "" *')
    uidvalidity = d.store.mailbox("tatareva@lab.test").folder("INBOX").uidvalidity
    assert d.cmd("a6 status INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)")[0] == (
        f'* STATUS "INBOX" (MESSAGES 3 RECENT 3 UIDNEXT 4 UIDVALIDITY {uidvalidity} UNSEEN 3)'
    )
    assert d.cmd("a7 status INBOX (BOGUS)")[0].startswith("a7 BAD")


def test_append_with_flags_date_and_literal(d):
    d.login()
    data = b"Subject: appended\r\n\r\nHello\r\n"
    raw = d.send(b'a1 APPEND Drafts (\\Draft $Todo) "05-Mar-2026 10:20:30 +0100" {%d}\r\n' % len(data))
    assert raw == b"+ Ready for literal data\r\n"
    raw = d.send(data + b"\r\n")
    folder = d.store.mailbox("tatareva@lab.test").folder("Drafts")
    (ref,) = folder.messages()
    assert raw == b"a1 OK [APPENDUID %d %d] APPEND completed\r\n" % (folder.uidvalidity, ref.uid)
    assert folder.read(ref.uid) == b"Subject: appended\n\nHello\n"
    assert ref.flags == "D" and ref.wire_size == len(data)
    assert ref.internaldate == 1772702430.0
    d.cmd("a2 select Drafts")
    assert d.cmd("a3 fetch 1 (flags internaldate)")[0] == f'* 1 FETCH (FLAGS (\\Draft $Todo \\Recent) INTERNALDATE {internaldate(1772702430.0)})'
    assert internaldate(1772702430.0).startswith('"05-Mar-2026 ')
    raw = d.send(b"a4 append Nowhere {1+}\r\nx\r\n")
    assert raw == b"a4 NO [TRYCREATE] Mailbox Nowhere does not exist\r\n"
    raw = d.send(b'a5 append Drafts "not a date" {1+}\r\nx\r\n')
    assert raw.startswith(b"a5 BAD APPEND parse error: invalid date-time")


def test_append_literal_too_big_is_refused_before_it_is_sent(store):
    d = Driver(store, max_literal=50)
    d.login()
    assert d.send(b"a1 append INBOX {51}\r\n") == b"a1 NO [TOOBIG] too big\r\n"
    assert d.cmd("a2 noop") == ["a2 OK NOOP completed"]


# ----- several sessions on one mailbox ------------------------------------------------------------


def test_two_sessions_see_each_others_changes(d):
    a = selected(d)
    b = selected(Driver(d.store))
    assert b.cmd("b0 noop") == ["b0 OK NOOP completed"]
    a.cmd("a1 store 2 +flags \\flagged")
    assert b.cmd("b1 noop") == ["* 2 FETCH (FLAGS (\\Flagged))", "b1 OK NOOP completed"]
    a.cmd("a2 store 1 +flags.silent \\deleted")
    a.cmd("a3 expunge")
    # RFC 3501 §7.4.1: no EXPUNGE while answering FETCH / STORE / SEARCH; RFC 2180 §4.1.1: the message
    # is still sent while the server holds it, RFC 5530 §3: with EXPUNGEISSUED ...
    assert b.cmd("b2 fetch 1 (flags)") == ["* 1 FETCH (FLAGS (\\Deleted))", f"b2 {HELD_OK}"]
    assert b.cmd("b3 search all") == ["* SEARCH 2 3", "b3 OK SEARCH completed"]
    # ... but at the next command that allows it
    assert b.cmd("b4 noop") == ["* 1 EXPUNGE", "b4 OK NOOP completed"]
    d.store.deliver("tatareva@lab.test", message("late"))
    assert b.cmd("b5 check") == ["* 3 EXISTS", "* 1 RECENT", "b5 OK CHECK completed"]
    assert a.cmd("a4 noop") == ["* 3 EXISTS", "* 2 RECENT", "a4 OK NOOP completed"]
    assert b.cmd("b6 fetch 3 flags") == ["* 3 FETCH (FLAGS (\\Recent))", "b6 OK FETCH completed"]


def test_select_with_condstore_reports_highestmodseq_once(d):
    """RFC 7162 §3.1.8: SELECT (CONDSTORE) turns CONDSTORE on and reports HIGHESTMODSEQ, once (imaptest's
    SELECT: the enabling and the SELECT each sent it)."""
    d.login()
    lines = d.cmd("s1 select inbox (condstore)")
    assert sum("[HIGHESTMODSEQ " in line for line in lines) == 1 and lines[-1] == "s1 OK [READ-WRITE] SELECT completed"
    assert sum("[HIGHESTMODSEQ " in line for line in d.cmd("s2 select inbox (condstore)")) == 1
    assert d.cmd("s3 fetch 1 (flags)")[0].startswith("* 1 FETCH (FLAGS () MODSEQ (")  # (\\Recent: the first SELECT's)


HELD_OK = "OK [EXPUNGEISSUED] FETCH completed; some of the messages were expunged meanwhile"


def test_a_message_expunged_elsewhere_is_fetched_while_held_then_refused(d, monkeypatch):
    """RFC 2180 §4.1.1 while `reaper` holds the expunged file (each FETCH of it, not only the first),
    §4.1.2 once it no longer does: the messages still here are sent, the tagged reply is NO."""
    a = selected(d)
    b = selected(Driver(d.store))
    body = b.cmd("b0 fetch 1 (body.peek[])")
    a.cmd("a1 store 1 +flags.silent \\deleted")
    a.cmd("a2 expunge")
    for tag in ("b1", "b2"):
        assert b.cmd(f"{tag} fetch 1 (body.peek[])") == [*body[:-1], f"{tag} {HELD_OK}"]
    assert b.cmd("b3 fetch 1:2 (uid)") == ["* 1 FETCH (UID 1)", "* 2 FETCH (UID 2)", f"b3 {HELD_OK}"]
    reaper.settle()  # (the hold is over: what `HOLD_SECONDS` does in time)
    assert b.cmd("b4 fetch 1:2 (uid)") == ["* 2 FETCH (UID 2)", "b4 NO Some of the requested messages no longer exist"]
    assert b.cmd("b5 fetch 1 (body.peek[])") == ["b5 NO Some of the requested messages no longer exist"]
    assert b.cmd("b6 noop") == ["* 1 EXPUNGE", "b6 OK NOOP completed"]
    assert b.cmd("b7 fetch 1 (uid)") == ["* 1 FETCH (UID 2)", "b7 OK FETCH completed"]


def test_a_message_moved_out_elsewhere_is_fetched_while_held(d):
    """RFC 6851 §4.4: the MOVE's source reports the message as expunged; until this session is told
    (RFC 2180 §4.1.1) it still fetches it, from the file now in the target folder (a descriptor held
    across the rename, whatever that folder then does with it)."""
    a = selected(d)
    b = selected(Driver(d.store))
    body = b.cmd("b0 fetch 2 (body.peek[])")
    assert a.cmd("a1 move 2 Trash")[-1].startswith("a1 OK")
    assert a.cmd("a2 select Trash")[-1] == "a2 OK [READ-WRITE] SELECT completed"
    a.cmd("a3 store 1 +flags.silent \\deleted")
    a.cmd("a4 expunge")  # (gone from the target too, by name: the held descriptor still reads it)
    assert b.cmd("b1 fetch 2 (body.peek[])") == [*body[:-1], f"b1 {HELD_OK}"]
    reaper.settle()
    assert b.cmd("b2 fetch 2 (body.peek[])") == ["b2 NO Some of the requested messages no longer exist"]
    assert b.cmd("b3 noop") == ["* 2 EXPUNGE", "b3 OK NOOP completed"]


def test_keyword_change_reaches_the_other_session(d):
    a = selected(d)
    b = selected(Driver(d.store))
    a.cmd("a1 store 3 +flags.silent Important")
    # RFC 3501 §7.2.6: the other session hears of the new keyword in FLAGS before the FETCH
    assert b.cmd("b1 noop") == [
        "* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft Important \\Recent)",
        "* OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft Important \\*)] Flags permitted",
        "* 3 FETCH (FLAGS (Important))",
        "b1 OK NOOP completed",
    ]
    assert b.cmd("b2 noop") == ["b2 OK NOOP completed"]  # announced once


def test_idle_reports_a_delivery_at_once(d):
    selected(d)
    assert d.cmd("a1 idle") == ["+ idling"]
    assert d.effects[-1].idle is True and d.machine.wants_line
    d.store.deliver("tatareva@lab.test", message("while idle"))
    lines = b"".join(r.data for r in d.machine.idle_poll().replies)
    assert lines == b"* 4 EXISTS\r\n* 4 RECENT\r\n"
    assert d.cmd("DONE") == ["a1 OK IDLE terminated"]
    assert d.effects[-1].idle is False
    assert d.cmd("a2 noop") == ["a2 OK NOOP completed"]


def test_pipelined_commands_keep_their_order(d):
    d.login()
    raw = d.send(b"p1 noop\r\np2 select inbox\r\np3 fetch 1 flags\r\np4 logout\r\np5 noop\r\n")
    tags = [line.split()[0] for line in raw.decode().split("\r\n") if line and not line.startswith("*")]
    assert tags == ["p1", "p2", "p3", "p4"]


def test_rename_into_itself_is_refused(d):
    d.login()
    d.cmd("a1 create Work")
    assert d.cmd("a2 rename Work Work/Inner") == ["a2 NO [CANNOT] Mailbox Work cannot be moved inside itself"]


def test_farewells(d):
    assert d.machine.farewell("timeout") == b"* BYE Autologout; idle for too long\r\n"
    assert d.machine.farewell("server stopping") == b"* BYE Server shutting down\r\n"
    assert d.machine.farewell("killed by operator") == b"* BYE Connection closed by the server (killed by operator)\r\n"


def test_a_thunderbird_like_session(d):
    """The commands Thunderbird sends on first sync, in its spelling."""
    token = base64.b64encode(b"\0tatareva@lab.test\0" + PASSWORD.encode()).decode()
    assert d.cmd(f"1 authenticate PLAIN {token}") == ["1 OK LOGIN completed"]
    assert d.cmd('2 ID ("name" "Thunderbird" "version" "115.0")')[-1] == "2 OK ID completed"
    assert d.cmd("3 capability")[-1] == "3 OK CAPABILITY completed"
    assert d.cmd('4 namespace')[-1] == "4 OK NAMESPACE completed"
    assert d.cmd('5 lsub "" "*"')[-1] == "5 OK LSUB completed"
    assert len(d.cmd('6 list "" "*"')) == 6
    assert d.cmd('7 select "INBOX"')[-1] == "7 OK [READ-WRITE] SELECT completed"
    assert d.cmd("8 UID fetch 1:* (FLAGS)") == [
        "* 1 FETCH (UID 1 FLAGS (\\Recent))", "* 2 FETCH (UID 2 FLAGS (\\Recent))", "* 3 FETCH (UID 3 FLAGS (\\Recent))",
        "8 OK FETCH completed",
    ]
    raw = d.send(b"9 UID fetch 1:3 (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject Date "
                 b"Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type Reply-To)])\r\n")
    assert raw.count(b"BODY[HEADER.FIELDS (FROM TO CC BCC SUBJECT DATE MESSAGE-ID PRIORITY X-PRIORITY REFERENCES "
                     b"NEWSGROUPS IN-REPLY-TO CONTENT-TYPE REPLY-TO)] {") == 3
    assert d.cmd("10 IDLE") == ["+ idling"]
    assert d.cmd("DONE") == ["10 OK IDLE terminated"]
    raw = d.send(b"11 UID fetch 2 (UID RFC822.SIZE BODY.PEEK[]<0.16384>)\r\n")
    assert b"BODY[]<0> {" in raw and raw.endswith(b"11 OK FETCH completed\r\n")
    assert d.cmd("12 uid store 2 +FLAGS (\\Seen)") == ["* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent))", "12 OK STORE completed"]
    assert d.cmd('13 uid move 2 "Trash"')[-3:] == ["* 2 EXPUNGE", "* 2 RECENT", "13 OK MOVE completed"]
    data = b"From: tatareva@lab.test\r\nSubject: sent\r\n\r\nbody\r\n"
    assert d.send(b'14 append "Sent" (\\Seen) {%d+}\r\n' % len(data) + data + b"\r\n").startswith(b"14 OK [APPENDUID ")
    assert d.cmd("15 logout")[-1] == "15 OK LOGOUT completed"


MULTIPART = (
    b"From: Ann <ann@lab.test>\nTo: tatareva@lab.test\nSubject: report\nMIME-Version: 1.0\n"
    b'Content-Type: multipart/mixed; boundary="XX"\n\npreamble\n--XX\nContent-Type: text/plain; charset=utf-8\n\n'
    b"See the attachment.\n--XX\nContent-Type: application/pdf; name=r.pdf\nContent-Transfer-Encoding: base64\n"
    b"Content-Disposition: attachment; filename=r.pdf\n\nJVBERi0xLjQK\n--XX--\n"
)


def test_fetch_nested_parts_of_a_multipart_message(store):
    store.deliver("tatareva@lab.test", MULTIPART)
    d = selected(Driver(store))
    raw = d.send(b"a1 fetch 1 (body.peek[1] body.peek[2.mime] body.peek[2] body.peek[1.text])\r\n")
    assert b"BODY[1] {19}\r\nSee the attachment. " in raw  # RFC 2046: the CRLF before --XX is the boundary's
    assert b"BODY[2.MIME] {" in raw and b"Content-Disposition: attachment; filename=r.pdf\r\n\r\n" in raw
    assert b"BODY[2] {12}\r\nJVBERi0xLjQK " in raw
    assert b"BODY[1.TEXT] NIL" in raw  # TEXT only applies to message/rfc822 parts
    line = d.cmd("a2 fetch 1 bodystructure")[0]
    low = line.lower()
    assert '"mixed" ("boundary" "xx")' in low and '"application" "pdf"' in low
    assert d.cmd("a3 search body attachment") == ["* SEARCH 1", "a3 OK SEARCH completed"]


def test_credentials_that_are_not_utf8_fail_like_wrong_ones(store):
    d = Driver(store)
    assert d.send(b"a1 login tatareva Secr\xceet\r\n") == b"a1 NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
    assert d.send(b"a2 authenticate plain AB\xce\r\n").startswith(b"a2 BAD Invalid base64")
    token = base64.b64encode(b"\0tatareva\0\xff\xfe")
    assert d.send(b"a3 authenticate plain " + token + b"\r\n") == b"a3 NO [AUTHENTICATIONFAILED] Authentication failed\r\n"


# ----- imaptest compliance findings (issue 14) ------------------------------------------------


def test_select_of_a_name_with_an_open_bracket_is_no_not_bad(d):
    # RFC 3501 §9: `[` is an ATOM-CHAR; imaptest's "atoms" group selects such a name
    d.login()
    reply = d.cmd("a1 select foo[bar")
    assert reply[-1].startswith("a1 NO [NONEXISTENT]")
    assert d.cmd("a2 create foo[bar") == ["a2 OK CREATE completed"]
    assert d.cmd('a3 list "" foo[*') == ['* LIST (\\HasNoChildren) "/" "foo[bar"', "a3 OK LIST completed"]


def test_an_unclosed_section_is_still_bad(d):
    selected(d)
    assert d.cmd("a1 fetch 1 body[text")[-1].startswith("a1 BAD")


def test_appended_and_copied_messages_are_recent_for_exactly_one_session(d):
    d.login()
    d.cmd("a1 create Box")
    d.send(b"a2 append Box (\\Seen) {12+}\r\nSubject: x\r\n\r\n")
    assert d.cmd('a3 status Box (messages recent)')[0] == '* STATUS "Box" (MESSAGES 1 RECENT 1)'
    first = d.cmd("a4 select Box")
    assert "* 1 RECENT" in first
    assert d.cmd("a5 fetch 1 flags")[0] == "* 1 FETCH (FLAGS (\\Seen \\Recent))"
    copied = d.cmd("a6 copy 1 Box")
    assert copied[-1].startswith("a6 OK [COPYUID")
    assert "* 2 RECENT" in copied + d.cmd("a7 noop")  # the copy is recent for the session that has the folder
    other = Driver(d.store)
    other.login()
    assert "* 0 RECENT" in other.cmd("b1 select Box")  # already claimed: never recent twice
    assert other.cmd("b2 search recent") == ["* SEARCH", "b2 OK SEARCH completed"]
    assert other.cmd("b3 search old") == ["* SEARCH 1 2", "b3 OK SEARCH completed"]
    assert d.cmd("a8 search new") == ["* SEARCH", "a8 OK SEARCH completed"]  # both \\Seen
    assert d.cmd("a9 search recent") == ["* SEARCH 1 2", "a9 OK SEARCH completed"]


def test_uidvalidity_of_a_recreated_folder_is_always_greater(d):
    # RFC 3501 §2.3.1.1: DELETE then CREATE in the same second must not reuse UIDVALIDITY (or UIDs)
    d.login()
    seen = []
    for n in range(3):
        d.cmd("a1 create Again")
        status = d.cmd("a2 status Again (uidvalidity)")[0]
        seen.append(int(status.split("UIDVALIDITY ")[1].rstrip(")")))
        d.cmd("a3 delete Again")
    assert seen == sorted(seen) and len(set(seen)) == 3


def test_search_from_ignores_comments_in_the_address(d):
    d.login()
    d.store.deliver("tatareva@lab.test", b"From: <user-from (comment)@ (comment) domain.org>\nSubject: c\n\nx\n")
    d.store.deliver("tatareva@lab.test", b"From: user-from1@domain.org, user-from2@domain.org\nSubject: c\n\nx\n")
    d.cmd("a1 select inbox")
    found = d.cmd("a2 search from user-from@domain.org")[0].split()[2:]
    assert found and all(int(n) > 0 for n in found)
    last = d.cmd("a3 fetch * uid")[0]
    count = int(last.split()[1])
    assert str(count - 1) in found and str(count) not in found


def test_lsub_percent_lists_an_unsubscribed_parent_as_noselect(d):
    # RFC 3501 §6.3.9
    d.login()
    for name in ("top/test", "top/test2", "top/test2/test", "top/test3/test3"):
        d.cmd(f"c create {name}")
    for name in ("top/test", "top/test2/test", "top/test3/test3"):
        d.cmd(f"s subscribe {name}")
    reply = d.cmd('a1 lsub "" top/%')
    assert reply == [
        '* LSUB () "/" "top/test"',
        '* LSUB (\\Noselect) "/" "top/test2"',
        '* LSUB (\\Noselect) "/" "top/test3"',
        "a1 OK LSUB completed",
    ]
