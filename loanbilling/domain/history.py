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
from dataclasses import dataclass, replace

from loanbilling.domain.allocation import Allocation, allocate
from loanbilling.domain.errors import AlreadyExists, FailedPrecondition
from loanbilling.domain.events import NewEvent, in_version, reversal_events
from loanbilling.domain.journal import EntryKind, NewEntry, entry, loan_balances
from loanbilling.domain.loan import Loan, LoanTerms, Position, check_transaction_date
from loanbilling.domain.payment import Payment, PaymentKind, Reversal


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


def record_of(payment: Payment) -> PaymentRecord:
    """What the history needs of a recorded payment."""
    return PaymentRecord(
        id=payment.id,
        payment_date=payment.payment_date,
        amount=payment.amount,
        kind=payment.kind,
        live=payment.live,
        waived_interest_amount=payment.waived_interest_amount,
    )


@dataclass(frozen=True, slots=True)
class Reallocated:
    """A live payment after the reversed one, whose allocation the reversal moved:
    the payment as it now stands and its new move of the paid amount (A after
    it always falls; its weeks and split may change too: `weeks_moved`)."""

    payment: Payment
    allocation: Allocation
    weeks_moved: bool


@dataclass(frozen=True, slots=True)
class ReversalDecision:
    """What an admitted reversal writes: the payment reversed, the later live
    payments it re-allocates, the loan after it and its events. Installments
    from week `after.paid_count + 1` on are no longer fully covered."""

    reversed: Payment
    reallocated: list[Reallocated]
    after: Loan
    events: list[NewEvent]
    entry: NewEntry


def check_reversal_retry(
    earlier: Payment, payment_id: int, reason: str, reversal_date: dt.date | None
) -> None:
    """A retry with a reversal's key must ask for that reversal: the same payment,
    reason and (when given) date. The refusal names nothing of the other request."""
    reversal = earlier.reversal
    assert reversal is not None
    if (
        earlier.id != payment_id
        or reason != reversal.reason
        or (reversal_date is not None and reversal_date != reversal.on)
    ):
        raise AlreadyExists.key_reused(reversal.idempotency_key, "reversal")


def decide_reversal(
    loan: Loan,
    payments: Sequence[Payment],
    payment_id: int,
    *,
    reason: str,
    reversal_date: dt.date | None,
    idempotency_key: str,
    today: dt.date,
) -> ReversalDecision:
    """Reverses payment `payment_id` of `loan`, whose recorded payments (live and
    reversed) are `payments`, on `reversal_date` (default today); raises the
    refusal (check_reversal). The live payments left are re-allocated oldest
    first: those after the reversed one are returned with their new allocation.
    The loan's A, latest payment, stored status and history version follow."""
    target = next(p for p in payments if p.id == payment_id)
    on = reversal_date or today
    check_reversal(record_of(target), on, business_date=today, written_off_on=loan.written_off_on)
    terms = loan.terms
    remaining = [
        record_of(p) if p.id != payment_id else replace(record_of(p), live=False) for p in payments
    ]
    by_id = {p.id: p for p in payments}
    reallocated = []
    paid = 0
    order = (target.payment_date, target.id)  # live_in_order's: the later ones move
    for live in reallocate(terms, remaining):
        paid = live.allocation.paid_amount_after
        before = by_id[live.payment.id]
        if (before.payment_date, before.id) < order:
            continue
        move = live.allocation
        at_payment = Position(
            terms, move.paid_amount_after, before.payment_date, loan.written_off_on
        )
        now = replace(
            before,
            first_week=move.first_week,
            last_week=move.last_week,
            principal_amount=move.principal_amount,
            interest_amount=move.interest_amount,
            outstanding_after=at_payment.outstanding_amount,
            status_after=at_payment.status,
        )
        moved = (before.first_week, before.last_week) != (move.first_week, move.last_week)
        reallocated.append(Reallocated(now, move, moved))
    at_today = Position(terms, paid, today, loan.written_off_on)
    after = replace(
        loan,
        paid_amount=paid,
        last_payment_date=latest_live_payment_date(remaining),
        status=at_today.status,
        history_version=loan.history_version + 1,
    )
    reversed_payment = replace(
        target,
        last_week=target.first_week - 1,  # it settles nothing now
        reversal=Reversal(
            on=on,
            reason=reason,
            idempotency_key=idempotency_key,
            outstanding_after=at_today.outstanding_amount,
            status_after=at_today.status,
        ),
    )
    new_events = reversal_events(
        loan.id,
        loan.customer_id,
        payment_id=payment_id,
        amount=target.amount,
        at_today=at_today,
        stored_before=loan.status,
    )
    # The change in the balances: the mirror of the payment's entry, plus what the
    # re-allocation of the later payments moves between principal and interest.
    posted = entry(
        EntryKind.REVERSAL,
        loan.id,
        terms,
        on,
        loan_balances(terms, loan.paid_amount, target.waived_interest_amount, loan.write_off),
        loan_balances(terms, paid, 0, loan.write_off),
        payment_id,
    )
    return ReversalDecision(
        reversed_payment,
        reallocated,
        after,
        in_version(new_events, after.history_version),
        posted,
    )
