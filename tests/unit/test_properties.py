"""Property tests of the billing rules over any valid loan.

Every figure the domain computes in O(1) from the paid amount is checked against
a brute-force reading of the rules over the whole schedule
(shared/spec/billing-rules.md). The strategies here draw a count of paid
installments and pass its amount, `terms.amount_through(count)` (a paid amount on
an installment boundary: the v1 states); the v2 property tests take amounts
inside an installment. Money is int throughout: no floats here either.
"""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from loanbilling.domain.errors import FailedPrecondition, InvalidArgument, PaymentAmountRefused
from loanbilling.domain.loan import (
    BPS_DENOMINATOR,
    INT64_MAX,
    MAX_RATE_BPS,
    MAX_WEEKS,
    InstallmentStatus,
    LoanStatus,
    LoanTerms,
    Position,
)
from loanbilling.domain.payment import (
    accepted_amounts,
    check_payment_date,
    payable_count,
    settle_payment,
)

DAY = dt.timedelta(days=1)
WEEK = dt.timedelta(days=7)
SANE_START = st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2200, 12, 31))

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
FEW = settings(SETTINGS, max_examples=100)


@st.composite
def loan_terms(draw, max_weeks: int = MAX_WEEKS) -> LoanTerms:
    rate = draw(
        st.one_of(
            st.integers(0, MAX_RATE_BPS),
            st.sampled_from([0, 1, 999, 1000, 1001, 5000, 10_000, MAX_RATE_BPS]),
        )
    )
    weeks = draw(st.one_of(st.integers(1, min(60, max_weeks)), st.integers(1, max_weeks)))
    # the largest principal whose total roughly fits int64 (rounding may still
    # tip it over by one; create() then refuses and the example is rejected)
    p_max = min(2**62, INT64_MAX * BPS_DENOMINATOR // (BPS_DENOMINATOR + rate))
    principal = draw(
        st.one_of(
            st.integers(1, 10_000),
            st.integers(1, 10**9),
            st.integers(1, p_max),
            st.integers(max(1, p_max - 1000), p_max),
        )
    )
    threshold = draw(st.integers(1, weeks))
    start = draw(SANE_START)
    try:
        return LoanTerms.create(
            principal_amount=principal,
            interest_rate_bps=rate,
            weeks=weeks,
            start_date=start,
            delinquency_threshold=threshold,
        )
    except InvalidArgument:
        reject()


def dates_around(terms: LoanTerms) -> st.SearchStrategy[dt.date]:
    """Any date from a little before the start to a little after the last due date,
    with extra weight on due dates and the days beside them."""
    lo = terms.start_date - 10 * DAY
    hi = terms.last_due_date + 30 * DAY
    near_due = st.builds(
        lambda k, d: terms.due_date(k) + d * DAY,
        st.integers(0, terms.weeks),
        st.integers(-1, 1),
    )
    return st.one_of(st.dates(min_value=lo, max_value=hi), near_due)


# --- brute force readings of the rules ------------------------------------------


def bf_overdue_weeks(schedule, paid_count, on):
    """Unpaid installments whose due date is before `on`."""
    return [i for i in schedule if i.week_number > paid_count and i.due_date < on]


def bf_payable_weeks(schedule, paid_count, on):
    """Overdue ones plus the current one (the first due on or after `on`);
    after the last due date, every unpaid one."""
    current = next((i for i in schedule if i.due_date >= on), None)
    if current is None:
        return [i for i in schedule if i.week_number > paid_count]
    return [i for i in schedule if i.week_number > paid_count and i.due_date <= current.due_date]


def bf_accepted(schedule, paid_count, on):
    payable = bf_payable_weeks(schedule, paid_count, on)
    out, running = [], 0
    for inst in payable:
        running += inst.amount
        out.append(running)
    return out


# --- schedule -------------------------------------------------------------------


@SETTINGS
@given(loan_terms())
def test_interest_is_principal_times_rate_rounded_half_up(terms):
    p, r, i = terms.principal_amount, terms.interest_rate_bps, terms.interest_amount
    # i - 1/2 <= p * r / 10000 < i + 1/2, in integers
    assert BPS_DENOMINATOR * (2 * i - 1) <= 2 * p * r < BPS_DENOMINATOR * (2 * i + 1)
    assert terms.total_amount == p + i <= INT64_MAX


@SETTINGS
@given(loan_terms())
def test_schedule_sums_and_portions(terms):
    schedule = terms.schedule()
    n = terms.weeks
    assert len(schedule) == n
    assert [i.week_number for i in schedule] == list(range(1, n + 1))
    assert sum(i.amount for i in schedule) == terms.total_amount
    assert sum(i.principal_amount for i in schedule) == terms.principal_amount
    assert sum(i.interest_amount for i in schedule) == terms.interest_amount
    for inst in schedule:
        assert type(inst.amount) is int
        assert type(inst.principal_amount) is int
        assert type(inst.interest_amount) is int
        assert inst.principal_amount >= 0
        assert inst.interest_amount >= 0
        assert inst.principal_amount + inst.interest_amount == inst.amount
        assert 0 < inst.amount <= INT64_MAX


@SETTINGS
@given(loan_terms())
def test_installments_equal_except_last_absorbing_remainder(terms):
    schedule = terms.schedule()
    w = terms.weekly_payment
    assert w == terms.total_amount // terms.weeks > 0
    assert all(i.amount == w for i in schedule[:-1])
    last = schedule[-1].amount
    assert w <= last < w + terms.weeks
    assert last == terms.total_amount - w * (terms.weeks - 1)


@SETTINGS
@given(loan_terms())
def test_due_dates_every_seven_days(terms):
    schedule = terms.schedule()
    assert schedule[0].due_date == terms.start_date + WEEK
    for prev, nxt in zip(schedule, schedule[1:], strict=False):
        assert nxt.due_date - prev.due_date == WEEK
    assert schedule[-1].due_date == terms.last_due_date
    for inst in schedule:
        assert inst.due_date == terms.start_date + dt.timedelta(days=7 * inst.week_number)


@SETTINGS
@given(loan_terms())
def test_amount_and_interest_through_match_schedule(terms):
    schedule = terms.schedule()
    amount = interest = 0
    assert terms.amount_through(0) == 0
    assert terms.interest_through(0) == 0
    for inst in schedule:
        amount += inst.amount
        interest += inst.interest_amount
        assert terms.amount_through(inst.week_number) == amount
        assert terms.interest_through(inst.week_number) == interest


@SETTINGS
@given(loan_terms())
def test_the_schedule_is_each_installment_as_computed_alone(terms):
    assert terms.schedule() == [terms.installment(k) for k in range(1, terms.weeks + 1)]


# --- position at a date ---------------------------------------------------------


@st.composite
def positions(draw, max_weeks: int = MAX_WEEKS):
    terms = draw(loan_terms(max_weeks))
    paid = draw(st.integers(0, terms.weeks))
    on = draw(dates_around(terms))
    return terms, paid, on


@settings(SETTINGS, max_examples=150)
@given(positions())
def test_outstanding(args):
    terms, paid, on = args
    pos = Position(terms, terms.amount_through(paid), on)
    assert pos.paid_count == paid
    schedule = terms.schedule()
    paid_sum = sum(i.amount for i in schedule[:paid])
    unpaid = schedule[paid:]
    assert pos.outstanding_amount == terms.total_amount - terms.amount_through(paid)
    assert pos.outstanding_amount == terms.total_amount - paid_sum >= 0
    assert pos.outstanding_amount == sum(i.amount for i in unpaid)
    assert pos.outstanding_principal_amount == sum(i.principal_amount for i in unpaid) >= 0
    assert pos.outstanding_interest_amount == sum(i.interest_amount for i in unpaid) >= 0
    assert (
        pos.outstanding_principal_amount + pos.outstanding_interest_amount == pos.outstanding_amount
    )
    assert (pos.outstanding_amount == 0) == (paid == terms.weeks)


@settings(SETTINGS, max_examples=150)
@given(positions())
def test_missed_overdue_days_past_due_delinquency(args):
    terms, paid, on = args
    pos = Position(terms, terms.amount_through(paid), on)
    schedule = terms.schedule()
    overdue = bf_overdue_weeks(schedule, paid, on)
    assert pos.missed_installments == len(overdue)
    # overdue installments are always consecutive, starting at paid + 1
    assert [i.week_number for i in overdue] == list(range(paid + 1, paid + 1 + len(overdue)))
    assert pos.overdue_amount == sum(i.amount for i in overdue)
    assert pos.days_past_due == ((on - overdue[0].due_date).days if overdue else 0)
    assert pos.days_past_due >= 0
    assert (pos.days_past_due > 0) == bool(overdue)
    assert pos.delinquent == (len(overdue) >= terms.delinquency_threshold)
    if paid == terms.weeks:
        assert pos.status is LoanStatus.PAID
    elif pos.delinquent:
        assert pos.status is LoanStatus.DELINQUENT
    else:
        assert pos.status is LoanStatus.ACTIVE
    for inst in schedule:
        status = pos.installment_status(inst.week_number)
        if inst.week_number <= paid:
            assert status is InstallmentStatus.PAID
        elif inst.week_number <= paid + len(overdue):
            assert status is InstallmentStatus.OVERDUE
        else:
            assert status is InstallmentStatus.UNPAID
    nxt = pos.next_installment
    if paid == terms.weeks:
        assert nxt is None
    else:
        assert nxt == schedule[paid]


@settings(SETTINGS, max_examples=150)
@given(positions())
def test_weeks_due_before_brute_force(args):
    terms, _, on = args
    assert terms.weeks_due_before(on) == sum(1 for i in terms.schedule() if i.due_date < on)


# --- payments -------------------------------------------------------------------


@settings(SETTINGS, max_examples=150)
@given(positions())
def test_payable_and_accepted_amounts_brute_force(args):
    terms, paid, on = args
    schedule = terms.schedule()
    expected = bf_accepted(schedule, paid, on)
    paid_amount = terms.amount_through(paid)
    assert payable_count(terms, paid_amount, on) == len(bf_payable_weeks(schedule, paid, on))
    assert accepted_amounts(terms, paid_amount, on) == expected
    # strictly increasing, positive, never more than what is outstanding
    assert all(a > 0 for a in expected)
    assert all(a < b for a, b in zip(expected, expected[1:], strict=False))
    if expected:
        assert expected[-1] <= Position(terms, paid_amount, on).outstanding_amount
    # the overdue amount is always payable, and so is overdue plus current (if any)
    pos = Position(terms, paid_amount, on)
    if paid < terms.weeks:
        assert expected or pos.missed_installments == 0
        if pos.overdue_amount:
            assert pos.overdue_amount in expected


@st.composite
def payment_attempts(draw, max_weeks: int = MAX_WEEKS):
    terms = draw(loan_terms(max_weeks))
    on = draw(dates_around(terms))
    # mostly a borrower who is not ahead of the schedule, so that something is payable
    due_by_then = min(terms.weeks_due_before(on) + 1, terms.weeks)
    paid = draw(st.one_of(st.integers(0, terms.weeks), st.integers(0, due_by_then)))
    accepted = accepted_amounts(terms, terms.amount_through(paid), on)
    choices = [
        st.integers(-3, 3),
        st.integers(1, terms.total_amount),
        st.integers(0, 2 * terms.weekly_payment + 2),
    ]
    if accepted:
        choices.append(st.sampled_from(accepted))
        choices.append(st.sampled_from(accepted).map(lambda a: a + 1))
        choices.append(st.sampled_from(accepted).map(lambda a: a - 1))
        choices.append(st.just(accepted[-1] + terms.weekly_payment))  # paying ahead
    if accepted and draw(st.booleans()):
        amount = draw(st.sampled_from(accepted))
    else:
        amount = draw(st.one_of(choices))
    return terms, paid, on, amount


@settings(SETTINGS, max_examples=150)
@given(payment_attempts())
def test_settle_payment_accepts_exactly_the_accepted_amounts(args):
    terms, paid, on, amount = args
    paid_amount = terms.amount_through(paid)
    before = Position(terms, paid_amount, on)
    accepted = accepted_amounts(terms, paid_amount, on)
    try:
        result = settle_payment(terms, paid_amount, amount, on)
    except FailedPrecondition as err:
        assert not accepted
        assert paid == terms.weeks or payable_count(terms, paid_amount, on) == 0
        if paid < terms.weeks:
            assert err.reason == "NOTHING_PAYABLE"
            # says from which date the next installment is payable, and that is right
            payable_from = terms.due_date(paid) + DAY
            assert payable_from.isoformat() in err.message
            assert payable_from > on
            assert payable_count(terms, paid_amount, payable_from) == 1
            assert payable_count(terms, paid_amount, payable_from - DAY) == 0
        else:
            assert err.reason == "LOAN_FULLY_PAID"
    except PaymentAmountRefused as err:
        # Zero and negative amounts too: every wrong amount lists the accepted ones.
        assert amount not in accepted
        assert err.accepted_amounts == accepted
        assert accepted  # with nothing payable the refusal is a FailedPrecondition
        assert f"{accepted[0]:,}" in err.message
        assert [v.field for v in err.violations] == ["amount"]
    else:
        assert amount in accepted
        k = accepted.index(amount) + 1
        assert result.amount == amount
        assert result.payment_date == on
        assert result.first_week == paid + 1
        assert result.last_week == paid + k
        assert result.settled_week_numbers == list(range(paid + 1, paid + k + 1))
        assert result.after.paid_count == paid + k
        assert result.after.paid_amount == paid_amount + amount == terms.amount_through(paid + k)
        assert result.after.as_of == on
        assert result.after.terms == terms
        assert result.outstanding_after == before.outstanding_amount - amount >= 0
        settled = terms.schedule()[paid : paid + k]
        assert sum(i.amount for i in settled) == amount
        assert result.interest_amount == sum(i.interest_amount for i in settled)
        assert result.status_after == result.after.status
        # paying leaves at most what was overdue minus what was paid
        assert result.after.missed_installments == max(before.missed_installments - k, 0)
        # the function is pure: the same call gives the same answer
        assert settle_payment(terms, paid_amount, amount, on) == result


@SETTINGS
@given(loan_terms(), st.data())
def test_paying_the_overdue_amount_always_cures(terms, data):
    paid = data.draw(st.integers(0, terms.weeks - 1))
    on = data.draw(
        st.dates(
            min_value=terms.due_date(paid + 1) + DAY,
            max_value=terms.last_due_date + 30 * DAY,
        )
    )
    pos = Position(terms, terms.amount_through(paid), on)
    assert pos.overdue_amount > 0
    result = settle_payment(terms, terms.amount_through(paid), pos.overdue_amount, on)
    assert result.after.missed_installments == 0
    assert result.status_after is (
        LoanStatus.PAID if result.after.paid_count == terms.weeks else LoanStatus.ACTIVE
    )


@settings(SETTINGS, max_examples=150)
@given(positions(), st.integers(0, 40))
def test_check_payment_date(args, back):
    terms, _, business = args
    last = business - back * DAY
    for candidate in (business - DAY, business, business + DAY, last - DAY, last):
        ok = candidate <= business and candidate >= terms.start_date and candidate >= last
        try:
            check_payment_date(terms, candidate, business_date=business, last_payment_date=last)
        except InvalidArgument as err:
            assert not ok
            assert [v.field for v in err.violations] == ["payment_date"]
        else:
            assert ok
    # with no payment yet only the future and the start bound the date
    for candidate in (terms.start_date - DAY, terms.start_date, business, business + DAY):
        ok = terms.start_date <= candidate <= business
        try:
            check_payment_date(terms, candidate, business_date=business, last_payment_date=None)
        except InvalidArgument:
            assert not ok
        else:
            assert ok


@st.composite
def payment_sequences(draw):
    terms = draw(loan_terms())
    size = draw(st.integers(0, 60))
    steps = draw(
        st.lists(
            st.tuples(
                st.one_of(st.integers(0, 10), st.integers(0, 60), st.just(7)),
                st.integers(0, 2**16),
            ),
            min_size=size,
            max_size=size,
        )
    )
    return terms, steps


@FEW
@given(payment_sequences())
def test_random_payment_sequence(args):
    terms, steps = args
    schedule = terms.schedule()
    paid = 0  # installments covered
    paid_amount = 0  # the state A
    on = terms.start_date
    last_payment = None
    payments: list[int] = []
    settled_weeks: list[int] = []

    def pay(amount: int, day: dt.date) -> None:
        nonlocal paid, paid_amount, last_payment
        check_payment_date(terms, day, business_date=day, last_payment_date=last_payment)
        before = Position(terms, paid_amount, day).outstanding_amount
        result = settle_payment(terms, paid_amount, amount, day)
        assert result.first_week == paid + 1
        assert result.outstanding_after == before - amount >= 0
        settled_weeks.extend(result.settled_week_numbers)
        payments.append(amount)
        paid = result.after.paid_count
        paid_amount = result.after.paid_amount
        # every payment closes installments exactly: A stays on a boundary
        assert paid_amount == terms.amount_through(paid) == sum(payments)
        last_payment = day

    for day_step, choice in steps:
        on = on + day_step * DAY
        if paid == terms.weeks:
            break
        accepted = accepted_amounts(terms, paid_amount, on)
        if not accepted:
            try:
                settle_payment(terms, paid_amount, terms.weekly_payment, on)
            except FailedPrecondition:
                pass
            else:
                raise AssertionError("accepted a payment with nothing payable")
            continue
        pay(accepted[choice % len(accepted)], on)
        pos = Position(terms, paid_amount, on)
        assert pos.outstanding_amount == terms.total_amount - sum(payments)
        # a date before the latest payment is refused from now on
        try:
            check_payment_date(terms, on - DAY, business_date=on, last_payment_date=last_payment)
        except InvalidArgument:
            pass
        else:
            raise AssertionError("accepted a payment dated before the latest one")

    # settle whatever is left after the last due date, in one payment
    if paid < terms.weeks:
        on = max(on, terms.last_due_date + DAY)
        remaining = Position(terms, paid_amount, on).outstanding_amount
        assert accepted_amounts(terms, paid_amount, on)[-1] == remaining
        pay(remaining, on)

    final = Position(terms, paid_amount, on)
    assert final.paid_count == paid == terms.weeks
    assert final.outstanding_amount == 0 == terms.total_amount - sum(payments)
    assert final.status is LoanStatus.PAID
    assert settled_weeks == list(range(1, terms.weeks + 1))  # each week exactly once, in order
    assert all(a > 0 for a in payments)
    # once paid off, every payment is refused
    try:
        settle_payment(terms, paid_amount, schedule[-1].amount, on + DAY)
    except FailedPrecondition as err:
        assert err.reason == "LOAN_FULLY_PAID"
    else:
        raise AssertionError("a paid-off loan accepted a payment")


# --- loan creation --------------------------------------------------------------


@SETTINGS
@given(st.integers(1, MAX_WEEKS))
def test_start_date_bound_near_date_max(weeks):
    last_ok = dt.date.max - dt.timedelta(days=7 * weeks)
    terms = LoanTerms.create(
        principal_amount=10**9,
        interest_rate_bps=1000,
        weeks=weeks,
        start_date=last_ok,
        delinquency_threshold=1,
    )
    assert terms.last_due_date == dt.date.max
    assert len(terms.schedule()) == weeks
    try:
        LoanTerms.create(
            principal_amount=10**9,
            interest_rate_bps=1000,
            weeks=weeks,
            start_date=last_ok + DAY,
            delinquency_threshold=1,
        )
    except InvalidArgument as err:
        assert [v.field for v in err.violations] == ["start_date"]
    else:
        raise AssertionError("accepted a loan whose last installment falls after date.max")


@SETTINGS
@given(
    principal=st.one_of(
        st.integers(MAX_WEEKS, 10**12), st.integers(-(10**6), 0), st.just(INT64_MAX + 1)
    ),
    rate=st.one_of(
        st.integers(0, MAX_RATE_BPS), st.integers(-(10**6), -1), st.integers(MAX_RATE_BPS + 1)
    ),
    weeks=st.one_of(st.integers(1, MAX_WEEKS), st.integers(-5, 0), st.integers(MAX_WEEKS + 1)),
    currency=st.one_of(
        st.sampled_from(["IDR", "USD", "EUR"]),
        st.sampled_from(["idr", "ID", "IDRR", "", "Idr", "ÄBC", "I1R", "A B", "ID."]),
    ),
    threshold_valid=st.booleans(),
    threshold_good=st.integers(1, MAX_WEEKS + 5),
    threshold_bad=st.integers(-5, 0),
    start=st.one_of(SANE_START, st.dates(min_value=dt.date(9999, 1, 1))),
)
def test_create_lists_every_bad_field(
    principal, rate, weeks, currency, threshold_valid, threshold_good, threshold_bad, start
):
    weeks_ok = 1 <= weeks <= MAX_WEEKS
    threshold = threshold_good if threshold_valid else threshold_bad
    expected = set()
    if not 0 < principal <= INT64_MAX:
        expected.add("principal_amount")
    if not weeks_ok:
        expected.add("weeks")
    if not 0 <= rate <= MAX_RATE_BPS:
        expected.add("interest_rate_bps")
    if currency not in ("IDR", "USD", "EUR"):
        expected.add("currency_code")
    if not threshold_valid:
        expected.add("delinquency_threshold")
    if weeks_ok and start > dt.date.max - dt.timedelta(days=7 * weeks):
        expected.add("start_date")
    try:
        terms = LoanTerms.create(
            principal_amount=principal,
            interest_rate_bps=rate,
            weeks=weeks,
            start_date=start,
            currency_code=currency,
            delinquency_threshold=threshold,
        )
    except InvalidArgument as err:
        fields = [v.field for v in err.violations]
        assert set(fields) == expected
        assert len(fields) == len(expected)  # each bad field once
        for f in fields:
            assert f in err.message
    else:
        assert not expected
        assert terms.total_amount == principal + terms.interest_amount
