"""The business date: today in the service's business time zone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo


class BusinessClock:
    def __init__(self, time_zone: str = "UTC") -> None:
        self.zone = ZoneInfo(time_zone)

    def today(self) -> dt.date:
        return dt.datetime.now(self.zone).date()


class FixedClock(BusinessClock):
    """A clock that shows the date it is set to, for tests and replays."""

    def __init__(self, today: dt.date) -> None:
        super().__init__("UTC")
        self.current = today

    def today(self) -> dt.date:
        return self.current
