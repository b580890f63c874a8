"""Payment acceptance: the exact amount that is payable, or nothing."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable
from dataclasses import dataclass, replace

from loanbilling.domain.allocation import Allocation, allocate
from loanbilling.domain.errors import (
    AlreadyExists,
    FailedPrecondition,
    PaymentAmountRefused,
)
from loanbilling.domain.events import NewEvent, in_version, payment_events
from loanbilling.domain.journal import EntryKind, NewEntry, entry, loan_balances
from loanbilling.domain.loan import (
    Loan,
    LoanStatus,
    LoanTerms,
    Position,
    PrepaymentPolicy,
    check_transaction_date,
    loan_date_bounds,
)
from loanbilling.domain.write_off import accept_recovery


class PaymentKind(enum.Enum):
    REGULAR = "REGULAR"
    PAYOFF = "PAYOFF"
    RECOVERY = "RECOVERY"  # a payment on a written-off loan

    @property
    def is_payoff(self) -> bool:
        """PayOffLoan records payoffs; MakePayment the rest (regular or recovery)."""
        return self is PaymentKind.PAYOFF

    @property
    def entry_kind(self) -> EntryKind:
        """The kind of journal entry a payment of this kind posts."""
        return {
            PaymentKind.REGULAR: EntryKind.PAYMENT,
            PaymentKind.PAYOFF: EntryKind.PAYOFF,
            PaymentKind.RECOVERY: EntryKind.RECOVERY,
        }[self]


@dataclass(frozen=True, slots=True)
class Reversal:
    """A payment's reversal: when, why, the request's key, and the loan's
    outstanding and stored status right after it (what a retry replays)."""

    on: dt.date
    reason: str
    idempotency_key: str
    outstanding_after: int
    status_after: LoanStatus


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
    # Of `amount`: J(A after) - J(A before) is interest, the rest principal.
    principal_amount: int
    interest_amount: int
    kind: PaymentKind = PaymentKind.REGULAR
    # A payoff under WAIVE_UNDUE: the interest it waived, which counts in A.
    waived_interest_amount: int = 0
    # Set once reversed: it then counts at no date and settles nothing.
    reversal: Reversal | None = None

    @property
    def live(self) -> bool:
        return self.reversal is None

    @property
    def settled_week_numbers(self) -> list[int]:
        return list(range(self.first_week, self.last_week + 1))

    def check_retry(
        self,
        loan_id: int,
        amount: int,
        payment_date: dt.date | None,
        kind: PaymentKind = PaymentKind.REGULAR,
    ) -> None:
        """A retry with this payment's key must ask for the same payment: same kind,
        loan and amount (a retry that left the date to the server may come on
        another day)."""
        if (
            kind.is_payoff is not self.kind.is_payoff
            or loan_id != self.loan_id
            or amount != self.amount
            or (payment_date is not None and payment_date != self.payment_date)
        ):
            raise AlreadyExists.key_reused(self.idempotency_key, "payment")


@dataclass(frozen=True, slots=True)
class SettledPayment:
    """What an accepted payment settles, and the loan right after it."""

    amount: int
    payment_date: dt.date
    allocation: Allocation
    after: Position

    @property
    def first_week(self) -> int:
        return self.allocation.first_week

    @property
    def last_week(self) -> int:
        return self.allocation.last_week

    @property
    def interest_amount(self) -> int:
        """The interest part of the amount (domain.allocation: J(A after) - J(A before))."""
        return self.allocation.interest_amount

    @property
    def settled_week_numbers(self) -> list[int]:
        return self.allocation.settled_week_numbers

    @property
    def outstanding_after(self) -> int:
        return self.after.outstanding_amount

    @property
    def status_after(self) -> LoanStatus:
        return self.after.status


def payable_through(terms: LoanTerms, on: dt.date) -> int:
    """The last installment a payment on `on` may reach. DUE_ONLY: every overdue one
    and the current one (the first due on or after `on`; after the last due date,
    the last). WHOLE_INSTALLMENTS: any, up to the last."""
    if terms.prepayment_policy is PrepaymentPolicy.WHOLE_INSTALLMENTS:
        return terms.weeks
    return min(terms.weeks_due_before(on) + 1, terms.weeks)


def payable_count(terms: LoanTerms, paid_amount: int, on: dt.date) -> int:
    """m: how many installments not fully covered a payment on `on` may close."""
    return max(payable_through(terms, on) - terms.installments_covered(paid_amount), 0)


def accepted_amounts(terms: LoanTerms, paid_amount: int, on: dt.date) -> list[int]:
    """The amounts a payment on `on` may have: cum(c + k) - A for k = 1..m, each
    closing installments exactly (the first may finish a partly covered one)."""
    covered = terms.installments_covered(paid_amount)
    return [
        terms.amount_through(covered + k) - paid_amount
        for k in range(1, payable_count(terms, paid_amount, on) + 1)
    ]


def check_payment_date(
    terms: LoanTerms,
    payment_date: dt.date,
    *,
    business_date: dt.date,
    last_payment_date: dt.date | None,
) -> None:
    """A payment date may not be in the future, before the start or before the latest payment."""
    check_transaction_date(
        "payment_date",
        payment_date,
        business_date=business_date,
        not_before=loan_date_bounds(terms, last_payment_date),
    )


def settle_payment(
    terms: LoanTerms,
    paid_amount: int,
    amount: int,
    payment_date: dt.date,
) -> SettledPayment:
    """Accepts `amount` on `payment_date` if it is one of the accepted amounts.

    Raises FailedPrecondition when nothing is payable and PaymentAmountRefused
    (with the accepted amounts) for any other amount, zero and negative ones
    included. Refusals change nothing: this function only computes.
    """
    if paid_amount >= terms.total_amount:
        raise FailedPrecondition(
            "the loan is fully paid; nothing is payable", reason="LOAN_FULLY_PAID"
        )
    covered = terms.installments_covered(paid_amount)
    payable = payable_count(terms, paid_amount, payment_date)
    if payable == 0:
        next_week = covered + 1
        payable_from = terms.due_date(covered) + dt.timedelta(days=1)
        raise FailedPrecondition(
            f"nothing is payable on {payment_date}: installment {next_week} "
            f"(due {terms.due_date(next_week)}) is payable from {payable_from}",
            reason="NOTHING_PAYABLE",
        )
    # The accepted amounts grow with k: stop at the first one past `amount`.
    for k in range(1, payable + 1):
        closes = terms.amount_through(covered + k) - paid_amount
        if closes == amount:
            moved = allocate(terms, paid_amount, amount)
            return SettledPayment(
                amount=amount,
                payment_date=payment_date,
                allocation=moved,
                after=Position(terms, moved.paid_amount_after, payment_date),
            )
        if closes > amount:
            break
    raise PaymentAmountRefused(
        amount, accepted_amounts(terms, paid_amount, payment_date), terms.currency_code
    )


@dataclass(frozen=True, slots=True)
class PaymentDecision:
    """What an accepted payment writes: the payment, the loan after it, its events
    and its journal entry."""

    payment: Payment
    after: Loan
    events: list[NewEvent]
    entry: NewEntry


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
    if loan.write_off is not None:
        # The payment date may not precede the write-off: every payment now recovers.
        return decide(
            loan,
            PaymentKind.RECOVERY,
            lambda paid_on: accept_recovery(loan.terms, loan.paid_amount, amount),
            payment_date=payment_date,
            idempotency_key=idempotency_key,
            today=today,
            new_payment_id=new_payment_id,
        )
    return decide(
        loan,
        PaymentKind.REGULAR,
        lambda paid_on: settle_payment(loan.terms, loan.paid_amount, amount, paid_on).allocation,
        payment_date=payment_date,
        idempotency_key=idempotency_key,
        today=today,
        new_payment_id=new_payment_id,
    )


def decide(
    loan: Loan,
    kind: PaymentKind,
    settle: Callable[[dt.date], Allocation],
    *,
    payment_date: dt.date | None,
    idempotency_key: str,
    today: dt.date,
    new_payment_id: Callable[[], int],
) -> PaymentDecision:
    """Any payment of `kind`: its date checked, `settle(date)` accepting it (or
    raising the refusal), then its id drawn and its decision recorded."""
    paid_on = payment_date or today
    check_transaction_date(
        "payment_date", paid_on, business_date=today, not_before=loan.date_bounds()
    )
    moved = settle(paid_on)
    return record_decision(
        loan,
        kind,
        moved,
        paid_on=paid_on,
        idempotency_key=idempotency_key,
        today=today,
        payment_id=new_payment_id(),
    )


def record_decision(
    loan: Loan,
    kind: PaymentKind,
    moved: Allocation,
    *,
    paid_on: dt.date,
    idempotency_key: str,
    today: dt.date,
    payment_id: int,
) -> PaymentDecision:
    """An accepted payment of `kind` that moves the loan's paid amount as `moved`
    says: the payment as recorded, the loan after it (its stored status at the
    business date) and the events it reports."""
    terms = loan.terms
    paid_after = moved.paid_amount_after
    written_off_on = loan.written_off_on
    at_payment = Position(terms, paid_after, paid_on, written_off_on)
    at_today = Position(terms, paid_after, today, written_off_on)
    amount = moved.principal_amount + moved.interest_amount
    payment = Payment(
        id=payment_id,
        loan_id=loan.id,
        amount=amount,
        currency_code=terms.currency_code,
        payment_date=paid_on,
        first_week=moved.first_week,
        last_week=moved.last_week,
        idempotency_key=idempotency_key,
        outstanding_after=at_payment.outstanding_amount,
        status_after=at_payment.status,
        principal_amount=moved.principal_amount,
        interest_amount=moved.interest_amount,
        kind=kind,
        waived_interest_amount=paid_after - loan.paid_amount - amount,
    )
    after = replace(
        loan,
        paid_amount=paid_after,
        last_payment_date=paid_on,
        status=at_today.status,
        # A recovery need not settle a new installment: its events need a new version.
        history_version=loan.history_version + (kind is PaymentKind.RECOVERY),
    )
    new_events = payment_events(
        loan.id,
        loan.customer_id,
        payment_id=payment_id,
        amount=amount,
        last_week=moved.last_week,
        at_payment=at_payment,
        at_today=at_today,
        stored_before=loan.status,
    )
    posted = entry(
        kind.entry_kind,
        loan.id,
        terms,
        paid_on,
        loan_balances(terms, loan.paid_amount, 0, loan.write_off),
        loan_balances(terms, paid_after, payment.waived_interest_amount, loan.write_off),
        payment_id,
    )
    return PaymentDecision(
        payment, after, in_version(new_events, after.history_version), posted
    )
