"""EventBridge schedule expressions: rate and six-field cron with ? L W #, the next time each names, a time zone
for ScheduleV2, and an error quoting the part EventBridge would reject. No sockets, no processes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from emulator.sources.schedule.expressions import Cron, ExpressionError, Rate, parse


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def next_of(expression: str, after: str, timezone: str | None = None) -> datetime:
    return parse(expression, timezone=timezone).next_after(at(after)).astimezone(UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("cron(0 12 * * ? *)", "2026-12-07T12:00", "2026-12-08T12:00"),  # strictly after
        ("cron(0 12 * * ? *)", "2026-12-07T11:59:30", "2026-12-07T12:00"),
        ("cron(0/15 * * * ? *)", "2026-12-07T10:07", "2026-12-07T10:15"),
        ("cron(5,35 14 * * ? *)", "2026-12-07T14:05", "2026-12-07T14:35"),
        ("cron(0 8 ? * MON-FRI *)", "2026-12-11T08:00", "2026-12-14T08:00"),  # Friday → Monday
        ("cron(0 0 ? * 1 *)", "2026-12-07T00:00", "2026-12-13T00:00"),  # 1 is Sunday
        ("cron(0 0 ? * SUN *)", "2026-12-07T00:00", "2026-12-13T00:00"),
        ("cron(15 10 ? * 6L 2026)", "2026-12-01T00:00", "2026-12-25T10:15"),  # the last Friday
        ("cron(0 9 ? * 2#1 *)", "2026-12-07T09:00", "2027-01-04T09:00"),  # the first Monday
        ("cron(0 9 ? * MON#3 *)", "2026-12-01T00:00", "2026-12-21T09:00"),  # the third Monday
        ("cron(0 0 L * ? *)", "2026-12-07T00:00", "2026-12-31T00:00"),
        ("cron(0 0 L * ? *)", "2027-02-01T00:00", "2027-02-28T00:00"),
        ("cron(0 0 L-2 * ? *)", "2026-12-07T00:00", "2026-12-29T00:00"),
        ("cron(0 0 15W * ? *)", "2026-11-01T00:00", "2026-11-16T00:00"),  # the 15th is a Sunday → Monday
        ("cron(0 0 1W * ? *)", "2026-07-31T00:00", "2026-08-03T00:00"),  # 1st a Saturday: Monday, same month
        ("cron(0 0 LW * ? *)", "2027-01-01T00:00", "2027-01-29T00:00"),  # the 31st a Sunday → Friday 29th
        ("cron(0 0 1 JAN ? 2028)", "2026-12-07T00:00", "2028-01-01T00:00"),
        ("cron(0 0 29 2 ? *)", "2026-12-07T00:00", "2028-02-29T00:00"),  # the next leap day
        ("cron(30 23 ? * L *)", "2026-12-07T00:00", "2026-12-26T23:30"),  # L alone: the last Saturday
    ],
)
def test_next_time(expression, after, expected):
    assert next_of(expression, after) == at(expected)


def test_a_time_zone_applies_to_cron():
    assert next_of("cron(0 9 * * ? *)", "2026-12-07T00:00", "America/New_York") == at("2026-12-07T14:00")  # EST
    assert next_of("cron(0 9 * * ? *)", "2026-07-07T00:00", "America/New_York") == at("2026-07-07T13:00")  # EDT


def test_rate():
    rate = parse("rate(5 minutes)")
    assert isinstance(rate, Rate) and rate.interval_s == 300
    assert rate.next_after(at("2026-12-07T10:00")) == at("2026-12-07T10:05")
    assert parse("rate(1 hour)").interval_s == 3600  # type: ignore[union-attr]
    assert parse("rate(2 days)").interval_s == 172800  # type: ignore[union-attr]
    assert isinstance(parse("cron(0 12 * * ? *)"), Cron)


@pytest.mark.parametrize(
    ("expression", "quoted"),
    [
        ("rate(1 minutes)", "'1 minutes'"),
        ("rate(5 minute)", "'5 minute'"),
        ("rate(0 minutes)", "'0'"),
        ("rate(5 seconds)", "'seconds'"),
        ("rate(five minutes)", "'five'"),
        ("every 5 minutes", "'every 5 minutes'"),
        ("cron(0 12 * * * *)", "'* * *'"),  # neither day field is ?
        ("cron(0 12 ? * ? *)", "'? * ?'"),  # both are
        ("cron(0 12 * * ?)", "'0 12 * * ?'"),  # five fields
        ("cron(61 12 * * ? *)", "'61'"),
        ("cron(0 24 * * ? *)", "'24'"),
        ("cron(0 12 32 * ? *)", "'32'"),
        ("cron(0 12 ? * 8 *)", "'8'"),
        ("cron(0 12 ? * 2#6 *)", "'2#6'"),
        ("cron(0 12 ? FOO ? *)", "'? FOO ?'"),
        ("cron(0 12 1 FOO ? *)", "'FOO'"),
        ("cron(0 12 1 * ? 1969)", "'1969'"),
        ("cron(0/0 12 1 * ? *)", "'0/0'"),
        ("cron(L 12 1 * ? *)", "'L'"),
        ("cron(0 20-10 1 * ? *)", "'20-10'"),
    ],
)
def test_what_eventbridge_rejects_is_quoted(expression, quoted):
    with pytest.raises(ExpressionError) as caught:
        parse(expression)
    assert quoted in caught.value.message, caught.value.message
    assert caught.value.error_type == "InvalidParameterValueException"


def test_an_unknown_time_zone():
    with pytest.raises(ExpressionError, match="time zone 'Mars/Olympus' is not known"):
        parse("cron(0 9 * * ? *)", timezone="Mars/Olympus")


def test_a_year_in_the_past_names_no_time():
    with pytest.raises(ExpressionError, match="names no time after"):
        parse("cron(0 0 1 1 ? 2020)").next_after(at("2026-12-07T00:00"))


def test_every_minute_for_a_day_is_1440_times():
    cron = parse("cron(* * * * ? *)")
    when, count = at("2026-12-07T00:00"), 0
    while when < at("2026-12-08T00:00"):
        when = cron.next_after(when)
        count += 1
    assert count == 1440
    assert when - timedelta(days=1) == at("2026-12-07T00:00")
