from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from signoff.domain.calendar import WALL_CLOCK, BusinessCalendar, Clockwork
from signoff.domain.errors import DomainError, ErrorCode

BERLIN = ZoneInfo("Europe/Berlin")
NY = ZoneInfo("America/New_York")
CAL = BusinessCalendar("Europe/Berlin")


def local(*args, tz=BERLIN):
    return datetime(*args, tzinfo=tz)


def test_within_a_day():
    out = CAL.add(local(2026, 3, 10, 10, 0), timedelta(hours=3))
    assert out == local(2026, 3, 10, 13, 0) and out.tzinfo is UTC


def test_spills_over_the_weekend():
    # Friday 15:00 + 4h working = Monday 11:00
    assert CAL.add(local(2026, 3, 6, 15, 0), timedelta(hours=4)) == local(2026, 3, 9, 11, 0)


def test_start_outside_hours_counts_from_next_opening():
    assert CAL.add(local(2026, 3, 10, 6, 0), timedelta(hours=1)) == local(2026, 3, 10, 10, 0)
    assert CAL.add(local(2026, 3, 10, 20, 0), timedelta(hours=1)) == local(2026, 3, 11, 10, 0)
    assert CAL.add(local(2026, 3, 7, 12, 0), timedelta(minutes=30)) == local(2026, 3, 9, 9, 30)


def test_holidays_are_skipped():
    cal = BusinessCalendar("Europe/Berlin", holidays=frozenset({date(2026, 3, 9)}))
    assert cal.add(local(2026, 3, 6, 15, 0), timedelta(hours=4)) == local(2026, 3, 10, 11, 0)


def test_exact_end_of_day_lands_on_closing_time():
    assert CAL.add(local(2026, 3, 10, 9, 0), timedelta(hours=8)) == local(2026, 3, 10, 17, 0)
    assert CAL.add(local(2026, 3, 10, 9, 0), timedelta(hours=16)) == local(2026, 3, 11, 17, 0)


def test_dst_week_keeps_local_hours():
    # Europe springs forward on Sunday 29 March 2026: Friday 16:00 CET + 2h = Monday 10:00 CEST
    out = CAL.add(local(2026, 3, 27, 16, 0), timedelta(hours=2))
    assert out == local(2026, 3, 30, 10, 0)
    assert out == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)


def test_dst_night_window_is_shorter():
    # a 01:00-04:00 window on the spring-forward night holds only 2 real hours
    night = BusinessCalendar(
        "Europe/Berlin", workdays=frozenset(range(7)), start=time(1, 0), end=time(4, 0)
    )
    out = night.add(local(2026, 3, 29, 1, 0), timedelta(hours=2, minutes=30))
    assert out == local(2026, 3, 30, 1, 30)
    autumn = night.add(local(2026, 10, 25, 1, 0), timedelta(hours=3, minutes=30))
    # the autumn night repeats 02:00-03:00: 4 real hours, so 3h30 ends inside it
    assert autumn == datetime(2026, 10, 25, 2, 30, tzinfo=UTC)


def test_input_in_other_zone():
    # 09:00 New York = 14:00 Berlin (winter), 3 hours to close
    start = datetime(2026, 1, 13, 8, 0, tzinfo=NY)
    assert CAL.add(start, timedelta(hours=4)) == local(2026, 1, 14, 10, 0)


def test_zero_duration_returns_start():
    start = local(2026, 3, 7, 12, 0)
    assert CAL.add(start, timedelta(0)) == start


def test_wall_clock():
    clock: Clockwork = WALL_CLOCK
    start = local(2026, 3, 28, 12, 0)
    assert clock.add(start, timedelta(days=1)) == start + timedelta(days=1)
    assert clock.add(start, timedelta(days=1)).tzinfo is UTC


@pytest.mark.parametrize("clock", [WALL_CLOCK, CAL])
def test_rejects_naive_and_negative(clock):
    with pytest.raises(DomainError) as exc:
        clock.add(datetime(2026, 1, 1, 9), timedelta(hours=1))
    assert exc.value.code is ErrorCode.INVALID_INPUT
    with pytest.raises(DomainError):
        clock.add(local(2026, 1, 1, 9), timedelta(hours=-1))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timezone": "Mars/Olympus"},
        {"timezone": "UTC", "start": time(17), "end": time(9)},
        {"timezone": "UTC", "start": time(9), "end": time(9)},
        {"timezone": "UTC", "workdays": frozenset()},
        {"timezone": "UTC", "workdays": frozenset({7})},
    ],
)
def test_calendar_validation(kwargs):
    with pytest.raises(DomainError) as exc:
        BusinessCalendar(**kwargs)
    assert exc.value.code is ErrorCode.INVALID_INPUT
