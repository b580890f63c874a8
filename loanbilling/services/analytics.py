"""Portfolio analytics: read-only, one transaction, figures computed by the database."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Engine

from loanbilling.clock import BusinessClock
from loanbilling.domain.errors import InvalidArgument
from loanbilling.domain.loan import CURRENCY_CODE, DEFAULT_CURRENCY
from loanbilling.storage import portfolio
from loanbilling.storage.database import transaction
from loanbilling.storage.portfolio import PortfolioFigures


@dataclass(frozen=True, slots=True)
class PortfolioSummary:
    as_of: dt.date
    currency_code: str
    figures: PortfolioFigures


class AnalyticsService:
    def __init__(self, engine: Engine, clock: BusinessClock) -> None:
        self.engine = engine
        self.clock = clock

    def portfolio_summary(
        self, as_of: dt.date | None = None, currency_code: str = ""
    ) -> PortfolioSummary:
        """The portfolio in one currency (IDR by default) at the end of `as_of` (default today).

        Amounts of different currencies are never added, so one call covers one currency.
        """
        code = currency_code or DEFAULT_CURRENCY
        if not CURRENCY_CODE.fullmatch(code):
            raise InvalidArgument.of(
                "currency_code", f"{code!r} is not an ISO 4217 code of three capital letters"
            )
        as_of = as_of or self.clock.today()
        with transaction(self.engine, write=False) as conn:
            figures = portfolio.portfolio_summary(conn, as_of, code)
        return PortfolioSummary(as_of, code, figures)
