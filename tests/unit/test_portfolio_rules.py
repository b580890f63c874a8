"""Portfolio figures (loanbilling.domain.portfolio) on a hand-worked portfolio.

The seven loans of tests/support/hand_worked_portfolio.py (which works their
figures out), as positions at AS_OF, and a loan written off with a recovery.
Pure domain only.
"""

from __future__ import annotations

import datetime as dt

import pytest

from loanbilling.domain.loan import LoanTerms, Position, WriteOff
from loanbilling.domain.portfolio import (
    BUCKET_TOTALS,
    PAR_BUCKETS,
    TOTALS,
    StatusFigures,
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
from loanbilling.domain.write_off import write_off_amounts
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
    totals = loan_totals(Position(*BOOK[1], AS_OF), 0, None)  # B: DELINQUENT, 10 days
    assert set(totals) == set(TOTALS)
    assert totals["delinquent_count"] == 1 and totals["delinquent_outstanding"] == 1_320_000
    assert totals["active_count"] == totals["paid_count"] == totals["written_off_count"] == 0
    assert (totals["par1_count"], totals["par1_outstanding"]) == (1, 1_320_000)
    assert totals["par0_count"] == totals["par2_count"] == totals["par3_count"] == 0
    assert totals["overdue_amount"] == 220_000


def test_a_partly_covered_loan_counts_by_its_paid_amount():
    # 500,000 paid: weeks 1-4 covered, week 5 lacks 50,000. At AS_OF (day 70) weeks
    # 5-9 are missed: cum(9) - A overdue, 70 - 35 days past due.
    totals = loan_totals(Position(CANONICAL, 500_000, AS_OF), 0, None)
    assert totals["outstanding_amount"] == totals["delinquent_outstanding"] == 5_000_000
    assert totals["overdue_amount"] == 990_000 - 500_000
    assert (totals["par3_count"], totals["par3_outstanding"]) == (1, 5_000_000)  # 35 days
    assert (totals["due_amount"], totals["collected_toward_due"]) == (1_100_000, 500_000)


def test_hand_worked_portfolio():
    book = ((Position(t, paid, AS_OF), 0, None) for t, paid in BOOK)
    assert portfolio_figures(book) == FIGURES_AT_AS_OF


def test_an_empty_portfolio_is_all_zero():
    figures = portfolio_figures([])
    assert figures == figures_from_totals(dict.fromkeys(TOTALS, 0))
    assert figures.loan_count == figures.delinquency_rate_bps == figures.collection_rate_bps == 0
    assert figures.portfolio_at_risk == buckets((0, 0), (0, 0), (0, 0), (0, 0))


def test_waived_interest_is_in_the_paid_amount_but_not_collected():
    # The canonical loan paid off on day 30 under WAIVE_UNDUE after weeks 1-2: A is
    # T = 5,500,000, of which 450,000 is interest waived and 5,050,000 cash.
    paid_off = Position(CANONICAL, 5_500_000, AS_OF)
    totals = loan_totals(paid_off, 450_000, None)
    assert totals["waived_interest_amount"] == 450_000
    assert totals["outstanding_amount"] == 0 and totals["paid_count"] == 1
    figures = portfolio_figures(
        [(paid_off, 450_000, None), (Position(CANONICAL, 220_000, AS_OF), 0, None)]
    )
    assert figures.waived_interest_amount == 450_000
    assert figures.collected_amount == 5_050_000 + 220_000
    assert figures.outstanding_amount == 5_280_000
    assert (
        figures.total_repayable
        == 11_000_000
        == (figures.collected_amount + figures.outstanding_amount + figures.waived_interest_amount)
    )
    # Without a waiver the figures are those of before.
    assert loan_totals(paid_off, 0, None)["waived_interest_amount"] == 0
    assert portfolio_figures([(paid_off, 0, None)]).collected_amount == 5_500_000


# The canonical loan, weeks 1-3 paid (A = 330,000, J(A) = 30,000), written off on
# day 35: 5,000,000 - 300,000 principal and 500,000 - 30,000 interest given up,
# 5,170,000 in all. A recovery of 200,000 on day 49 takes A to 530,000 (c = 4).
WRITE_OFF_DAY = START + 35 * DAY
WRITE_OFF = WriteOff(WRITE_OFF_DAY, "absconded", 4_700_000, 470_000, "w-1")


def test_a_written_off_loan_counts_apart_and_is_at_risk_no_more():
    amounts = write_off_amounts(CANONICAL, 330_000)
    assert (amounts.principal_amount, amounts.interest_amount) == (4_700_000, 470_000)
    # At AS_OF (day 70): 9 due before, c = 4, 5 missed, 70 - 35 = 35 days past due.
    at = Position(CANONICAL, 530_000, AS_OF, WRITE_OFF_DAY)
    assert (at.days_past_due, at.overdue_amount) == (35, 990_000 - 530_000)
    totals = loan_totals(at, 0, WRITE_OFF)
    assert (
        totals["written_off_count"],
        totals["written_off_principal"],
        totals["written_off_outstanding"],
    ) == (1, 5_000_000, 4_970_000)
    assert totals["active_count"] == totals["delinquent_count"] == totals["paid_count"] == 0
    assert all(totals[name] == 0 for names in BUCKET_TOTALS for name in names)
    assert (totals["written_off_principal_amount"], totals["written_off_interest_amount"]) == (
        4_700_000,
        470_000,
    )
    assert totals["recovered_amount"] == 5_170_000 - 4_970_000 == 200_000
    # Still owed and still overdue: reads keep reporting it.
    assert (totals["outstanding_amount"], totals["overdue_amount"]) == (4_970_000, 460_000)


def test_a_write_off_dated_after_as_of_does_not_count_yet():
    # Day 34: 4 due before, c = 3, 1 missed < 2: ACTIVE, 34 - 28 = 6 days past due.
    before = Position(CANONICAL, 330_000, WRITE_OFF_DAY - DAY, WRITE_OFF_DAY)
    totals = loan_totals(before, 0, WRITE_OFF)
    assert (totals["active_count"], totals["written_off_count"]) == (1, 0)
    assert (totals["par0_count"], totals["par0_outstanding"]) == (1, 5_170_000)
    assert totals["written_off_principal_amount"] == totals["written_off_interest_amount"] == 0
    assert totals["recovered_amount"] == 0
    # On the day of the write-off, before any recovery: written off, nothing recovered.
    on = loan_totals(Position(CANONICAL, 330_000, WRITE_OFF_DAY, WRITE_OFF_DAY), 0, WRITE_OFF)
    assert (on["written_off_count"], on["written_off_principal_amount"]) == (1, 4_700_000)
    assert on["recovered_amount"] == 0 and on["par0_count"] == on["par1_count"] == 0


def test_the_write_off_must_be_the_positions():
    with pytest.raises(ValueError):
        loan_totals(Position(CANONICAL, 330_000, AS_OF), 0, WRITE_OFF)
    with pytest.raises(ValueError):
        loan_totals(Position(CANONICAL, 330_000, AS_OF, WRITE_OFF_DAY), 0, None)


def test_a_portfolio_with_a_written_off_loan():
    book = [(Position(t, paid, AS_OF), 0, None) for t, paid in BOOK]
    written_off = Position(CANONICAL, 530_000, AS_OF, WRITE_OFF_DAY)
    figures = portfolio_figures([*book, (written_off, 0, WRITE_OFF)])
    before = FIGURES_AT_AS_OF
    assert figures.written_off == StatusFigures(1, 5_000_000, 4_970_000)
    assert (figures.active, figures.delinquent, figures.paid) == (
        before.active,
        before.delinquent,
        before.paid,
    )
    assert figures.portfolio_at_risk == before.portfolio_at_risk  # 35 days, in no bucket
    assert figures.delinquency_rate_bps == before.delinquency_rate_bps  # 3 of 6 still
    assert (figures.written_off_principal_amount, figures.written_off_interest_amount) == (
        4_700_000,
        470_000,
    )
    assert figures.recovered_amount == 200_000
    # The cash it paid, before the write-off and after, is collected.
    assert figures.collected_amount == before.collected_amount + 330_000 + 200_000
    assert figures.loan_count == 8 and figures.outstanding_amount == 9_780_000 + 4_970_000
    assert figures.total_repayable == figures.collected_amount + figures.outstanding_amount


def test_a_loan_recovered_in_full_stays_written_off():
    paid_up = Position(CANONICAL, 5_500_000, AS_OF, WRITE_OFF_DAY)
    figures = portfolio_figures([(paid_up, 0, WRITE_OFF)])
    assert figures.written_off == StatusFigures(1, 5_000_000, 0)
    assert figures.paid == StatusFigures(0, 0, 0)
    assert figures.recovered_amount == 5_170_000
    assert figures.collected_amount == 5_500_000
