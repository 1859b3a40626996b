"""The throttle table: attempts counted before the hash, and a table other addresses cannot flush."""

from __future__ import annotations

from camd.web.throttle import ALLOWED_FAILURES, IN_FLIGHT_RETRY, MAX_ADDRESSES, OVERFLOW, Throttle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def address(number: int) -> str:
    return f"10.{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}"


def block(throttle: Throttle, who: str) -> None:
    for _ in range(throttle.allowed + 1):
        throttle.failed(who)
    assert throttle.retry_after(who) > 0


def test_thousands_of_failures_from_other_addresses_do_not_unblock_one() -> None:
    throttle = Throttle()
    block(throttle, "192.0.2.1")
    for number in range(MAX_ADDRESSES + 100):
        throttle.failed(address(number))
    assert throttle.retry_after("192.0.2.1") > 0
    assert len(throttle) == MAX_ADDRESSES


def test_a_failing_address_outlives_addresses_with_fewer_failures() -> None:
    throttle = Throttle(max_addresses=100)
    for _ in range(ALLOWED_FAILURES - 1):
        throttle.failed("192.0.2.2")  # one failure short of a block
    for number in range(10_000):
        throttle.failed(address(number))
    throttle.failed("192.0.2.2")
    assert throttle.failed("192.0.2.2") > 0, "its earlier failures were kept"


def test_the_entry_forgotten_is_the_one_with_fewest_failures_then_the_oldest() -> None:
    clock = Clock()
    throttle = Throttle(max_addresses=3, clock=clock)
    for who, failures in (("10.0.0.1", 2), ("10.0.0.2", 1), ("10.0.0.3", 1)):
        for _ in range(failures):
            clock.now += 1
            throttle.failed(who)
    clock.now += 1
    throttle.failed("10.0.0.4")  # pushes out 10.0.0.2: one failure, the older of the two
    throttle.failed("10.0.0.3")
    throttle.failed("10.0.0.3")  # 10.0.0.3 now has 3: the next to go is 10.0.0.4 (1)
    throttle.failed("10.0.0.5")
    for _ in range(ALLOWED_FAILURES - 2):
        throttle.failed("10.0.0.1")
    assert throttle.failed("10.0.0.1") > 0, "10.0.0.1 kept all its failures"
    for _ in range(ALLOWED_FAILURES - 3):
        throttle.failed("10.0.0.3")
    assert throttle.failed("10.0.0.3") > 0, "10.0.0.3 kept all its failures"


def test_a_table_full_of_blocked_addresses_counts_newcomers_together() -> None:
    clock = Clock()
    throttle = Throttle(max_addresses=10, lockout=60, clock=clock)
    blocked = [f"192.0.2.{n}" for n in range(10)]
    for who in blocked:
        block(throttle, who)
    # Newcomers find no place: their failures are counted together, and block together.
    newcomers = [f"198.51.100.{n}" for n in range(ALLOWED_FAILURES + 1)]
    assert [throttle.failed(who) for who in newcomers] == [0] * ALLOWED_FAILURES + [60]
    assert throttle.retry_after("203.0.113.99") == 60, "a newcomer is held by the shared block"
    assert len(throttle) == 10 and all(throttle.retry_after(who) > 0 for who in blocked)
    # Once the blocks end there is room again, and a newcomer has its own place.
    clock.now += 61
    assert throttle.retry_after("203.0.113.99") == 0
    throttle.failed("203.0.113.99")
    assert throttle.retry_after("203.0.113.99") == 0 and len(throttle) == 10


def test_overflow_key_is_reported() -> None:
    throttle = Throttle(max_addresses=1, allowed=0)
    block(throttle, "192.0.2.1")
    result = None
    assert throttle.begin("198.51.100.1") == 0
    result = throttle.finish("198.51.100.1", False)
    assert result is not None and result.key == OVERFLOW and result.blocked_for > 0


def test_attempts_are_counted_before_the_check() -> None:
    throttle = Throttle(lockout=60)
    admitted = [throttle.begin("192.0.2.7") for _ in range(20)]
    # Only as many checks may run as the address has failures left (the last one blocks).
    assert admitted == [0] * (ALLOWED_FAILURES + 1) + [IN_FLIGHT_RETRY] * (20 - ALLOWED_FAILURES - 1)
    results = [throttle.finish("192.0.2.7", False) for _ in range(ALLOWED_FAILURES + 1)]
    assert [r.blocked_for for r in results if r is not None] == [0] * ALLOWED_FAILURES + [60]
    assert throttle.begin("192.0.2.7") == 60


def test_a_check_that_did_not_run_is_not_a_failure() -> None:
    throttle = Throttle()
    for _ in range(ALLOWED_FAILURES * 3):
        assert throttle.begin("192.0.2.8") == 0
        assert throttle.finish("192.0.2.8", None) is None
    assert throttle.retry_after("192.0.2.8") == 0 and len(throttle) == 0


def test_a_success_clears_the_address_and_its_slot() -> None:
    throttle = Throttle()
    for _ in range(ALLOWED_FAILURES):
        assert throttle.begin("192.0.2.9") == 0
        throttle.finish("192.0.2.9", False)
    assert throttle.begin("192.0.2.9") == 0
    assert throttle.begin("192.0.2.9") == IN_FLIGHT_RETRY, "one failure left: one check at a time"
    assert throttle.finish("192.0.2.9", True) is None
    assert len(throttle) == 0
    assert [throttle.begin("192.0.2.9") for _ in range(2)] == [0, 0]


def test_after_a_block_one_attempt_at_a_time_and_each_failure_doubles_it() -> None:
    clock = Clock()
    throttle = Throttle(lockout=60, clock=clock)
    block(throttle, "192.0.2.10")
    clock.now += 61
    assert throttle.begin("192.0.2.10") == 0
    assert throttle.begin("192.0.2.10") == IN_FLIGHT_RETRY
    failure = throttle.finish("192.0.2.10", False)
    assert failure is not None and failure.blocked_for == 120 and failure.failures == ALLOWED_FAILURES + 2
