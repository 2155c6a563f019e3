"""Due slots: the job a timer is handed to runs no earlier than the timer is due, and at most
one slot later (pure arithmetic, no queue)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from signoff.bench.scenarios.timers import lateness_figures, schedule
from signoff.jobs.timers import slot_of
from signoff.services.timers import TIMER_SLOT_SECONDS

moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(due=moments, now=moments)
def test_a_slot_ends_at_or_after_its_timer_and_within_one_slot(due, now):
    slot = slot_of(due, now)
    assert slot >= due and slot >= now
    assert slot - max(due, now) < timedelta(seconds=TIMER_SLOT_SECONDS)
    assert (slot.timestamp() / TIMER_SLOT_SECONDS).is_integer()


@settings(max_examples=100, deadline=None)
@given(due=moments, other=moments, now=moments)
def test_timers_due_together_share_a_slot_and_later_slots_are_later(due, other, now):
    if due <= other:
        assert slot_of(due, now) <= slot_of(other, now)
    past = now - timedelta(seconds=5)
    assert slot_of(past, now) == slot_of(now, now)  # everything overdue goes in the current slot


def test_bench_schedule_and_lateness_leave_out_the_flush_window():
    due = schedule(10, 10.0, 100.0)
    assert due[0] == 100.0 and due[-1] == 109.0
    pairs = [(d, d + (5.0 if 104.0 <= d <= 106.0 else 0.1)) for d in due]
    figures = lateness_figures(pairs, (104.0, 106.0))
    assert figures["max_s"] < 0.2  # the late ones were inside the window
    late_after = [(d, d + (1.0 if d > 106.0 else 0.1)) for d in due]
    split = lateness_figures(late_after, (104.0, 106.0))
    assert split["p99_before_s"] < 0.2 < split["p99_after_s"]
