"""Each student's progress: sessions over real sockets, typed as a student types, then
`tuimail lab progress --csv` shows exactly the steps done, and a restart keeps them."""

from __future__ import annotations

import csv
import imaplib
import io
import poplib
import socket
import tomllib

import tomli_w

import pytest

from tests.helpers import PASSWORD, RunningServer, make_config
from tuimail.cli import main
from tuimail.config import Config


def typed(port: int, lines: list[str], expect_last: bytes) -> bytes:
    """Type lines into a raw socket (LF only, as telnet on a lax terminal), read until `expect_last`."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        got = b""
        for line in lines:
            s.sendall(line.encode() + b"\n")
        while expect_last not in got:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    return got


def progress_csv(config: Config, capsys) -> dict[str, dict[str, str]]:
    capsys.readouterr()
    assert main(["lab", "progress", "--csv", "--config", str(config.path)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    return {r["address"]: r for r in rows}


def edit(config: Config, **exercises) -> None:
    """Write [teaching.exercises] as an instructor would (no validation on the way)."""
    data = tomllib.loads(config.path.read_text())
    data["teaching"]["exercises"].update(exercises)
    config.path.write_text(tomli_w.dumps(data))


@pytest.fixture
def lab(tmp_path):
    config = make_config(tmp_path)
    server = RunningServer(config).start()
    directory = server.engine.directory
    directory.add_account("tatareva@lab.test", PASSWORD, full_name="Татьяна Татарева")
    directory.add_account("doronin@lab.test", PASSWORD, full_name="Doronin")
    yield config, server
    if not server.loop.is_closed():
        server.stop()


def test_steps_done_over_sockets_show_in_lab_progress_and_survive_a_restart(lab, capsys):
    config, server = lab
    book = server.engine.progress
    # SMTP without AUTH, attributed by MAIL FROM (a local account); RCPT to an unknown user fails
    typed(config.settings.ports.smtp, [
        "helo admin", "mail from:<Tatareva@lab.test>", "rcpt to:<nobody@lab.test>", "rcpt to:<doronin@lab.test>",
        "data", "Subject: hi", "", "Привет", ".", "quit"], b"221")
    server.wait_for(lambda: "smtp:QUIT" in book.done("tatareva@lab.test"))
    # POP3: user, pass, list, retr (uidl not done), quit
    pop = poplib.POP3("127.0.0.1", config.settings.ports.pop3, timeout=10)
    pop.user("doronin")
    pop.pass_(PASSWORD)
    pop.list()
    pop.retr(1)
    pop.quit()
    # IMAP: login, select, a failing FETCH (BAD), logout: fetch is not done
    imap = imaplib.IMAP4("127.0.0.1", config.settings.ports.imap, timeout=10)
    imap.login("tatareva", PASSWORD)
    imap.select("INBOX")
    with pytest.raises(imaplib.IMAP4.error):
        imap.fetch("1", "(NOSUCHITEM)")
    imap.logout()
    server.wait_for(lambda: "imap:LOGOUT" in book.done("tatareva@lab.test")
                    and "pop3:QUIT" in book.done("doronin@lab.test"))

    rows = progress_csv(config, capsys)
    done = {a: {k for k, v in r.items() if ":" in k and v} for a, r in rows.items()}
    assert done["tatareva@lab.test"] == {"smtp:HELO|EHLO", "smtp:MAIL", "smtp:RCPT", "smtp:DATA", "smtp:QUIT",
                                         "imap:LOGIN", "imap:SELECT", "imap:LOGOUT"}
    assert done["doronin@lab.test"] == {"pop3:USER", "pop3:PASS", "pop3:LIST|STAT", "pop3:RETR", "pop3:QUIT"}
    assert rows["doronin@lab.test"]["done"] == "5"

    server.stop()  # a restart keeps them
    server2 = RunningServer(Config.load(config.path)).start()
    try:
        assert server2.engine.progress.done("doronin@lab.test").keys() == done["doronin@lab.test"]
        typed(config.settings.ports.pop3, ["user doronin", f"pass {PASSWORD}", "uidl", "quit"], b"signing off")
        server2.wait_for(lambda: "pop3:UIDL" in server2.engine.progress.done("doronin@lab.test"))
    finally:
        server2.stop()
    rows = progress_csv(config, capsys)
    assert rows["doronin@lab.test"]["done"] == "6" and rows["tatareva@lab.test"]["done"] == "8"


def test_the_table_and_custom_exercises(tmp_path, capsys):
    config = make_config(tmp_path)
    edit(config, smtp=["ehlo", "quit"], pop3=[], imap=["login", "uid"])
    assert main(["lab", "progress", "--config", str(config.path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["ADDRESS", "FULL", "NAME", "SMTP", "EHLO", "SMTP", "QUIT", "IMAP", "LOGIN",
                                           "IMAP", "UID", "DONE"]


def test_an_unknown_command_in_exercises_is_named_by_check(tmp_path, capsys):
    config = make_config(tmp_path)
    edit(config, imap=["LOGIN", "FECTH"])
    assert main(["check", "--config", str(config.path)]) == 1
    err = capsys.readouterr().err
    assert "teaching.exercises.imap" in err and "'FECTH'" in err and len(err.strip().splitlines()) == 1


def test_the_lab_steps_are_built_once_and_again_after_a_change(config):
    """The tracker asks for the steps on every accepted reply: they are cached, and a changed
    `[teaching.exercises]` (SIGHUP replaces the settings; an edit may replace one list) is seen."""
    from tuimail.servers.engine import Engine

    engine = Engine(config)
    try:
        first = engine.exercise_steps()
        assert engine.exercise_steps() is first
        exercises = config.settings.teaching.exercises
        exercises.pop3 = ["USER", "RETR"]
        changed = engine.exercise_steps()
        assert [s.id for s in changed if s.protocol == "pop3"] == ["pop3:USER", "pop3:RETR"]
        config.settings.teaching.exercises = type(exercises)()
        assert [s.id for s in engine.exercise_steps()] == [s.id for s in first]
        # a whole section replaced (`apply_models`, SIGHUP), then the whole Settings (a reload)
        teaching = config.settings.teaching.model_copy(deep=True)
        teaching.exercises.imap = ["NOOP"]  # (before it is in force: still seen once it is)
        unchanged = engine.exercise_steps()
        assert engine.exercise_steps() is unchanged
        config.settings.teaching = teaching
        assert [s.id for s in engine.exercise_steps() if s.protocol == "imap"] == ["imap:NOOP"]
        settings = config.settings.model_copy(deep=True)
        settings.teaching.exercises.smtp = ["EHLO"]
        assert engine.exercise_steps() is engine.exercise_steps()
        config.settings = settings
        assert [s.id for s in engine.exercise_steps() if s.protocol == "smtp"] == ["smtp:EHLO"]
    finally:
        engine.logs.close()


def test_a_reply_in_one_call_credits_what_its_lines_one_by_one_do(tmp_path):
    """`ProgressTracker.reply_lines` (one session's reply lines together) credits the same steps at
    the same times as a LineOut per line: IMAP tagged replies of pipelined commands and a client
    using "*" as a tag, an SMTP multi-line reply, POP3 +OK / -ERR."""
    from datetime import datetime, timedelta

    from tuimail.core.events import LineIn, LineOut, Protocol, SessionOpened, SessionUpdated
    from tuimail.teaching.exercises import Step
    from tuimail.teaching.progress import ProgressBook, ProgressTracker

    steps = [Step("imap", ("NOOP",)), Step("imap", ("FETCH",)), Step("imap", ("STORE",)),
             Step("smtp", ("HELO", "EHLO")), Step("pop3", ("STAT",)), Step("pop3", ("LIST",))]
    dialogue = [
        (Protocol.IMAP, ["a1 NOOP", "a2 UID FETCH 1 FLAGS", "* STORE 1 +FLAGS (\\Seen)"],
         ("* OK STORE completed", "* 1 FETCH (FLAGS ())", "a1 OK NOOP completed", "a2 OK done")),
        (Protocol.SMTP, ["EHLO lab"], ("250-tuimail", "250-PIPELINING", "250 HELP")),
        (Protocol.POP3, ["STAT", "LIST 9"], ("+OK 1 120", "-ERR no such message")),
    ]
    done = {}
    for together in (False, True):
        book = ProgressBook(tmp_path / str(together))
        tracker = ProgressTracker(book, lambda: steps, lambda address: address)
        at = datetime(2026, 11, 30, 15, 0, 0).astimezone()
        for sid, (protocol, commands, replies) in enumerate(dialogue, 1):
            tracker(SessionOpened(sid, protocol, "127.0.0.1", 1000, 143))
            tracker(SessionUpdated(sid, protocol, f"s{sid}@lab.test", "authenticated"))
            for command in commands:
                tracker(LineIn(sid, protocol, command, at))
            at += timedelta(seconds=sid)
            if together:
                tracker.reply_lines(sid, protocol, replies, at)
            else:
                for text in replies:
                    tracker(LineOut(sid, protocol, text, at))
        done[together] = book.students()
    assert done[True] == done[False]
    assert sorted(done[True]["s1@lab.test"]) == ["imap:FETCH", "imap:NOOP", "imap:STORE"]
    assert list(done[True]["s2@lab.test"]) == ["smtp:HELO|EHLO"] and list(done[True]["s3@lab.test"]) == ["pop3:STAT"]


def test_imap_continuations_and_odd_tags_leave_the_same_state_line_by_line_or_in_one_call(tmp_path):
    """The IMAP reply path inlined in `reply_lines` and `transcript_line` (a tagged status without
    `_imap_reply`'s call): a "+" continuation still means a SASL answer follows AUTHENTICATE (RFC 3501
    §7.5), even when a client used "+" as a tag; a UID command counts as its command."""
    from datetime import datetime

    from tuimail.core.events import LineIn, LineOut, Protocol, SessionOpened, SessionUpdated
    from tuimail.teaching.exercises import Step
    from tuimail.teaching.progress import ProgressBook, ProgressTracker

    steps = [Step("imap", ("AUTHENTICATE",)), Step("imap", ("FETCH",)), Step("imap", ("NOOP",))]
    rounds = [(["+ NOOP", "a1 AUTHENTICATE PLAIN"], ("+ ",)),
              (["AHNAAHA=", "a2 UID FETCH 1 FLAGS"], ("a1 OK done", "+ NOOP", "a2 OK done")),
              (["a3 NOOP"], ("a3 OK NOOP",))]
    states = {}
    for together in (False, True):
        book = ProgressBook(tmp_path / str(together))
        tracker = ProgressTracker(book, lambda: steps, lambda address: address)
        at = datetime(2026, 11, 30, 15, 0, 0).astimezone()
        tracker(SessionOpened(1, Protocol.IMAP, "127.0.0.1", 1000, 143))
        tracker(SessionUpdated(1, Protocol.IMAP, "s@lab.test", "authenticated"))
        seen = []
        for commands, replies in rounds:
            for command in commands:
                tracker.transcript_line(LineIn, 1, Protocol.IMAP, command, at)
            if together:
                tracker.reply_lines(1, Protocol.IMAP, replies, at)
            else:
                for text in replies:
                    tracker(LineOut(1, Protocol.IMAP, text, at))
            live = tracker._live[1]
            seen.append((dict(live.tags), live.sasl))
        states[together] = seen, book.students()
    assert states[True] == states[False]
    assert sorted(states[True][1]["s@lab.test"]) == ["imap:AUTHENTICATE", "imap:FETCH", "imap:NOOP"]
