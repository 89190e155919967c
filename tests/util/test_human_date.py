"""Tests of encore.util.human_date."""
import datetime
import logging
import time

import pytest

from encore.testing.asserts import assert_python_ok
from encore.util import human_date
from encore.util.human_date import (
    convertToHumanReadable,
    makeEpochTime,
    makeFancyDatetime,
)

NOW = datetime.datetime(2024, 5, 17, 12, 30, 45)


def ago(**kwargs):
    return convertToHumanReadable(NOW - datetime.timedelta(**kwargs), now=NOW)


@pytest.mark.parametrize(
    "delta, expected",
    [
        ({}, "0 seconds ago."),
        ({"seconds": 1}, "1 second ago."),
        ({"seconds": 59}, "59 seconds ago."),
        ({"seconds": 60}, "1 minute ago."),
        ({"minutes": 1, "seconds": 59}, "1 minute ago."),
        ({"minutes": 45, "seconds": 3}, "45 minutes ago."),
        ({"hours": 1}, "1 hour ago."),
        ({"hours": 1, "minutes": 1}, "1 hour, 1 minute ago."),
        ({"hours": 5, "minutes": 30, "seconds": 10}, "5 hours, 30 minutes ago."),
        ({"days": 1}, "1 day ago."),
        ({"days": 1, "minutes": 59}, "1 day ago."),
        ({"days": 3, "hours": 4, "minutes": 5}, "3 days, 4 hours ago."),
        ({"days": 29, "hours": 23}, "29 days, 23 hours ago."),
        ({"days": 30}, "1 month ago."),
        ({"days": 31, "hours": 5}, "1 month, 1 day ago."),
        ({"days": 75}, "2 months, 15 days ago."),
        ({"days": 364}, "12 months, 4 days ago."),
        ({"days": 365}, "1 year ago."),
        ({"days": 365 + 29}, "1 year ago."),
        ({"days": 365 + 30}, "1 year, 1 month ago."),
        ({"days": 3 * 365 + 65, "hours": 7}, "3 years, 2 months ago."),
    ],
)
def test_descriptions(delta, expected):
    assert ago(**delta) == expected


def test_future_moments():
    later = NOW + datetime.timedelta(hours=2, minutes=5)
    assert convertToHumanReadable(later, now=NOW) == "2 hours, 5 minutes from now."


def test_against_the_real_clock_with_margins():
    # Values chosen far from any unit boundary, so the few microseconds
    # between building the date and the call cannot change the words.
    now = datetime.datetime.now()
    assert convertToHumanReadable(now - datetime.timedelta(days=400, hours=6)) == "1 year, 1 month ago."
    assert convertToHumanReadable(now - datetime.timedelta(hours=3, minutes=20, seconds=30)) == (
        "3 hours, 20 minutes ago."
    )


def test_utc_flag_compares_with_utc_now():
    utc_now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    moment = utc_now - datetime.timedelta(hours=2, minutes=10, seconds=30)
    assert convertToHumanReadable(moment, utc=True) == "2 hours, 10 minutes ago."


def test_aware_datetimes_are_compared_in_their_own_terms():
    zone = datetime.timezone(datetime.timedelta(hours=-7))
    moment = datetime.datetime.now(zone) - datetime.timedelta(days=2, hours=3, minutes=30)
    assert convertToHumanReadable(moment) == "2 days, 3 hours ago."
    assert convertToHumanReadable(moment, utc=True) == "2 days, 3 hours ago."


def test_mixing_naive_and_aware_is_a_type_error():
    with pytest.raises(TypeError):
        convertToHumanReadable(datetime.datetime.now(datetime.timezone.utc), now=NOW)


def test_make_epoch_time_of_a_naive_local_datetime():
    moment = datetime.datetime(2021, 3, 4, 5, 6, 7, 890123)
    seconds = makeEpochTime(moment)
    assert isinstance(seconds, int)
    assert seconds == int(time.mktime(moment.replace(microsecond=0).timetuple()))
    assert datetime.datetime.fromtimestamp(seconds) == moment.replace(microsecond=0)


def test_make_epoch_time_of_an_aware_datetime():
    moment = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    assert makeEpochTime(moment) == 946684800
    shifted = datetime.datetime(2000, 1, 1, 2, 0, 0, 500000, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    assert makeEpochTime(shifted) == 946684800


def test_make_fancy_datetime():
    moment = datetime.datetime.now() - datetime.timedelta(days=5, hours=2, minutes=30)
    fancy = makeFancyDatetime(moment)
    assert fancy == {
        "fancy_datetime": "5 days, 2 hours ago.",
        "seconds_since_epoch": makeEpochTime(moment),
    }


def test_make_fancy_datetime_by_encores_keyword():
    moment = datetime.datetime.now() - datetime.timedelta(minutes=3, seconds=1)
    assert makeFancyDatetime(req_datetime=moment)["fancy_datetime"] == "3 minutes ago."


def test_module_logger_is_encores_parsedatetime_logger():
    assert isinstance(human_date.log, logging.Logger)
    assert human_date.log is logging.getLogger("parsedatetime")
    assert human_date.log.name == "parsedatetime"


def test_demonstration_function(capsys):
    lines = human_date.test()
    printed = capsys.readouterr().out.splitlines()
    assert printed == lines
    assert len(lines) == 6
    assert lines[0].endswith("5 seconds ago.")
    assert lines[-1].endswith("2 years, 2 months ago.")


def test_importing_does_not_configure_logging():
    code = (
        "import logging\n"
        "import encore.util.human_date\n"
        "root = logging.getLogger()\n"
        "assert root.handlers == [], root.handlers\n"
        "assert root.level == logging.WARNING, root.level\n"
        "log = logging.getLogger('parsedatetime')\n"
        "assert log.handlers == [] and log.level == logging.NOTSET, (log.handlers, log.level)\n"
        "print('clean')\n"
    )
    _, out, _ = assert_python_ok("-c", code, __timeout=60)
    assert out.strip() == b"clean"


def test_public_names():
    assert set(human_date.__all__) == {
        "makeEpochTime",
        "convertToHumanReadable",
        "makeFancyDatetime",
        "test",
    }
