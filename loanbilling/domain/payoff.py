"""Early payoff: the quote at a date, and the one amount a payoff may have (rules v2,
"Payoff").

The payoff amount is the outstanding `T - A` less the interest waived: none under
FULL; under WAIVE_UNDUE, the interest of the installments not yet due at `D`,
`waived = I - max(J(cum(j)), J(A))` with `j = min(due_before(D) + 1, N)` (the
current installment, or the last). The cash splits into the outstanding
principal `P - (A - J(A))` and the rest, interest. A payoff records the waiver
with the payment, and `A` becomes `T`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from loanbilling.domain.allocation import Allocation, allocate
from loanbilling.domain.errors import FailedPrecondition, FieldViolation, InvalidArgument
from loanbilling.domain.loan import Loan, LoanTerms, PayoffInterest, Position, check_read_date
from loanbilling.domain.payment import PaymentDecision, PaymentKind, decide


@dataclass(frozen=True, slots=True)
class PayoffQuote:
    """What closes the loan on `valid_on` (that date only)."""

    payoff_amount: int
    principal_amount: int
    interest_amount: int
    waived_interest_amount: int
    valid_on: dt.date
    currency_code: str


class PayoffAmountRefused(InvalidArgument):
    """A payoff amount other than the quote at the payment date; names the quote."""

    reason = "PAYOFF_AMOUNT_NOT_QUOTED"

    def __init__(self, amount: int, quote: PayoffQuote) -> None:
        self.amount = amount
        self.quote = quote
        cc = quote.currency_code
        super().__init__(
            [
                FieldViolation(
                    "amount",
                    f"{amount:,} {cc} is not the payoff amount: on {quote.valid_on} the "
                    f"loan is paid off by exactly {quote.payoff_amount:,} {cc} "
                    f"({quote.principal_amount:,} principal + {quote.interest_amount:,} "
                    f"interest; {quote.waived_interest_amount:,} interest waived)",
                )
            ]
        )


@dataclass(frozen=True, slots=True)
class SettledPayoff:
    """An accepted payoff: its quote, what it settles, the loan right after it."""

    quote: PayoffQuote
    allocation: Allocation
    after: Position


def waived_interest(terms: LoanTerms, paid_amount: int, on: dt.date) -> int:
    """The interest a payoff on `on` waives: 0 under FULL; under WAIVE_UNDUE,
    I - max(J(cum(j)), J(A)) with j = min(due_before(on) + 1, N)."""
    if terms.payoff_interest is PayoffInterest.FULL:
        return 0
    current = min(terms.weeks_due_before(on) + 1, terms.weeks)
    owed = max(terms.interest_through(current), terms.interest_part(paid_amount))
    return terms.interest_amount - owed


def payoff_quote(
    terms: LoanTerms,
    paid_amount: int,
    on: dt.date,
    *,
    written_off_on: dt.date | None = None,
) -> PayoffQuote:
    """The payoff quote at the end of `on` for a loan with paid amount A(on).

    Refused with OUT_OF_RANGE before the start, and with FAILED_PRECONDITION on a
    loan written off on or before `on` (LOAN_WRITTEN_OFF) or paid by then
    (LOAN_FULLY_PAID): the status at `on` decides, as for every read.
    """
    check_read_date(terms, on)
    if written_off_on is not None and written_off_on <= on:
        raise FailedPrecondition(
            f"the loan was written off on {written_off_on}; it has no payoff",
            reason="LOAN_WRITTEN_OFF",
        )
    if paid_amount >= terms.total_amount:
        raise FailedPrecondition(
            "the loan is fully paid; there is nothing to pay off", reason="LOAN_FULLY_PAID"
        )
    waived = waived_interest(terms, paid_amount, on)
    move = allocate(terms, paid_amount, terms.total_amount - paid_amount - waived, waived)
    return PayoffQuote(
        payoff_amount=move.principal_amount + move.interest_amount,
        principal_amount=move.principal_amount,
        interest_amount=move.interest_amount,
        waived_interest_amount=waived,
        valid_on=on,
        currency_code=terms.currency_code,
    )


def check_payoff_amount(quote: PayoffQuote, amount: int) -> None:
    """A payoff's amount must equal the quote at its date exactly; else
    INVALID_ARGUMENT naming the quote."""
    if amount != quote.payoff_amount:
        raise PayoffAmountRefused(amount, quote)


def settle_payoff(
    terms: LoanTerms,
    paid_amount: int,
    amount: int,
    payment_date: dt.date,
    *,
    written_off_on: dt.date | None = None,
) -> SettledPayoff:
    """Accepts a payoff of `amount` on `payment_date` (under either prepayment
    setting): it must be the quote of that date. The payment date rule
    (payment.check_payment_date) is the caller's, as for any payment."""
    quote = payoff_quote(terms, paid_amount, payment_date, written_off_on=written_off_on)
    check_payoff_amount(quote, amount)
    move = allocate(terms, paid_amount, amount, quote.waived_interest_amount)
    return SettledPayoff(
        quote=quote,
        allocation=move,
        after=Position(terms, move.paid_amount_after, payment_date),
    )


def decide_payoff(
    loan: Loan,
    *,
    amount: int,
    payment_date: dt.date | None,
    idempotency_key: str,
    today: dt.date,
    new_payment_id: Callable[[], int],
) -> PaymentDecision:
    """A payoff of `amount` on `loan` (dated `payment_date`, default today): one
    payment of kind PAYOFF that, with the interest it waives, takes A to T."""
    return decide(
        loan,
        PaymentKind.PAYOFF,
        lambda paid_on: settle_payoff(
            loan.terms, loan.paid_amount, amount, paid_on, written_off_on=loan.written_off_on
        ).allocation,
        payment_date=payment_date,
        idempotency_key=idempotency_key,
        today=today,
        new_payment_id=new_payment_id,
    )
