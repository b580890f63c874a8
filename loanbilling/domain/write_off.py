"""Write-off and recoveries (rules v2, "Write-off and recoveries").

A write-off records what the loan still owes as lost: the outstanding principal
`P - (A - J(A))` and the outstanding interest `I - J(A)`. It is allowed while the
loan is ACTIVE or DELINQUENT at its date, and counts as the loan's latest
transaction for the payment-date rule, so no later payment changes those
amounts. A payment on a loan written off at the payment date is a recovery: any
amount from 1 to the outstanding, allocated oldest first like any payment.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from loanbilling.domain.allocation import Allocation, allocate
from loanbilling.domain.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from loanbilling.domain.events import NewEvent, write_off_event
from loanbilling.domain.journal import EntryKind, NewEntry, entry, loan_balances
from loanbilling.domain.loan import (
    Loan,
    LoanStatus,
    LoanTerms,
    Position,
    WriteOff,
    check_transaction_date,
    loan_date_bounds,
)


@dataclass(frozen=True, slots=True)
class WriteOffAmounts:
    """What a write-off records: the principal and the interest still owed."""

    principal_amount: int
    interest_amount: int

    @property
    def total_amount(self) -> int:
        """The outstanding `T - A` at the write-off."""
        return self.principal_amount + self.interest_amount


def write_off_amounts(terms: LoanTerms, paid_amount: int) -> WriteOffAmounts:
    """Principal written off `P - (A - J(A))`, interest written off `I - J(A)`."""
    interest_paid = terms.interest_part(paid_amount)
    return WriteOffAmounts(
        principal_amount=terms.principal_amount - (paid_amount - interest_paid),
        interest_amount=terms.interest_amount - interest_paid,
    )


def is_written_off(written_off_on: dt.date | None, on: dt.date) -> bool:
    """Whether the loan is written off at `on`: on or after its write-off date."""
    return written_off_on is not None and written_off_on <= on


def check_write_off(
    terms: LoanTerms,
    paid_amount: int,
    write_off_date: dt.date,
    *,
    business_date: dt.date,
    last_payment_date: dt.date | None,
    written_off_on: dt.date | None,
) -> WriteOffAmounts:
    """Admits a write-off on `write_off_date` of a loan with paid amount A (its
    amount at that date: no live payment is dated after it) and returns its amounts.

    Refused with FAILED_PRECONDITION when the loan is already written off
    (whatever the date) or PAID at the date; with INVALID_ARGUMENT when the
    date is in the future, before the start or before the latest live payment.
    """
    if written_off_on is not None:
        raise FailedPrecondition(
            f"the loan was already written off on {written_off_on}",
            reason="LOAN_ALREADY_WRITTEN_OFF",
        )
    check_transaction_date(
        "write_off_date",
        write_off_date,
        business_date=business_date,
        not_before=loan_date_bounds(terms, last_payment_date),
    )
    if paid_amount >= terms.total_amount:
        raise FailedPrecondition(
            "the loan is fully paid; there is nothing to write off", reason="LOAN_FULLY_PAID"
        )
    return write_off_amounts(terms, paid_amount)


def accept_recovery(terms: LoanTerms, paid_amount: int, amount: int) -> Allocation:
    """A recovery on a written-off loan: any amount from 1 to the outstanding
    `T - A`; its allocation (weeks it fully covers, if any; its split).

    Nothing owed: FAILED_PRECONDITION (NOTHING_OWED). An amount below 1 or above
    the outstanding: INVALID_ARGUMENT naming the range. The payment date rule
    (payment.check_payment_date, with the write-off as the latest transaction)
    is the caller's.
    """
    outstanding = terms.total_amount - paid_amount
    if outstanding <= 0:
        raise FailedPrecondition(
            "the written-off loan owes nothing; there is nothing to recover",
            reason="NOTHING_OWED",
        )
    if not 1 <= amount <= outstanding:
        raise InvalidArgument.of(
            "amount",
            f"{amount:,} {terms.currency_code} is not recoverable: a recovery is "
            f"1 to {outstanding:,} {terms.currency_code} (the outstanding)",
            reason="RECOVERY_AMOUNT_OUT_OF_RANGE",
        )
    return allocate(terms, paid_amount, amount)


@dataclass(frozen=True, slots=True)
class WriteOffDecision:
    """What an admitted write-off writes: the loan after it, its event and its
    journal entry (Dr WRITE_OFF_EXPENSE / Cr LOAN_PORTFOLIO, the principal)."""

    after: Loan
    events: list[NewEvent]
    entry: NewEntry


def decide_write_off(
    loan: Loan,
    *,
    reason: str,
    write_off_date: dt.date | None,
    idempotency_key: str,
    today: dt.date,
) -> WriteOffDecision:
    """Writes `loan` off on `write_off_date` (default today), or raises the refusal
    (check_write_off). Its amounts are fixed from then on: no later payment may be
    dated before it, and only recoveries can be reversed."""
    on = write_off_date or today
    amounts = check_write_off(
        loan.terms,
        loan.paid_amount,
        on,
        business_date=today,
        last_payment_date=loan.last_payment_date,
        written_off_on=loan.written_off_on,
    )
    record = WriteOff(
        on=on,
        reason=reason,
        principal_amount=amounts.principal_amount,
        interest_amount=amounts.interest_amount,
        idempotency_key=idempotency_key,
    )
    after = replace(loan, write_off=record, status=LoanStatus.WRITTEN_OFF)
    at_write_off = Position(loan.terms, loan.paid_amount, on, on)
    event = replace(
        write_off_event(loan.id, loan.customer_id, at_write_off),
        history_version=loan.history_version,
    )
    posted = entry(
        EntryKind.WRITE_OFF,
        loan.id,
        loan.terms,
        on,
        loan_balances(loan.terms, loan.paid_amount, 0, None),
        loan_balances(loan.terms, loan.paid_amount, 0, record),
    )
    return WriteOffDecision(after, [event], posted)


def check_write_off_retry(
    earlier: Loan, loan_id: int, reason: str, write_off_date: dt.date | None
) -> None:
    """A retry with a write-off's key must ask for that write-off: the same loan,
    reason and (when given) date. The refusal names nothing of the other request."""
    write_off = earlier.write_off
    assert write_off is not None
    if (
        earlier.id != loan_id
        or reason != write_off.reason
        or (write_off_date is not None and write_off_date != write_off.on)
    ):
        raise AlreadyExists.key_reused(write_off.idempotency_key, "write-off")
