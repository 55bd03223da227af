"""When ``serve`` runs a job: a ``Schedule`` of the configuration as an APScheduler 3 trigger.

APScheduler 3 reads the day of week the Python way (``0`` is Monday, ranges and steps counted
from Monday; agronholm/apscheduler#455), so a crontab line is not handed to
``CronTrigger.from_crontab`` as it is: the day-of-week field is read the way cron reads it
(``0`` and ``7`` are Sunday, ``1`` Monday, names ``sun``..``sat``, lists, ranges and steps) and
handed over as the set of weekday names it means. Cron's other rule about days is kept too:
when both the day of month and the day of week are restricted (neither starts with ``*``), a
day matching either runs the job (``0 3 1 * 1`` is the 1st of the month and every Monday).
Every time is UTC.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from syncd.config import Schedule

UTC = timezone.utc

# APScheduler's names, indexed by cron's day number (0 and 7 are Sunday).
_APS_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CRON_DAY_NUMBERS = {name: number for number, name in enumerate(_APS_DAYS[:7])}
_DAY = r"(?:[0-7]|[a-z]{3})"
_DOW_PART = re.compile(rf"(?P<start>\*|{_DAY})(?:-(?P<end>{_DAY}))?(?:/(?P<step>\d+))?")

# The longest random delay added to an interval job's fire times, as a share of the interval.
JITTER_SHARE = 0.1
MAX_JITTER_S = 300
# How far ahead period_s looks for the longest gap between fire times (a week covers
# weekday-only schedules), and the most fire times it reads to find it.
PERIOD_HORIZON = timedelta(days=8)
PERIOD_MAX_FIRES = 20_000


def cron_weekdays(field: str) -> list[str]:
    """A crontab day-of-week field -> the APScheduler weekday names it means, Monday first.

    ``0``/``7``/``sun`` are Sunday; ``1-5`` is Monday to Friday; ``*/2`` is Sunday, Tuesday,
    Thursday, Saturday; ``fri-sun`` is Friday to Sunday. Raises ValueError naming the part it
    cannot read."""
    days: set[int] = set()
    for part in field.lower().split(","):
        match = _DOW_PART.fullmatch(part)
        if not match:
            raise ValueError(f"cannot read day-of-week {part!r} (0-7, sun-sat, ranges, steps)")
        start_text, end_text, step_text = match.group("start", "end", "step")
        if start_text == "*":
            if end_text is not None:
                raise ValueError(f"cannot read day-of-week {part!r}")
            start, end = 0, 6
        else:
            start = _day_number(start_text, part)
            if end_text is not None:
                end = _day_number(end_text, part)
                if end_text == "sun":
                    end = 7  # fri-sun: Friday to Sunday
            elif step_text is not None:
                end = 7  # 1/2: from Monday to the end of the week
            else:
                end = start
        step = int(step_text) if step_text is not None else 1
        if step < 1:
            raise ValueError(f"day-of-week step must be at least 1, not {part!r}")
        if start > end:
            raise ValueError(f"day-of-week range runs backwards: {part!r}")
        days.update(day % 7 for day in range(start, end + 1, step))
    # Monday first, the order APScheduler prints them in.
    return [_APS_DAYS[day] for day in sorted(days, key=lambda day: (day + 6) % 7)]


def _day_number(text: str, part: str) -> int:
    if text.isdigit():
        return int(text)
    if text not in _CRON_DAY_NUMBERS:
        raise ValueError(f"unknown day name {text!r} in day-of-week {part!r} (sun..sat)")
    return _CRON_DAY_NUMBERS[text]


def cron_trigger(expression: str) -> BaseTrigger:
    """A five-field crontab expression -> a trigger that fires when cron would, in UTC.

    Raises ValueError naming what is wrong."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"a cron expression has five fields, not {len(fields)}: {expression!r}")
    minute, hour, day, month, day_of_week = fields
    weekdays = cron_weekdays(day_of_week)
    weekday_field = "*" if len(weekdays) == 7 else ",".join(weekdays)

    def trigger(day: str, day_of_week: str) -> CronTrigger:
        try:
            return CronTrigger(
                minute=minute,
                hour=hour,
                day=day,
                month=month,
                day_of_week=day_of_week,
                timezone=UTC,
            )
        except ValueError as exc:
            raise ValueError(f"{exc} in {expression!r}") from None

    if day.startswith("*") or day_of_week.startswith("*"):
        return trigger(day, weekday_field)
    # Both restricted: cron runs on a day that matches either field.
    return OrTrigger([trigger(day, "*"), trigger("*", weekday_field)])


def jitter_s(interval_s: int) -> int:
    """The random delay (at most) added to each run of a job every ``interval_s`` seconds, so
    that many syncd instances started together do not call the API in step."""
    return min(int(interval_s * JITTER_SHARE), MAX_JITTER_S)


def trigger_for(schedule: Schedule, start: datetime | None = None) -> BaseTrigger | None:
    """The APScheduler trigger of a job's schedule, or None when the job is ``off``.

    An interval job first runs one interval after ``start`` (default: now), with jitter; a cron
    job runs at its next matching minute."""
    if schedule.interval_s is not None:
        return IntervalTrigger(
            seconds=schedule.interval_s,
            start_date=start or datetime.now(UTC),
            timezone=UTC,
            jitter=jitter_s(schedule.interval_s) or None,
        )
    if schedule.cron is not None:
        return cron_trigger(schedule.cron)
    return None


def fire_times(trigger: BaseTrigger, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times of ``trigger`` after ``after`` (fewer if it ends)."""
    times: list[datetime] = []
    previous = None
    now = after
    while len(times) < count:
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None:
            break
        times.append(fire)
        previous, now = fire, fire + timedelta(microseconds=1)
    return times


def period_s(schedule: Schedule, now: datetime | None = None) -> float | None:
    """A job's period in seconds (None when it is off): the interval, or for a cron job the
    longest gap between consecutive fire times over the coming week (at least the gap between
    the next two), so that a weekday-only job is not overdue on a Sunday. It sizes the misfire
    grace and the health check's "twice its period"."""
    if schedule.interval_s is not None:
        return float(schedule.interval_s)
    if schedule.cron is None:
        return None
    now = now or datetime.now(UTC)
    trigger = cron_trigger(schedule.cron)
    horizon = now + PERIOD_HORIZON
    longest = 0.0
    previous = trigger.get_next_fire_time(None, now)
    for _ in range(PERIOD_MAX_FIRES):
        if previous is None:
            break
        fire = trigger.get_next_fire_time(previous, previous + timedelta(microseconds=1))
        if fire is None:
            break
        longest = max(longest, (fire - previous).total_seconds())
        if fire > horizon:
            break
        previous = fire
    return longest or None
