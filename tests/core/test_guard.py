"""Admission and auth throttling rules, with a fake clock (no waiting)."""

from __future__ import annotations

from tuimail.config import PolicySettings
from tuimail.core import guard as guard_module
from tuimail.core.guard import Guard


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(**policy):
    settings, clock, said = PolicySettings(**policy), Clock(), []
    return Guard(lambda: settings, clock=clock, on_change=said.append), clock, said


def test_delays_double_and_are_capped():
    guard, _, _ = make(auth_max_delay=15, auth_failures_before_block=0)
    assert [guard.auth_failed("10.0.0.1", "bob@lab.test") for _ in range(6)] == [1, 2, 4, 8, 15, 15]


def test_failures_per_account_count_across_addresses():
    guard, _, _ = make(auth_failures_before_block=0)
    guard.auth_failed("10.0.0.1", "bob@lab.test")
    guard.auth_failed("10.0.0.2", "bob@lab.test")
    assert guard.auth_failed("10.0.0.3", "bob@lab.test") == 4  # third failure on the account


def test_an_account_is_blocked_from_one_address_then_expires_and_is_released():
    guard, clock, said = make(auth_failures_before_block=3, auth_block_seconds=60)
    for _ in range(3):
        guard.auth_failed("10.0.0.1", "bob@lab.test")
    block = guard.blocked("10.0.0.1", "BOB@lab.test")
    assert block is not None and block.key == "bob@lab.test from 10.0.0.1" and block.failures == 3
    assert guard.blocked("10.0.0.1", "ann@lab.test") is None  # others at that address log in
    assert guard.blocked("10.0.0.2", "bob@lab.test") is None  # and bob from elsewhere
    assert guard.refusal("10.0.0.1", 0, 0) is None  # the address as a whole is not blocked
    assert said == ["Blocked bob@lab.test from 10.0.0.1 for 60 s after 3 failed logins"]
    clock.now += 61
    assert guard.blocked("10.0.0.1", "bob@lab.test") is None and said[-1] == "Block of bob@lab.test from 10.0.0.1 expired"
    for _ in range(3):
        guard.auth_failed("10.0.0.1", "bob@lab.test")
    assert [b.key for b in guard.blocks()] == ["bob@lab.test from 10.0.0.1"]
    assert guard.release("bob@lab.test from 10.0.0.1")
    assert said[-1] == "Block of bob@lab.test from 10.0.0.1 released by the operator"
    assert guard.blocks() == [] and not guard.release("bob@lab.test from 10.0.0.1")
    assert guard.auth_failed("10.0.0.1", "bob@lab.test") == 1  # released: counting starts again


def test_an_account_guessed_from_many_addresses_is_blocked_everywhere():
    guard, _, said = make(auth_failures_before_block=2, auth_max_delay=0)
    for n in range(2 * guard_module.ACCOUNT_FACTOR):
        guard.auth_failed(f"10.0.0.{n}", "bob@lab.test")
    block = guard.blocked("10.9.9.9", "bob@lab.test")
    assert block is not None and block.key == "bob@lab.test" and block.ip is None
    assert guard.blocked("10.9.9.9", "ann@lab.test") is None
    assert "Blocked bob@lab.test for 900 s after 6 failed logins" in said


def test_a_spray_blocks_the_address_but_never_loopback_or_a_trusted_network():
    guard, _, said = make(auth_failures_before_block=10, auth_spray_accounts=5, trusted_networks=["192.168.7.0/24"])
    for ip in ("203.0.113.9", "127.0.0.1", "192.168.7.20"):
        for n in range(4):
            guard.auth_failed(ip, f"user{n}@lab.test")
        assert guard.block_of(ip) is None  # four accounts: not yet a spray
        guard.auth_failed(ip, "user4@lab.test")
    assert [b.key for b in guard.blocks()] == ["203.0.113.9"]
    assert "too many failed logins from 203.0.113.9" in guard.refusal("203.0.113.9", 0, 0)
    assert guard.blocked("203.0.113.9", "anyone@lab.test").key == "203.0.113.9"
    assert guard.refusal("127.0.0.1", 0, 0) is None and guard.refusal("192.168.7.20", 0, 0) is None
    assert guard.auth_failed("127.0.0.1", "user5@lab.test") == 15  # a spray from a shared address is slowed
    assert any("from 127.0.0.1 (a shared address: slowed, not blocked)" in line for line in said)


def test_one_student_failing_twelve_times_on_loopback_locks_out_nobody_else():
    guard, _, _ = make(auth_failures_before_block=10)
    for _ in range(12):
        guard.auth_failed("127.0.0.1", "ivanov@group7.test")
    assert guard.blocked("127.0.0.1", "ivanov@group7.test") is not None
    students = [f"s{n}@group7.test" for n in range(29)]
    assert all(guard.blocked("127.0.0.1", s) is None for s in students)
    assert guard.refusal("127.0.0.1", 29, 29) is None
    for student in students:
        guard.auth_succeeded("127.0.0.1", student)
    assert guard.blocked("127.0.0.1", "ivanov@group7.test") is not None  # others' successes do not free it


def test_success_resets_the_counters():
    guard, _, _ = make(auth_failures_before_block=3)
    guard.auth_failed("10.0.0.1", "bob@lab.test")
    guard.auth_failed("10.0.0.1", "bob@lab.test")
    guard.auth_succeeded("10.0.0.1", "bob@lab.test")
    assert guard.auth_failed("10.0.0.1", "bob@lab.test") == 1
    assert guard.refusal("10.0.0.1", 0, 0) is None


def test_networks_and_connection_limits():
    guard, _, _ = make(allow_networks=["192.168.1.0/24", "127.0.0.0/8"], deny_networks=["192.168.1.66/32"],
                       max_connections=10, max_connections_per_ip=2)
    assert guard.refusal("192.168.1.5", 0, 0) is None
    assert guard.refusal("::ffff:192.168.1.5", 0, 0) is None
    assert "not allowed" in guard.refusal("192.168.1.66", 0, 0)
    assert "not allowed" in guard.refusal("10.1.1.1", 0, 0)
    assert "too many connections to this server" in guard.refusal("127.0.0.1", 10, 0)
    assert "too many connections from 127.0.0.1" in guard.refusal("127.0.0.1", 3, 2)


def test_a_quiet_spell_forgives_old_failures():
    guard, clock, _ = make(auth_failures_before_block=3, auth_block_seconds=60)
    guard.auth_failed("10.0.0.1", "bob@lab.test")
    guard.auth_failed("10.0.0.1", "bob@lab.test")
    clock.now += 61
    assert guard.auth_failed("10.0.0.1", "BOB@lab.test") == 1  # counting starts again
    assert guard.blocks() == []


def test_made_up_login_names_do_not_grow_memory():
    from tuimail.core import guard as module

    guard, _, _ = make(auth_failures_before_block=0)
    for n in range(module.MAX_TRACKED + 500):
        guard.auth_failed(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", f"user{n}@lab.test")
    assert len(guard._ip_failures) == len(guard._account_failures) == module.MAX_TRACKED
    assert guard.auth_failed("10.0.0.0", None) == 1  # the oldest were forgotten


def test_admission_by_access_lists_and_limits():
    """`refusal` in the order the server answers: the access lists (deny before allow; an unparsable
    or IPv4-mapped address), a block of the address, then the two connection limits."""
    not_allowed = "your address is not allowed to use this server"
    guard, _, _ = make()
    assert guard.refusal("10.1.2.3", 0, 0) is None and guard.refusal("::1", 0, 0) is None
    assert guard.refusal("not an address", 0, 0) == not_allowed
    guard, _, _ = make(deny_networks=["10.0.0.0/8"])
    assert guard.refusal("10.1.2.3", 0, 0) == not_allowed
    assert guard.refusal("::ffff:10.1.2.3", 0, 0) == not_allowed
    assert guard.refusal("192.168.1.1", 0, 0) is None
    guard, _, _ = make(allow_networks=["192.168.0.0/16"], deny_networks=["192.168.9.0/24"])
    assert guard.refusal("192.168.1.1", 0, 0) is None
    assert guard.refusal("192.168.9.1", 0, 0) == not_allowed and guard.network_allowed("192.168.9.1") is False
    assert guard.refusal("10.1.2.3", 0, 0) == not_allowed and guard.network_allowed("192.168.1.1") is True
    guard, _, _ = make(max_connections=5, max_connections_per_ip=2)
    assert guard.refusal("10.1.2.3", 4, 1) is None
    assert guard.refusal("10.1.2.3", 5, 0) == "too many connections to this server; try again later"
    assert guard.refusal("10.1.2.3", 4, 2) == "too many connections from 10.1.2.3; close some and try again"
