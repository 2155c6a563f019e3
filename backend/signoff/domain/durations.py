"""ISO-8601 durations, the one textual form of time spans in templates and the API.

Years and months are refused: their length depends on the calendar date they start from,
and an SLA whose length is not fixed cannot be compared, sorted or scheduled deterministically.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from signoff.domain.errors import DomainError, ErrorCode

_NUMBER = r"(\d+(?:[.,]\d+)?)"
_DURATION = re.compile(
    rf"^P(?:{_NUMBER}W)?(?:{_NUMBER}D)?(?:T(?:{_NUMBER}H)?(?:{_NUMBER}M)?(?:{_NUMBER}S)?)?$"
)
_CALENDAR_UNITS = re.compile(r"^P(?:[\d.,]+Y)|^P[^T]*\d[.,\d]*M")
_UNIT_SECONDS = (Decimal(604800), Decimal(86400), Decimal(3600), Decimal(60), Decimal(1))


def _refuse(text: object, why: str) -> DomainError:
    return DomainError(
        ErrorCode.INVALID_INPUT,
        f"invalid duration {text!r}: {why}",
        details={"value": str(text)},
    )


def parse_duration(text: str) -> timedelta:
    """Parse an ISO-8601 duration such as `PT4H`, `P1DT2H30M`, `P2W` or `PT0.5S`.

    Raises `DomainError(INVALID_INPUT)` for empty, negative, malformed or calendar-relative
    (years, months) durations. Zero (`PT0S`) is accepted; callers that need a positive span
    check that themselves, because "zero" is meaningful for some fields (an immediate reminder).
    """
    if not isinstance(text, str):
        raise _refuse(text, "expected a string like PT4H")
    return _parse(text)


# Every step read parses its frozen escalation plan's few durations again (an inbox page, 20
# items); the same handful of strings recur, so their parses are kept (a refusal is not).
@lru_cache(maxsize=1024)
def _parse(text: str) -> timedelta:
    value = text.strip().upper()
    if not value:
        raise _refuse(text, "empty")
    if value.startswith("-"):
        raise _refuse(text, "negative durations are not allowed")
    if _CALENDAR_UNITS.search(value):
        raise _refuse(text, "years and months have no fixed length; use weeks, days or hours")
    match = _DURATION.match(value)
    if match is None or value in ("P", "PT") or value.endswith("T"):
        raise _refuse(text, "expected an ISO-8601 duration like PT4H or P1DT2H30M")
    total = Decimal(0)
    for group, seconds in zip(match.groups(), _UNIT_SECONDS, strict=True):
        if group is None:
            continue
        try:
            total += Decimal(group.replace(",", ".")) * seconds
        except InvalidOperation:  # pragma: no cover - the regex admits only numbers
            raise _refuse(text, "bad number") from None
    # timedelta keeps microseconds; anything finer would not round-trip, so refuse it
    micro = total * 1_000_000
    if micro != micro.to_integral_value():
        raise _refuse(text, "finer than a microsecond")
    try:
        return timedelta(microseconds=int(micro))
    except OverflowError:
        raise _refuse(text, "too large") from None


def format_duration(td: timedelta) -> str:
    """Render a non-negative timedelta as the canonical ISO-8601 string `parse_duration` reads.

    Weeks are folded into days (`P14D`) so that each value has exactly one rendering.
    """
    if td < timedelta(0):
        raise _refuse(td, "negative durations are not allowed")
    micro_total = td // timedelta(microseconds=1)
    days, rest = divmod(micro_total, 86_400_000_000)
    hours, rest = divmod(rest, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds, micro = divmod(rest, 1_000_000)
    out = "P"
    if days:
        out += f"{days}D"
    time_part = ""
    if hours:
        time_part += f"{hours}H"
    if minutes:
        time_part += f"{minutes}M"
    if seconds or micro:
        frac = f".{micro:06d}".rstrip("0") if micro else ""
        time_part += f"{seconds}{frac}S"
    if time_part:
        out += "T" + time_part
    if out == "P":
        out = "PT0S"
    return out
