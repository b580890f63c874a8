"""A loan's payment history under reversals (rules v2, "Reversal").

A reversed payment stops counting at every date: every read is computed as if
it had never been made. So the paid amount at a date is the sum of the live
payments dated on or before it, plus the interest waived by the live payoffs
among them ("The state"), and the live payments are re-allocated oldest first
on the cumulative amount: each keeps its amount and date, and settles the
installments from c(A before it) + 1 to c(A after it), which after a reversal
may be earlier ones than it first settled, or none.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from loanbilling.domain.allocation import Allocation, allocate
from loanbilling.domain.errors import FailedPrecondition
from loanbilling.domain.loan import LoanTerms, check_transaction_date
from loanbilling.domain.payment import PaymentKind


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """What the history needs of a recorded payment. `waived_interest_amount` is
    the interest a payoff waived (0 for any other kind); `live` is false once
    the payment is reversed."""

    id: int
    payment_date: dt.date
    amount: int
    kind: PaymentKind = PaymentKind.REGULAR
    live: bool = True
    waived_interest_amount: int = 0

    @property
    def paid_amount_change(self) -> int:
        """What the payment adds to A while it is live: its cash and its waiver."""
        return self.amount + self.waived_interest_amount


@dataclass(frozen=True, slots=True)
class LivePayment:
    """A live payment as the live history allocates it."""

    payment: PaymentRecord
    allocation: Allocation


def live_in_order(payments: Iterable[PaymentRecord]) -> list[PaymentRecord]:
    """The live payments, oldest first: by date, then by id (the order recorded)."""
    return sorted((p for p in payments if p.live), key=lambda p: (p.payment_date, p.id))


def paid_amount_at(payments: Iterable[PaymentRecord], on: dt.date) -> int:
    """A(on): the live payments dated on or before `on`, with their waivers."""
    return sum(p.paid_amount_change for p in payments if p.live and p.payment_date <= on)


def latest_live_payment_date(payments: Iterable[PaymentRecord]) -> dt.date | None:
    """The date a new payment or a write-off may not precede (with the write-off's)."""
    return max((p.payment_date for p in payments if p.live), default=None)


def reallocate(terms: LoanTerms, payments: Sequence[PaymentRecord]) -> list[LivePayment]:
    """Every live payment with the installments it settles and its principal and
    interest parts under the live history, oldest first. The last one's
    `paid_amount_after` is the loan's A."""
    allocated = []
    paid = 0
    for payment in live_in_order(payments):
        move = allocate(terms, paid, payment.amount, payment.waived_interest_amount)
        allocated.append(LivePayment(payment, move))
        paid = move.paid_amount_after
    return allocated


def check_reversal(
    payment: PaymentRecord,
    reversal_date: dt.date,
    *,
    business_date: dt.date,
    written_off_on: dt.date | None,
) -> None:
    """Whether `payment` may be reversed on `reversal_date` (any live payment may,
    not only the latest).

    FAILED_PRECONDITION: the payment is already reversed (PAYMENT_ALREADY_REVERSED);
    the loan is written off and the payment is not a recovery
    (LOAN_WRITTEN_OFF: the amounts written off never change). INVALID_ARGUMENT:
    a reversal date in the future or before the payment's date.
    """
    if not payment.live:
        raise FailedPrecondition(
            f"payment {payment.id} is already reversed", reason="PAYMENT_ALREADY_REVERSED"
        )
    if written_off_on is not None and payment.kind is not PaymentKind.RECOVERY:
        raise FailedPrecondition(
            f"the loan was written off on {written_off_on}: only its recoveries can be "
            f"reversed, and payment {payment.id} (dated {payment.payment_date}) is not one",
            reason="LOAN_WRITTEN_OFF",
        )
    check_transaction_date(
        "reversal_date",
        reversal_date,
        business_date=business_date,
        not_before=((payment.payment_date, "the payment's date", "BEFORE_PAYMENT"),),
    )
