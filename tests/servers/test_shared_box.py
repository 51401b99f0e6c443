"""A shared box (issue 9 part 4): a whole lab logs in from 127.0.0.1; one student's wrong passwords
block only that student's account from there, never the other 29 (SECURITY.md)."""

from __future__ import annotations

import imaplib
import poplib
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers import PASSWORD, RunningServer, make_config

STUDENTS = [f"student{n:02}" for n in range(1, 30)]  # 29 classmates, plus ivanov who forgot his password


@pytest.fixture
def lab(tmp_path):
    running = RunningServer(make_config(tmp_path, auth_max_delay=0.0)).start()  # default: block after 10
    directory = running.engine.directory
    for name in [*STUDENTS, "ivanov"]:
        directory.add_account(f"{name}@lab.test", PASSWORD)
    yield running
    running.stop()


def pop_login(port: int, name: str, password: str) -> bytes:
    client = poplib.POP3("127.0.0.1", port, timeout=30)
    try:
        client.user(name)
        reply = client.pass_(password)
        client.quit()
        return reply
    except poplib.error_proto as e:
        return e.args[0]
    finally:
        client.close()


def imap_login(port: int, name: str) -> str:
    client = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    try:
        return client.login(name, PASSWORD)[0]
    finally:
        client.logout()


def test_thirty_students_on_loopback_one_fails_twelve_times(lab):
    port = lab.ports.pop3
    start = threading.Barrier(1 + len(STUDENTS))

    def ivanov() -> list[bytes]:
        start.wait()
        return [pop_login(port, "ivanov", f"wrong{n}") for n in range(12)]

    def classmate(name: str) -> tuple[bytes, str]:
        start.wait()
        return pop_login(port, name, PASSWORD), imap_login(lab.ports.imap, name)

    with ThreadPoolExecutor(31) as pool:
        failing = pool.submit(ivanov)
        others = [pool.submit(classmate, name) for name in STUDENTS]
        replies = failing.result(60)
        results = [f.result(60) for f in others]
    assert replies[:9] == [b"-ERR [AUTH] Invalid login or password"] * 9
    assert replies[9:] == [b"-ERR [SYS/TEMP] Too many failed logins; try again later"] * 3  # the 10th blocks
    assert all(pop.startswith(b"+OK") and imap == "OK" for pop, imap in results), results
    # after the block, every classmate still logs in, over both protocols, and ivanov is refused
    with ThreadPoolExecutor(10) as pool:
        again = list(pool.map(lambda name: pop_login(port, name, PASSWORD), STUDENTS))
    assert all(reply.startswith(b"+OK") for reply in again)
    assert pop_login(port, "ivanov", PASSWORD) == b"-ERR [SYS/TEMP] Too many failed logins; try again later"
    assert [b.key for b in lab.call(lab.engine.guard.blocks)] == ["ivanov@lab.test from 127.0.0.1"]
    lab.wait_for(lambda: "Blocked ivanov@lab.test from 127.0.0.1" in lab.log_text("system"))
