from datetime import timedelta

import pytest

from signoff.domain.durations import format_duration, parse_duration
from signoff.domain.errors import DomainError, ErrorCode


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT4H", timedelta(hours=4)),
        ("P1DT2H30M", timedelta(days=1, hours=2, minutes=30)),
        ("P2W", timedelta(weeks=2)),
        ("PT0.5S", timedelta(milliseconds=500)),
        ("PT0S", timedelta(0)),
        ("P1D", timedelta(days=1)),
        ("PT90M", timedelta(minutes=90)),
        ("pt15m", timedelta(minutes=15)),
        ("PT1,5H", timedelta(minutes=90)),
        ("P1W2DT3H4M5.25S", timedelta(days=9, hours=3, minutes=4, seconds=5.25)),
    ],
)
def test_parse(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "  ",
        "P",
        "PT",
        "P1DT",
        "-PT1H",
        "PT-1H",
        "abc",
        "4h",
        "P1Y",
        "P1M",
        "P1Y2M3D",
        "PT1H1H",
        "PT0.0000001S",
        "1D",
        "P1.5.5D",
    ],
)
def test_rejects_invalid(text):
    with pytest.raises(DomainError) as exc:
        parse_duration(text)
    assert exc.value.code is ErrorCode.INVALID_INPUT


def test_rejects_non_string():
    with pytest.raises(DomainError):
        parse_duration(3600)  # type: ignore[arg-type]


def test_months_explained():
    with pytest.raises(DomainError, match="no fixed length"):
        parse_duration("P1M")


def test_minutes_in_time_part_are_not_months():
    assert parse_duration("PT1M") == timedelta(minutes=1)
    assert parse_duration("P1DT1M") == timedelta(days=1, minutes=1)


@pytest.mark.parametrize(
    "td",
    [
        timedelta(0),
        timedelta(hours=4),
        timedelta(days=1, hours=2, minutes=30),
        timedelta(weeks=2),
        timedelta(milliseconds=500),
        timedelta(microseconds=1),
        timedelta(days=400, seconds=59, microseconds=120),
    ],
)
def test_round_trip(td):
    text = format_duration(td)
    assert parse_duration(text) == td
    assert format_duration(parse_duration(text)) == text


def test_canonical_forms():
    assert format_duration(timedelta(hours=4)) == "PT4H"
    assert format_duration(timedelta(weeks=2)) == "P14D"
    assert format_duration(timedelta(0)) == "PT0S"
    assert format_duration(timedelta(seconds=0.5)) == "PT0.5S"


def test_format_refuses_negative():
    with pytest.raises(DomainError):
        format_duration(timedelta(seconds=-1))
