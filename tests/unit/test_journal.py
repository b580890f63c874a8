"""The journal of rules v2 ("Journal", cash basis) on the canonical loan, exactly:
each transaction's entry, and the balances they add up to."""

from __future__ import annotations

import datetime as dt

from loanbilling.domain.history import decide_reversal
from loanbilling.domain.journal import (
    ACCOUNTS,
    Account,
    EntryKind,
    JournalLine,
    creation_entry,
    loan_balances,
)
from loanbilling.domain.loan import Loan, LoanTerms, PayoffInterest
from loanbilling.domain.payment import decide_payment
from loanbilling.domain.payoff import decide_payoff
from loanbilling.domain.write_off import decide_write_off

START = dt.date(2026, 1, 5)
WEEK = dt.timedelta(days=7)
PORTFOLIO, CASH, INTEREST = Account.LOAN_PORTFOLIO, Account.CASH, Account.INTEREST_INCOME
EXPENSE, RECOVERY = Account.WRITE_OFF_EXPENSE, Account.RECOVERY_INCOME


def canonical(**settings) -> Loan:
    terms = LoanTerms.create(
        principal_amount=5_000_000, interest_rate_bps=1000, weeks=50, start_date=START, **settings
    )
    return Loan.new(1, 1, terms, START, None)


def lines(entry) -> set[tuple[Account, int, int]]:
    return {(line.account, line.debit_amount, line.credit_amount) for line in entry.lines}


def pay(loan: Loan, amount: int, on: dt.date, payment_id: int):
    return decide_payment(
        loan,
        amount=amount,
        payment_date=on,
        idempotency_key=f"k{payment_id}",
        today=on,
        new_payment_id=lambda: payment_id,
    )


def test_loan_created_and_paid_in_full():
    loan = canonical()
    created = creation_entry(loan.id, loan.terms)
    assert (created.kind, created.entry_date) == (EntryKind.LOAN_CREATED, START)
    assert created.lines == [
        JournalLine(PORTFOLIO, 5_000_000, 0),
        JournalLine(CASH, 0, 5_000_000),
    ]
    entries = [created]
    for week in range(1, 51):
        decision = pay(loan, 110_000, START + week * WEEK, week)
        assert decision.entry.kind is EntryKind.PAYMENT
        assert decision.entry.entry_date == START + week * WEEK
        assert decision.entry.payment_id == week
        assert lines(decision.entry) == {
            (CASH, 110_000, 0),
            (PORTFOLIO, 0, 100_000),
            (INTEREST, 0, 10_000),
        }
        entries.append(decision.entry)
        loan = decision.after
    posted = {a: sum(e.amounts[a] for e in entries) for a in ACCOUNTS}
    # CASH +500,000 net, INTEREST_INCOME 500,000 (a credit), LOAN_PORTFOLIO 0.
    assert posted == {PORTFOLIO: 0, CASH: 500_000, INTEREST: -500_000, EXPENSE: 0, RECOVERY: 0}
    assert posted == loan_balances(loan.terms, loan.paid_amount, 0, None)


def test_payoff_worked_example_posts_its_split_and_not_the_waiver():
    loan = canonical(payoff_interest=PayoffInterest.WAIVE_UNDUE)
    payments = []
    for week in range(1, 11):
        decision = pay(loan, 110_000, START + week * WEEK, week)
        loan, payments = decision.after, [*payments, decision.payment]
    payoff = decide_payoff(
        loan,
        amount=4_010_000,
        payment_date=dt.date(2026, 3, 18),
        idempotency_key="payoff",
        today=dt.date(2026, 3, 18),
        new_payment_id=lambda: 11,
    )
    assert payoff.entry.kind is EntryKind.PAYOFF
    assert lines(payoff.entry) == {
        (CASH, 4_010_000, 0),
        (PORTFOLIO, 0, 4_000_000),
        (INTEREST, 0, 10_000),
    }
    # Reversing it: the mirror, and the waiver goes with it.
    reversal = decide_reversal(
        payoff.after,
        [*payments, payoff.payment],
        11,
        reason="bounced",
        reversal_date=None,
        idempotency_key="r",
        today=dt.date(2026, 3, 19),
    )
    assert (reversal.entry.kind, reversal.entry.entry_date) == (
        EntryKind.REVERSAL,
        dt.date(2026, 3, 19),
    )
    assert lines(reversal.entry) == {
        (CASH, 0, 4_010_000),
        (PORTFOLIO, 4_000_000, 0),
        (INTEREST, 10_000, 0),
    }


def test_reversal_worked_example_is_the_mirror_of_the_payment():
    loan = canonical()
    payments = []
    for week in (1, 2, 3):
        decision = pay(loan, 110_000, START + week * WEEK, week)
        loan, payments = decision.after, [*payments, decision.payment]
    reversal = decide_reversal(
        loan,
        payments,
        2,
        reason="bounced",
        reversal_date=None,
        idempotency_key="r",
        today=dt.date(2026, 1, 26),
    )
    assert reversal.entry.payment_id == 2
    assert lines(reversal.entry) == {
        (CASH, 0, 110_000),
        (PORTFOLIO, 100_000, 0),
        (INTEREST, 10_000, 0),
    }


def test_write_off_and_recovery():
    loan = canonical()
    for week in (1, 2, 3):
        loan = pay(loan, 110_000, START + week * WEEK, week).after
    written = decide_write_off(
        loan, reason="gone", write_off_date=None, idempotency_key="w", today=dt.date(2026, 3, 2)
    )
    assert (written.entry.kind, written.entry.entry_date) == (
        EntryKind.WRITE_OFF,
        dt.date(2026, 3, 2),
    )
    # The principal still owed; the interest written off was never income: no line.
    assert lines(written.entry) == {(EXPENSE, 4_700_000, 0), (PORTFOLIO, 0, 4_700_000)}
    recovery = pay(written.after, 123_457, dt.date(2026, 3, 10), 4)
    assert recovery.entry.kind is EntryKind.RECOVERY
    assert lines(recovery.entry) == {(CASH, 123_457, 0), (RECOVERY, 0, 123_457)}
    after = recovery.after
    assert loan_balances(after.terms, after.paid_amount, 0, after.write_off) == {
        PORTFOLIO: 0,
        CASH: 330_000 + 123_457 - 5_000_000,
        INTEREST: -30_000,
        EXPENSE: 4_700_000,
        RECOVERY: -123_457,
    }
