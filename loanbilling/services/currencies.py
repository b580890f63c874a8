"""The ISO 4217 currency codes, from the `iso4217` package: the table published
by the standard's maintenance agency, kept current by the package's releases
(its version ends in the table's publication date). The domain checks codes
against this set (`domain.loan.check_currency_code`) but holds no copy of it:
it may import only the standard library."""

from __future__ import annotations

from iso4217 import Currency

from loanbilling.domain.errors import Refusals
from loanbilling.domain.loan import check_currency_code

ISO_4217: frozenset[str] = frozenset(currency.code for currency in Currency)


def check_currency(code: str, field_name: str = "currency_code") -> None:
    """Raises InvalidArgument unless `code` is an ISO 4217 currency code."""
    refusals = Refusals()
    check_currency_code(refusals, code, field_name, known=ISO_4217)
    refusals.raise_if_any()
