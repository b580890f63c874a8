"""What a sweep writes for one loan (loanbilling.domain.sweep), on worked examples.

The canonical loan: 5,000,000 at 10 % over 50 weeks, 110,000 a week, from a
Monday; installment k is due on day 7k. Pure domain only.
"""

from __future__ import annotations

import datetime as dt

from loanbilling.domain.events import EventKind, NewEvent
from loanbilling.domain.loan import Loan, LoanStatus, LoanTerms
from loanbilling.domain.sweep import (
    SweepOutcome,
    is_swept,
    reminder_window_end,
    sweep_loan,
)

START = dt.date(2026, 1, 5)
DAY = dt.timedelta(days=1)
MISSED, DUE_SOON, DELINQUENT = (
    EventKind.INSTALLMENT_MISSED,
    EventKind.PAYMENT_DUE_SOON,
    EventKind.LOAN_DELINQUENT,
)


def canonical(**overrides) -> LoanTerms:
    kwargs = dict(principal_amount=5_000_000, interest_rate_bps=1000, weeks=50, start_date=START)
    kwargs.update(overrides)
    return LoanTerms.create(**kwargs)


def loan(terms: LoanTerms, paid_amount: int = 0, status: LoanStatus = LoanStatus.ACTIVE) -> Loan:
    return Loan(
        id=7,
        customer_id=3,
        terms=terms,
        paid_amount=paid_amount,
        last_payment_date=None,
        status=status,
    )


def keys(outcome: SweepOutcome) -> list[tuple[EventKind, int]]:
    return [(e.kind, e.week_number) for e in outcome.events]


def test_window_runs_from_as_of_through_reminder_days():
    assert reminder_window_end(START, 0) == START + DAY
    assert reminder_window_end(START, 6) == START + 7 * DAY


def test_paid_loans_are_not_swept():
    assert is_swept(LoanStatus.ACTIVE) and is_swept(LoanStatus.DELINQUENT)
    assert not is_swept(LoanStatus.PAID)
    # Stored PAID: nothing, even where the figures would say otherwise.
    assert sweep_loan(loan(canonical(), 0, LoanStatus.PAID), START + 100 * DAY, 6) == (
        SweepOutcome([], False)
    )


def test_three_missed_one_due_soon_then_delinquent():
    # Day 22: weeks 1-3 (days 7, 14, 21) missed; week 4 (day 28) inside a 6-day window.
    as_of = START + 22 * DAY
    outcome = sweep_loan(loan(canonical()), as_of, 6)
    assert outcome.flips_to_delinquent
    assert keys(outcome) == [(MISSED, 1), (MISSED, 2), (MISSED, 3), (DUE_SOON, 4), (DELINQUENT, 1)]
    facts = dict(
        loan_id=7,
        customer_id=3,
        business_date=as_of,
        missed_installments=3,
        overdue_amount=330_000,
        days_past_due=15,  # since week 1 fell due on day 7
        outstanding_amount=5_500_000,
        currency_code="IDR",
    )
    assert outcome.events[0] == NewEvent(
        kind=MISSED, week_number=1, amount=110_000, due_date=START + 7 * DAY, **facts
    )
    assert outcome.events[3] == NewEvent(
        kind=DUE_SOON, week_number=4, amount=110_000, due_date=START + 28 * DAY, **facts
    )
    # Keyed by the oldest overdue installment; the amount is what is overdue.
    assert outcome.events[4] == NewEvent(
        kind=DELINQUENT, week_number=1, amount=330_000, due_date=START + 7 * DAY, **facts
    )


def test_a_loan_stored_delinquent_does_not_flip_again():
    outcome = sweep_loan(loan(canonical(), 0, LoanStatus.DELINQUENT), START + 22 * DAY, 6)
    assert not outcome.flips_to_delinquent
    assert keys(outcome) == [(MISSED, 1), (MISSED, 2), (MISSED, 3), (DUE_SOON, 4)]


def test_due_on_as_of_is_due_soon_not_missed():
    # Day 21 is week 3's due date: weeks 1-2 missed, week 3 due today (window of 0 days).
    outcome = sweep_loan(loan(canonical()), START + 21 * DAY, 0)
    assert keys(outcome) == [(MISSED, 1), (MISSED, 2), (DUE_SOON, 3), (DELINQUENT, 1)]
    # Without a window day to spare, day 20 sees week 3 not yet.
    outcome = sweep_loan(loan(canonical()), START + 20 * DAY, 0)
    assert keys(outcome) == [(MISSED, 1), (MISSED, 2), (DELINQUENT, 1)]


def test_one_missed_below_the_threshold_does_not_flip():
    # Weeks 1-2 paid; day 22: week 3 missed (1 < threshold 2), week 4 due in 6 days.
    outcome = sweep_loan(loan(canonical(), 220_000), START + 22 * DAY, 1)
    assert not outcome.flips_to_delinquent
    assert keys(outcome) == [(MISSED, 3)]
    assert outcome.events[0].days_past_due == 1
    # Threshold 1: one missed installment is delinquent.
    outcome = sweep_loan(loan(canonical(delinquency_threshold=1), 220_000), START + 22 * DAY, 1)
    assert outcome.flips_to_delinquent
    assert keys(outcome) == [(MISSED, 3), (DELINQUENT, 3)]


def test_paid_ahead_gives_nothing():
    # Weeks 1-5 paid by day 10: nothing unpaid falls due before day 12.
    assert sweep_loan(loan(canonical(), 550_000), START + 10 * DAY, 1) == SweepOutcome([], False)


def test_the_last_installment_absorbs_the_remainder():
    # 1,000,000 at 12.34 % = 1,123,400 over 3 weeks: 374,466 twice, then 374,468.
    terms = canonical(principal_amount=1_000_000, interest_rate_bps=1234, weeks=3)
    outcome = sweep_loan(loan(terms, 748_932), START + 30 * DAY, 6)
    assert not outcome.flips_to_delinquent
    (event,) = outcome.events
    assert (event.kind, event.week_number, event.amount) == (MISSED, 3, 374_468)
    assert (event.overdue_amount, event.outstanding_amount, event.days_past_due) == (
        374_468,
        374_468,
        9,
    )
    # Nothing paid, day 30: all three missed, 1,123,400 overdue; the window ends the schedule.
    outcome = sweep_loan(loan(terms), START + 30 * DAY, 6)
    assert keys(outcome) == [(MISSED, 1), (MISSED, 2), (MISSED, 3), (DELINQUENT, 1)]
    assert outcome.events[-1].amount == 1_123_400


def test_a_partly_covered_installment_is_missed_and_owes_its_remainder():
    # 250,000 paid (rules v2: after a reversal or a recovery): weeks 1-2 covered, week 3
    # lacks 80,000. Day 29: weeks 3-4 missed (due on days 21 and 28); week 5 due in 6 days.
    as_of = START + 29 * DAY
    outcome = sweep_loan(loan(canonical(), 250_000), as_of, 6)
    assert outcome.flips_to_delinquent
    assert keys(outcome) == [(MISSED, 3), (MISSED, 4), (DUE_SOON, 5), (DELINQUENT, 3)]
    facts = dict(
        loan_id=7,
        customer_id=3,
        business_date=as_of,
        missed_installments=2,
        overdue_amount=440_000 - 250_000,  # cum(2 + 2) - A
        days_past_due=8,  # since week 3 fell due on day 21
        outstanding_amount=5_500_000 - 250_000,
        currency_code="IDR",
    )
    # An installment event carries the installment's amount; the figures are the loan's.
    assert outcome.events[0] == NewEvent(
        kind=MISSED, week_number=3, amount=110_000, due_date=START + 21 * DAY, **facts
    )
    assert outcome.events[-1] == NewEvent(
        kind=DELINQUENT, week_number=3, amount=190_000, due_date=START + 21 * DAY, **facts
    )
    # One unit short of the last installment: 3 covered of 3 only when A = T.
    terms = canonical(principal_amount=1_000_000, interest_rate_bps=1234, weeks=3)
    (event,) = sweep_loan(loan(terms, 1_123_399), START + 30 * DAY, 6).events
    assert (event.kind, event.week_number, event.amount) == (MISSED, 3, 374_468)
    assert (event.overdue_amount, event.outstanding_amount, event.missed_installments) == (1, 1, 1)
