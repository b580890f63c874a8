"""The billing rules on worked examples: the canonical loan, a timeline, refusals.

Pure domain only (no database, no gRPC). Rules: shared/spec/billing-rules.md.
"""

from __future__ import annotations

import datetime as dt

import pytest

from loanbilling.domain.errors import (
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    PaymentAmountRefused,
)
from loanbilling.domain.loan import (
    INT64_MAX,
    InstallmentStatus,
    Loan,
    LoanStatus,
    LoanTerms,
    PayoffInterest,
    Position,
    PrepaymentPolicy,
    round_half_up_div,
    stored_status,
)
from loanbilling.domain.payment import (
    accepted_amounts,
    check_payment_date,
    payable_count,
    settle_payment,
)

START = dt.date(2025, 1, 6)
WEEK = dt.timedelta(days=7)
DAY = dt.timedelta(days=1)


def canonical(**overrides) -> LoanTerms:
    kwargs = dict(
        principal_amount=5_000_000,
        interest_rate_bps=1000,
        weeks=50,
        start_date=START,
    )
    kwargs.update(overrides)
    return LoanTerms.create(**kwargs)


def due(k: int) -> dt.date:
    return START + k * WEEK


def refused_fields(**overrides) -> list[str]:
    with pytest.raises(InvalidArgument) as excinfo:
        canonical(**overrides)
    return [v.field for v in excinfo.value.violations]


# --- Canonical loan -------------------------------------------------------------


def test_canonical_terms_amounts():
    terms = canonical()
    assert terms.currency_code == "IDR"
    assert terms.delinquency_threshold == 2
    assert terms.interest_amount == 500_000
    assert terms.total_amount == 5_500_000
    assert terms.weekly_payment == 110_000
    assert terms.last_due_date == START + 50 * WEEK


def test_canonical_schedule_is_50_times_110000():
    schedule = canonical().schedule()
    assert len(schedule) == 50
    for k, inst in enumerate(schedule, start=1):
        assert inst.week_number == k
        assert inst.amount == 110_000
        assert inst.principal_amount == 100_000
        assert inst.interest_amount == 10_000
        assert inst.due_date == START + dt.timedelta(days=7 * k)
    assert sum(i.amount for i in schedule) == 5_500_000
    assert sum(i.principal_amount for i in schedule) == 5_000_000
    assert sum(i.interest_amount for i in schedule) == 500_000


def test_canonical_amounts_are_ints():
    terms = canonical()
    for inst in terms.schedule():
        assert type(inst.amount) is int
        assert type(inst.principal_amount) is int
        assert type(inst.interest_amount) is int
    pos = Position(terms, terms.amount_through(7), due(7))
    for value in (
        pos.outstanding_amount,
        pos.outstanding_principal_amount,
        pos.outstanding_interest_amount,
        pos.overdue_amount,
    ):
        assert type(value) is int


@pytest.mark.parametrize("paid", range(0, 51))
def test_canonical_outstanding_falls_by_110000(paid):
    terms = canonical()
    pos = Position(terms, terms.amount_through(paid), due(paid) if paid else START)
    assert pos.paid_count == paid
    assert pos.outstanding_amount == 5_500_000 - 110_000 * paid
    assert pos.outstanding_principal_amount == 5_000_000 - 100_000 * paid
    assert pos.outstanding_interest_amount == 500_000 - 10_000 * paid


def test_canonical_outstanding_by_paying_each_week_on_its_due_date():
    terms = canonical()
    paid = 0
    assert Position(terms, paid, START).outstanding_amount == 5_500_000
    assert Position(terms, paid, START).status is LoanStatus.ACTIVE
    for k in range(1, 51):
        assert accepted_amounts(terms, paid, due(k)) == [110_000]
        result = settle_payment(terms, paid, 110_000, due(k))
        assert result.settled_week_numbers == [k]
        assert result.outstanding_after == 5_500_000 - 110_000 * k
        assert result.interest_amount == 10_000
        assert result.after.paid_count == k
        paid = result.after.paid_amount
        if k < 50:
            assert result.status_after is LoanStatus.ACTIVE
    assert paid == terms.amount_through(50) == 5_500_000
    final = Position(terms, paid, due(50))
    assert final.paid_count == 50
    assert final.outstanding_amount == 0
    assert final.outstanding_principal_amount == 0
    assert final.outstanding_interest_amount == 0
    assert final.status is LoanStatus.PAID
    assert final.next_installment is None
    assert final.missed_installments == 0
    assert final.days_past_due == 0
    assert final.overdue_amount == 0


def test_canonical_pay_everything_at_once_after_the_last_due_date():
    terms = canonical()
    late = due(50) + DAY
    amounts = accepted_amounts(terms, 0, late)
    assert amounts == [110_000 * k for k in range(1, 51)]
    result = settle_payment(terms, 0, 5_500_000, late)
    assert result.settled_week_numbers == list(range(1, 51))
    assert result.outstanding_after == 0
    assert result.status_after is LoanStatus.PAID


# --- The paid amount A (rules v2) -----------------------------------------------


@pytest.mark.parametrize(
    ("paid_amount", "covered"),
    [
        (0, 0),
        (1, 0),
        (109_999, 0),
        (110_000, 1),
        (110_001, 1),
        (150_000, 1),
        (219_999, 1),
        (220_000, 2),
        (5_389_999, 48),
        (5_390_000, 49),
        (5_499_999, 49),
        (5_500_000, 50),
    ],
)
def test_installments_covered_at_boundaries_and_inside_an_installment(paid_amount, covered):
    terms = canonical()
    assert terms.installments_covered(paid_amount) == covered
    assert Position(terms, paid_amount, START).paid_count == covered
    # c(A) is the largest c with cum(c) <= A
    assert terms.amount_through(covered) <= paid_amount
    if covered < 50:
        assert terms.amount_through(covered + 1) > paid_amount


@pytest.mark.parametrize(
    ("paid_amount", "covered"),
    [(0, 0), (2, 0), (3, 1), (5, 1), (6, 2), (9, 2), (10, 2), (11, 3)],
)
def test_installments_covered_when_the_last_absorbs_the_remainder(paid_amount, covered):
    # T = 11 over 3 weeks: installments 3, 3, 5; cum = 3, 6, 11
    terms = canonical(principal_amount=11, weeks=3, interest_rate_bps=0)
    assert [i.amount for i in terms.schedule()] == [3, 3, 5]
    assert terms.installments_covered(paid_amount) == covered


@pytest.mark.parametrize(
    ("amount", "interest"),
    [
        (0, 0),
        (1, 0),
        (11, 1),
        (109_999, 9_999),
        (110_000, 10_000),
        (150_000, 13_636),  # 500,000 * 150,000 / 5,500,000 = 13,636.36...
        (220_000, 20_000),
        (330_000, 30_000),
        (5_499_999, 499_999),
        (5_500_000, 500_000),
    ],
)
def test_interest_part_j(amount, interest):
    terms = canonical()
    assert terms.interest_part(amount) == interest
    assert type(terms.interest_part(amount)) is int


def test_interest_part_on_boundaries_is_the_schedules_interest():
    terms = canonical()
    for k in range(0, 51):
        assert terms.interest_part(terms.amount_through(k)) == terms.interest_through(k)
        assert terms.interest_through(k) == 10_000 * k


def test_position_inside_an_installment():
    terms = canonical()
    day = due(3) + DAY  # weeks 1-3 fell due
    assert terms.weeks_due_before(day) == 3
    pos = Position(terms, 150_000, day)
    assert pos.paid_amount == 150_000
    assert pos.paid_count == 1
    assert pos.missed_installments == 2  # weeks 2 (partly covered) and 3
    assert pos.overdue_amount == 330_000 - 150_000 == 180_000
    assert pos.outstanding_amount == 5_350_000
    assert pos.outstanding_interest_amount == 500_000 - 13_636 == 486_364
    assert pos.outstanding_principal_amount == 5_350_000 - 486_364 == 4_863_636
    assert pos.days_past_due == (day - due(2)).days == 8
    assert pos.delinquent
    assert pos.status is LoanStatus.DELINQUENT
    assert pos.installment_status(1) is InstallmentStatus.PAID
    assert pos.installment_status(2) is InstallmentStatus.OVERDUE
    assert pos.installment_status(3) is InstallmentStatus.OVERDUE
    assert pos.installment_status(4) is InstallmentStatus.UNPAID
    assert pos.next_installment.week_number == 2
    for value in (
        pos.outstanding_amount,
        pos.outstanding_principal_amount,
        pos.outstanding_interest_amount,
        pos.overdue_amount,
    ):
        assert type(value) is int


def test_position_inside_an_installment_over_time():
    terms = canonical()
    # Week 2 partly covered and not yet due: nothing is overdue.
    pos = Position(terms, 150_000, due(2))
    assert pos.missed_installments == 0
    assert pos.overdue_amount == 0
    assert pos.days_past_due == 0
    assert pos.status is LoanStatus.ACTIVE
    assert pos.installment_status(2) is InstallmentStatus.UNPAID
    # The day after week 2's due date it is missed, and lacks its remainder only.
    pos = Position(terms, 150_000, due(2) + DAY)
    assert pos.missed_installments == 1
    assert pos.overdue_amount == 70_000
    assert pos.days_past_due == 1
    assert pos.status is LoanStatus.ACTIVE
    assert stored_status(terms, 150_000, due(2) + DAY) is LoanStatus.ACTIVE
    assert stored_status(terms, 150_000, due(3) + DAY) is LoanStatus.DELINQUENT
    assert stored_status(terms, 5_500_000, START) is LoanStatus.PAID


def test_accepted_amounts_from_a_partly_covered_installment():
    terms = canonical()
    day = due(3) + DAY  # weeks 2, 3 overdue, week 4 current
    assert payable_count(terms, 150_000, day) == 3
    # the first accepted amount is the remainder of week 2
    assert accepted_amounts(terms, 150_000, day) == [70_000, 180_000, 290_000]
    # Before week 1 fell due nothing is payable: week 2 is payable from due(1) + 1.
    assert accepted_amounts(terms, 150_000, due(1)) == []
    with pytest.raises(FailedPrecondition) as excinfo:
        settle_payment(terms, 150_000, 70_000, due(1))
    assert excinfo.value.reason == "NOTHING_PAYABLE"
    assert (due(1) + DAY).isoformat() in excinfo.value.message
    assert accepted_amounts(terms, 150_000, due(1) + DAY) == [70_000]


def test_paying_the_remainder_of_a_partly_covered_installment():
    terms = canonical()
    day = due(3) + DAY
    result = settle_payment(terms, 150_000, 70_000, day)
    assert result.settled_week_numbers == [2]
    assert result.after.paid_amount == 220_000
    assert result.after.paid_count == 2
    assert result.interest_amount == 20_000 - 13_636 == 6_364
    assert result.outstanding_after == 5_280_000
    assert result.after.missed_installments == 1
    assert result.status_after is LoanStatus.ACTIVE  # cured: 1 < threshold 2

    result = settle_payment(terms, 150_000, 180_000, day)
    assert result.settled_week_numbers == [2, 3]
    assert result.after.paid_amount == 330_000
    assert result.interest_amount == 30_000 - 13_636 == 16_364
    assert result.after.missed_installments == 0
    assert result.after.overdue_amount == 0
    assert result.status_after is LoanStatus.ACTIVE


@pytest.mark.parametrize("amount", [110_000, 69_999, 70_001, 220_000, 400_000])
def test_whole_installment_amounts_are_refused_from_a_partly_covered_state(amount):
    terms = canonical()
    with pytest.raises(PaymentAmountRefused) as excinfo:
        settle_payment(terms, 150_000, amount, due(3) + DAY)
    assert excinfo.value.accepted_amounts == [70_000, 180_000, 290_000]


def test_policies_default_to_due_only_and_full_interest():
    terms = canonical()
    assert terms.prepayment_policy is PrepaymentPolicy.DUE_ONLY
    assert terms.payoff_interest is PayoffInterest.FULL


def test_whole_installments_accepts_everything_up_to_the_total_on_the_start_date():
    terms = canonical(prepayment_policy=PrepaymentPolicy.WHOLE_INSTALLMENTS)
    assert terms.prepayment_policy is PrepaymentPolicy.WHOLE_INSTALLMENTS
    # m = N - c = 50
    assert payable_count(terms, 0, START) == 50
    amounts = accepted_amounts(terms, 0, START)
    assert amounts == [110_000 * k for k in range(1, 51)]
    assert amounts[-1] == 5_500_000
    result = settle_payment(terms, 0, 5_500_000, START)
    assert result.settled_week_numbers == list(range(1, 51))
    assert result.interest_amount == 500_000
    assert result.outstanding_after == 0
    assert result.status_after is LoanStatus.PAID
    with pytest.raises(FailedPrecondition) as excinfo:
        settle_payment(terms, 5_500_000, 110_000, START)
    assert excinfo.value.reason == "LOAN_FULLY_PAID"


def test_whole_installments_pays_ahead_oldest_first():
    terms = canonical(prepayment_policy=PrepaymentPolicy.WHOLE_INSTALLMENTS)
    # Refused under DUE_ONLY (test_paying_ahead_of_current_week_is_refused).
    result = settle_payment(terms, 0, 220_000, due(1))
    assert result.settled_week_numbers == [1, 2]
    assert result.after.paid_count == 2
    # Paid ahead, week 3 is still payable before it falls due: m = 50 - 2.
    assert payable_count(terms, 220_000, due(1)) == 48
    assert accepted_amounts(terms, 220_000, due(1))[0] == 110_000
    # Only whole installments: a part of one is refused.
    with pytest.raises(PaymentAmountRefused):
        settle_payment(terms, 0, 150_000, START)
    # From a partly covered state the first amount is the remainder, the last the outstanding.
    amounts = accepted_amounts(terms, 150_000, START)
    assert len(amounts) == 49
    assert amounts[:3] == [70_000, 180_000, 290_000]
    assert amounts[-1] == 5_350_000
    assert accepted_amounts(terms, terms.amount_through(49), START) == [110_000]


def test_loan_aggregate_keeps_the_paid_amount():
    terms = canonical()
    loan = Loan.new(1, 7, terms, START, request_id=None)
    assert loan.paid_amount == 0
    assert loan.paid_count == 0
    assert loan.status is LoanStatus.ACTIVE
    loan = Loan(
        id=1,
        customer_id=7,
        terms=terms,
        paid_amount=150_000,
        last_payment_date=due(1),
        status=LoanStatus.ACTIVE,
    )
    assert loan.paid_count == 1
    assert loan.outstanding_amount == 5_350_000
    assert loan.knows_paid_amount_at(due(1))
    assert not loan.knows_paid_amount_at(due(1) - DAY)
    assert loan.position(due(3) + DAY) == Position(terms, 150_000, due(3) + DAY)
    assert loan.position(START, paid_amount_then=0) == Position(terms, 0, START)
    with pytest.raises(ValueError):
        loan.position(START)


# --- Timeline: pay 1 and 2, miss 3 and 4 ----------------------------------------


def pay_first_two() -> tuple[LoanTerms, int]:
    terms = canonical()
    r1 = settle_payment(terms, 0, 110_000, due(1))
    assert r1.settled_week_numbers == [1]
    r2 = settle_payment(terms, r1.after.paid_amount, 110_000, due(2))
    assert r2.settled_week_numbers == [2]
    assert r2.outstanding_after == 5_500_000 - 220_000
    return terms, r2.after.paid_amount


def test_timeline_before_any_miss():
    terms, paid = pay_first_two()
    assert paid == terms.amount_through(2) == 220_000
    assert terms.installments_covered(paid) == 2
    # On week 3's due date it is still the current installment, not missed.
    pos = Position(terms, paid, due(3))
    assert pos.missed_installments == 0
    assert pos.days_past_due == 0
    assert pos.overdue_amount == 0
    assert pos.status is LoanStatus.ACTIVE
    assert pos.installment_status(3) is InstallmentStatus.UNPAID
    assert pos.next_installment.week_number == 3


def test_timeline_one_missed_is_not_delinquent():
    terms, paid = pay_first_two()
    # The day after week 3's due date it is missed.
    pos = Position(terms, paid, due(3) + DAY)
    assert pos.missed_installments == 1
    assert pos.days_past_due == 1
    assert not pos.delinquent
    # On week 4's own due date week 4 is still current: only one missed.
    pos = Position(terms, paid, due(4))
    assert pos.missed_installments == 1
    assert pos.days_past_due == 7
    assert pos.overdue_amount == 110_000
    assert not pos.delinquent
    assert pos.status is LoanStatus.ACTIVE
    assert pos.installment_status(1) is InstallmentStatus.PAID
    assert pos.installment_status(2) is InstallmentStatus.PAID
    assert pos.installment_status(3) is InstallmentStatus.OVERDUE
    assert pos.installment_status(4) is InstallmentStatus.UNPAID


def test_timeline_two_missed_is_delinquent_the_day_after_week_4_due():
    terms, paid = pay_first_two()
    day = due(4) + DAY
    pos = Position(terms, paid, day)
    assert pos.missed_installments == 2
    assert pos.delinquent
    assert pos.status is LoanStatus.DELINQUENT
    assert pos.days_past_due == (day - due(3)).days == 8
    assert pos.overdue_amount == 220_000
    assert pos.outstanding_amount == 5_500_000 - 220_000
    assert pos.installment_status(3) is InstallmentStatus.OVERDUE
    assert pos.installment_status(4) is InstallmentStatus.OVERDUE
    assert pos.installment_status(5) is InstallmentStatus.UNPAID
    assert pos.next_installment.week_number == 3
    assert pos.next_installment.due_date == due(3)


def test_timeline_delinquency_grows_while_unpaid():
    terms, paid = pay_first_two()
    pos = Position(terms, paid, due(6) + DAY)
    assert pos.missed_installments == 4
    assert pos.overdue_amount == 440_000
    assert pos.days_past_due == (due(6) + DAY - due(3)).days
    assert pos.status is LoanStatus.DELINQUENT


def test_timeline_accepted_amounts_when_delinquent():
    terms, paid = pay_first_two()
    day = due(4) + DAY
    # Payable: weeks 3 and 4 (overdue) and week 5 (current).
    assert payable_count(terms, paid, day) == 3
    assert accepted_amounts(terms, paid, day) == [110_000, 220_000, 330_000]


@pytest.mark.parametrize(
    ("amount", "weeks_settled"),
    [(220_000, [3, 4]), (330_000, [3, 4, 5])],
)
def test_timeline_catch_up_cures(amount, weeks_settled):
    terms, paid = pay_first_two()
    day = due(4) + DAY
    assert Position(terms, paid, day).status is LoanStatus.DELINQUENT
    result = settle_payment(terms, paid, amount, day)
    assert result.settled_week_numbers == weeks_settled
    assert result.first_week == 3
    assert result.last_week == weeks_settled[-1]
    assert result.amount == amount
    assert result.payment_date == day
    assert result.outstanding_after == 5_500_000 - 220_000 - amount
    assert result.after.missed_installments == 0
    assert not result.after.delinquent
    assert result.status_after is LoanStatus.ACTIVE


def test_timeline_partial_catch_up_does_not_cure_at_threshold_1_but_does_at_2():
    terms, paid = pay_first_two()
    day = due(4) + DAY
    result = settle_payment(terms, paid, 110_000, day)
    assert result.settled_week_numbers == [3]
    assert result.after.missed_installments == 1
    assert result.status_after is LoanStatus.ACTIVE  # 1 < threshold 2


def test_timeline_paying_ahead_is_refused_with_accepted_amounts():
    terms, paid = pay_first_two()
    day = due(4) + DAY
    with pytest.raises(PaymentAmountRefused) as excinfo:
        settle_payment(terms, paid, 440_000, day)  # would settle week 6, not yet payable
    err = excinfo.value
    assert err.accepted_amounts == [110_000, 220_000, 330_000]
    assert isinstance(err, InvalidArgument)
    assert err.reason == "PAYMENT_AMOUNT_NOT_ACCEPTED"
    assert [v.field for v in err.violations] == ["amount"]
    assert "110,000" in err.message and "220,000" in err.message and "330,000" in err.message
    assert "440,000" in err.message
    assert "IDR" in err.message


@pytest.mark.parametrize("amount", [1, 109_999, 110_001, 150_000, 329_999, 330_001, 10**30])
def test_timeline_odd_amounts_are_refused(amount):
    terms, paid = pay_first_two()
    with pytest.raises(PaymentAmountRefused) as excinfo:
        settle_payment(terms, paid, amount, due(4) + DAY)
    assert excinfo.value.accepted_amounts == [110_000, 220_000, 330_000]


@pytest.mark.parametrize("amount", [0, -110_000])
def test_non_positive_amount_is_invalid(amount):
    terms, paid = pay_first_two()
    with pytest.raises(InvalidArgument) as excinfo:
        settle_payment(terms, paid, amount, due(4) + DAY)
    assert [v.field for v in excinfo.value.violations] == ["amount"]


def test_paying_ahead_of_current_week_is_refused():
    terms = canonical()
    # On week 1's due date only week 1 is payable.
    with pytest.raises(PaymentAmountRefused) as excinfo:
        settle_payment(terms, 0, 220_000, due(1))
    assert excinfo.value.accepted_amounts == [110_000]
    # Before the first due date (even on the start date) week 1 is current.
    assert accepted_amounts(terms, 0, START) == [110_000]
    assert accepted_amounts(terms, 0, START + DAY) == [110_000]


def test_nothing_payable_names_the_date_the_next_installment_is_payable_from():
    terms, paid = pay_first_two()
    # Week 2 was paid on its due date; the same day nothing else is payable.
    assert payable_count(terms, paid, due(2)) == 0
    assert accepted_amounts(terms, paid, due(2)) == []
    with pytest.raises(FailedPrecondition) as excinfo:
        settle_payment(terms, paid, 110_000, due(2))
    err = excinfo.value
    assert err.reason == "NOTHING_PAYABLE"
    payable_from = due(2) + DAY
    assert payable_from.isoformat() in err.message
    # and that date is right: from then on week 3 is payable, not before
    assert payable_count(terms, paid, payable_from) == 1
    assert payable_count(terms, paid, payable_from - DAY) == 0


def test_nothing_payable_after_paying_ahead_through_current():
    terms, paid = pay_first_two()
    day = due(4) + DAY
    result = settle_payment(terms, paid, 330_000, day)  # settles 3, 4, 5
    assert result.after.paid_count == 5
    paid = result.after.paid_amount
    with pytest.raises(FailedPrecondition) as excinfo:
        settle_payment(terms, paid, 110_000, day + DAY)
    assert (due(5) + DAY).isoformat() in excinfo.value.message
    assert settle_payment(terms, paid, 110_000, due(5) + DAY).settled_week_numbers == [6]


def test_paid_early_in_week_then_nothing_payable_until_after_due_date():
    terms = canonical()
    assert settle_payment(terms, 0, 110_000, START + DAY).after.paid_count == 1
    paid = terms.amount_through(1)
    for day_offset in range(1, 8):
        assert payable_count(terms, paid, START + day_offset * DAY) == 0
    assert payable_count(terms, paid, due(1) + DAY) == 1


@pytest.mark.parametrize("amount", [110_000, 1, 0, 5_500_000])
def test_fully_paid_loan_refuses_every_payment(amount):
    terms = canonical()
    with pytest.raises(FailedPrecondition) as excinfo:
        settle_payment(terms, terms.amount_through(50), amount, due(50) + 30 * DAY)
    assert excinfo.value.reason == "LOAN_FULLY_PAID"
    assert not isinstance(excinfo.value, InvalidArgument)
    assert payable_count(terms, terms.amount_through(50), due(50) + 30 * DAY) == 0


# --- Payment date ---------------------------------------------------------------


def test_payment_date_accepted_cases():
    terms = canonical()
    today = due(3)
    check_payment_date(terms, today, business_date=today, last_payment_date=None)
    check_payment_date(terms, START, business_date=today, last_payment_date=None)
    check_payment_date(terms, due(2), business_date=today, last_payment_date=due(2))
    check_payment_date(terms, due(2), business_date=today, last_payment_date=due(1))


@pytest.mark.parametrize(
    ("payment_date", "last_payment", "reason"),
    [
        (due(3) + DAY, None, "PAYMENT_DATE_IN_FUTURE"),
        (START - DAY, None, "PAYMENT_DATE_BEFORE_START"),
        (due(1), due(2), "PAYMENT_DATE_BEFORE_LATEST_PAYMENT"),
        (due(2) - DAY, due(2), "PAYMENT_DATE_BEFORE_LATEST_PAYMENT"),
    ],
)
def test_payment_date_refusals(payment_date, last_payment, reason):
    terms = canonical()
    with pytest.raises(InvalidArgument) as excinfo:
        check_payment_date(
            terms, payment_date, business_date=due(3), last_payment_date=last_payment
        )
    assert excinfo.value.reason == reason
    assert [v.field for v in excinfo.value.violations] == ["payment_date"]
    assert payment_date.isoformat() in excinfo.value.message


# --- LoanTerms.create refusals --------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"principal_amount": 0}, "principal_amount"),
        ({"principal_amount": -1}, "principal_amount"),
        ({"principal_amount": INT64_MAX + 1}, "principal_amount"),
        ({"weeks": 0}, "weeks"),
        ({"weeks": -1}, "weeks"),
        ({"weeks": 521}, "weeks"),
        ({"interest_rate_bps": -1}, "interest_rate_bps"),
        ({"interest_rate_bps": 100_001}, "interest_rate_bps"),
        ({"currency_code": "idr"}, "currency_code"),
        ({"currency_code": "ID"}, "currency_code"),
        ({"currency_code": "IDRR"}, "currency_code"),
        ({"currency_code": ""}, "currency_code"),
        ({"currency_code": "ÄBC"}, "currency_code"),
        ({"delinquency_threshold": 0}, "delinquency_threshold"),
        ({"delinquency_threshold": -1}, "delinquency_threshold"),
        ({"start_date": dt.date.max}, "start_date"),
        ({"start_date": dt.date.max - 50 * WEEK + DAY}, "start_date"),
    ],
)
def test_create_refuses_each_bad_field(overrides, field):
    assert refused_fields(**overrides) == [field]


def test_create_refusal_is_invalid_argument_domain_error():
    with pytest.raises(InvalidArgument) as excinfo:
        canonical(weeks=0)
    assert isinstance(excinfo.value, DomainError)
    assert excinfo.value.reason == "INVALID_ARGUMENT"
    assert "weeks" in excinfo.value.message


def test_create_accepts_boundaries():
    assert canonical(weeks=1, delinquency_threshold=1).weekly_payment == 5_500_000
    assert canonical(weeks=520).weeks == 520
    assert canonical(interest_rate_bps=0).total_amount == 5_000_000
    assert canonical(interest_rate_bps=100_000).total_amount == 55_000_000
    one = canonical(principal_amount=1, weeks=1, interest_rate_bps=0, delinquency_threshold=1)
    assert one.total_amount == 1
    assert canonical(currency_code="USD").currency_code == "USD"
    assert canonical(delinquency_threshold=1).delinquency_threshold == 1
    assert canonical(delinquency_threshold=50).delinquency_threshold == 50
    last_ok = dt.date.max - 50 * WEEK
    assert canonical(start_date=last_ok).last_due_date == dt.date.max


def test_create_refuses_zero_installments():
    # T = 3, N = 5: T // N == 0
    with pytest.raises(InvalidArgument) as excinfo:
        canonical(principal_amount=3, weeks=5, interest_rate_bps=0, delinquency_threshold=1)
    assert [v.field for v in excinfo.value.violations] == ["weeks"]
    # T == N is the smallest that works
    terms = canonical(principal_amount=5, weeks=5, interest_rate_bps=0, delinquency_threshold=1)
    assert [i.amount for i in terms.schedule()] == [1, 1, 1, 1, 1]


def test_create_refuses_int64_overflow_of_principal_plus_interest():
    with pytest.raises(InvalidArgument) as excinfo:
        canonical(principal_amount=INT64_MAX, interest_rate_bps=1)
    assert [v.field for v in excinfo.value.violations] == ["principal_amount"]
    with pytest.raises(InvalidArgument):
        canonical(principal_amount=2**62, interest_rate_bps=10_000)  # T == 2**63
    # exactly INT64_MAX is fine
    terms = canonical(principal_amount=INT64_MAX, interest_rate_bps=0)
    assert terms.total_amount == INT64_MAX
    schedule = terms.schedule()
    assert sum(i.amount for i in schedule) == INT64_MAX
    assert all(0 <= i.amount <= INT64_MAX for i in schedule)


def test_create_largest_principal_for_max_rate():
    # P + round(P * 10) <= INT64_MAX  =>  P <= INT64_MAX // 11
    p = INT64_MAX // 11
    terms = canonical(principal_amount=p, interest_rate_bps=100_000)
    assert terms.total_amount == 11 * p <= INT64_MAX
    with pytest.raises(InvalidArgument):
        canonical(principal_amount=p + 1, interest_rate_bps=100_000)


@pytest.mark.parametrize("code", ["I1R", "A B", "AB.", "1AB", "IDR\n", " ID"])
def test_create_refuses_currency_code_with_non_letters(code):
    # str.isupper() alone would let these through: it ignores non-letters
    assert refused_fields(currency_code=code) == ["currency_code"]


def test_create_one_week_loan_with_default_threshold():
    # N = 1 is a valid term; the default threshold 2 must not make it invalid
    terms = canonical(weeks=1)
    assert terms.delinquency_threshold == 2
    assert terms.weekly_payment == 5_500_000
    pos = Position(terms, 0, due(1) + 365 * DAY)
    assert pos.missed_installments == 1
    assert not pos.delinquent
    assert pos.status is LoanStatus.ACTIVE


def test_create_threshold_above_weeks_is_accepted_and_never_delinquent():
    # the rules ask only for a threshold of 1 or more
    terms = canonical(weeks=3, delinquency_threshold=4)
    pos = Position(terms, 0, due(3) + 100 * DAY)
    assert pos.missed_installments == 3
    assert not pos.delinquent
    assert pos.status is LoanStatus.ACTIVE


def test_create_lists_every_bad_field_at_once():
    with pytest.raises(InvalidArgument) as excinfo:
        LoanTerms.create(
            principal_amount=0,
            interest_rate_bps=-1,
            weeks=521,
            start_date=dt.date.max,
            currency_code="idr",
            delinquency_threshold=0,
        )
    fields = {v.field for v in excinfo.value.violations}
    assert fields == {
        "principal_amount",
        "interest_rate_bps",
        "weeks",
        "currency_code",
        "delinquency_threshold",
    }
    for field in fields:
        assert field in excinfo.value.message


def test_create_lists_every_bad_field_including_start_date():
    with pytest.raises(InvalidArgument) as excinfo:
        LoanTerms.create(
            principal_amount=-5,
            interest_rate_bps=100_001,
            weeks=50,
            start_date=dt.date.max,
            currency_code="ID",
            delinquency_threshold=0,
        )
    assert {v.field for v in excinfo.value.violations} == {
        "principal_amount",
        "interest_rate_bps",
        "start_date",
        "currency_code",
        "delinquency_threshold",
    }


# --- Rounding -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("principal", "bps", "interest"),
    [
        (5, 1000, 1),  # 0.5 -> 1
        (4, 1000, 0),  # 0.4 -> 0
        (6, 1000, 1),  # 0.6 -> 1
        (15, 1000, 2),  # 1.5 -> 2
        (25, 1000, 3),  # 2.5 -> 3 (half up, not half even)
        (14, 1000, 1),  # 1.4 -> 1
        (1, 5000, 1),  # 0.5 -> 1
        (1, 4999, 0),  # 0.4999 -> 0
        (1, 1, 0),  # 0.0001 -> 0
        (5_000_000, 1000, 500_000),
        (3, 0, 0),
        (1, 100_000, 10),
    ],
)
def test_interest_rounds_half_up(principal, bps, interest):
    terms = LoanTerms.create(
        principal_amount=principal,
        interest_rate_bps=bps,
        weeks=1,
        start_date=START,
        delinquency_threshold=1,
    )
    assert terms.interest_amount == interest
    assert terms.total_amount == principal + interest
    [only] = terms.schedule()
    assert only.amount == principal + interest
    assert only.interest_amount == interest
    assert only.principal_amount == principal


@pytest.mark.parametrize(
    ("num", "den", "expected"),
    [(0, 10, 0), (4, 10, 0), (5, 10, 1), (6, 10, 1), (14, 10, 1), (15, 10, 2), (10, 10, 1)],
)
def test_round_half_up_div(num, den, expected):
    assert round_half_up_div(num, den) == expected


def test_remainder_goes_to_last_installment():
    # T = 1,000,000 + 100,000 = 1,100,000 over 3 weeks = 366,666 x2 + 366,668
    terms = canonical(principal_amount=1_000_000, weeks=3)
    amounts = [i.amount for i in terms.schedule()]
    assert amounts == [366_666, 366_666, 366_668]
    assert sum(amounts) == 1_100_000
    assert sum(i.interest_amount for i in terms.schedule()) == 100_000
    assert sum(i.principal_amount for i in terms.schedule()) == 1_000_000
    paid = terms.amount_through(1)
    assert accepted_amounts(terms, paid, due(3) + DAY) == [366_666, 733_334]
    assert settle_payment(terms, paid, 733_334, due(3) + DAY).outstanding_after == 0


# --- Custom delinquency threshold -----------------------------------------------


def test_threshold_1_is_delinquent_after_a_single_miss():
    terms = canonical(delinquency_threshold=1)
    assert not Position(terms, 0, due(1)).delinquent
    pos = Position(terms, 0, due(1) + DAY)
    assert pos.missed_installments == 1
    assert pos.delinquent
    assert pos.status is LoanStatus.DELINQUENT
    assert pos.days_past_due == 1
    cured = settle_payment(terms, 0, 110_000, due(1) + DAY)
    assert cured.status_after is LoanStatus.ACTIVE


def test_threshold_3_needs_three_misses():
    terms = canonical(delinquency_threshold=3)
    assert Position(terms, 0, due(2) + DAY).missed_installments == 2
    assert not Position(terms, 0, due(2) + DAY).delinquent
    assert Position(terms, 0, due(3)).status is LoanStatus.ACTIVE
    pos = Position(terms, 0, due(3) + DAY)
    assert pos.missed_installments == 3
    assert pos.delinquent
    assert pos.overdue_amount == 330_000
    assert pos.days_past_due == (due(3) + DAY - due(1)).days
    # paying one brings missed to 2 < 3: cured
    assert settle_payment(terms, 0, 110_000, due(3) + DAY).status_after is LoanStatus.ACTIVE


def test_default_threshold_partial_payment_keeps_delinquent():
    terms = canonical()
    day = due(3) + DAY  # weeks 1..3 missed
    assert Position(terms, 0, day).missed_installments == 3
    result = settle_payment(terms, 0, 110_000, day)
    assert result.after.missed_installments == 2
    assert result.status_after is LoanStatus.DELINQUENT
    result = settle_payment(terms, terms.amount_through(1), 110_000, day)
    assert result.status_after is LoanStatus.ACTIVE


# --- Status and next installment ------------------------------------------------


def test_status_after_last_due_date_with_unpaid():
    terms = canonical()
    after = due(50) + 100 * DAY
    pos = Position(terms, terms.amount_through(49), after)
    assert pos.missed_installments == 1
    assert pos.status is LoanStatus.ACTIVE
    assert pos.next_installment.week_number == 50
    assert accepted_amounts(terms, terms.amount_through(49), after) == [110_000]
    pos = Position(terms, terms.amount_through(48), after)
    assert pos.status is LoanStatus.DELINQUENT
    assert pos.days_past_due == (after - due(49)).days


def test_read_before_start_date():
    terms = canonical()
    pos = Position(terms, 0, START - 10 * DAY)
    assert pos.missed_installments == 0
    assert pos.days_past_due == 0
    assert pos.overdue_amount == 0
    assert pos.outstanding_amount == 5_500_000
    assert pos.status is LoanStatus.ACTIVE


def test_overflow_is_listed_beside_other_bad_fields():
    with pytest.raises(InvalidArgument) as excinfo:
        LoanTerms.create(
            principal_amount=2**62,
            interest_rate_bps=100_000,
            weeks=50,
            start_date=START,
            currency_code="idr",
        )
    assert {v.field for v in excinfo.value.violations} == {"principal_amount", "currency_code"}
