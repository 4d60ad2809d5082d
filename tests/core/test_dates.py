"""{% when %}: every page shows a moment the same way, relative with the exact UTC time on hover."""

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from django.template import Context, Template

NOW = datetime(2026, 11, 30, 11, 28, 40, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def render(value, extra: str = "") -> str:
    return Template("{% load dates %}{% when value " + extra + "%}").render(
        Context({"value": value})
    )


@pytest.fixture(autouse=True)
def _now(time_machine):
    time_machine.move_to(NOW, tick=False)


def test_a_past_moment_reads_as_time_ago_with_the_exact_utc_time_on_hover():
    assert render(NOW - timedelta(hours=3, minutes=12)) == (
        '<time datetime="2026-11-30T08:16:40+00:00" title="30 Nov 2026, 08:16 UTC">'
        "3\xa0hours ago</time>"
    )


def test_under_a_minute_either_way_is_just_now():
    assert ">just now</time>" in render(NOW - timedelta(seconds=59))
    assert ">just now</time>" in render(NOW + timedelta(seconds=30))


def test_a_future_moment_reads_as_in_so_long():
    assert ">in 3\xa0days</time>" in render(NOW + timedelta(days=3, hours=5))


def test_another_time_zone_is_shown_in_utc():
    paris = datetime(2026, 11, 30, 12, 28, tzinfo=timezone(timedelta(hours=1)))
    assert 'title="30 Nov 2026, 11:28 UTC"' in render(paris)


def test_no_moment_reads_never_or_the_words_given():
    assert render(None) == '<span class="muted">never</span>'
    assert render(None, 'empty="not yet" ') == '<span class="muted">not yet</span>'


# A |date format with a time of day in it (hours, minutes, seconds, am/pm, ISO, epoch)
# formats a moment; days and months ("j M Y", "F Y") may be formatted as they are.
TIME_OF_DAY = re.compile(r"""\|date:(["'])[^"']*[GgHhisaAPcUu][^"']*\1""")


def test_no_template_formats_a_moment_its_own_way():
    """naturaltime, timesince and hand-made <time> tags read differently from page to page."""
    own_way = ("naturaltime", "|timesince", "|timeuntil", "<time ")
    found = [
        f"{path.relative_to(ROOT)}: {pattern}"
        for directory in (ROOT / "templates", ROOT / "models_catalog" / "templates")
        for path in directory.rglob("*.html")
        for pattern in own_way
        if pattern in path.read_text()
    ] + [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for directory in (ROOT / "templates", ROOT / "models_catalog" / "templates")
        for path in directory.rglob("*.html")
        for match in TIME_OF_DAY.finditer(path.read_text())
    ]
    assert found == []


def test_an_hour_in_a_series_is_shown_absolute_in_utc():
    paris = datetime(2026, 11, 30, 15, 0, tzinfo=timezone(timedelta(hours=1)))
    assert Template("{% load dates %}{{ value|utc }}").render(Context({"value": paris})) == (
        "30 Nov 2026, 14:00 UTC"
    )
