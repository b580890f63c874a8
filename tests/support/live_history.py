"""One loan's books under reversals, checked from the database rows directly.

The invariant (rules v2, "The state", "Reversal", "Write-off and recoveries"):
the loan row's A, c(A), outstanding and latest payment date follow from its
live payments; the live payments settle weeks 1..c(A) oldest first, each
installment once; every stored allocation is the one the domain's
`history.reallocate` gives on the live payments (the domain is the oracle);
the outbox holds each (loan, kind, week, history version) once; a write-off's
amounts are those of the paid amount when it was written, which no later
reversal of a payment before it may change.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import Engine, Row, select

from loanbilling.domain.history import PaymentRecord, reallocate
from loanbilling.domain.loan import (
    LoanTerms,
    PayoffInterest,
    Position,
    PrepaymentPolicy,
)
from loanbilling.domain.payment import PaymentKind
from loanbilling.domain.write_off import write_off_amounts
from loanbilling.storage.tables import events, installments, loans, payments

MONEY_COLUMNS = (
    "principal_amount",
    "interest_amount",
    "total_amount",
    "weekly_payment",
    "paid_amount",
    "outstanding_amount",
)


@dataclass(frozen=True)
class LoanBooks:
    """The rows of one loan: its payments split into live (oldest first, the
    domain's order) and reversed ones, its installments and its events (by id)."""

    loan: Row
    terms: LoanTerms
    live: list[Row]
    reversed: list[Row]
    installments: list[Row]
    events: list[Row]

    @property
    def paid_amount(self) -> int:
        return self.loan.paid_amount

    def events_of(self, kind: str) -> list[Row]:
        return [e for e in self.events if e.kind == kind]


def read_books(engine: Engine, loan_id: int) -> LoanBooks:
    with engine.connect() as conn:
        loan = conn.execute(select(loans).where(loans.c.id == loan_id)).one()
        rows = conn.execute(
            select(payments).where(payments.c.loan_id == loan_id).order_by(payments.c.id)
        ).all()
        schedule = conn.execute(
            select(installments)
            .where(installments.c.loan_id == loan_id)
            .order_by(installments.c.week_number)
        ).all()
        outbox = conn.execute(
            select(events).where(events.c.loan_id == loan_id).order_by(events.c.id)
        ).all()
    terms = LoanTerms(
        principal_amount=loan.principal_amount,
        interest_rate_bps=loan.interest_rate_bps,
        weeks=loan.weeks,
        start_date=loan.start_date,
        currency_code=loan.currency_code,
        delinquency_threshold=loan.delinquency_threshold,
        prepayment_policy=PrepaymentPolicy(loan.prepayment_policy),
        payoff_interest=PayoffInterest(loan.payoff_interest),
    )
    live = sorted(
        (p for p in rows if p.reversal_date is None), key=lambda p: (p.payment_date, p.id)
    )
    return LoanBooks(
        loan=loan,
        terms=terms,
        live=live,
        reversed=[p for p in rows if p.reversal_date is not None],
        installments=list(schedule),
        events=list(outbox),
    )


def _record(row: Row) -> PaymentRecord:
    return PaymentRecord(
        id=row.id,
        payment_date=row.payment_date,
        amount=row.amount,
        kind=PaymentKind(row.kind),
        live=row.reversal_date is None,
        waived_interest_amount=row.waived_interest_amount,
    )


def assert_loan_consistent(
    engine: Engine,
    loan_id: int,
    *,
    status_on: dt.date | None = None,
) -> LoanBooks:
    """Asserts the invariant on loan `loan_id` and returns its rows.

    `status_on`: also check the stored status is the status at that date (the
    business date, after a sweep there). Each live payment's stored
    `paid_amount_after` (what reads of past dates seek) is compared with the
    oracle's too.
    """
    books = read_books(engine, loan_id)
    loan, terms, live = books.loan, books.terms, books.live
    every = sorted([*books.live, *books.reversed], key=lambda p: p.id)

    # Money is integers, in the loan row and in every payment.
    for column in MONEY_COLUMNS:
        assert type(getattr(loan, column)) is int, (column, getattr(loan, column))
    for p in every:
        for column in ("amount", "principal_amount", "interest_amount", "waived_interest_amount"):
            assert type(getattr(p, column)) is int, (p.id, column)
    assert (loan.interest_amount, loan.total_amount) == (terms.interest_amount, terms.total_amount)

    # The loan's state from its live payments.
    paid = sum(p.amount + p.waived_interest_amount for p in live)
    assert loan.paid_amount == paid, (loan.paid_amount, paid)
    assert 0 <= paid <= terms.total_amount
    assert loan.paid_count == terms.installments_covered(paid), (loan.paid_count, paid)
    assert loan.outstanding_amount == terms.total_amount - paid
    assert loan.last_payment_date == max((p.payment_date for p in live), default=None)

    # The live payments settle weeks 1..c(A), consecutive and disjoint, oldest first.
    next_week = 1
    for p in live:
        assert p.first_week == next_week, ("weeks not consecutive", p.id, p.first_week, next_week)
        assert p.last_week >= p.first_week - 1, ("negative range", p.id)
        assert p.principal_amount + p.interest_amount == p.amount, ("split", p.id)
        assert p.principal_amount >= 0 and p.interest_amount >= 0, ("split sign", p.id)
        next_week = p.last_week + 1
    assert next_week - 1 == loan.paid_count, ("settled weeks end off c(A)", next_week - 1)
    for p in books.reversed:
        assert p.last_week == p.first_week - 1, ("a reversed payment settles weeks", p.id)
        assert p.reversal_key is not None and p.reversal_reason, p.id
        assert p.reversal_date >= p.payment_date, p.id

    # Each installment: weeks 1..c(A) settled by the live payment covering them.
    live_by_id = {p.id: p for p in live}
    assert [i.week_number for i in books.installments] == list(range(1, terms.weeks + 1))
    for i in books.installments:
        if i.week_number <= loan.paid_count:
            assert i.payment_id in live_by_id, ("week settled by no live payment", i)
            payer = live_by_id[i.payment_id]
            assert payer.first_week <= i.week_number <= payer.last_week, ("wrong payer", i)
            assert i.paid_date == payer.payment_date, ("paid date", i, payer.payment_date)
        else:
            assert i.paid_date is None and i.payment_id is None, ("unpaid week settled", i)

    # The domain is the oracle: re-allocating the live history gives the stored splits.
    oracle = reallocate(terms, [_record(p) for p in every])
    assert [m.payment.id for m in oracle] == [p.id for p in live]
    for move, p in zip(oracle, live, strict=True):
        a = move.allocation
        stored = (p.first_week, p.last_week, p.principal_amount, p.interest_amount)
        expected = (a.first_week, a.last_week, a.principal_amount, a.interest_amount)
        assert stored == expected, ("allocation differs from the oracle", p.id, stored, expected)
        assert p.outstanding_after == terms.total_amount - a.paid_amount_after, p.id
        assert p.paid_amount_after == a.paid_amount_after, (
            "paid_amount_after differs from the oracle",
            p.id,
            p.paid_amount_after,
            a.paid_amount_after,
        )
    assert loan.paid_amount == (oracle[-1].allocation.paid_amount_after if oracle else 0)

    # History versions: bumped by every reversal and every recovery.
    recoveries = sum(p.kind == PaymentKind.RECOVERY.value for p in every)
    assert loan.history_version == len(books.reversed) + recoveries, (
        loan.history_version,
        len(books.reversed),
        recoveries,
    )

    # The outbox: each key once; one "received" per payment, one "reversed" per reversal.
    keys = Counter((e.loan_id, e.kind, e.week_number, e.history_version) for e in books.events)
    assert [k for k, n in keys.items() if n > 1] == []
    received = books.events_of("PAYMENT_RECEIVED")
    assert sorted(e.payment_id for e in received) == [p.id for p in every]
    reversals = books.events_of("PAYMENT_REVERSED")
    assert sorted(e.payment_id for e in reversals) == sorted(p.id for p in books.reversed)

    # A write-off: its amounts are those of A when written (the live payments
    # before it), and no payment before it was reversed after it.
    written_off = books.events_of("LOAN_WRITTEN_OFF")
    if loan.write_off_date is None:
        assert written_off == []
        assert recoveries == 0
    else:
        assert loan.status == "WRITTEN_OFF"
        (write_off_event,) = written_off
        before = [p for p in live if p.kind != PaymentKind.RECOVERY.value]
        after = [p for p in every if p.kind == PaymentKind.RECOVERY.value]
        assert all(p.payment_date <= loan.write_off_date for p in before)
        assert all(p.payment_date >= loan.write_off_date for p in after)
        at_write_off = sum(p.amount + p.waived_interest_amount for p in before)
        amounts = write_off_amounts(terms, at_write_off)
        assert (loan.written_off_principal_amount, loan.written_off_interest_amount) == (
            amounts.principal_amount,
            amounts.interest_amount,
        ), ("write-off amounts changed after it", at_write_off)
        assert write_off_event.amount == amounts.total_amount
        reversal_event = {e.payment_id: e for e in reversals}
        for p in books.reversed:
            if p.kind != PaymentKind.RECOVERY.value:
                assert reversal_event[p.id].id < write_off_event.id, (
                    "a payment before the write-off was reversed after it",
                    p.id,
                )
        for e in received:
            kind = next(p.kind for p in every if p.id == e.payment_id)
            assert (kind == PaymentKind.RECOVERY.value) == (e.id > write_off_event.id), (
                "a recovery recorded before the write-off, or a payment after it that is not one",
                e.payment_id,
            )

    if status_on is not None:
        expected_status = Position(terms, paid, status_on, loan.write_off_date).status
        assert loan.status == expected_status.value, (loan.status, expected_status)
    return books
