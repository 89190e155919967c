"""Describe dates the way people do: "3 days, 4 hours ago.".

The function names are those of Encore (and of the recipe it took them
from), hence their camel case.

Importing this module has no side effect: in particular it does not
configure logging.

Examples
--------
>>> from datetime import datetime, timedelta
>>> from encore.util.human_date import convertToHumanReadable
>>> now = datetime(2024, 5, 1, 12, 0, 0)
>>> convertToHumanReadable(now - timedelta(days=3, hours=4), now=now)
'3 days, 4 hours ago.'
>>> convertToHumanReadable(now - timedelta(days=400), now=now)
'1 year, 1 month ago.'
"""
from __future__ import annotations

import datetime as _datetime
import logging
import time
from typing import Dict, List, Optional, Union

#: The module's logger.  Encore named it ``'parsedatetime'`` (after the
#: recipe the module came from) and exposed it as ``log``; both names are
#: kept.  Nothing here configures logging.
log = logging.getLogger("parsedatetime")
logger = log

__all__ = ["makeEpochTime", "convertToHumanReadable", "makeFancyDatetime", "test"]

_DAYS_PER_YEAR = 365
_DAYS_PER_MONTH = 30


def makeEpochTime(date_time: _datetime.datetime) -> int:
    """Convert a datetime to whole seconds since the epoch.

    Parameters
    ----------
    date_time : datetime.datetime
        A naive datetime is taken to be in local time (as
        :func:`time.mktime` does); an aware one is converted from its own
        time zone.

    Returns
    -------
    int
        Seconds since 1970-01-01 00:00 UTC; fractions of a second are
        dropped.
    """
    if date_time.tzinfo is not None and date_time.utcoffset() is not None:
        return int(date_time.timestamp() // 1)
    return int(time.mktime(date_time.timetuple()))


def _plural(count: int, unit: str) -> str:
    return "{} {}{}".format(count, unit, "" if count == 1 else "s")


def _describe(delta: _datetime.timedelta) -> str:
    """Describe a non-negative duration with its one or two largest units."""
    days = delta.days
    years, days = divmod(days, _DAYS_PER_YEAR)
    months, days = divmod(days, _DAYS_PER_MONTH)
    hours, rest = divmod(delta.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if years:
        parts = [_plural(years, "year")] + ([_plural(months, "month")] if months else [])
    elif months:
        parts = [_plural(months, "month")] + ([_plural(days, "day")] if days else [])
    elif days:
        parts = [_plural(days, "day")] + ([_plural(hours, "hour")] if hours else [])
    elif hours:
        parts = [_plural(hours, "hour")] + ([_plural(minutes, "minute")] if minutes else [])
    elif minutes:
        parts = [_plural(minutes, "minute")]
    else:
        parts = [_plural(seconds, "second")]
    return ", ".join(parts)


def convertToHumanReadable(
    date_time: _datetime.datetime,
    utc: bool = False,
    *,
    now: Optional[_datetime.datetime] = None,
) -> str:
    """Describe how long ago a moment was, in words.

    The description uses the largest unit that is not zero, followed by the
    next smaller one when that is not zero either: years and months, months
    and days, days and hours, hours and minutes; then minutes alone, and
    seconds only for less than a minute.  A year counts 365 days and a month
    30 days.

    Parameters
    ----------
    date_time : datetime.datetime
        The moment to describe.
    utc : bool, optional
        Whether a naive ``date_time`` is in UTC rather than in local time.
        Ignored for an aware ``date_time``, which is compared with the
        current time in its own terms.
    now : datetime.datetime, optional
        The moment to compare with, instead of the current time (useful in
        tests and to describe several dates against the same instant).  It
        must be naive or aware like ``date_time``.

    Returns
    -------
    str
        For example ``'1 year, 2 months ago.'``, ``'3 hours ago.'`` or
        ``'1 second ago.'``.  A moment in the future is described the same
        way with ``'from now.'`` instead of ``'ago.'``.

    Raises
    ------
    TypeError
        If ``now`` is given and only one of ``now`` and ``date_time`` is
        aware.
    """
    if now is None:
        if date_time.tzinfo is not None:
            now = _datetime.datetime.now(_datetime.timezone.utc)
        elif utc:
            now = _datetime.datetime.now(_datetime.timezone.utc).replace(tzinfo=None)
        else:
            now = _datetime.datetime.now()
    delta = now - date_time
    if delta < _datetime.timedelta(0):
        return _describe(-delta) + " from now."
    return _describe(delta) + " ago."


def makeFancyDatetime(req_datetime: _datetime.datetime) -> Dict[str, Union[str, int]]:
    """Describe a datetime both for people and for programs.

    Parameters
    ----------
    req_datetime : datetime.datetime
        A naive datetime in local time, or an aware one.

    Returns
    -------
    dict
        ``'fancy_datetime'``: the result of :func:`convertToHumanReadable`;
        ``'seconds_since_epoch'``: the result of :func:`makeEpochTime`.
    """
    return {
        "fancy_datetime": convertToHumanReadable(req_datetime),
        "seconds_since_epoch": makeEpochTime(req_datetime),
    }


def test() -> List[str]:
    """Print the description of a few sample dates (a demonstration).

    Returns
    -------
    list of str
        The lines printed.
    """
    now = _datetime.datetime.now()
    samples = [
        _datetime.timedelta(seconds=5),
        _datetime.timedelta(minutes=7, seconds=3),
        _datetime.timedelta(hours=2, minutes=15),
        _datetime.timedelta(days=3, hours=5),
        _datetime.timedelta(days=75),
        _datetime.timedelta(days=800),
    ]
    lines = []
    for delta in samples:
        moment = now - delta
        line = "{:%Y-%m-%d %H:%M:%S}: {}".format(moment, convertToHumanReadable(moment, now=now))
        print(line)
        lines.append(line)
    return lines
