"""The login cache ([policy] auth_cache_seconds): argon2 once per (account, password) and TTL, keyed by
an HMAC (no password kept), dropped at once when the password changes (here or in another process)."""

from __future__ import annotations

import threading
import time

import pytest

from tests.helpers import PASSWORD, make_config
from tuimail.core import directory as directory_module
from tuimail.core.authcache import AuthCache
from tuimail.core.directory import AuthOutcome, Directory, Service


@pytest.fixture
def counted(monkeypatch):
    """Count the argon2 verifications the directory makes."""
    calls = []
    real = directory_module.verify_password

    def verify(stored, password):
        calls.append(password)
        return real(stored, password)

    monkeypatch.setattr(directory_module, "verify_password", verify)
    return calls


def test_a_repeated_login_skips_argon2_until_the_ttl_ends():
    now = [100.0]
    cache = AuthCache(lambda: 300, clock=lambda: now[0])
    assert not cache.hit("bob@lab.test", "pw", "$hash")
    cache.remember("Bob@lab.test", "pw", "$hash")
    assert cache.hit("bob@lab.test", "pw", "$hash")
    assert not cache.hit("bob@lab.test", "other", "$hash")  # another password
    assert not cache.hit("bob@lab.test", "pw", "$newhash")  # the password was changed
    now[0] += 301
    assert not cache.hit("bob@lab.test", "pw", "$hash") and len(cache) == 0


def test_nothing_secret_is_kept_and_zero_turns_it_off():
    cache = AuthCache(lambda: 300)
    cache.remember("bob@lab.test", "Secret-Password-1", "$hash")
    assert all(b"Secret-Password-1" not in key for key in cache._entries)  # HMAC digests only
    off = AuthCache(lambda: 0)
    off.remember("bob@lab.test", "pw", "$hash")
    assert not off.hit("bob@lab.test", "pw", "$hash") and len(off) == 0


def test_directory_uses_the_cache_and_forgets_a_changed_password(tmp_path, counted):
    directory = Directory(make_config(tmp_path))
    directory.add_account("bob@lab.test", PASSWORD)
    for _ in range(3):
        assert directory.authenticate("bob", PASSWORD, Service.IMAP)[0] is AuthOutcome.OK
    assert counted == [PASSWORD]  # argon2 once
    assert directory.authenticate("bob", "Wrong12345", Service.IMAP)[0] is AuthOutcome.PASSWORD_MISMATCH
    directory.update_account("bob@lab.test", password="NewSecret9")
    assert directory.authenticate("bob", PASSWORD, Service.IMAP)[0] is AuthOutcome.PASSWORD_MISMATCH
    assert directory.authenticate("bob", "NewSecret9", Service.POP3)[0] is AuthOutcome.OK


def test_a_password_changed_by_another_process_is_not_served_from_the_cache(tmp_path, counted):
    config = make_config(tmp_path)
    server = Directory(config)
    server.add_account("bob@lab.test", PASSWORD)
    assert server.authenticate("bob", PASSWORD, Service.IMAP)[0] is AuthOutcome.OK
    Directory(config).update_account("bob@lab.test", password="NewSecret9")  # the CLI
    server.refresh(force=True)
    assert server.authenticate("bob", PASSWORD, Service.IMAP)[0] is AuthOutcome.PASSWORD_MISMATCH


def test_zero_seconds_checks_every_time(tmp_path, counted):
    config = make_config(tmp_path)
    config.settings.policy.auth_cache_seconds = 0
    directory = Directory(config)
    directory.add_account("bob@lab.test", PASSWORD)
    for _ in range(2):
        assert directory.authenticate("bob", PASSWORD, Service.IMAP)[0] is AuthOutcome.OK
    assert counted == [PASSWORD, PASSWORD]


def _together(count: int, login) -> list:
    """Run `login` in `count` threads at once; their answers."""
    answers: list = [None] * count
    threads = [threading.Thread(target=lambda i=i: answers.__setitem__(i, login())) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return answers


def test_logins_arriving_together_share_one_check_and_never_a_failure():
    cache = AuthCache(lambda: 300)
    arrived, calls = [], []
    digest = cache._digest

    def counting_digest(*args):  # every check computes the key first, before it looks for a check under way
        arrived.append(args)
        return digest(*args)

    cache._digest = counting_digest

    def held(answer: bool, others: int):
        def verify() -> bool:
            calls.append(answer)
            if len(calls) == 1:  # the first check runs until every other login has arrived
                deadline = time.monotonic() + 30
                while len(arrived) < others + 1 and time.monotonic() < deadline:
                    time.sleep(0.001)
            return answer
        return verify

    # a right password: one check; its success counts for the logins that came meanwhile
    answers = _together(5, lambda: cache.check("bob@lab.test", "pw", "$h", held(True, 4)))
    assert answers == [True] * 5 and calls == [True] and cache.hit("bob@lab.test", "pw", "$h")

    # a wrong password: every login pays its own check, none takes another's failure
    arrived.clear()
    calls.clear()
    answers = _together(3, lambda: cache.check("bob@lab.test", "bad", "$h", held(False, 2)))
    assert answers == [False] * 3 and calls == [False] * 3 and not cache.hit("bob@lab.test", "bad", "$h")


def test_ten_clients_logging_in_at_once_pay_argon2_once(tmp_path, counted):
    directory = Directory(make_config(tmp_path))
    directory.add_account("ann@lab.test", PASSWORD)
    counted.clear()
    answers = _together(10, lambda: directory.authenticate("ann", PASSWORD, Service.IMAP)[0])
    assert answers == [AuthOutcome.OK] * 10
    assert counted == [PASSWORD]  # argon2 for the first; the others waited for its answer (or hit the cache)
