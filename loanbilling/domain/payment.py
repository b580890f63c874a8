"""Payment acceptance: the exact amount that is payable, or nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace

from loanbilling.domain.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    PaymentAmountRefused,
)
from loanbilling.domain.events import NewEvent, payment_events
from loanbilling.domain.loan import Loan, LoanStatus, LoanTerms, Position, stored_status


@dataclass(frozen=True, slots=True)
class Payment:
    """A recorded payment, with the outcome it was first answered with, so that
    a retry with its idempotency key replays that answer exactly."""

    id: int
    loan_id: int
    amount: int
    currency_code: str
    payment_date: dt.date
    first_week: int
    last_week: int
    idempotency_key: str
    outstanding_after: int
    status_after: LoanStatus

    @property
    def settled_week_numbers(self) -> list[int]:
        return list(range(self.first_week, self.last_week + 1))

    def check_retry(self, loan_id: int, amount: int, payment_date: dt.date | None) -> None:
        """A retry with this payment's key must ask for the same payment (a retry
        that left the date to the server may come on another day)."""
        if (
            loan_id != self.loan_id
            or amount != self.amount
            or (payment_date is not None and payment_date != self.payment_date)
        ):
            raise AlreadyExists(
                f"idempotency_key {self.idempotency_key!r} was used for payment {self.id} "
                f"(loan {self.loan_id}, amount {self.amount:,}, "
                f"date {self.payment_date}); a new payment needs a new key"
            )


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


@dataclass(frozen=True, slots=True)
class PaymentDecision:
    """What an accepted payment writes: the payment, the loan after it, its events."""

    payment: Payment
    after: Loan
    events: list[NewEvent]


def decide_payment(
    loan: Loan,
    *,
    amount: int,
    payment_date: dt.date | None,
    idempotency_key: str,
    today: dt.date,
    new_payment_id: Callable[[], int],
) -> PaymentDecision:
    """A payment of `amount` on `loan` (dated `payment_date`, default today); raises
    the refusal when the rules refuse it. Once accepted, the payment takes the id
    `new_payment_id()` gives (a refused one draws none), which its events name."""
    paid_on = payment_date or today
    check_payment_date(
        loan.terms, paid_on, business_date=today, last_payment_date=loan.last_payment_date
    )
    settled = settle_payment(loan.terms, loan.paid_count, amount, paid_on)
    payment_id = new_payment_id()
    after = replace(
        loan,
        paid_count=settled.last_week,
        last_payment_date=paid_on,
        status=stored_status(loan.terms, settled.last_week, today),
    )
    payment = Payment(
        id=payment_id,
        loan_id=loan.id,
        amount=amount,
        currency_code=loan.terms.currency_code,
        payment_date=paid_on,
        first_week=settled.first_week,
        last_week=settled.last_week,
        idempotency_key=idempotency_key,
        outstanding_after=settled.outstanding_after,
        status_after=settled.status_after,
    )
    new_events = payment_events(
        loan.id,
        loan.customer_id,
        payment_id=payment_id,
        amount=amount,
        last_week=settled.last_week,
        at_payment=settled.after,
        at_today=Position(loan.terms, settled.last_week, today),
        stored_before=loan.status,
    )
    return PaymentDecision(payment, after, new_events)
