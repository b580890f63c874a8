"""Portfolio figures (loanbilling.domain.portfolio) on a hand-worked portfolio.

The seven loans of tests/support/hand_worked_portfolio.py (which works their
figures out), as positions at AS_OF. Pure domain only.
"""

from __future__ import annotations

import datetime as dt

import pytest

from loanbilling.domain.loan import LoanTerms, Position
from loanbilling.domain.portfolio import (
    PAR_BUCKETS,
    TOTALS,
    collected_toward_due,
    due_amount,
    figures_from_totals,
    in_portfolio,
    in_risk_bucket,
    loan_totals,
    portfolio_figures,
    rate_bps,
    weeks_due_through,
)
from tests.support.hand_worked_portfolio import AS_OF, DAY, FIGURES_AT_AS_OF, START, buckets


def terms(principal, rate, weeks, start, threshold=2, currency="IDR") -> LoanTerms:
    return LoanTerms.create(
        principal_amount=principal,
        interest_rate_bps=rate,
        weeks=weeks,
        start_date=start,
        currency_code=currency,
        delinquency_threshold=threshold,
    )


CANONICAL = terms(5_000_000, 1000, 50, START)
# (terms, installments paid by the end of AS_OF)
COUNTS = [
    (CANONICAL, 10),  # A: ACTIVE, owes 4,400,000
    (terms(2_000_000, 1000, 20, START - 3 * DAY), 8),  # B: day 73, 2 missed, 10 days past due
    (terms(1_000_000, 0, 10, START), 1),  # C: 8 missed, 56 days past due
    (terms(1_000_000, 1234, 3, START), 3),  # D: PAID (374,466 twice, then 374,468)
    (terms(3_000_000, 1000, 30, START - 5 * DAY, threshold=1), 9),  # F: 1 missed, 5 days
    (terms(700_000, 0, 7, AS_OF), 1),  # G: starts on AS_OF, week 1 paid ahead
    (terms(500_000, 2000, 12, START, threshold=3), 7),  # H: 2 missed < 3, 14 days
]
# (terms, the amount paid by the end of AS_OF): every loan's is on an installment boundary.
BOOK = [(t, t.amount_through(paid)) for t, paid in COUNTS]


def test_which_loans_count():
    assert in_portfolio(CANONICAL, START, "IDR")
    assert in_portfolio(CANONICAL, AS_OF, "IDR")
    assert not in_portfolio(CANONICAL, START - DAY, "IDR")  # not started yet
    assert not in_portfolio(CANONICAL, AS_OF, "USD")


def test_weeks_due_through_counts_the_installment_due_that_day():
    assert weeks_due_through(CANONICAL, START) == 0
    assert weeks_due_through(CANONICAL, START + 6 * DAY) == 0
    assert weeks_due_through(CANONICAL, START + 7 * DAY) == 1
    assert weeks_due_through(CANONICAL, AS_OF) == 10
    assert weeks_due_through(CANONICAL, START + 400 * DAY) == 50
    assert weeks_due_through(CANONICAL, dt.date.max) == 50
    last_possible = terms(1_000, 0, 1, dt.date.max - 7 * DAY)  # due on 9999-12-31
    assert weeks_due_through(last_possible, dt.date.max) == 1


def test_due_and_collected_toward_due():
    at = Position(CANONICAL, 1_320_000, AS_OF)  # two weeks paid ahead
    assert due_amount(at) == 1_100_000
    assert collected_toward_due(at) == 1_100_000  # paying ahead does not count
    at = Position(CANONICAL, 440_000, AS_OF)
    assert (due_amount(at), collected_toward_due(at)) == (1_100_000, 440_000)
    # Partly covered (rules v2): what was paid toward week 5 counts, and so does a
    # part of week 11, up to what is due.
    at = Position(CANONICAL, 500_000, AS_OF)
    assert (due_amount(at), collected_toward_due(at)) == (1_100_000, 500_000)
    at = Position(CANONICAL, 1_150_000, AS_OF)
    assert (due_amount(at), collected_toward_due(at)) == (1_100_000, 1_100_000)
    g_terms, g_paid = BOOK[5]
    g = Position(g_terms, g_paid, AS_OF)
    assert (due_amount(g), collected_toward_due(g)) == (0, 0)


@pytest.mark.parametrize(
    ("days", "held"),
    [(0, None), (1, 0), (6, 0), (7, 1), (13, 1), (14, 2), (29, 2), (30, 3), (10_000, 3)],
)
def test_risk_buckets_are_inclusive_and_disjoint(days, held):
    assert [i for i, b in enumerate(PAR_BUCKETS) if in_risk_bucket(days, b)] == (
        [] if held is None else [held]
    )


def test_rates_round_down_and_are_zero_over_nothing():
    assert rate_bps(3, 6) == 5_000
    assert rate_bps(4_543_400, 5_923_400) == 7_670
    assert rate_bps(2, 3) == 6_666
    assert rate_bps(0, 0) == 0


def test_one_loan_adds_to_its_status_and_bucket_only():
    totals = loan_totals(Position(*BOOK[1], AS_OF))  # B: DELINQUENT, 10 days past due
    assert set(totals) == set(TOTALS)
    assert totals["delinquent_count"] == 1 and totals["delinquent_outstanding"] == 1_320_000
    assert totals["active_count"] == totals["paid_count"] == 0
    assert (totals["par1_count"], totals["par1_outstanding"]) == (1, 1_320_000)
    assert totals["par0_count"] == totals["par2_count"] == totals["par3_count"] == 0
    assert totals["overdue_amount"] == 220_000


def test_a_partly_covered_loan_counts_by_its_paid_amount():
    # 500,000 paid: weeks 1-4 covered, week 5 lacks 50,000. At AS_OF (day 70) weeks
    # 5-9 are missed: cum(9) - A overdue, 70 - 35 days past due.
    totals = loan_totals(Position(CANONICAL, 500_000, AS_OF))
    assert totals["outstanding_amount"] == totals["delinquent_outstanding"] == 5_000_000
    assert totals["overdue_amount"] == 990_000 - 500_000
    assert (totals["par3_count"], totals["par3_outstanding"]) == (1, 5_000_000)  # 35 days
    assert (totals["due_amount"], totals["collected_toward_due"]) == (1_100_000, 500_000)


def test_hand_worked_portfolio():
    assert portfolio_figures(Position(t, paid, AS_OF) for t, paid in BOOK) == FIGURES_AT_AS_OF


def test_an_empty_portfolio_is_all_zero():
    figures = portfolio_figures([])
    assert figures == figures_from_totals(dict.fromkeys(TOTALS, 0))
    assert figures.loan_count == figures.delinquency_rate_bps == figures.collection_rate_bps == 0
    assert figures.portfolio_at_risk == buckets((0, 0), (0, 0), (0, 0), (0, 0))


def test_waived_interest_is_in_the_paid_amount_but_not_collected():
    # The canonical loan paid off on day 30 under WAIVE_UNDUE after weeks 1-2: A is
    # T = 5,500,000, of which 450,000 is interest waived and 5,050,000 cash.
    paid_off = Position(CANONICAL, 5_500_000, AS_OF)
    totals = loan_totals(paid_off, waived_interest_amount=450_000)
    assert totals["waived_interest_amount"] == 450_000
    assert totals["outstanding_amount"] == 0 and totals["paid_count"] == 1
    figures = portfolio_figures([(paid_off, 450_000), Position(CANONICAL, 220_000, AS_OF)])
    assert figures.waived_interest_amount == 450_000
    assert figures.collected_amount == 5_050_000 + 220_000
    assert figures.outstanding_amount == 5_280_000
    assert (
        figures.total_repayable
        == 11_000_000
        == (figures.collected_amount + figures.outstanding_amount + figures.waived_interest_amount)
    )
    # Without a waiver the figures are those of before.
    assert loan_totals(paid_off)["waived_interest_amount"] == 0
    assert portfolio_figures([paid_off]).collected_amount == 5_500_000
