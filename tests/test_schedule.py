"""schedule.py: a job's Schedule as an APScheduler 3 trigger that fires when cron would."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.triggers.interval import IntervalTrigger

from syncd.config import Schedule
from syncd.schedule import (
    MAX_JITTER_S,
    cron_trigger,
    cron_weekdays,
    fire_times,
    jitter_s,
    period_s,
    trigger_for,
)

UTC = timezone.utc
# A Wednesday, so that "next Sunday" and "next Monday" are days away, not today.
WEDNESDAY = datetime(2024, 1, 3, 12, 0, tzinfo=UTC)
SUNDAY, MONDAY = 6, 0  # datetime.weekday()


def fires(expression: str, count: int = 10, after: datetime = WEDNESDAY) -> list[datetime]:
    return fire_times(cron_trigger(expression), after, count)


def test_cron_zero_fires_on_sunday_at_three_utc():
    times = fires("0 3 * * 0", count=3)
    assert times[0] == datetime(2024, 1, 7, 3, 0, tzinfo=UTC)
    assert [t.weekday() for t in times] == [SUNDAY] * 3
    assert all((t.hour, t.minute, t.utcoffset()) == (3, 0, timedelta(0)) for t in times)


def test_cron_seven_is_sunday_too():
    assert fires("0 3 * * 7", count=3) == fires("0 3 * * 0", count=3)
    assert fires("0 3 * * 7", count=1)[0] == datetime(2024, 1, 7, 3, 0, tzinfo=UTC)


def test_cron_one_to_five_fires_on_weekdays_only():
    times = fires("0 3 * * 1-5", count=10)
    assert [t.weekday() for t in times] == [3, 4, 0, 1, 2, 3, 4, 0, 1, 2]
    assert times[0] == datetime(2024, 1, 4, 3, 0, tzinfo=UTC)


def test_cron_one_is_monday():
    assert fires("30 6 * * 1", count=1)[0] == datetime(2024, 1, 8, 6, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("field", "days"),
    [
        ("0", ["sun"]),
        ("7", ["sun"]),
        ("0,7", ["sun"]),
        ("1", ["mon"]),
        ("6", ["sat"]),
        ("1-5", ["mon", "tue", "wed", "thu", "fri"]),
        ("5-7", ["fri", "sat", "sun"]),
        ("0-2", ["mon", "tue", "sun"]),
        ("*/2", ["tue", "thu", "sat", "sun"]),  # 0,2,4,6
        ("1-5/2", ["mon", "wed", "fri"]),
        ("1/3", ["mon", "thu", "sun"]),  # 1,4,7
        ("1,3,5", ["mon", "wed", "fri"]),
        ("sun", ["sun"]),
        ("SUN,sat", ["sat", "sun"]),
        ("mon-fri", ["mon", "tue", "wed", "thu", "fri"]),
        ("fri-sun", ["fri", "sat", "sun"]),
        ("sun-tue", ["mon", "tue", "sun"]),
        ("*", ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]),
    ],
)
def test_day_of_week_field_means_what_cron_means(field, days):
    assert cron_weekdays(field) == days


def test_cron_step_over_every_day_fires_sunday_tuesday_thursday_saturday():
    times = fires("0 0 * * */2", count=8)
    assert {t.weekday() for t in times} == {SUNDAY, 1, 3, 5}


def test_cron_names_fire_on_the_named_days():
    assert [t.weekday() for t in fires("0 3 * * sun,mon", count=4)] == [SUNDAY, MONDAY] * 2


@pytest.mark.parametrize("field", ["8", "mon-", "5-1", "*/0", "funday", "1-*", "", "?"])
def test_unreadable_day_of_week_is_a_clear_error(field):
    with pytest.raises(ValueError, match="day-of-week|day name"):
        cron_weekdays(field)


def test_cron_with_wrong_field_count_is_an_error():
    with pytest.raises(ValueError, match="five fields"):
        cron_trigger("0 3 * *")


def test_cron_with_bad_minute_names_the_expression():
    with pytest.raises(ValueError, match="61 3"):
        cron_trigger("61 3 * * *")


def test_restricted_day_of_month_and_week_fire_on_either_as_cron_does():
    # 1st of the month OR every Monday (not "a 1st that is a Monday").
    times = fires("0 3 1 * 1", count=6, after=datetime(2024, 1, 20, tzinfo=UTC))
    assert times == [
        datetime(2024, 1, 22, 3, tzinfo=UTC),
        datetime(2024, 1, 29, 3, tzinfo=UTC),
        datetime(2024, 2, 1, 3, tzinfo=UTC),  # a Thursday
        datetime(2024, 2, 5, 3, tzinfo=UTC),
        datetime(2024, 2, 12, 3, tzinfo=UTC),
        datetime(2024, 2, 19, 3, tzinfo=UTC),
    ]


def test_starred_day_of_month_keeps_the_day_of_week_restriction():
    # "*/2" in the day of month starts with "*": cron ANDs it with the weekday.
    times = fires("0 3 */2 * 1", count=4, after=datetime(2024, 1, 1, tzinfo=UTC))
    assert all(t.weekday() == MONDAY and t.day % 2 == 1 for t in times)
    assert times[0] == datetime(2024, 1, 1, 3, tzinfo=UTC)


def test_cron_trigger_works_in_utc():
    trigger = trigger_for(Schedule(cron="0 3 * * *"))
    assert trigger.get_next_fire_time(None, WEDNESDAY).utcoffset() == timedelta(0)


def test_interval_schedule_is_an_interval_trigger_with_jitter():
    trigger = trigger_for(Schedule(interval_s=900), start=WEDNESDAY)
    assert isinstance(trigger, IntervalTrigger)
    assert trigger.interval == timedelta(seconds=900)
    assert trigger.jitter == 90
    first = trigger.get_next_fire_time(None, WEDNESDAY)
    assert WEDNESDAY <= first <= WEDNESDAY + timedelta(seconds=90)


def test_jitter_is_a_tenth_of_the_interval_up_to_five_minutes():
    assert jitter_s(10) == 1
    assert jitter_s(3600) == MAX_JITTER_S == 300
    assert jitter_s(5) == 0


def test_off_schedule_has_no_trigger_and_no_period():
    assert trigger_for(Schedule()) is None
    assert period_s(Schedule()) is None


def test_period_of_an_interval_is_the_interval():
    assert period_s(Schedule(interval_s=3600)) == 3600.0


def test_period_of_a_daily_cron_is_a_day():
    assert period_s(Schedule(cron="0 3 * * *"), WEDNESDAY) == 86400.0


def test_period_of_an_hourly_cron_is_an_hour():
    assert period_s(Schedule(cron="15 * * * *"), WEDNESDAY) == 3600.0


def test_period_of_a_sunday_cron_is_a_week():
    assert period_s(Schedule(cron="0 3 * * 0"), WEDNESDAY) == 7 * 86400.0


def test_period_of_a_weekday_cron_covers_the_weekend_gap_whenever_it_is_asked():
    # Asked on a Tuesday the next two fire times are a day apart; the weekend is 3 days.
    for day in range(7):
        now = WEDNESDAY + timedelta(days=day)
        assert period_s(Schedule(cron="0 3 * * 1-5"), now) == 3 * 86400.0
