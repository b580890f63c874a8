"""google.type.Date <-> datetime.date."""

from __future__ import annotations

import datetime as dt

from google.type import date_pb2

from loanbilling.domain.errors import InvalidArgument


def date_from_pb(message, field_name: str) -> dt.date | None:
    """The date in `message.field_name`, or None when the field is unset."""
    if not message.HasField(field_name):
        return None
    value: date_pb2.Date = getattr(message, field_name)
    try:
        return dt.date(value.year, value.month, value.day)
    except ValueError:
        raise InvalidArgument.of(
            field_name,
            f"{value.year:04d}-{value.month:02d}-{value.day:02d} is not a calendar date "
            "(year 1-9999, month 1-12, a day of that month)",
        ) from None


def date_to_pb(value: dt.date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)
