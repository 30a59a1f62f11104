"""EventBridge schedule expressions: ``rate(5 minutes)`` and the six-field ``cron(Minutes Hours Day-of-month Month
Day-of-week Year)`` with ``, - * ? / L W #``, parsed as EventBridge parses them and asked for their next time.

Written here rather than taken from croniter: croniter's sixth field is seconds (not the year), its days of the
week count from 0 = Sunday (EventBridge's from 1 = Sunday), it combines day-of-month and day-of-week with OR (in
EventBridge one of them must be ``?``), and it accepts what EventBridge rejects. A translation layer would carry
all those differences; the grammar itself is small.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ...errors import ConfigError

_MONTHS = {name: i for i, name in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), 1)}
_DAYS = {name: i for i, name in enumerate("SUN MON TUE WED THU FRI SAT".split(), 1)}  # 1 = Sunday
_RATE = re.compile(r"^rate\((?P<value>[^ ]+) (?P<unit>[a-z]+)\)$")
_UNITS_S = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}


class ExpressionError(ConfigError):
    """An expression EventBridge would reject; the message quotes the part at fault."""


def _fail(expression: str, part: str, why: str) -> ExpressionError:
    return ExpressionError(f"schedule expression {expression!r}: {part!r} {why}")


@dataclass(frozen=True)
class Rate:
    expression: str
    interval_s: int

    def next_after(self, after: datetime) -> datetime:
        # EventBridge starts a rate when the rule is created; here, when the schedule is.
        return after + timedelta(seconds=self.interval_s)


@dataclass(frozen=True)
class DayOfMonth:
    days: frozenset[int] = frozenset()
    last: bool = False  # L
    last_offset: int = 0  # L-3: three days before the last
    weekday_near: int | None = None  # 15W: the weekday nearest the 15th
    last_weekday: bool = False  # LW


@dataclass(frozen=True)
class DayOfWeek:
    days: frozenset[int] = frozenset()  # 1 = Sunday
    last_of: int | None = None  # 6L: the last Friday of the month
    nth: tuple[int, int] | None = None  # 3#2: the second Tuesday


@dataclass(frozen=True)
class Cron:
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    day_of_month: DayOfMonth | None  # None: "?"
    months: frozenset[int]
    day_of_week: DayOfWeek | None  # None: "?"
    years: frozenset[int]
    zone: tzinfo = UTC

    def _day_matches(self, year: int, month: int, day: int) -> bool:
        last = calendar.monthrange(year, month)[1]
        dom, dow = self.day_of_month, self.day_of_week
        if dom is not None:
            if dom.last:
                return day == last - dom.last_offset
            if dom.last_weekday:
                return day == _nearest_weekday(year, month, last, last)
            if dom.weekday_near is not None:
                return day == _nearest_weekday(year, month, min(dom.weekday_near, last), last)
            return day in dom.days
        assert dow is not None
        weekday = (calendar.weekday(year, month, day) + 1) % 7 + 1  # Monday=0 → 2; Sunday=6 → 1
        if dow.last_of is not None:
            return weekday == dow.last_of and day + 7 > last
        if dow.nth is not None:
            return weekday == dow.nth[0] and (day - 1) // 7 + 1 == dow.nth[1]
        return weekday in dow.days

    def next_after(self, after: datetime) -> datetime:
        """The first time strictly after ``after`` (an aware datetime) that the expression names."""
        local = after.astimezone(self.zone).replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = local.date()
        first = True
        while day.year <= max(self.years):
            if day.year not in self.years:
                day = day.replace(year=day.year + 1, month=1, day=1)
                first = False
                continue
            if day.month in self.months and self._day_matches(day.year, day.month, day.day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        if first and (hour, minute) < (local.hour, local.minute):
                            continue
                        return datetime(day.year, day.month, day.day, hour, minute, tzinfo=self.zone)
            day += timedelta(days=1)
            first = False
        raise ExpressionError(f"schedule expression {self.expression!r} names no time after {after.isoformat()}")


Expression = Rate | Cron


def _nearest_weekday(year: int, month: int, day: int, last: int) -> int:
    weekday = calendar.weekday(year, month, day)  # Monday = 0
    if weekday == 5:  # Saturday: Friday, unless that leaves the month
        return day - 1 if day > 1 else day + 2
    if weekday == 6:  # Sunday: Monday, unless that leaves the month
        return day + 1 if day < last else day - 2
    return day


def _value(expression: str, text: str, low: int, high: int, names: dict[str, int], field: str) -> int:
    value = names.get(text.upper()) if names else None
    if value is None:
        if not text.isdigit():
            raise _fail(expression, text, f"is not a valid {field} value")
        value = int(text)
    if not low <= value <= high:
        raise _fail(expression, text, f"is out of range for {field} ({low}-{high})")
    return value


def _set(
    expression: str, text: str, low: int, high: int, field: str, names: dict[str, int] | None = None
) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise _fail(expression, text, f"has an empty item in {field}")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise _fail(expression, item, f"has an invalid increment in {field}")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            start = _value(expression, a, low, high, names or {}, field)
            end = _value(expression, b, low, high, names or {}, field)
            if end < start:
                raise _fail(expression, item, f"is a range that runs backwards in {field}")
        else:
            start = _value(expression, base, low, high, names or {}, field)
            end = high if slash else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _day_of_month(expression: str, text: str) -> DayOfMonth:
    if text == "L":
        return DayOfMonth(last=True)
    if text == "LW":
        return DayOfMonth(last_weekday=True)
    match = re.fullmatch(r"L-(\d+)", text)
    if match:
        offset = int(match.group(1))
        if not 1 <= offset <= 30:
            raise _fail(expression, text, "is out of range for day-of-month (L-1 to L-30)")
        return DayOfMonth(last=True, last_offset=offset)
    match = re.fullmatch(r"(\d+)W", text)
    if match:
        return DayOfMonth(weekday_near=_value(expression, match.group(1), 1, 31, {}, "day-of-month"))
    return DayOfMonth(days=_set(expression, text, 1, 31, "day-of-month"))


def _day_of_week(expression: str, text: str) -> DayOfWeek:
    match = re.fullmatch(r"([^#]+)#(\d)", text)
    if match:
        day = _value(expression, match.group(1), 1, 7, _DAYS, "day-of-week")
        nth = int(match.group(2))
        if not 1 <= nth <= 5:
            raise _fail(expression, text, "names an occurrence outside 1-5 in day-of-week")
        return DayOfWeek(nth=(day, nth))
    if text == "L":
        return DayOfWeek(last_of=7)  # L alone: the last day of the week, Saturday
    match = re.fullmatch(r"(.+)L", text)
    if match:
        return DayOfWeek(last_of=_value(expression, match.group(1), 1, 7, _DAYS, "day-of-week"))
    return DayOfWeek(days=_set(expression, text, 1, 7, "day-of-week", _DAYS))


def _zone(expression: str, timezone: str | None) -> tzinfo:
    if timezone is None or timezone == "UTC":
        return UTC
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ExpressionError(f"schedule expression {expression!r}: time zone {timezone!r} is not known") from None


def parse(expression: str, *, timezone: str | None = None) -> Expression:
    """A ``rate(...)`` or ``cron(...)`` expression; ``timezone`` (ScheduleV2) applies to cron expressions."""
    text = expression.strip()
    if text.startswith("rate("):
        match = _RATE.match(text)
        if not match:
            raise _fail(expression, text, "is not rate(Value Unit), e.g. rate(5 minutes)")
        value, unit = match.group("value"), match.group("unit")
        if not value.isdigit() or int(value) < 1:
            raise _fail(expression, value, "must be a positive whole number")
        if unit not in _UNITS_S:
            raise _fail(expression, unit, "is not a unit: use minute(s), hour(s) or day(s)")
        if (int(value) == 1) != (not unit.endswith("s")):
            raise _fail(expression, f"{value} {unit}", "takes a singular unit for 1 and a plural one otherwise")
        return Rate(expression, int(value) * _UNITS_S[unit])
    if not (text.startswith("cron(") and text.endswith(")")):
        raise _fail(expression, text, "is neither rate(...) nor cron(...)")
    fields = text[5:-1].split()
    if len(fields) != 6:
        raise _fail(
            expression,
            text[5:-1],
            f"has {len(fields)} fields; cron takes six: minutes hours day-of-month month day-of-week year",
        )
    minutes, hours, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise _fail(expression, f"{dom} {month} {dow}", "must set one of day-of-month and day-of-week to ?")
    for name, part in (("minutes", minutes), ("hours", hours), ("month", month), ("year", year)):
        if part == "?" or "L" in part.upper().replace("JUL", "") or "#" in part or part.endswith("W"):
            raise _fail(expression, part, f"uses a wildcard that {name} does not allow")
    return Cron(
        expression,
        minutes=_set(expression, minutes, 0, 59, "minutes"),
        hours=_set(expression, hours, 0, 23, "hours"),
        day_of_month=None if dom == "?" else _day_of_month(expression, dom),
        months=_set(expression, month, 1, 12, "month", _MONTHS),
        day_of_week=None if dow == "?" else _day_of_week(expression, dow),
        years=_set(expression, year, 1970, 2199, "year"),
        zone=_zone(expression, timezone),
    )
