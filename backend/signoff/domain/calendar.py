"""Business calendars: SLAs that count only working time.

An SLA of `PT8H` set at 17:00 on a Friday should not expire at 01:00 on Saturday for a team that
works Monday to Friday 09:00-17:00. `BusinessCalendar.add` counts only the working windows of
the calendar's own time zone, skips weekends and holidays, and measures each window in real
elapsed time, so a day on which the clocks change is as long as it really is. `WALL_CLOCK` is the
calendar that counts every second; both share the `Clockwork` interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from signoff.domain.errors import DomainError, ErrorCode

_MAX_DAYS_SCANNED = 366 * 20
"""A safety bound: no realistic SLA spans twenty years of working days."""


class Clockwork(Protocol):
    """Adds a duration to an instant according to some notion of counted time."""

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """`start` plus `duration` of counted time, as an aware UTC datetime."""
        ...


def _require_aware(start: datetime) -> None:
    if start.tzinfo is None or start.utcoffset() is None:
        raise DomainError(
            ErrorCode.INVALID_INPUT, "a time zone is required: naive datetimes are ambiguous"
        )


def _require_non_negative(duration: timedelta) -> None:
    if duration < timedelta(0):
        raise DomainError(ErrorCode.INVALID_INPUT, "a duration cannot be negative")


@dataclass(frozen=True)
class WallClock:
    """Every second counts: plain addition."""

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """`start + duration` in UTC."""
        _require_aware(start)
        _require_non_negative(duration)
        return (start + duration).astimezone(UTC)


WALL_CLOCK = WallClock()
"""The calendar used when a template or tenant sets none."""


@dataclass(frozen=True)
class BusinessCalendar:
    """Working hours in a time zone: `workdays` (0 = Monday), daily `start`-`end`, `holidays`."""

    timezone: str
    workdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})
    start: time = time(9, 0)
    end: time = time(17, 0)
    holidays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise DomainError(
                ErrorCode.INVALID_INPUT, f"unknown time zone {self.timezone!r}", field="timezone"
            ) from None
        if self.end <= self.start:
            raise DomainError(
                ErrorCode.INVALID_INPUT, "the working day must end after it starts", field="end"
            )
        if not self.workdays:
            raise DomainError(
                ErrorCode.INVALID_INPUT, "a calendar needs at least one workday", field="workdays"
            )
        if any(d not in range(7) for d in self.workdays):
            raise DomainError(
                ErrorCode.INVALID_INPUT, "workdays are 0 (Monday) to 6 (Sunday)", field="workdays"
            )
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise DomainError(
                ErrorCode.INVALID_INPUT, "working hours are local times, without a time zone"
            )

    @property
    def zone(self) -> ZoneInfo:
        """The calendar's time zone."""
        return ZoneInfo(self.timezone)

    def is_working_day(self, day: date) -> bool:
        """Whether `day` (a local date) has a working window."""
        return day.weekday() in self.workdays and day not in self.holidays

    def window(self, day: date) -> tuple[datetime, datetime]:
        """The working window of a local date as aware UTC instants.

        Local times that fall in a DST gap resolve forward, those in a fold take the first
        occurrence (zoneinfo's fold=0), which is the convention most people expect.
        """
        zone = self.zone
        opens = datetime.combine(day, self.start, zone).astimezone(UTC)
        closes = datetime.combine(day, self.end, zone).astimezone(UTC)
        return opens, closes

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """`start` plus `duration` of working time, as an aware UTC datetime.

        Starting outside working hours counts from the next opening. A zero duration returns
        `start` unchanged (in UTC): nothing is owed, so nothing is postponed.
        """
        _require_aware(start)
        _require_non_negative(duration)
        cursor = start.astimezone(UTC)
        if not duration:
            return cursor
        remaining = duration
        day = cursor.astimezone(self.zone).date()
        for _ in range(_MAX_DAYS_SCANNED):
            if self.is_working_day(day):
                opens, closes = self.window(day)
                begin = max(cursor, opens)
                if begin < closes:
                    available = closes - begin
                    if remaining <= available:
                        return begin + remaining
                    remaining -= available
            day += timedelta(days=1)
        raise DomainError(  # pragma: no cover - needs a calendar of holidays only
            ErrorCode.INVALID_INPUT, "the calendar has no working time left for this duration"
        )
