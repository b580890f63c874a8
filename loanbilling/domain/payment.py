"""Payment acceptance: the exact amount that is payable, or nothing."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from loanbilling.domain.errors import FailedPrecondition, InvalidArgument, PaymentAmountRefused
from loanbilling.domain.loan import LoanStatus, LoanTerms, Position


@dataclass(frozen=True, slots=True)
class SettledPayment:
    """What an accepted payment settles, and the loan right after it."""

    amount: int
    payment_date: dt.date
    first_week: int
    last_week: int
    after: Position

    @property
    def settled_week_numbers(self) -> list[int]:
        return list(range(self.first_week, self.last_week + 1))

    @property
    def outstanding_after(self) -> int:
        return self.after.outstanding_amount

    @property
    def status_after(self) -> LoanStatus:
        return self.after.status


def payable_count(terms: LoanTerms, paid_count: int, on: dt.date) -> int:
    """Unpaid installments payable on `on`: every overdue one plus the current one.

    The current installment is the first due on or after `on`; after the last
    due date, every unpaid installment is payable.
    """
    payable_through = min(terms.weeks_due_before(on) + 1, terms.weeks)
    return max(payable_through - paid_count, 0)


def accepted_amounts(terms: LoanTerms, paid_count: int, on: dt.date) -> list[int]:
    """The amounts a payment on `on` may have: the first k unpaid installments, k >= 1."""
    base = terms.amount_through(paid_count)
    return [
        terms.amount_through(paid_count + k) - base
        for k in range(1, payable_count(terms, paid_count, on) + 1)
    ]


def check_payment_date(
    terms: LoanTerms,
    payment_date: dt.date,
    *,
    business_date: dt.date,
    last_payment_date: dt.date | None,
) -> None:
    """A payment date may not be in the future, before the start or before the latest payment."""
    if payment_date > business_date:
        raise InvalidArgument.of(
            "payment_date",
            f"{payment_date} is in the future (business date is {business_date})",
            reason="PAYMENT_DATE_IN_FUTURE",
        )
    if payment_date < terms.start_date:
        raise InvalidArgument.of(
            "payment_date",
            f"{payment_date} is before the loan's start date {terms.start_date}",
            reason="PAYMENT_DATE_BEFORE_START",
        )
    if last_payment_date is not None and payment_date < last_payment_date:
        raise InvalidArgument.of(
            "payment_date",
            f"{payment_date} is before the loan's latest payment on {last_payment_date}",
            reason="PAYMENT_DATE_BEFORE_LATEST_PAYMENT",
        )


def settle_payment(
    terms: LoanTerms,
    paid_count: int,
    amount: int,
    payment_date: dt.date,
) -> SettledPayment:
    """Accepts `amount` on `payment_date` if it settles the oldest 1..k payable installments.

    Raises FailedPrecondition when nothing is payable and PaymentAmountRefused
    (with the accepted amounts) for any other amount, zero and negative ones
    included. Refusals change nothing: this function only computes.
    """
    if paid_count >= terms.weeks:
        raise FailedPrecondition(
            "the loan is fully paid; nothing is payable", reason="LOAN_FULLY_PAID"
        )
    payable = payable_count(terms, paid_count, payment_date)
    if payable == 0:
        next_week = paid_count + 1
        payable_from = terms.due_date(paid_count) + dt.timedelta(days=1)
        raise FailedPrecondition(
            f"nothing is payable on {payment_date}: installment {next_week} "
            f"(due {terms.due_date(next_week)}) is payable from {payable_from}",
            reason="NOTHING_PAYABLE",
        )
    base = terms.amount_through(paid_count)
    for k in range(1, payable + 1):
        settles = terms.amount_through(paid_count + k) - base
        if settles == amount:
            return SettledPayment(
                amount=amount,
                payment_date=payment_date,
                first_week=paid_count + 1,
                last_week=paid_count + k,
                after=Position(terms, paid_count + k, payment_date),
            )
        if settles > amount:
            break
    raise PaymentAmountRefused(
        amount, accepted_amounts(terms, paid_count, payment_date), terms.currency_code
    )
