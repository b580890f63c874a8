"""Property tests of the billing rules v2: the state is the paid amount `A`.

The domain's O(1) arithmetic on `A` (Position, accepted amounts, payments,
payoffs, write-offs, recoveries and the history under reversals) is compared
with tests/support/brute_force.py, which walks the schedule installment by
installment with its own ledger. Then every worked example of
shared/spec/billing-rules.md v2, exactly. Money is int throughout.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, Phase, event, given, reject, settings
from hypothesis import strategies as st

from loanbilling.domain.allocation import allocate
from loanbilling.domain.errors import (
    FailedPrecondition,
    InvalidArgument,
    OutOfRange,
    PaymentAmountRefused,
)
from loanbilling.domain.history import (
    PaymentRecord,
    check_reversal,
    latest_live_payment_date,
    paid_amount_at,
    reallocate,
)
from loanbilling.domain.loan import (
    BPS_DENOMINATOR,
    INT64_MAX,
    MAX_RATE_BPS,
    MAX_WEEKS,
    LoanStatus,
    LoanTerms,
    PayoffInterest,
    Position,
    PrepaymentPolicy,
)
from loanbilling.domain.payment import PaymentKind, accepted_amounts, payable_count, settle_payment
from loanbilling.domain.payoff import (
    PayoffAmountRefused,
    check_payoff_amount,
    payoff_quote,
    settle_payoff,
)
from loanbilling.domain.write_off import (
    accept_recovery,
    check_write_off,
    is_written_off,
    write_off_amounts,
)
from tests.support.brute_force import PAYOFF, RECOVERY, REGULAR, BruteLoan, Quote, View

DAY = dt.timedelta(days=1)
SANE_START = st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2200, 12, 31))

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    # one bug at a time, shrunk without the explain phase: a failing timeline
    # shrinks in seconds rather than minutes
    report_multiple_bugs=False,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)


# --- strategies ---------------------------------------------------------------------


@st.composite
def v2_terms(draw, max_weeks: int = MAX_WEEKS) -> LoanTerms:
    rate = draw(
        st.one_of(
            st.just(0),
            st.integers(0, MAX_RATE_BPS),
            st.sampled_from([0, 1, 999, 1000, 1001, 3333, 10_000, MAX_RATE_BPS]),
        )
    )
    weeks = draw(
        st.one_of(
            st.integers(1, min(12, max_weeks)),
            st.integers(1, min(60, max_weeks)),
            st.integers(1, max_weeks),
        )
    )
    p_max = min(INT64_MAX, INT64_MAX * BPS_DENOMINATOR // (BPS_DENOMINATOR + rate))
    principal = draw(
        st.one_of(
            st.integers(weeks, weeks + 20),  # tiny: installments of 1 or a few units
            st.integers(1, 10_000),
            st.integers(1, 10**12),
            st.integers(1, p_max),
            st.integers(max(1, p_max - 1000), p_max),  # at the int64 limit
        )
    )
    try:
        return LoanTerms.create(
            principal_amount=principal,
            interest_rate_bps=rate,
            weeks=weeks,
            start_date=draw(SANE_START),
            delinquency_threshold=draw(st.integers(1, max(1, min(weeks, 4)))),
            prepayment_policy=draw(st.sampled_from(PrepaymentPolicy)),
            payoff_interest=draw(st.sampled_from(PayoffInterest)),
        )
    except InvalidArgument:
        reject()


def brute(terms: LoanTerms) -> BruteLoan:
    """The oracle, from the raw inputs only."""
    return BruteLoan(
        principal=terms.principal_amount,
        rate_bps=terms.interest_rate_bps,
        weeks=terms.weeks,
        start=terms.start_date,
        threshold=terms.delinquency_threshold,
        whole_installments=terms.prepayment_policy is PrepaymentPolicy.WHOLE_INSTALLMENTS,
        waive_undue=terms.payoff_interest is PayoffInterest.WAIVE_UNDUE,
    )


def paid_amounts(terms: LoanTerms) -> st.SearchStrategy[int]:
    """Any A in 0..T, weighted on installment boundaries and the units beside them."""
    total = terms.total_amount
    near_boundary = st.builds(
        lambda k, d: min(max(terms.amount_through(k) + d, 0), total),
        st.integers(0, terms.weeks),
        st.integers(-1, 1),
    )
    return st.one_of(st.integers(0, total), near_boundary, st.sampled_from([0, total]))


def dates_around(terms: LoanTerms) -> st.SearchStrategy[dt.date]:
    lo = terms.start_date - 3 * DAY
    hi = terms.last_due_date + 30 * DAY
    near_due = st.builds(
        lambda k, d: terms.due_date(k) + d * DAY, st.integers(0, terms.weeks), st.integers(-1, 1)
    )
    return st.one_of(st.dates(min_value=lo, max_value=hi), near_due)


# --- the domain against the walk, at one paid amount and date -----------------------


def expect_quote(call, expected: Quote | str, valid_on: dt.date, currency: str) -> None:
    try:
        quote = call()
    except (FailedPrecondition, OutOfRange) as err:
        assert isinstance(expected, str), (err.reason, expected)
        assert err.reason == expected
        assert isinstance(err, OutOfRange) == (expected == "DATE_BEFORE_LOAN_START")
    else:
        assert not isinstance(expected, str), (quote, expected)
        assert quote.payoff_amount == expected.amount
        assert quote.principal_amount == expected.principal
        assert quote.interest_amount == expected.interest
        assert quote.waived_interest_amount == expected.waived
        assert quote.principal_amount >= 0 and quote.interest_amount >= 0
        assert quote.waived_interest_amount >= 0
        assert quote.valid_on == valid_on and quote.currency_code == currency


def assert_matches(
    terms: LoanTerms, paid: int, on: dt.date, view: View, written_off_on: dt.date | None = None
) -> None:
    """Every figure the domain derives from (terms, A, D) equals the walk's."""
    assert view.paid_amount == paid
    pos = Position(terms, paid, on)
    c = terms.installments_covered(paid)
    assert pos.paid_count == c
    assert view.fully == list(range(1, c + 1))  # covered installments are 1..c
    assert view.partly == ([c + 1] if paid > terms.amount_through(c) else [])
    assert terms.amount_through(c) <= paid and (
        c == terms.weeks or paid < terms.amount_through(c + 1)
    )
    assert terms.interest_part(paid) == terms.interest_amount - view.outstanding_interest
    assert terms.weeks_due_before(on) == view.due_before
    assert pos.outstanding_amount == view.outstanding
    assert pos.outstanding_interest_amount == view.outstanding_interest >= 0
    assert pos.outstanding_principal_amount == view.outstanding_principal >= 0
    assert pos.missed_installments == view.missed
    assert view.overdue == list(range(c + 1, c + 1 + view.missed))  # consecutive
    assert pos.overdue_amount == view.overdue_amount
    assert pos.days_past_due == view.days_past_due
    if is_written_off(written_off_on, on):
        assert view.status == "WRITTEN_OFF"
    else:
        assert pos.status.value == view.status
    nxt = pos.next_installment
    assert (nxt.week_number if nxt else None) == view.next_week
    assert [pos.installment_status(k).value for k in range(1, terms.weeks + 1)] == (
        view.installment_status
    )
    due_only = replace(terms, prepayment_policy=PrepaymentPolicy.DUE_ONLY)
    whole = replace(terms, prepayment_policy=PrepaymentPolicy.WHOLE_INSTALLMENTS)
    assert accepted_amounts(due_only, paid, on) == view.accepted_due_only
    assert accepted_amounts(whole, paid, on) == view.accepted_whole
    assert payable_count(whole, paid, on) == len(view.accepted_whole)
    for setting, expected in (
        (PayoffInterest.FULL, view.payoff_full),
        (PayoffInterest.WAIVE_UNDUE, view.payoff_waive_undue),
    ):
        expect_quote(
            lambda setting=setting: payoff_quote(
                replace(terms, payoff_interest=setting), paid, on, written_off_on=written_off_on
            ),
            expected,
            on,
            terms.currency_code,
        )


@SETTINGS
@given(st.data())
def test_any_paid_amount_at_any_date(data):
    terms = data.draw(v2_terms())
    paid = data.draw(paid_amounts(terms))
    on = data.draw(dates_around(terms))
    assert_matches(terms, paid, on, brute(terms).view(on, paid))
    amounts = write_off_amounts(terms, paid)
    oracle = brute(terms)
    oracle.pay(1, terms.start_date, paid)
    assert (amounts.principal_amount, amounts.interest_amount) == oracle.write_off(terms.start_date)
    assert amounts.total_amount == terms.total_amount - paid


@SETTINGS
@given(st.data())
def test_settle_payment_on_any_paid_amount(data):
    terms = data.draw(v2_terms())
    paid = data.draw(paid_amounts(terms))
    on = data.draw(dates_around(terms))
    oracle = brute(terms)
    view = oracle.view(on, paid)
    accepted = view.accepted_whole if oracle.whole_installments else view.accepted_due_only
    wrong = st.one_of(st.integers(-2, 2), st.integers(1, terms.total_amount + 1))
    if accepted:
        wrong = st.one_of(wrong, st.sampled_from(accepted).map(lambda a: a + 1))
        amount = data.draw(st.one_of(st.sampled_from(accepted), wrong))
    else:
        amount = data.draw(wrong)
    try:
        settled = settle_payment(terms, paid, amount, on)
    except FailedPrecondition as err:
        assert not accepted
        assert err.reason == (
            "LOAN_FULLY_PAID" if paid == terms.total_amount else "NOTHING_PAYABLE"
        )
    except PaymentAmountRefused as err:
        assert amount not in accepted
        assert err.accepted_amounts == accepted
    else:
        assert amount in accepted
        oracle.pay(1, on, paid)  # a stand-in for whatever made A
        oracle.pay(2, on, amount)
        (_, mine) = oracle.live_allocation()
        assert settled.settled_week_numbers == mine.weeks
        assert settled.interest_amount == mine.interest
        assert settled.after.paid_amount == paid + amount == mine.paid_after
        # an accepted amount closes installments exactly
        assert mine.paid_after in {terms.amount_through(k) for k in range(terms.weeks + 1)}


@SETTINGS
@given(st.data())
def test_allocate_any_move(data):
    terms = data.draw(v2_terms())
    before = data.draw(paid_amounts(terms))
    after = data.draw(st.integers(before, terms.total_amount))
    waived = data.draw(st.integers(0, after - before))
    move = allocate(terms, before, after - before - waived, waived)
    oracle = brute(terms)
    oracle.pay(1, terms.start_date, before)
    oracle.pay(2, terms.start_date, after - before - waived, PAYOFF, waived)
    (_, mine) = oracle.live_allocation()
    assert move.settled_week_numbers == mine.weeks
    assert move.paid_amount_after == after
    assert (move.principal_amount, move.interest_amount) == (mine.principal, mine.interest)
    assert move.principal_amount >= 0 and move.interest_amount >= 0
    if waived == 0:  # no floor can bite: the J rule's split exactly
        assert move.interest_amount == terms.interest_part(after) - terms.interest_part(before)


# --- random timelines ---------------------------------------------------------------


def draw_date(data, lo: dt.date, hi: dt.date) -> dt.date:
    """Mostly a date in lo..hi; now and then one just outside it."""
    if lo <= hi and data.draw(st.integers(0, 5)) > 0:
        return data.draw(st.dates(min_value=lo, max_value=hi))
    return data.draw(st.dates(min_value=lo - 3 * DAY, max_value=max(lo, hi) + 3 * DAY))


class Timeline:
    """A loan driven by the domain functions, mirrored in the oracle's ledger."""

    def __init__(self, data, terms: LoanTerms) -> None:
        self.data = data
        self.terms = terms
        self.oracle = brute(terms)
        self.records: list[PaymentRecord] = []
        self.written_off_on: dt.date | None = None
        self.today = terms.start_date
        self.next_id = 1

    @property
    def last_transaction(self) -> dt.date | None:
        dates = [d for d in (latest_live_payment_date(self.records), self.written_off_on) if d]
        return max(dates, default=None)

    def date_ok(self, on: dt.date) -> bool:
        last = self.last_transaction
        return self.terms.start_date <= on <= self.today and (last is None or on >= last)

    def paid_at(self, on: dt.date) -> int:
        paid = paid_amount_at(self.records, on)
        assert paid == self.oracle.paid_at(on)
        return paid

    def record(self, on: dt.date, amount: int, kind: PaymentKind, waived: int = 0) -> None:
        self.records.append(PaymentRecord(self.next_id, on, amount, kind, True, waived))
        self.oracle.pay(self.next_id, on, amount, kind.value, waived)
        self.next_id += 1

    def newest_allocation(self):
        live = reallocate(self.terms, self.records)
        assert live[-1].payment.id == self.next_id - 1
        return live[-1].allocation, self.oracle.live_allocation()[-1]

    # --- operations -----------------------------------------------------------------

    def pay(self) -> None:
        terms, data = self.terms, self.data
        on = draw_date(data, self.last_transaction or terms.start_date, self.today)
        if not self.date_ok(on):
            return  # the payment date rule is payment.check_payment_date's (tested in v1)
        paid = self.paid_at(on)
        view = self.oracle.view(on)
        if self.written_off_on is not None:
            return self.recover(on, paid, view)
        accepted = view.accepted_whole if self.oracle.whole_installments else view.accepted_due_only
        assert accepted_amounts(terms, paid, on) == accepted
        if accepted and data.draw(st.integers(0, 4)) > 0:
            amount = data.draw(st.sampled_from(accepted))
        else:
            amount = data.draw(st.integers(-1, terms.total_amount - paid + 1))
        try:
            settled = settle_payment(terms, paid, amount, on)
        except FailedPrecondition as err:
            assert not accepted
            assert err.reason == ("LOAN_FULLY_PAID" if view.status == "PAID" else "NOTHING_PAYABLE")
            return
        except PaymentAmountRefused:
            assert amount not in accepted
            return
        assert amount in accepted
        self.record(on, amount, PaymentKind.REGULAR)
        event("payment")
        move, mine = self.newest_allocation()
        assert settled.settled_week_numbers == move.settled_week_numbers == mine.weeks
        assert settled.interest_amount == move.interest_amount == mine.interest
        assert settled.after.paid_amount == move.paid_amount_after == mine.paid_after

    def recover(self, on: dt.date, paid: int, view: View) -> None:
        owed = view.outstanding
        amount = self.data.draw(
            st.one_of(st.integers(1, max(owed, 1)), st.integers(-1, owed + 2), st.just(owed))
        )
        try:
            move = accept_recovery(self.terms, paid, amount)
        except FailedPrecondition as err:
            assert owed == 0 and err.reason == "NOTHING_OWED"
            return
        except InvalidArgument as err:
            assert owed > 0 and not 1 <= amount <= owed
            assert [v.field for v in err.violations] == ["amount"]
            return
        assert 1 <= amount <= owed
        self.record(on, amount, PaymentKind.RECOVERY)
        event("recovery")
        newest, mine = self.newest_allocation()
        assert move == newest
        assert (move.settled_week_numbers, move.interest_amount) == (mine.weeks, mine.interest)

    def pay_off(self) -> None:
        terms, data = self.terms, self.data
        on = draw_date(data, self.last_transaction or terms.start_date, self.today)
        if not self.date_ok(on):
            return
        paid = self.paid_at(on)
        view = self.oracle.view(on)
        expected = view.payoff_waive_undue if self.oracle.waive_undue else view.payoff_full
        try:
            quote = payoff_quote(terms, paid, on, written_off_on=self.written_off_on)
        except FailedPrecondition as err:
            assert err.reason == expected
            with pytest.raises(FailedPrecondition):
                settle_payoff(terms, paid, 1, on, written_off_on=self.written_off_on)
            return
        assert isinstance(expected, Quote)
        assert (quote.payoff_amount, quote.principal_amount) == (
            expected.amount,
            expected.principal,
        )
        assert (quote.interest_amount, quote.waived_interest_amount) == (
            expected.interest,
            expected.waived,
        )
        wrong = data.draw(st.sampled_from([quote.payoff_amount - 1, quote.payoff_amount + 1]))
        with pytest.raises(PayoffAmountRefused) as refused:
            settle_payoff(terms, paid, wrong, on, written_off_on=self.written_off_on)
        assert refused.value.quote == quote
        assert f"{quote.payoff_amount:,}" in refused.value.message
        settled = settle_payoff(terms, paid, quote.payoff_amount, on)
        assert settled.quote == quote
        assert settled.after.paid_amount == terms.total_amount
        assert settled.after.status is LoanStatus.PAID
        self.record(on, quote.payoff_amount, PaymentKind.PAYOFF, quote.waived_interest_amount)
        event("payoff" + (" waiving" if quote.waived_interest_amount else ""))
        move, mine = self.newest_allocation()
        assert settled.allocation == move
        assert (move.principal_amount, move.interest_amount) == (
            quote.principal_amount,
            quote.interest_amount,
        )
        assert (move.settled_week_numbers, move.interest_amount) == (mine.weeks, mine.interest)
        assert move.settled_week_numbers == list(
            range(terms.installments_covered(paid) + 1, terms.weeks + 1)
        )

    def reverse(self) -> None:
        if not self.records:
            return
        data = self.data
        index = data.draw(st.integers(0, len(self.records) - 1))
        payment = self.records[index]
        on = draw_date(data, payment.payment_date, self.today)
        refusal = None
        if not payment.live:
            refusal = "PAYMENT_ALREADY_REVERSED"
        elif self.written_off_on is not None and payment.kind is not PaymentKind.RECOVERY:
            refusal = "LOAN_WRITTEN_OFF"
        elif not payment.payment_date <= on <= self.today:
            refusal = (
                "REVERSAL_DATE_IN_FUTURE" if on > self.today else "REVERSAL_DATE_BEFORE_PAYMENT"
            )
        try:
            check_reversal(
                payment, on, business_date=self.today, written_off_on=self.written_off_on
            )
        except (FailedPrecondition, InvalidArgument) as err:
            assert err.reason == refusal
            assert isinstance(err, InvalidArgument) == refusal.startswith("REVERSAL_DATE")
            return
        assert refusal is None
        self.records[index] = replace(payment, live=False)
        self.oracle.reverse(payment.id)
        later = [p for p in self.records if p.live and p.id > payment.id]
        event(f"reversal of a {payment.kind.value}" + (" with later payments" if later else ""))
        if any(p.kind is PaymentKind.PAYOFF for p in later):
            event("reversal re-allocating a payoff")

    def write_off(self) -> None:
        terms = self.terms
        on = draw_date(self.data, self.last_transaction or terms.start_date, self.today)
        latest = latest_live_payment_date(self.records)
        paid = self.paid_at(on)
        if self.written_off_on is not None:
            refusal = "LOAN_ALREADY_WRITTEN_OFF"
        elif on > self.today:
            refusal = "WRITE_OFF_DATE_IN_FUTURE"
        elif on < terms.start_date:
            refusal = "WRITE_OFF_DATE_BEFORE_START"
        elif latest is not None and on < latest:
            refusal = "WRITE_OFF_DATE_BEFORE_LATEST_PAYMENT"
        elif self.oracle.view(on).status == "PAID":
            refusal = "LOAN_FULLY_PAID"
        else:
            refusal = None
        try:
            amounts = check_write_off(
                terms,
                paid,
                on,
                business_date=self.today,
                last_payment_date=latest,
                written_off_on=self.written_off_on,
            )
        except (FailedPrecondition, InvalidArgument) as err:
            assert err.reason == refusal
            return
        assert refusal is None
        assert self.oracle.view(on).status in ("ACTIVE", "DELINQUENT")
        expected = self.oracle.write_off(on)
        assert (amounts.principal_amount, amounts.interest_amount) == expected
        assert amounts.total_amount == terms.total_amount - paid > 0
        self.written_off_on = on
        event("write-off")

    # --- reads --------------------------------------------------------------------

    def check_reads(self) -> None:
        terms = self.terms
        dates = [self.today, terms.start_date] + [
            self.data.draw(
                st.dates(
                    min_value=terms.start_date - 2 * DAY,
                    max_value=max(self.today, terms.start_date) + 60 * DAY,
                )
            )
            for _ in range(2)
        ]
        for on in dates:
            if self.oracle.view(on).partly:
                event("installment partly covered")
            assert_matches(terms, self.paid_at(on), on, self.oracle.view(on), self.written_off_on)
        self.check_history()

    def check_history(self) -> None:
        terms = self.terms
        live = reallocate(terms, self.records)
        expected = self.oracle.live_allocation()
        assert [p.payment.id for p in live] == [s.id for s in expected]
        for mine, walk in zip(live, expected, strict=True):
            move = mine.allocation
            assert move.settled_week_numbers == walk.weeks
            assert (move.principal_amount, move.interest_amount) == (walk.principal, walk.interest)
            assert move.paid_amount_after == walk.paid_after
            assert move.principal_amount + move.interest_amount == mine.payment.amount
            assert move.principal_amount >= 0 and move.interest_amount >= 0
        paid = paid_amount_at(self.records, dt.date.max)
        assert (live[-1].allocation.paid_amount_after if live else 0) == paid <= terms.total_amount
        # each covered installment is settled by exactly one live payment, in order
        settled = [k for p in live for k in p.allocation.settled_week_numbers]
        assert settled == list(range(1, terms.installments_covered(paid) + 1))
        # the splits add up to what the J rule says of A (a re-allocated payoff's
        # interest part may have hit its floor of 0: one unit each at most)
        principal = sum(p.allocation.principal_amount for p in live)
        payoffs = sum(1 for p in live if p.payment.waived_interest_amount)
        slack = (paid - terms.interest_part(paid)) - principal
        assert 0 <= slack <= payoffs
        if slack:
            event("a re-allocated payoff's interest part at its floor")
        interest = sum(p.allocation.interest_amount for p in live)
        waived = sum(p.payment.waived_interest_amount for p in live)
        assert interest + waived == terms.interest_part(paid) + slack


OPERATIONS = ["pay"] * 5 + ["reverse"] * 3 + ["pay_off"] * 2 + ["write_off"]


@settings(SETTINGS, max_examples=150)
@given(st.data())
def test_random_timeline(data):
    terms = data.draw(v2_terms(max_weeks=data.draw(st.sampled_from([6, 15, 60, 156]))))
    timeline = Timeline(data, terms)
    for _ in range(data.draw(st.integers(1, 25))):
        timeline.today += DAY * data.draw(
            st.one_of(st.sampled_from([0, 1, 6, 7, 8]), st.integers(0, 40))
        )
        getattr(timeline, data.draw(st.sampled_from(OPERATIONS)))()
        timeline.check_reads()


@settings(SETTINGS, max_examples=60)
@given(st.data())
def test_reversing_any_payment_reallocates_the_later_ones(data):
    """Pay on schedule for a while, then reverse any one payment: the later ones
    cover the earlier installments, and reads at past dates change with them."""
    terms = data.draw(v2_terms(max_weeks=30))
    timeline = Timeline(data, terms)
    for k in range(1, data.draw(st.integers(2, terms.weeks + 1))):
        timeline.today = terms.due_date(min(k, terms.weeks))
        paid = timeline.paid_at(timeline.today)
        if paid == terms.total_amount:
            break
        amount = accepted_amounts(terms, paid, timeline.today)[0]
        settle_payment(terms, paid, amount, timeline.today)
        timeline.record(timeline.today, amount, PaymentKind.REGULAR)
    if not timeline.records:
        reject()
    timeline.reverse()
    timeline.check_reads()


@settings(SETTINGS, max_examples=60)
@given(st.data())
def test_reversal_under_a_payoff(data):
    """Pay some weeks on time, pay off, then reverse an earlier payment: the loan
    reopens owing that payment, the payoff (and its waiver) now covers earlier
    weeks, and its split stays >= 0 on both sides."""
    terms = data.draw(v2_terms(max_weeks=30))
    if terms.weeks == 1:
        reject()
    if data.draw(st.integers(0, 3)):
        terms = replace(terms, payoff_interest=PayoffInterest.WAIVE_UNDUE)
    timeline = Timeline(data, terms)
    for k in range(1, data.draw(st.integers(1, terms.weeks - 1)) + 1):
        timeline.today = terms.due_date(k)
        amount = accepted_amounts(terms, timeline.paid_at(timeline.today), timeline.today)[0]
        timeline.record(timeline.today, amount, PaymentKind.REGULAR)
    timeline.today += DAY * data.draw(st.sampled_from([0, 0, 1, 6, 7, 30]))
    paid = timeline.paid_at(timeline.today)
    quote = payoff_quote(terms, paid, timeline.today)
    timeline.record(
        timeline.today, quote.payoff_amount, PaymentKind.PAYOFF, quote.waived_interest_amount
    )
    index = data.draw(st.integers(0, len(timeline.records) - 2))
    reversed_amount = timeline.records[index].amount
    timeline.records[index] = replace(timeline.records[index], live=False)
    timeline.oracle.reverse(timeline.records[index].id)
    assert timeline.paid_at(timeline.today) == terms.total_amount - reversed_amount
    timeline.check_reads()


def test_reallocated_payoff_interest_floor():
    """The reading of "interest part = the rest (never negative)" once a reversal
    re-allocates a payoff: P 1,000 at 10 % over 3 weeks (110 % = 1,100: 366, 366,
    368), WAIVE_UNDUE. Week 1 paid on its due date, then paid off the same day:
    waived I - J(366) = 100 - 33 = 67, payoff 667 (all principal). Reverse week 1:
    the payoff moves A from 0 to 734; J(734) = 66 < 67 waived, so the J rule would
    make its interest part -1. It is 0, and its principal part the whole 667 (the
    outstanding principal P - (A - J(A)) = 332 is one less than P minus the
    principal parts, 333)."""
    terms = LoanTerms.create(
        principal_amount=1_000,
        interest_rate_bps=1000,
        weeks=3,
        start_date=START,
        payoff_interest=PayoffInterest.WAIVE_UNDUE,
    )
    assert [i.amount for i in terms.schedule()] == [366, 366, 368]
    week1 = PaymentRecord(1, terms.due_date(1), 366)
    quote = payoff_quote(terms, 366, terms.due_date(1))
    assert (quote.payoff_amount, quote.principal_amount, quote.interest_amount) == (667, 667, 0)
    assert quote.waived_interest_amount == 67
    payoff = PaymentRecord(2, terms.due_date(1), 667, PaymentKind.PAYOFF, True, 67)
    live = reallocate(terms, [replace(week1, live=False), payoff])
    (moved,) = [p.allocation for p in live]
    assert (moved.paid_amount_before, moved.paid_amount_after) == (0, 734)
    assert moved.settled_week_numbers == [1, 2]
    assert (moved.principal_amount, moved.interest_amount) == (667, 0)
    after = Position(terms, 734, terms.due_date(1))
    assert (after.outstanding_amount, after.outstanding_principal_amount) == (366, 332)
    assert after.outstanding_interest_amount == 34


# --- the worked examples of the spec, exactly ---------------------------------------

START = dt.date(2026, 1, 5)


def canonical(**kwargs) -> LoanTerms:
    return LoanTerms.create(
        principal_amount=5_000_000,
        interest_rate_bps=1000,
        weeks=50,
        start_date=START,
        **kwargs,
    )


def test_canonical_loan():
    terms = canonical()
    oracle = brute(terms)
    assert (terms.interest_amount, terms.total_amount) == (500_000, 5_500_000)
    assert oracle.amounts == [110_000] * 50 and oracle.portion_interest == [10_000] * 50
    for inst in terms.schedule():
        assert (inst.amount, inst.principal_amount, inst.interest_amount) == (
            110_000,
            100_000,
            10_000,
        )
    assert sum(i.interest_amount for i in terms.schedule()) == 500_000
    assert terms.interest_part(terms.total_amount) == 500_000
    for k in range(51):
        a = 110_000 * k
        assert terms.interest_part(a) == 10_000 * k
        assert Position(terms, a, START).outstanding_amount == 5_500_000 - a
    assert Position(terms, 0, START).outstanding_amount == 5_500_000
    assert Position(terms, 5_500_000, START).outstanding_amount == 0


def test_reversal_worked_example():
    terms = canonical()
    records: list[PaymentRecord] = []
    for pid, day in ((1, 12), (2, 19), (3, 26)):
        on = dt.date(2026, 1, day)
        settled = settle_payment(terms, paid_amount_at(records, on), 110_000, on)
        assert settled.settled_week_numbers == [pid]
        records.append(PaymentRecord(pid, on, 110_000))
    p2 = records[1]
    check_reversal(
        p2, dt.date(2026, 1, 26), business_date=dt.date(2026, 1, 26), written_off_on=None
    )
    records[1] = replace(p2, live=False)

    at_26 = Position(terms, paid_amount_at(records, dt.date(2026, 1, 26)), dt.date(2026, 1, 26))
    assert at_26.paid_amount == 220_000
    assert at_26.paid_count == 2
    assert at_26.outstanding_amount == 5_280_000
    live = reallocate(terms, records)
    assert [(p.payment.id, p.allocation.settled_week_numbers) for p in live] == [(1, [1]), (3, [2])]
    # week 3 (due 01-26) is current and unpaid
    assert terms.due_date(3) == dt.date(2026, 1, 26)
    assert at_26.installment_status(3).value == "UNPAID"
    assert at_26.missed_installments == 0 and at_26.status is LoanStatus.ACTIVE
    assert accepted_amounts(terms, 220_000, dt.date(2026, 1, 26)) == [110_000]
    at_27 = Position(terms, paid_amount_at(records, dt.date(2026, 1, 27)), dt.date(2026, 1, 27))
    assert at_27.missed_installments == 1
    assert at_27.overdue_amount == 110_000 and at_27.days_past_due == 1
    # GetOutstanding at a past date reads the corrected history
    assert (
        Position(
            terms, paid_amount_at(records, dt.date(2026, 1, 20)), dt.date(2026, 1, 20)
        ).outstanding_amount
        == 5_390_000
    )
    # reversing it again is refused
    with pytest.raises(FailedPrecondition) as again:
        check_reversal(
            records[1],
            dt.date(2026, 1, 27),
            business_date=dt.date(2026, 1, 27),
            written_off_on=None,
        )
    assert again.value.reason == "PAYMENT_ALREADY_REVERSED"
    # the oracle agrees
    oracle = brute(terms)
    for p in records:
        oracle.pay(p.id, p.payment_date, p.amount)
    oracle.reverse(2)
    assert oracle.view(dt.date(2026, 1, 20)).outstanding == 5_390_000
    assert [s.weeks for s in oracle.live_allocation()] == [[1], [2]]


def test_payoff_worked_example():
    on = dt.date(2026, 3, 18)
    waive = canonical(payoff_interest=PayoffInterest.WAIVE_UNDUE)
    assert waive.weeks_due_before(on) + 1 == 11 and waive.due_date(11) == dt.date(2026, 3, 23)
    assert waive.interest_through(11) == 110_000
    quote = payoff_quote(waive, 1_100_000, on)
    assert (
        quote.payoff_amount,
        quote.principal_amount,
        quote.interest_amount,
        quote.waived_interest_amount,
        quote.valid_on,
        quote.currency_code,
    ) == (4_010_000, 4_000_000, 10_000, 390_000, on, "IDR")
    full = payoff_quote(canonical(), 1_100_000, on)
    assert (full.payoff_amount, full.principal_amount, full.interest_amount) == (
        4_400_000,
        4_000_000,
        400_000,
    )
    assert full.waived_interest_amount == 0
    # the payoff itself: exactly the quote, then A = T and the loan is PAID
    with pytest.raises(PayoffAmountRefused) as refused:
        check_payoff_amount(quote, 4_400_000)
    assert (
        "4,010,000" in refused.value.message and refused.value.reason == "PAYOFF_AMOUNT_NOT_QUOTED"
    )
    settled = settle_payoff(waive, 1_100_000, 4_010_000, on)
    assert settled.after.paid_amount == 5_500_000 and settled.after.status is LoanStatus.PAID
    assert settled.allocation.settled_week_numbers == list(range(11, 51))
    # a paid loan has no payoff; a date before the start is out of range
    with pytest.raises(FailedPrecondition) as paid:
        payoff_quote(waive, 5_500_000, on)
    assert paid.value.reason == "LOAN_FULLY_PAID"
    with pytest.raises(OutOfRange) as early:
        payoff_quote(waive, 0, START - DAY)
    assert str(START) in early.value.message
    # both against the walk
    oracle = brute(waive)
    for k in range(1, 11):
        oracle.pay(k, waive.due_date(k), 110_000)
    assert oracle.view(on).payoff_waive_undue == Quote(4_010_000, 4_000_000, 10_000, 390_000)
    assert oracle.view(on).payoff_full == Quote(4_400_000, 4_000_000, 400_000, 0)


def test_write_off_and_recovery_on_the_canonical_loan():
    terms = canonical()
    on = dt.date(2026, 3, 18)
    amounts = check_write_off(
        terms,
        1_100_000,
        on,
        business_date=on,
        last_payment_date=dt.date(2026, 3, 16),
        written_off_on=None,
    )
    assert (amounts.principal_amount, amounts.interest_amount) == (4_000_000, 400_000)
    assert write_off_amounts(terms, 1_100_000) == amounts
    with pytest.raises(FailedPrecondition) as twice:
        check_write_off(
            terms, 1_100_000, on, business_date=on, last_payment_date=None, written_off_on=on
        )
    assert twice.value.reason == "LOAN_ALREADY_WRITTEN_OFF"
    with pytest.raises(FailedPrecondition) as paid:
        check_write_off(
            terms, 5_500_000, on, business_date=on, last_payment_date=None, written_off_on=None
        )
    assert paid.value.reason == "LOAN_FULLY_PAID"
    # a recovery: any amount 1..outstanding, allocated oldest first
    move = accept_recovery(terms, 1_100_000, 50_000)
    assert move.settled_week_numbers == [] and move.paid_amount_after == 1_150_000
    assert (move.principal_amount, move.interest_amount) == (45_455, 4_545)
    move = accept_recovery(terms, 1_150_000, 4_350_000)
    assert move.settled_week_numbers == list(range(11, 51)) and move.paid_amount_after == 5_500_000
    for bad in (0, -1, 4_350_001):
        with pytest.raises(InvalidArgument):
            accept_recovery(terms, 1_150_000, bad)
    with pytest.raises(FailedPrecondition) as nothing:
        accept_recovery(terms, 5_500_000, 1)
    assert nothing.value.reason == "NOTHING_OWED"
    # only recoveries can be reversed on a written-off loan
    regular = PaymentRecord(1, dt.date(2026, 3, 16), 110_000)
    with pytest.raises(FailedPrecondition) as refused:
        check_reversal(regular, on, business_date=on, written_off_on=on)
    assert refused.value.reason == "LOAN_WRITTEN_OFF"
    recovery = PaymentRecord(2, on, 50_000, PaymentKind.RECOVERY)
    check_reversal(recovery, on, business_date=on, written_off_on=on)


def test_oracle_kinds_match_the_domain():
    assert {k.value for k in PaymentKind} == {REGULAR, PAYOFF, RECOVERY}
