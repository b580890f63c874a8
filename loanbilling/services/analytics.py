"""Portfolio analytics: read-only, figures computed by the storage in one statement
(the rules: loanbilling.domain.portfolio)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from loanbilling.clock import BusinessClock
from loanbilling.domain.loan import DEFAULT_CURRENCY
from loanbilling.domain.portfolio import PortfolioFigures
from loanbilling.services.currencies import check_currency
from loanbilling.storage.interfaces import Storage


@dataclass(frozen=True, slots=True)
class PortfolioSummary:
    as_of: dt.date
    currency_code: str
    figures: PortfolioFigures


class AnalyticsService:
    def __init__(self, storage: Storage, clock: BusinessClock) -> None:
        self.storage = storage
        self.clock = clock

    def portfolio_summary(
        self, as_of: dt.date | None = None, currency_code: str = ""
    ) -> PortfolioSummary:
        """The portfolio in one currency (IDR by default) at the end of `as_of` (default today).

        Amounts of different currencies are never added, so one call covers one currency.
        """
        code = currency_code or DEFAULT_CURRENCY
        check_currency(code)
        as_of = as_of or self.clock.today()
        return PortfolioSummary(as_of, code, self.storage.portfolio(as_of, code))
