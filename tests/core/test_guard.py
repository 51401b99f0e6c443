"""Admission and auth throttling rules, with a fake clock (no waiting)."""

from __future__ import annotations

from tuimail.config import PolicySettings
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


def test_block_after_threshold_then_expiry_and_release():
    guard, clock, said = make(auth_failures_before_block=3, auth_block_seconds=60)
    for _ in range(3):
        guard.auth_failed("10.0.0.1", None)
    assert "too many failed logins" in guard.refusal("10.0.0.1", 0, 0)
    assert guard.refusal("10.0.0.2", 0, 0) is None
    assert said == ["Blocked 10.0.0.1 for 60 s after 3 failed logins"]
    clock.now += 61
    assert guard.refusal("10.0.0.1", 0, 0) is None and said[-1] == "Block of 10.0.0.1 expired"
    for _ in range(3):
        guard.auth_failed("10.0.0.1", None)
    assert [b.ip for b in guard.blocks()] == ["10.0.0.1"]
    assert guard.release("10.0.0.1") and said[-1] == "Block of 10.0.0.1 released by the operator"
    assert guard.blocks() == [] and not guard.release("10.0.0.1")


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
